package kernels

import "testing"

// BenchmarkMicrokernel times each microkernel alone on L1-resident slivers: the
// ceiling the packed driver can approach.
func BenchmarkMicrokernel(b *testing.B) {
	for _, mk := range available() {
		b.Run(mk.name, func(b *testing.B) {
			kc := mk.kc
			a := make([]float32, mk.mr*kc)
			bb := make([]float32, mk.nr*kc)
			c := make([]float32, mk.mr*mk.nr)
			for i := range a {
				a[i] = float32(i%7) * 0.01
			}
			for i := range bb {
				bb[i] = float32(i%5) * 0.01
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				mk.fn(kc, &a[0], &bb[0], &c[0], mk.nr, false)
			}
			b.ReportMetric(2*float64(mk.mr*mk.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}
