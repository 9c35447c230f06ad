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

// BenchmarkLoRAGrad reports GFLOPS for the adapter gradients of one smollm2
// MLP projection at 4×256 tokens: dA = dHᵀ·X (r × 1536, reduction over the
// 1024 tokens) and dB = dYᵀ·H (1536 × r), which take the outer-product path
// where the CPU has it.
func BenchmarkLoRAGrad(b *testing.B) {
	for _, kname := range Kernels() {
		p, err := NewPool(1, kname)
		if err != nil {
			b.Fatal(err)
		}
		for _, rank := range []int{8, 16} {
			r := rand.New(rand.NewPCG(3, 4))
			const m, n = 1024, 1536
			h, x := randMat(r, m, rank, rank), randMat(r, m, n, n)
			dA, dB := NewMat(rank, n), NewMat(n, rank)
			for _, c := range []struct {
				name string
				run  func()
			}{
				{"dA", func() { p.Gemm(dA, 1, h, Trans, x, NoTrans, 1) }},
				{"dB", func() { p.Gemm(dB, 1, x, Trans, h, NoTrans, 1) }},
			} {
				b.Run(fmt.Sprintf("%s/r%d/%s", kname, rank, c.name), func(b *testing.B) {
					c.run()
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						c.run()
					}
					b.ReportMetric(2*float64(m)*float64(n)*float64(rank)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
				})
			}
		}
	}
}
