package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// eps32 is float32's unit roundoff.
const eps32 = 1.0 / (1 << 24)

// randMat returns a rows×cols matrix with the given stride, filled with values in
// [-1, 1); the padding between rows holds NaN so reading it would show.
func randMat(r *rand.Rand, rows, cols, stride int) Mat {
	if stride < cols {
		stride = cols
	}
	n := 0
	if rows > 0 {
		n = (rows-1)*stride + cols
	}
	m := Mat{Data: make([]float32, n), Rows: rows, Cols: cols, Stride: stride}
	for i := range m.Data {
		m.Data[i] = float32(math.NaN())
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			m.Data[i*stride+j] = r.Float32()*2 - 1
		}
	}
	return m
}

func at(m Mat, op Op, i, j int) float64 {
	if op == Trans {
		return float64(m.Data[j*m.Stride+i])
	}
	return float64(m.Data[i*m.Stride+j])
}

// checkGemm compares C (after the call) with the float64 reference computed from
// A, op(B) (given as a dense k×n float64 matrix) and the old C. The bound is the
// standard one for a dot product of length k in float32, with headroom:
// |err| ≤ 2(k+2)·eps·(|α|·Σ|a||b| + |β·c|).
func checkGemm(t *testing.T, name string, got, c0 Mat, alpha float32, a Mat, ta Op, bk [][]float64, beta float32) {
	t.Helper()
	m, k := a.dims(ta)
	n := got.Cols
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sabs float64
			for p := 0; p < k; p++ {
				x := at(a, ta, i, p) * bk[p][j]
				s += x
				sabs += math.Abs(x)
			}
			want := float64(alpha) * s
			bound := math.Abs(float64(alpha)) * sabs
			if beta != 0 {
				cv := float64(beta) * float64(c0.Data[i*c0.Stride+j])
				want += cv
				bound += math.Abs(cv)
			}
			tol := 2*float64(k+2)*eps32*bound + 1e-30
			g := float64(got.Data[i*got.Stride+j])
			if !(math.Abs(g-want) <= tol) {
				if bad < 5 {
					t.Errorf("%s: C[%d,%d] = %g, want %g (tol %.3g)", name, i, j, g, want, tol)
				}
				bad++
			}
		}
	}
	// padding between rows must be untouched
	for i := 0; i+1 < got.Rows; i++ {
		for j := got.Cols; j < got.Stride; j++ {
			if v := got.Data[i*got.Stride+j]; !math.IsNaN(float64(v)) {
				t.Fatalf("%s: wrote padding C[%d,%d] = %g", name, i, j, v)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d wrong elements of %d×%d", name, bad, m, n)
	}
}

func denseOp(b Mat, op Op) [][]float64 {
	r, c := b.dims(op)
	d := make([][]float64, r)
	for p := range d {
		d[p] = make([]float64, c)
		for j := range d[p] {
			d[p][j] = at(b, op, p, j)
		}
	}
	return d
}

func cloneMat(m Mat) Mat {
	c := m
	c.Data = append([]float32(nil), m.Data...)
	return c
}

func allPools(t testing.TB, threads int) []*Pool {
	var ps []*Pool
	for _, name := range Kernels() {
		p, err := NewPool(threads, name)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// conformanceShapes covers 1, primes, block edges (kc = 256, tiles of 4/6/8/12
// rows and 4/12/16/32 columns) and sizes past one cache block.
func conformanceShapes() [][3]int {
	var s [][3]int
	edge := []int{1, 7, 33, 129}
	for _, m := range edge {
		for _, n := range edge {
			for _, k := range edge {
				s = append(s, [3]int{m, n, k})
			}
		}
	}
	s = append(s,
		[3]int{2, 3, 5}, [3]int{13, 17, 19}, [3]int{31, 37, 41}, [3]int{12, 32, 256},
		[3]int{24, 64, 257}, [3]int{97, 101, 103}, [3]int{251, 241, 3}, [3]int{3, 293, 283},
		[3]int{300, 300, 300}, [3]int{257, 1, 300}, [3]int{1, 300, 257}, [3]int{0, 5, 3},
		[3]int{5, 0, 3}, [3]int{5, 3, 0}, [3]int{241, 2100, 7}, [3]int{6, 16, 512},
	)
	return s
}

type abCase struct{ alpha, beta float32 }

var abCases = []abCase{{1, 0}, {1, 1}, {-0.75, 0.5}, {0, 2}}

func TestGemmConformance(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range allPools(t, 1) {
		t.Run(p.Kernel(), func(t *testing.T) {
			for si, sh := range conformanceShapes() {
				m, n, k := sh[0], sh[1], sh[2]
				for _, ta := range []Op{NoTrans, Trans} {
					for _, tb := range []Op{NoTrans, Trans} {
						ab := abCases[(si+int(b2i(bool(ta)))+2*int(b2i(bool(tb))))%len(abCases)]
						pad := si % 3 // strided rows on some cases
						var a, b Mat
						if ta == NoTrans {
							a = randMat(r, m, k, k+pad)
						} else {
							a = randMat(r, k, m, m+pad)
						}
						if tb == NoTrans {
							b = randMat(r, k, n, n+pad)
						} else {
							b = randMat(r, n, k, k+pad)
						}
						c := randMat(r, m, n, n+pad)
						c0 := cloneMat(c)
						p.Gemm(c, ab.alpha, a, ta, b, tb, ab.beta)
						name := fmt.Sprintf("%dx%dx%d %v%v α=%g β=%g", m, n, k, ta, tb, ab.alpha, ab.beta)
						// One row against B's rows: the one-row form where the kernel reads fp32 rows.
						if want := m == 1 && ta == NoTrans && tb == Trans && ab.alpha != 0 && p.mk.dot != nil && p.mk.dot.f32 != nil; p.lastGemv != want {
							t.Errorf("%s %s: one-row form %v, want %v", p.Kernel(), name, p.lastGemv, want)
						}
						checkGemm(t, name, c, c0, ab.alpha, a, ta, denseOp(b, tb), ab.beta)
					}
				}
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestGemmBetaZeroIgnoresNaN: with beta = 0, C's old contents (even NaN) must not leak.
func TestGemmBetaZeroIgnoresNaN(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, p := range allPools(t, 2) {
		a, b := randMat(r, 50, 40, 40), randMat(r, 40, 70, 70)
		c := NewMat(50, 70)
		for i := range c.Data {
			c.Data[i] = float32(math.NaN())
		}
		p.Gemm(c, 1, a, NoTrans, b, NoTrans, 0)
		for i, v := range c.Data {
			if math.IsNaN(float64(v)) {
				t.Fatalf("%s: C[%d] is NaN after beta=0", p.Kernel(), i)
			}
		}
	}
}

// TestGemmWConformance: GemmW over every storage format equals a float64 GEMM over
// the weight's own decoded values, for the forward (X·Wᵀ) and backward (dY·W) products.
func TestGemmWConformance(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	// {3, 4400, 9}: dY·W on 2 workers of 2200 columns, each two N panels
	// (1120 + 1080: the second starts inside a 64-value NF4 block).
	// M = 1 with W transposed is the one-row form where the kernel has dot
	// products: {37, 172, 1} has padded rows, {21, 3000, 1} several K chunks.
	shapes := [][3]int{{1, 1, 1}, {7, 33, 29}, {13, 64, 64}, {33, 96, 172}, {129, 100, 300}, {5, 257, 129}, {40, 31, 520}, {3, 4400, 9},
		{37, 172, 1}, {21, 3000, 1}, {300, 64, 1}}
	for _, p := range allPools(t, 2) {
		for _, f := range []Format{F32, F16, BF16, Q8_0, Q4_0, NF4} {
			for _, sh := range shapes {
				rows, cols, m := sh[0], sh[1], sh[2] // W is rows×cols (out×in)
				src := randMat(r, rows, cols, cols)
				w := Quantize(f, rows, cols, src.Data)
				if f == NF4 && sh[0]%2 == 1 {
					w.DoubleQuantize()
				}
				wd := w.Dequantize()
				for _, tw := range []Op{Trans, NoTrans} {
					k := cols
					if tw == NoTrans {
						k = rows
					}
					x := randMat(r, m, k, k+1)
					br, bc := wd.dims(tw)
					_ = br
					c := randMat(r, m, bc, bc)
					c0 := cloneMat(c)
					p.GemmW(c, 0.5, x, NoTrans, w, tw, 1)
					name := fmt.Sprintf("%s %s W %d×%d op %v, M=%d", p.Kernel(), f, rows, cols, tw, m)
					if want := m == 1 && tw == Trans && p.mk.dot != nil; p.lastGemv != want {
						t.Errorf("%s: one-row form %v, want %v", name, p.lastGemv, want)
					}
					checkGemm(t, name, c, c0, 0.5, x, NoTrans, denseOp(wd, tw), 1)
				}
			}
		}
	}
}

// TestBalancedBlocks: the cache blocks the driver cuts, on the examples their
// comments give.
func TestBalancedBlocks(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"KC(256, 288)", balancedKC(256, 288), 192},
		{"KC(256, 256)", balancedKC(256, 256), 256},
		{"MC(240, 12, 264)", balancedMC(240, 12, 264), 132},
		{"MC(240, 12, 1024)", balancedMC(240, 12, 1024), 240},
		{"NC(2048, 32, 2048)", balancedNC(2048, 32, 2048), 2048},
		{"NC(2048, 32, 2200)", balancedNC(2048, 32, 2200), 1120},
		{"NC(2048, 32, 5632)", balancedNC(2048, 32, 5632), 1408},
	} {
		if c.got != c.want {
			t.Errorf("balanced%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestThreadInvariance: 1, 2, 3 and 7 workers give identical bits, and every
// worker received work.
func TestThreadInvariance(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	type tc struct {
		m, n, k int
		ta, tb  Op
		f       Format // for GemmW; F32 = plain Gemm
		quant   bool
	}
	cases := []tc{
		{m: 400, n: 300, k: 300},           // split along M
		{m: 8, n: 900, k: 1000, ta: Trans}, // split along N (dAᵀ-like)
		{m: 300, n: 260, k: 520, tb: Trans, f: Q4_0, quant: true},
		{m: 300, n: 520, k: 260, f: NF4, quant: true},
		{m: 6, n: 1000, k: 70, f: NF4, quant: true}, // dY·W split along N: panels start off the 64-value blocks
		{m: 6, n: 1000, k: 70, f: Q8_0, quant: true},
		{m: 1, n: 1500, k: 300, tb: Trans, f: Q8_0, quant: true}, // GEMV: split along N
		{m: 1, n: 1500, k: 300, tb: Trans, f: F16, quant: true},  // GEMV from the stored rows, 4 left to the decoding form
		{m: 1, n: 1500, k: 301, tb: Trans, f: BF16, quant: true}, // and K's last 5 added after
		{m: 700, n: 8, k: 300, tb: Trans},                        // LoRA rank 8: dot-product form where the CPU has it
		{m: 1, n: 1500, k: 301, tb: Trans},                       // one row against fp32 rows (generation's LoRA products), 4 rows and K's last 5 in Go
		{m: 700, n: 13, k: 77},                                   // odd rank, B not transposed
	}
	for _, kname := range Kernels() {
		for _, c := range cases {
			var a Mat
			if c.ta == Trans {
				a = randMat(r, c.k, c.m, c.m)
			} else {
				a = randMat(r, c.m, c.k, c.k)
			}
			var b Mat
			var w *Weight
			if c.quant {
				if c.tb == Trans {
					w = Quantize(c.f, c.n, c.k, randMat(r, c.n, c.k, c.k).Data)
				} else {
					w = Quantize(c.f, c.k, c.n, randMat(r, c.k, c.n, c.n).Data)
				}
			} else if c.tb == Trans {
				b = randMat(r, c.n, c.k, c.k)
			} else {
				b = randMat(r, c.k, c.n, c.n)
			}
			var ref []float32
			for _, th := range []int{1, 2, 3, 7} {
				p, err := NewPool(th, kname)
				if err != nil {
					t.Fatal(err)
				}
				out := NewMat(c.m, c.n)
				if w != nil {
					p.GemmW(out, 1, a, c.ta, w, c.tb, 0)
				} else {
					p.Gemm(out, 1, a, c.ta, b, c.tb, 0)
				}
				if p.lastWorkers != th {
					t.Errorf("%s %+v: %d threads but %d got work", kname, c, th, p.lastWorkers)
				}
				if ref == nil {
					ref = out.Data
					continue
				}
				for i := range ref {
					if math.Float32bits(ref[i]) != math.Float32bits(out.Data[i]) {
						t.Fatalf("%s %dx%dx%d: %d threads differ from 1 at %d: %g vs %g", kname, c.m, c.n, c.k, th, i, out.Data[i], ref[i])
					}
				}
			}
		}
	}
}

func TestPickKernel(t *testing.T) {
	if ks := Kernels(); ks[len(ks)-1] != "go" {
		t.Fatalf("pure-Go kernel must always be available, have %v", ks)
	}
	if _, err := NewPool(1, "no-such-kernel"); err == nil {
		t.Fatal("unknown kernel name accepted")
	}
	t.Setenv("LOWRANK_KERNEL", "go")
	p, err := NewPool(1, "")
	if err != nil || p.Kernel() != "go" {
		t.Fatalf("LOWRANK_KERNEL=go gave %v, %v", p, err)
	}
}

func TestGemmShapePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("mismatched shapes did not panic")
		}
	}()
	Default().Gemm(NewMat(2, 3), 1, NewMat(2, 4), NoTrans, NewMat(5, 3), NoTrans, 0)
}

func FuzzGemm(f *testing.F) {
	f.Add(uint16(3), uint16(5), uint16(7), uint8(0), uint8(0), uint8(1), uint64(1))
	f.Add(uint16(13), uint16(33), uint16(257), uint8(3), uint8(2), uint8(4), uint64(2))
	f.Add(uint16(1), uint16(1), uint16(1), uint8(1), uint8(0), uint8(0), uint64(3))
	f.Add(uint16(8), uint16(100), uint16(64), uint8(1), uint8(1), uint8(0), uint64(4)) // outer-product path (dA-like)
	f.Add(uint16(130), uint16(5), uint16(40), uint8(1), uint8(2), uint8(0), uint64(5)) // swapped into it (dB-like)
	pools := allPools(f, 3)
	f.Fuzz(func(t *testing.T, m, n, k uint16, ops, pad, kern uint8, seed uint64) {
		M, N, K := int(m%140), int(n%140), int(k%300)
		ta, tb := Op(ops&1 != 0), Op(ops&2 != 0)
		pd := int(pad % 5)
		r := rand.New(rand.NewPCG(seed, 9))
		var a, b Mat
		if ta == NoTrans {
			a = randMat(r, M, K, K+pd)
		} else {
			a = randMat(r, K, M, M+pd)
		}
		if tb == NoTrans {
			b = randMat(r, K, N, N+pd)
		} else {
			b = randMat(r, N, K, K+pd)
		}
		c := randMat(r, M, N, N+pd)
		c0 := cloneMat(c)
		p := pools[int(kern)%len(pools)]
		p.Gemm(c, 1.5, a, ta, b, tb, -0.5)
		checkGemm(t, fmt.Sprintf("%s %dx%dx%d %v%v", p.Kernel(), M, N, K, ta, tb), c, c0, 1.5, a, ta, denseOp(b, tb), -0.5)
	})
}

// TestGemmNoAlloc: a call allocates nothing once the pool's workers are started.
func TestGemmNoAlloc(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, p := range allPools(t, 2) {
		a, b, c := randMat(r, 200, 300, 300), randMat(r, 250, 300, 300), NewMat(200, 250)
		w := Quantize(Q4_0, 250, 300, b.Data)
		h, dA := randMat(r, 200, 8, 8), NewMat(8, 300) // LoRA's dA = Hᵀ·X: the outer-product path
		// One row: the one-row forms (K's last 3 of the fp32 rows in Go).
		x299, x300, c1 := MatOf(a.Data[:299], 1, 299), MatOf(a.Data[:300], 1, 300), MatOf(c.Data[:250], 1, 250)
		b299 := Mat{Data: b.Data, Rows: 250, Cols: 299, Stride: 300}
		p.Gemm(c, 1, a, NoTrans, b, Trans, 0)
		p.Gemm(dA, 1, h, Trans, a, NoTrans, 1)
		if n := testing.AllocsPerRun(5, func() {
			p.Gemm(c, 1, a, NoTrans, b, Trans, 0)
			p.GemmW(c, 1, a, NoTrans, w, Trans, 1)
			p.Gemm(dA, 1, h, Trans, a, NoTrans, 1)
			p.Gemm(c1, 1, x299, NoTrans, b299, Trans, 1)
			p.GemmW(c1, 1, x300, NoTrans, w, Trans, 1)
		}); n != 0 {
			t.Errorf("%s: %v allocations per call", p.Kernel(), n)
		}
	}
}

// TestGemmNarrow covers the swapped path (N far below the tile width: LoRA's
// rank-r products) for every transpose and beta, against the reference.
func TestGemmNarrow(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, p := range allPools(t, 2) {
		for _, sh := range [][3]int{{2048, 8, 576}, {300, 1, 33}, {577, 16, 8}, {64, 3, 1000}, {33, 5, 7}, {100, 13, 17}, {4, 9, 15}} {
			m, n, k := sh[0], sh[1], sh[2]
			for _, ta := range []Op{NoTrans, Trans} {
				for _, tb := range []Op{NoTrans, Trans} {
					for _, beta := range []float32{0, 1} {
						var a, b Mat
						if ta == NoTrans {
							a = randMat(r, m, k, k)
						} else {
							a = randMat(r, k, m, m+1)
						}
						if tb == NoTrans {
							b = randMat(r, k, n, n)
						} else {
							b = randMat(r, n, k, k+2)
						}
						c := randMat(r, m, n, n+1)
						c0 := cloneMat(c)
						p.Gemm(c, 2, a, ta, b, tb, beta)
						if wantDot := p.mk.dot != nil && n <= dotMaxN && ta == NoTrans; p.lastDot != wantDot {
							t.Errorf("%s %dx%dx%d %v%v: dot path %v, want %v", p.Kernel(), m, n, k, ta, tb, p.lastDot, wantDot)
						}
						checkGemm(t, fmt.Sprintf("%s narrow %dx%dx%d %v%v β=%g", p.Kernel(), m, n, k, ta, tb, beta), c, c0, 2, a, ta, denseOp(b, tb), beta)
					}
				}
			}
		}
	}
}

// TestGemmOuter covers the outer-product path (at most 16 rows of C after
// the narrow swap, op(A) stored K×M, B stored K×N: LoRA's dA = dHᵀ·X and
// dB = dYᵀ·H) for ranks 1..16, column counts around the 48- and 16-wide
// strips, strided operands, alpha and every beta, on one and three threads.
func TestGemmOuter(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, threads := range []int{1, 3} {
		for _, p := range allPools(t, threads) {
			for _, sh := range [][3]int{{8, 576, 1024}, {8, 47, 33}, {1, 1, 40}, {3, 49, 64}, {16, 100, 77}, {13, 15, 50}, {9, 2000, 40}, {8, 96, 32}} {
				for _, swap := range []bool{false, true} {
					for _, beta := range []float32{0, 1, 0.5} {
						m, n, k := sh[0], sh[1], sh[2]
						// op(A) is m×k stored k×m; B is k×n stored K×N.
						a := randMat(r, k, m, m+3)
						b := randMat(r, k, n, n+5)
						name := fmt.Sprintf("%s t%d outer %dx%dx%d β=%g", p.Kernel(), threads, m, n, k, beta)
						if swap { // the same product asked as Cᵀ = op(B)ᵀ·op(A)ᵀ, N narrow
							c := randMat(r, n, m, m+1)
							c0 := cloneMat(c)
							p.Gemm(c, 1.5, b, Trans, a, NoTrans, beta)
							checkGemm(t, name+" swapped", c, c0, 1.5, b, Trans, denseOp(a, NoTrans), beta)
							// outer as asked (n rows) or after the narrow swap (m rows)
							if want := p.mk.outer != nil && (n <= p.mk.outerRows || n >= p.mk.nr && 2*m <= p.mk.nr && m <= p.mk.outerRows); p.lastOuter != want {
								t.Errorf("%s swapped: outer path %v, want %v", name, p.lastOuter, want)
							}
							continue
						}
						c := randMat(r, m, n, n+1)
						c0 := cloneMat(c)
						p.Gemm(c, 1.5, a, Trans, b, NoTrans, beta)
						checkGemm(t, name, c, c0, 1.5, a, Trans, denseOp(b, NoTrans), beta)
						if want := p.mk.outer != nil && m <= p.mk.outerRows; p.lastOuter != want {
							t.Errorf("%s: outer path %v, want %v", name, p.lastOuter, want)
						}
					}
				}
			}
		}
	}
}

// TestTransposeRows: each path's packing transpose (SIMD where the CPU has
// it) writes exactly what the pure-Go one does, for every row count up to a
// sliver of 32, column counts around multiples of 8 and 16, sliver widths
// and alpha.
func TestTransposeRows(t *testing.T) {
	for _, pa := range paths() {
		t.Run(pa.Name(), func(t *testing.T) { testTransposeRows(t, pa.transpose) })
	}
}

func testTransposeRows(t *testing.T, tf transposeFn) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, w := range []int{2, 4, 6, 8, 12, 16, 32} {
		for nrows := 1; nrows <= w; nrows++ {
			for _, kc := range []int{1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 48, 100, 256} {
				rows := make([][]float32, nrows)
				for i := range rows {
					rows[i] = make([]float32, kc+3)[:kc] // capacity beyond kc must not be read as data
					for j := range rows[i] {
						rows[i][j] = float32(r.NormFloat64())
					}
				}
				for _, alpha := range []float32{1, -0.75} {
					got, want := make([]float32, kc*w), make([]float32, kc*w)
					for i := range got {
						got[i], want[i] = 7, 7 // padding lanes must stay untouched
					}
					transposeRows(tf, got, rows, w, alpha)
					transposeRowsGo(want, rows, w, alpha)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("w %d, %d rows, kc %d, alpha %g: [%d] = %g, want %g", w, nrows, kc, alpha, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestPackATrans: a path's vectorized packing of a transposed A (packT)
// gives the Go loop's slivers bit for bit: partial slivers, K tails,
// strided rows, alpha 1 and not.
func TestPackATrans(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for _, pa := range paths() {
		if pa.packT == nil {
			continue
		}
		mr := pa.mk.mr
		for _, sh := range [][2]int{{1, 1}, {mr, 3}, {mr + 5, 17}, {3*mr - 1, 256}, {40, 100}} {
			mc, kc := sh[0], sh[1]
			for _, alpha := range []float32{1, -0.375} {
				a := randMat(r, kc+3, mc+7, mc+9) // stored K×M: op(A) = Aᵀ
				a.Data[5] = float32(math.NaN())
				want, got := newWorkspace(&Path{mk: pa.mk}), newWorkspace(pa)
				for i := range got.apack {
					got.apack[i] = 7
				}
				want.packA(a, Trans, alpha, mr, 4, mc, 2, kc)
				got.packA(a, Trans, alpha, mr, 4, mc, 2, kc)
				n := (mc + mr - 1) / mr * mr * kc
				for i := 0; i < n; i++ {
					if math.Float32bits(got.apack[i]) != math.Float32bits(want.apack[i]) {
						t.Fatalf("%s mc=%d kc=%d alpha=%g: apack[%d] = %g, Go %g", pa.Name(), mc, kc, alpha, i, got.apack[i], want.apack[i])
					}
				}
			}
		}
	}
}
