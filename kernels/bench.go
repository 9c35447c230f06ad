package kernels

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// BenchShape is one GEMM benchmark case: C (M×N) = X (M×K) · op(W), with W
// stored as out×in. Forward is Y = X·Wᵀ (W is N×K); Backward is dX = dY·W
// (W is K×N).
type BenchShape struct {
	Name    string
	M, N, K int
}

// BenchShapes are the shapes lowrank's training step is made of: a square
// reference, the smollm2-135m projections (hidden 576, MLP 1536) and the
// TinyLlama MLP at a 2048-token batch, and rank-8 LoRA products.
var BenchShapes = []BenchShape{
	{"512x512x512", 512, 512, 512},
	{"smollm2 up/gate", 2048, 1536, 576},
	{"smollm2 down", 2048, 576, 1536},
	{"tinyllama mlp", 2048, 5632, 2048},
	{"lora A r8", 2048, 8, 576},
	{"lora B r8", 2048, 576, 8},
}

// BenchResult is one measured case.
type BenchResult struct {
	Shape   string  `json:"shape"`
	M       int     `json:"m"`
	N       int     `json:"n"`
	K       int     `json:"k"`
	Op      string  `json:"op"`     // "X·Wᵀ" (forward) or "dY·W" (backward)
	Format  string  `json:"format"` // storage format of W
	Kernel  string  `json:"kernel"`
	Threads int     `json:"threads"`
	GFLOPS  float64 `json:"gflops"`
	MsPerOp float64 `json:"ms_per_op"`
	WBytes  int64   `json:"weight_bytes"`
}

// Bench times GemmW on the pool for one shape, product and format: it repeats
// the product for at least minTime (after one warm-up call) and reports the
// median of five such rounds.
func Bench(p *Pool, s BenchShape, op Op, f Format, minTime time.Duration) BenchResult {
	r := rand.New(rand.NewPCG(1, uint64(s.M*31+s.N*7+s.K)))
	rows, cols := s.N, s.K // forward: W is N×K
	if op == NoTrans {
		rows, cols = s.K, s.N
	}
	src := make([]float32, rows*cols)
	for i := range src {
		src[i] = r.Float32()*2 - 1
	}
	w := Quantize(f, rows, cols, src)
	x := NewMat(s.M, s.K)
	for i := range x.Data {
		x.Data[i] = r.Float32()*2 - 1
	}
	c := NewMat(s.M, s.N)
	p.GemmW(c, 1, x, NoTrans, w, op, 0) // warm-up: pages, workers, caches
	rounds := make([]float64, 5)
	for i := range rounds {
		n := 0
		start := time.Now()
		for time.Since(start) < minTime/5 || n == 0 {
			p.GemmW(c, 1, x, NoTrans, w, op, 0)
			n++
		}
		rounds[i] = time.Since(start).Seconds() / float64(n)
	}
	sec := median(rounds)
	name := "X·Wᵀ"
	if op == NoTrans {
		name = "dY·W"
	}
	return BenchResult{
		Shape: s.Name, M: s.M, N: s.N, K: s.K, Op: name, Format: f.String(),
		Kernel: p.Kernel(), Threads: p.Threads(),
		GFLOPS: 2 * float64(s.M) * float64(s.N) * float64(s.K) / sec / 1e9, MsPerOp: sec * 1e3,
		WBytes: w.Bytes(),
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ { // insertion sort: five values
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// String formats a result as one table row.
func (b BenchResult) String() string { return b.Row(7) }

// Row is String with the kernel's column kw characters wide.
func (b BenchResult) Row(kw int) string {
	return fmt.Sprintf("%-16s %5d %5d %5d  %-5s %-5s %-*s %2d  %8.1f GFLOPS %9.3f ms", b.Shape, b.M, b.N, b.K, b.Op, b.Format, kw, b.Kernel, b.Threads, b.GFLOPS, b.MsPerOp)
}
