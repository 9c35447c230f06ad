package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkGemm reports GFLOPS for every shape, product, format and kernel on
// one and two threads. Compare runs with benchstat.
func BenchmarkGemm(b *testing.B) {
	for _, kname := range Kernels() {
		for _, th := range []int{1, 2} {
			p, err := NewPool(th, kname)
			if err != nil {
				b.Fatal(err)
			}
			for _, s := range BenchShapes {
				for _, op := range []Op{Trans, NoTrans} {
					for _, f := range []Format{F32, Q8_0, Q4_0, NF4} {
						if s.N < 32 && f != F32 || s.K < 32 && f != F32 {
							continue // LoRA factors are fp32
						}
						name := fmt.Sprintf("%s/t%d/%s/%s/%s", kname, th, s.Name, op, f)
						b.Run(name, func(b *testing.B) { benchGemmW(b, p, s, op, f) })
					}
				}
			}
		}
	}
}

func benchGemmW(b *testing.B, p *Pool, s BenchShape, op Op, f Format) {
	r := rand.New(rand.NewPCG(1, 2))
	rows, cols := s.N, s.K
	if op == NoTrans {
		rows, cols = s.K, s.N
	}
	w := Quantize(f, rows, cols, randMat(r, rows, cols, cols).Data)
	x := randMat(r, s.M, s.K, s.K)
	c := NewMat(s.M, s.N)
	p.GemmW(c, 1, x, NoTrans, w, op, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.GemmW(c, 1, x, NoTrans, w, op, 0)
	}
	b.ReportMetric(2*float64(s.M)*float64(s.N)*float64(s.K)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}
