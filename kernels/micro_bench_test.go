package kernels

import (
	"fmt"
	"testing"
)

// BenchmarkMicrokernel times each microkernel alone on L1-resident slivers: the
// ceiling the packed driver can approach.
func BenchmarkMicrokernel(b *testing.B) {
	for _, pa := range paths() {
		mk := pa.mk
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

// BenchmarkMicrokernelBF16 times each bf16 kernel alone on L1-resident
// slivers (kc = 256 values of K: 128 pairs), against BenchmarkMicrokernel.
func BenchmarkMicrokernelBF16(b *testing.B) {
	for _, pa := range bf16Twins() {
		mr, nr, _, kc, _ := pa.bf16.geom(pa.mk)
		b.Run(pa.bf16.name, func(b *testing.B) {
			kp := kc / 2
			a := make([]uint32, mr*kp)
			bb := make([]uint32, nr*kp)
			c := make([]float32, mr*nr)
			for i := range a {
				a[i] = 0x3c003c00 + uint32(i%7)
			}
			for i := range bb {
				bb[i] = 0x3c003c00 + uint32(i%5)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pa.bf16.fn(kp, &a[0], &bb[0], &c[0], nr, false)
			}
			b.ReportMetric(2*float64(mr*nr*2*kp)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

// BenchmarkPackPairs times the conversion of packed fp32 slivers to bf16
// pairs (a B panel: kc = 256 rows of 32 columns × 16 slivers).
func BenchmarkPackPairs(b *testing.B) {
	src := make([]float32, 256*32*16)
	for i := range src {
		src[i] = float32(i%97) * 0.37
	}
	dst := make([]uint32, 128*32*16)
	for _, pa := range bf16Twins() {
		b.Run(pa.Name(), func(b *testing.B) {
			b.SetBytes(int64(len(src) * 4))
			for i := 0; i < b.N; i++ {
				packPairs(&pa.conv, dst, src, 32, 256, 128, 16)
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
		for _, pa := range []*Path{paths()[0], goPath} {
			b.Run(fmt.Sprintf("%s/blocks=%s", f, pa.Info().Blocks), func(b *testing.B) {
				b.SetBytes(2048 * 4)
				for i := 0; i < b.N; i++ {
					pa.DecodeRow(w, dst, i&3)
				}
			})
		}
	}
}

// BenchmarkTransposeRows: the packing transpose, SIMD vs pure Go, for the
// A and B slivers of the AVX2 kernel (6 and 16 rows) and the AVX-512 one's
// (12 and 32) at kc = 256.
func BenchmarkTransposeRows(b *testing.B) {
	for _, w := range []int{6, 12, 16, 32} {
		rows := make([][]float32, w)
		for i := range rows {
			rows[i] = make([]float32, 256)
		}
		dst := make([]float32, 256*w)
		for _, impl := range []struct {
			name string
			f    func([]float32, [][]float32, int, float32)
		}{{"simd", func(d []float32, r [][]float32, w int, a float32) { transposeRows(paths()[0].transpose, d, r, w, a) }}, {"go", transposeRowsGo}} {
			b.Run(fmt.Sprintf("w=%d/%s", w, impl.name), func(b *testing.B) {
				b.SetBytes(int64(4 * 256 * w))
				for i := 0; i < b.N; i++ {
					impl.f(dst, rows, w, 1)
				}
			})
		}
	}
}

// BenchmarkPackPairsT: packing rows straight into bf16 pair slivers
// (packPairsT, one pass) against the fp32 transpose then packPairs (two),
// for the 12-row A sliver and the 32-row B sliver at kc = 256.
func BenchmarkPackPairsT(b *testing.B) {
	for _, pa := range bf16Twins() {
		for _, w := range []int{12, 32} {
			rows := make([][]float32, w)
			for i := range rows {
				rows[i] = make([]float32, 256)
				for p := range rows[i] {
					rows[i][p] = float32((i*256+p)%97) * 0.37
				}
			}
			sliver := make([]float32, 256*w)
			dst := make([]uint32, 128*w)
			b.Run(fmt.Sprintf("%s/w=%d/one-pass", pa.Name(), w), func(b *testing.B) {
				b.SetBytes(int64(4 * 256 * w))
				for i := 0; i < b.N; i++ {
					packPairsT(&pa.conv, dst, rows, w, 128, 0.5)
				}
			})
			b.Run(fmt.Sprintf("%s/w=%d/two-pass", pa.Name(), w), func(b *testing.B) {
				b.SetBytes(int64(4 * 256 * w))
				for i := 0; i < b.N; i++ {
					transposeRows(pa.transpose, sliver, rows, w, 0.5)
					packPairs(&pa.conv, dst, sliver, w, 256, 128, 1)
				}
			})
		}
	}
}
