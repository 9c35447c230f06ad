//go:build openblas

package kernels

import (
	"fmt"
	"testing"

	"github.com/lowrank/lowrank/kernels/internal/openblas"
)

// BenchmarkVsOpenBLAS runs lowrank's fp32 GEMM and OpenBLAS's cblas_sgemm on the
// same shapes in one process, interleaved (go test -tags openblas -bench VsOpenBLAS
// -count 6 ./kernels | benchstat). Needs libopenblas-dev.
func BenchmarkVsOpenBLAS(b *testing.B) {
	for _, th := range []int{1, 2} {
		p, _ := NewPool(th, "")
		for _, s := range BenchShapes {
			for _, op := range []Op{Trans, NoTrans} {
				rows, cols := s.N, s.K
				if op == NoTrans {
					rows, cols = s.K, s.N
				}
				x := NewMat(s.M, s.K)
				w := NewMat(rows, cols)
				for i := range x.Data {
					x.Data[i] = float32(i%13) * 0.1
				}
				for i := range w.Data {
					w.Data[i] = float32(i%11) * 0.1
				}
				c := NewMat(s.M, s.N)
				flops := 2 * float64(s.M) * float64(s.N) * float64(s.K)
				b.Run(fmt.Sprintf("t%d/%s/%v/lowrank", th, s.Name, op), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						p.Gemm(c, 1, x, NoTrans, w, op, 0)
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
				})
				b.Run(fmt.Sprintf("t%d/%s/%v/openblas", th, s.Name, op), func(b *testing.B) {
					openblas.SetThreads(th)
					for i := 0; i < b.N; i++ {
						openblas.Sgemm(false, bool(op), s.M, s.N, s.K, 1, x.Data, s.K, w.Data, cols, 0, c.Data, s.N)
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
				})
			}
		}
	}
}
