package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// int8Weights are the weights the int8 tests run on: every int8 format,
// NF4 also double-quantized.
func int8Weights(r *rand.Rand, rows, cols int) map[string]*Weight {
	src := randMat(r, rows, cols, cols).Data
	dq := Quantize(NF4, rows, cols, src)
	dq.DoubleQuantize()
	return map[string]*Weight{
		"q8_0": Quantize(Q8_0, rows, cols, src), "q4_0": Quantize(Q4_0, rows, cols, src),
		"nf4": Quantize(NF4, rows, cols, src), "nf4-dq": dq,
	}
}

// int8Value is W[j, k] as the int8 kernels hold it: an integer and its
// block's scale (Q8_0's byte, Q4_0's nibble − 8, NF4's codebook entry as
// round(127·code) with scale/127), read from the stored bytes directly.
func int8Value(w *Weight, j, k int) (int, float64) {
	bs := w.Format.BlockSize()
	blk := j*w.blocksPerRow + k/bs
	t := k % bs
	switch w.Format {
	case Q8_0:
		b := w.q[blk*34:]
		return int(int8(b[2+t])), float64(F16ToF32(binary.LittleEndian.Uint16(b)))
	case Q4_0:
		b := w.q[blk*18:]
		v := b[2+t%16]
		if t >= 16 {
			v >>= 4
		}
		return int(v&15) - 8, float64(F16ToF32(binary.LittleEndian.Uint16(b)))
	case NF4:
		v := w.q[blk*32+t/2]
		if t%2 == 0 {
			v >>= 4
		}
		return int(math.Round(127 * float64(nf4Code[v&15]))), float64(w.nf4Scale(blk) * nf4Int8Scale)
	}
	panic("format")
}

// testInt8Twins are the int8 paths the tests run: this CPU's and those
// it runs with emulated instructions (AVX-VNNI's on AVX2).
func testInt8Twins() []*Path { return append(int8Twins(), int8EmuTwins()...) }

// TestInt8Exact: every int8 path's product is, within fp32 accumulation
// error, Σ over blocks of dx·dw·(the exact integer dot), X quantized per
// natural block of 32 and W's integers read from its bytes: the units,
// corrections and NF4's even/odd split lose nothing. The vector paths give
// the pure-Go kernel's bits; the result is also within the quantization
// error's bound of the float64 product with the dequantized weight.
func TestInt8Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 1))
	shapes := [][3]int{{1, 32, 1}, {1, 64, 1}, {3, 40, 2}, {33, 100, 1}, {2, 576, 3}, {64, 1536, 1}, {5, 130, 7}, {70, 64, 40}, {3, 64, int8RowBlock + 30}}
	for _, pa := range append(testInt8Twins(), goInt8GemmPath) {
		p := NewPoolOn(2, pa)
		ref := NewPoolOn(1, goInt8Path)
		if pa.i8.gemm != nil {
			ref = NewPoolOn(1, goInt8GemmPath)
		}
		for _, sh := range shapes {
			rows, cols, m := sh[0], sh[1], sh[2]
			for name, w := range int8Weights(r, rows, cols) {
				x := randMat(r, m, cols, cols+3)
				for i := 0; i < m; i++ { // a wide range of magnitudes across blocks
					for k := 0; k < cols; k++ {
						x.Data[i*x.Stride+k] *= float32(math.Exp2(float64(k/32%5) - 2))
					}
				}
				c := randMat(r, m, rows, rows)
				c0, cr := cloneMat(c), cloneMat(c)
				p.GemmW(c, 0.5, x, NoTrans, w, Trans, 1)
				ref.GemmW(cr, 0.5, x, NoTrans, w, Trans, 1)
				label := fmt.Sprintf("%s %s W %d×%d M=%d", pa.Name(), name, rows, cols, m)
				for i := range c.Data {
					if math.Float32bits(c.Data[i]) != math.Float32bits(cr.Data[i]) {
						t.Fatalf("%s: C[%d] = %g, %s gives %g", label, i, c.Data[i], ref.Path().Name(), cr.Data[i])
					}
				}
				wd := w.Dequantize()
				for i := 0; i < m; i++ {
					xr := x.Data[i*x.Stride:][:cols]
					var q [32]int8
					for j := 0; j < rows; j++ {
						var exact, mag, full, bound float64
						for b := 0; 32*b < cols; b++ {
							blk := xr[32*b : min(32*b+32, cols)]
							d := float64(quantBlock(&q, blk))
							var dot float64
							for tt := range blk {
								k := 32*b + tt
								iv, dw := int8Value(w, j, k)
								dot += float64(iv) * float64(q[tt]) * dw
								mag += math.Abs(float64(iv) * float64(q[tt]) * dw * d)
								wv := float64(wd.Data[j*wd.Stride+k])
								full += float64(xr[k]) * wv
								// |x − q·d| ≤ d/2; NF4's codebook entry is off by ≤ 0.5/127 of the scale.
								bound += math.Abs(wv)*d/2 + (math.Abs(float64(xr[k]))+d/2)*math.Abs(wv-float64(iv)*dw)
							}
							exact += d * dot
						}
						got := float64(c.Data[i*c.Stride+j]) - float64(c0.Data[i*c.Stride+j])
						tol := 2e-6*float64(cols/32+8)*(mag+math.Abs(exact)) + 1e-6*math.Abs(float64(c0.Data[i*c.Stride+j])) + 1e-30
						if math.Abs(got-0.5*exact) > tol {
							t.Fatalf("%s: C[%d,%d] = %g more than C0, the integer dots give %g (tolerance %g)", label, i, j, got, 0.5*exact, tol)
						}
						if math.Abs(got-0.5*full) > 0.5*bound*1.001+tol {
							t.Fatalf("%s: C[%d,%d] = %g more than C0, the float64 product %g: off by more than the quantization bound %g", label, i, j, got, 0.5*full, 0.5*bound)
						}
					}
				}
			}
		}
	}
}

