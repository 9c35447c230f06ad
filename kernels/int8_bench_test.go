package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// BenchmarkGemv times one row against a weight (generation's product) on
// each fp32 path and, for the block formats, its int8 twin: a weight that fits L2 (576×1536) and
// one that streams from memory (49152×576, smollm2's output projection).
// Reports GMAC/s and the weight's GB/s.
func BenchmarkGemv(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 1))
	for _, sh := range [][2]int{{576, 1536}, {49152, 576}} {
		for _, f := range []Format{F32, F16, BF16, Q8_0, Q4_0, NF4} {
			w := Quantize(f, sh[0], sh[1], randMat(r, sh[0], sh[1], sh[1]).Data)
			x := randMat(r, 1, sh[1], sh[1])
			y := NewMat(1, sh[0])
			var ps []*Path
			for _, p := range Paths() {
				ps = append(ps, p)
				if t, err := p.Int8(); err == nil && t != goInt8Path && f.BlockSize() > 1 {
					ps = append(ps, t)
				}
			}
			for _, pa := range ps {
				b.Run(fmt.Sprintf("%dx%d/%s/%s", sh[0], sh[1], f, pa.Name()), func(b *testing.B) {
					p := NewPoolOn(1, pa)
					for i := 0; i < b.N; i++ {
						p.GemmW(y, 1, x, NoTrans, w, Trans, 0)
					}
					s := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(sh[0]*sh[1])/s/1e9, "GMAC/s")
					b.ReportMetric(float64(w.Bytes())/s/1e9, "GB/s")
				})
			}
		}
	}
}

// BenchmarkGemvModel times one token's products through the smollm2-135m
// shape's 210 Q8_0 projections in turn (113 MB: from memory, not cache, as
// generation reads them) on the fp32 path and its int8 twin, 1 worker.
func BenchmarkGemvModel(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 1))
	shapes := [][2]int{{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}}
	var ws []*Weight
	var macs, bytes float64
	for l := 0; l < 30; l++ {
		for _, sh := range shapes {
			w := QuantizeRows(Q8_0, sh[0], sh[1], func(_ int, dst []float32) {
				for i := range dst {
					dst[i] = float32(r.NormFloat64() * 0.02)
				}
			})
			ws = append(ws, w)
			macs += float64(sh[0] * sh[1])
			bytes += float64(w.Bytes())
		}
	}
	x := randMat(r, 1, 1536, 1536)
	y := NewMat(1, 1536)
	p0 := Paths()[0]
	ps := []*Path{p0}
	if t, err := p0.Int8(); err == nil {
		ps = append(ps, t)
	}
	for _, pa := range ps {
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/t%d", pa.Name(), th), func(b *testing.B) {
				p := NewPoolOn(th, pa)
				for i := 0; i < b.N; i++ {
					for _, w := range ws {
						p.GemmW(MatOf(y.Data[:w.Rows], 1, w.Rows), 1, MatOf(x.Data[:w.Cols], 1, w.Cols), NoTrans, w, Trans, 0)
					}
				}
				s := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(macs/s/1e9, "GMAC/s")
				b.ReportMetric(bytes/s/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkInt8Gemm times the int8 GEMM (X·Wᵀ over M = 2048 rows: eval's
// and a prompt's products) on each int8 path with one, for the benchmark
// shapes and the block formats, one thread. Reports GFLOPS (2·M·N·K).
func BenchmarkInt8Gemm(b *testing.B) {
	for _, pa := range Int8Paths() {
		if pa.i8.gemm == nil {
			continue
		}
		for _, s := range BenchShapes {
			if s.N < 32 || s.K < 32 {
				continue // LoRA's factors: fp32
			}
			for _, f := range []Format{Q8_0, Q4_0, NF4} {
				b.Run(fmt.Sprintf("%s/%s/%s", pa.Name(), s.Name, f), func(b *testing.B) { benchGemmW(b, NewPoolOn(1, pa), s, Trans, f) })
			}
		}
	}
}

// BenchmarkInt8GemmQuant times each int8 GEMM path's X quantizer over rows
// of 1536 (smollm2's down projection's X), 256 of them (1.5 MiB: from L2)
// and 4096 (24 MiB: from memory), written into the path's regions as the
// GEMM writes them. Reports GB/s of X read.
func BenchmarkInt8GemmQuant(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 12))
	const k = 1536
	kb := k / 32
	for _, pa := range Int8Paths() {
		q := pa.i8.quant
		if q == nil {
			continue
		}
		xbl := pa.i8.xBlock()
		for _, m := range []int{256, 4096} {
			x := randMat(r, m, k, k)
			dst := make([]byte, (m+int8GemmXRows-1)/int8GemmXRows*kb*xbl)
			b.Run(fmt.Sprintf("%s/%d", pa.Name(), m), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					for row := 0; row < m; row++ {
						rg := dst[row/int8GemmXRows*kb*xbl:]
						qo, so, co, _ := pa.i8.xAt(row % int8GemmXRows)
						var cp *int32
						if co >= 0 {
							cp = (*int32)(unsafe.Pointer(&rg[co]))
						}
						q(&rg[qo], (*float32)(unsafe.Pointer(&rg[so])), cp, &x.Data[row*k], kb, xbl)
					}
				}
				b.ReportMetric(float64(m*k*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}
