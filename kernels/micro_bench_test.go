package kernels

import (
	"fmt"
	"testing"
)

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

// BenchmarkTransposeRows times the packing transpose (rows → column slivers) that
// the forward product's B panel and the A blocks go through.
func BenchmarkTransposeRows(b *testing.B) {
	for _, w := range []int{4, 12, 32} {
		b.Run(fmt.Sprint(w), func(b *testing.B) {
			const kc = 256
			rows := make([][]float32, w)
			for i := range rows {
				rows[i] = make([]float32, kc)
			}
			dst := make([]float32, w*kc)
			b.SetBytes(int64(w * kc * 4))
			for i := 0; i < b.N; i++ {
				transposeRows(dst, rows, w, 1)
			}
		})
	}
}

// BenchmarkDecodeRow times decoding one 2048-wide row, vectorized and pure Go.
func BenchmarkDecodeRow(b *testing.B) {
	src := make([]float32, 4*2048)
	for i := range src {
		src[i] = float32(i%17) - 8
	}
	for _, f := range []Format{Q8_0, Q4_0, NF4} {
		w := Quantize(f, 4, 2048, src)
		dst := make([]float32, 2048)
		for _, vec := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/vectorized=%v", f, vec), func(b *testing.B) {
				q8, q4, nf := blockQ8_0, blockQ4_0, blockNF4
				if !vec {
					blockQ8_0, blockQ4_0, blockNF4 = nil, nil, nil
				}
				b.SetBytes(2048 * 4)
				for i := 0; i < b.N; i++ {
					w.DecodeRow(dst, i&3)
				}
				blockQ8_0, blockQ4_0, blockNF4 = q8, q4, nf
			})
		}
	}
}