// TestInt8Passthrough: on an int8 path, what int8 does not compute (the
// input gradient dY·W, F32/F16/BF16 weights, an fp32 GEMM) gives the fp32
// path's bits.
func TestInt8Passthrough(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 2))
	for _, pa := range testInt8Twins() {
		p, f := NewPoolOn(2, pa), NewPoolOn(2, pa.f32Twin())
		for _, fm := range []Format{F32, F16, BF16, Q8_0, NF4} {
			w := Quantize(fm, 40, 96, randMat(r, 40, 96, 96).Data)
			ops := []Op{NoTrans}
			if !int8Format(fm) {
				ops = append(ops, Trans)
			}
			for _, tw := range ops {
				k, n := 40, 96
				if tw == Trans {
					k, n = 96, 40
				}
				x := randMat(r, 9, k, k)
				a, b := NewMat(9, n), NewMat(9, n)
				p.GemmW(a, 1, x, NoTrans, w, tw, 0)
				f.GemmW(b, 1, x, NoTrans, w, tw, 0)
				for i := range a.Data {
					if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
						t.Fatalf("%s %s op %v: element %d differs from %s's", pa.Name(), fm, tw, i, f.Path().Name())
					}
				}
			}
		}
		x, y := randMat(r, 5, 7, 7), randMat(r, 7, 3, 3)
		a, b := NewMat(5, 3), NewMat(5, 3)
		p.Gemm(a, 1, x, NoTrans, y, NoTrans, 0)
		f.Gemm(b, 1, x, NoTrans, y, NoTrans, 0)
		for i := range a.Data {
			if a.Data[i] != b.Data[i] {
				t.Fatalf("%s: Gemm differs from %s's", pa.Name(), f.Path().Name())
			}
		}
	}
}

// TestInt8ThreadInvariance: 1, 2, 3 and 7 workers give the same bits, for
// one row (generation) and many (eval).
func TestInt8ThreadInvariance(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 3))
	ws := int8Weights(r, 576, 1536)
	for _, pa := range testInt8Twins() {
		for name, w := range ws {
			for _, m := range []int{1, 37, int8RowBlock + 45} {
				x := randMat(r, m, 1536, 1536)
				var first []float32
				for _, threads := range []int{1, 2, 3, 7} {
					y := NewMat(m, 576)
					NewPoolOn(threads, pa).GemmW(y, 1, x, NoTrans, w, Trans, 0)
					if first == nil {
						first = y.Data
						continue
					}
					for i := range y.Data {
						if math.Float32bits(y.Data[i]) != math.Float32bits(first[i]) {
							t.Fatalf("%s %s M=%d, %d workers: element %d differs from 1 worker's", pa.Name(), name, m, threads, i)
						}
					}
				}
			}
		}
	}
}

// TestInt8NonFinite: an Inf or NaN in X makes the outputs it reaches NaN
// (never a silently finite number); zero blocks give exact zeros.
func TestInt8NonFinite(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 4))
	w := Quantize(Q8_0, 8, 64, randMat(r, 8, 64, 64).Data)
	for _, pa := range testInt8Twins() {
		p := NewPoolOn(1, pa)
		x := NewMat(3, 64)
		x.Data[64+5] = float32(math.Inf(1))
		x.Data[128+40] = float32(math.NaN())
		y := NewMat(3, 8)
		p.GemmW(y, 1, x, NoTrans, w, Trans, 0)
		for j := 0; j < 8; j++ {
			if y.Data[j] != 0 || !math.IsNaN(float64(y.Data[8+j])) || !math.IsNaN(float64(y.Data[16+j])) {
				t.Fatalf("%s: row outputs %v", pa.Name(), y.Data)
			}
		}
	}
}

// TestInt8Paths: the names, IDs and twins of the int8 paths; none is a
// default path; PathFor picks them for "int8".
func TestInt8Paths(t *testing.T) {
	g, err := goPath.Int8()
	if err != nil || g != goInt8Path || g.Name() != "go-int8" || g.ComputeDType() != "int8" {
		t.Fatalf("go's twin: %v %v", g, err)
	}
	if id := g.ID(); id != "go 2x4 rows=go blocks=go transpose=go compute=int8(go)" {
		t.Errorf("ID %q", id)
	}
	for _, pa := range int8Twins() {
		if got, err := ChoosePath(pa.Name()); err != nil || got != pa {
			t.Errorf("ChoosePath(%q): %v %v", pa.Name(), got, err)
		}
		want := pa // the first twin of its microkernel (avx2: AVX-VNNI's before AVX2's)
		for _, q := range int8Twins() {
			if q.mk == pa.mk {
				want = q
				break
			}
		}
		if got, err := PathFor(pa.f32Twin().Name(), "int8"); err != nil || got != want {
			t.Errorf("PathFor(%q, int8): %v %v", pa.f32Twin().Name(), got, err)
		}
	}
	for _, pa := range Paths() {
		if pa.i8 != nil {
			t.Errorf("%s is among the default paths", pa.Name())
		}
	}
	if err := CheckComputeDType("int4"); err == nil {
		t.Error("int4 accepted")
	}
}

// TestQuantBlock: the activation quantization's rule (llama.cpp's
// quantize_row_q8_0: d = max|x|/127, q = x·(1/d) rounded to even).
func TestQuantBlock(t *testing.T) {
	var q [32]int8
	x := []float32{1, -2, 0.5, 127, -127, 63.5, 64.5}
	if d := quantBlock(&q, x); d != 1 {
		t.Fatalf("d = %g", d)
	}
	want := []int8{1, -2, 0, 127, -127, 64, 64}
	for i, v := range want {
		if q[i] != v {
			t.Fatalf("q = %v, want %v", q[:len(x)], want)
		}
	}
	for _, v := range q[len(x):] {
		if v != 0 {
			t.Fatal("values past x not zero")
		}
	}
	if d := quantBlock(&q, make([]float32, 32)); d != 0 || q != [32]int8{} {
		t.Fatalf("zeros: d = %g q = %v", d, q)
	}
}

// TestGeneratePath: generation's auto computes products of at most
// int8TokenRows rows in int8 (the int8 twin's bits) and longer ones as
// PathFor's auto does (its bits); its other dtypes are PathFor's.
func TestGeneratePath(t *testing.T) {
	for _, c := range []string{"f32", "int8", "bf16"} {
		want, err1 := PathFor("", c)
		got, err2 := GeneratePath("", c)
		if (err1 == nil) != (err2 == nil) || err1 == nil && got != want {
			t.Errorf("GeneratePath(%q) = %v, %v; PathFor: %v, %v", c, got, err2, want, err1)
		}
	}
	p, err := GeneratePath("", "auto")
	if err != nil {
		t.Fatal(err)
	}
	base := must(PathFor("", "auto"))
	i8 := must(PathFor("", "int8"))
	if i8.i8 == goInt8Kernel {
		if p != base {
			t.Errorf("no int8 dot instructions: auto is %s, want %s", p.ID(), base.ID())
		}
		return
	}
	rowsMax := int8TokenRows
	if i8.i8.gemm != nil && i8.i8.timed {
		rowsMax = 0 // every product
	}
	if p.i8Rows != rowsMax || !strings.Contains(p.ID(), "compute=int8(") || p.mk != base.mk || p.bf16 != base.bf16 {
		t.Fatalf("auto: %s (base %s)", p.ID(), base.ID())
	}
	r := rand.New(rand.NewPCG(8, 5))
	w := Quantize(Q8_0, 300, 256, randMat(r, 300, 256, 256).Data)
	for _, m := range []int{1, int8TokenRows, int8TokenRows + 1, 64} {
		x := randMat(r, m, 256, 256)
		ref := NewPoolOn(2, base)
		if m <= int8TokenRows || rowsMax == 0 {
			ref = NewPoolOn(2, i8)
		}
		a, b := NewMat(m, 300), NewMat(m, 300)
		NewPoolOn(2, p).GemmW(a, 1, x, NoTrans, w, Trans, 0)
		ref.GemmW(b, 1, x, NoTrans, w, Trans, 0)
		for i := range a.Data {
			if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
				t.Fatalf("M=%d: element %d differs from %s's", m, i, ref.Path().ID())
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
