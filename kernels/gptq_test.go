package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// outputErr is ‖X·(W − Ŵ)ᵀ‖² / ‖X·Wᵀ‖², in float64, with Ŵ read back from q.
func outputErr(x Mat, w []float32, q *Weight) float64 {
	rows, cols := q.Rows, q.Cols
	dec := make([]float32, cols)
	var num, den float64
	for i := 0; i < rows; i++ {
		q.DecodeRow(dec, i)
		for n := 0; n < x.Rows; n++ {
			var y, d float64
			for j := 0; j < cols; j++ {
				xv := float64(x.Data[n*x.Stride+j])
				y += xv * float64(w[i*cols+j])
				d += xv * (float64(w[i*cols+j]) - float64(dec[j]))
			}
			num += d * d
			den += y * y
		}
	}
	return num / den
}

// scaledGram multiplies every step-th column of x by f (uneven column
// scales and outliers, as activations have) and returns XᵀX.
func scaledGram(x Mat, step int, f float32) Mat {
	for i := 0; i < x.Rows; i++ {
		for j := 0; j < x.Cols; j += step {
			x.Data[i*x.Stride+j] *= f
		}
	}
	gram := NewMat(x.Cols, x.Cols)
	Gemm(gram, 1, x, Trans, x, NoTrans, 0)
	return gram
}

// TestQuantizeGPTQ: on inputs whose columns correlate and differ in scale (as
// a layer's activations do), GPTQ's output error is well below that of
// quantizing each block on its own, for both formats, with a row length that
// leaves a padded last block; the result is an ordinary weight of the format.
func TestQuantizeGPTQ(t *testing.T) {
	for _, cols := range []int{150, 192} {
		testQuantizeGPTQ(t, cols)
	}
}

func testQuantizeGPTQ(t *testing.T, cols int) {
	r := rand.New(rand.NewPCG(7, uint64(cols)))
	const rows, n = 24, 600
	// X = Z·M: mixing makes the columns correlate; a few large columns mimic outliers.
	z := randMat(r, n, cols, cols)
	mix := randMat(r, cols, cols, cols)
	for j := 0; j < cols; j++ {
		mix.Data[j*cols+j] += 3
	}
	x := NewMat(n, cols)
	Gemm(x, 1, z, NoTrans, mix, NoTrans, 0)
	gram := scaledGram(x, 17, 4)
	h, err := NewGPTQHessian(cols, gram.Data, Default())
	if err != nil {
		t.Fatal(err)
	}
	w := randMat(r, rows, cols, cols).Data
	for _, f := range []Format{Q4_0, NF4} {
		plain := Quantize(f, rows, cols, w)
		scratch := append([]float32(nil), w...)
		g, err := QuantizeGPTQ(f, rows, cols, scratch, h, Default())
		if err != nil {
			t.Fatal(err)
		}
		if g.Format != f || g.Rows != rows || g.Cols != cols || g.Bytes() != plain.Bytes() {
			t.Fatalf("%s: GPTQ gave %s %d×%d, %d bytes; want %s %d×%d, %d bytes", f, g.Format, g.Rows, g.Cols, g.Bytes(), f, rows, cols, plain.Bytes())
		}
		// Rows are split over the workers: the same bytes on 1 and 3 threads
		// (the Hessian too, factored on each pool).
		for _, th := range []int{1, 3} {
			p, _ := NewPool(th, "")
			ht, err := NewGPTQHessian(cols, gram.Data, p)
			if err != nil {
				t.Fatal(err)
			}
			gt, err := QuantizeGPTQ(f, rows, cols, append([]float32(nil), w...), ht, p)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gt.q, g.q) || !slices.Equal(gt.absmax, g.absmax) {
				t.Errorf("%s, %d columns: GPTQ on %d threads differs from the default pool's", f, cols, th)
			}
		}
		ep, eg := outputErr(x, w, plain), outputErr(x, w, g)
		t.Logf("%s, %d columns: relative output error %.5f plain, %.5f GPTQ (%.0f%% less)", f, cols, ep, eg, 100*(1-eg/ep))
		if !(eg < 0.8*ep) {
			t.Errorf("%s: GPTQ output error %.5f is not well below plain quantization's %.5f", f, eg, ep)
		}
		if g.Padded() || f != Q4_0 {
			continue // GGUF's layout: whole blocks of q4_0 only
		}
		// The bytes round-trip through GGUF's layout like any other q4_0 weight.
		raw, err := g.RawBytes()
		if err != nil {
			t.Fatal(err)
		}
		again, err := WeightFromBytes(f, rows, cols, raw)
		if err != nil {
			t.Fatal(err)
		}
		a, b := make([]float32, cols), make([]float32, cols)
		for i := 0; i < rows; i++ {
			g.DecodeRow(a, i)
			again.DecodeRow(b, i)
			for j := range a {
				if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
					t.Fatalf("%s: row %d col %d decodes to %v, %v after a byte round trip", f, i, j, a[j], b[j])
				}
			}
		}
	}
	// A column no input reaches is zeroed rather than breaking the factorization.
	dead := append([]float32(nil), gram.Data...)
	for j := 0; j < cols; j++ {
		dead[5*cols+j], dead[j*cols+5] = 0, 0
	}
	hd, err := NewGPTQHessian(cols, dead, Default())
	if err != nil {
		t.Fatal(err)
	}
	scratch := append([]float32(nil), w...)
	g, err := QuantizeGPTQ(NF4, rows, cols, scratch, hd, Default())
	if err != nil {
		t.Fatal(err)
	}
	dec := make([]float32, cols)
	g.DecodeRow(dec, 0)
	if dec[5] != 0 {
		t.Errorf("column 5, which no input reaches, decodes to %v, want 0", dec[5])
	}
	if _, err := QuantizeGPTQ(Q8_0, rows, cols, append([]float32(nil), w...), h, Default()); err == nil || !strings.Contains(err.Error(), "q4_0 or nf4") {
		t.Errorf("QuantizeGPTQ(q8_0): error %v, want one naming q4_0 or nf4", err)
	}
	if _, err := QuantizeGPTQ(NF4, rows, cols-1, w[:rows*(cols-1)], h, Default()); err == nil || !strings.Contains(err.Error(), "Hessian") {
		t.Errorf("QuantizeGPTQ with a %d-column Hessian for %d columns: error %v, want one about the Hessian", cols, cols-1, err)
	}
	if _, err := NewGPTQHessian(cols, gram.Data[:10], Default()); err == nil || !strings.Contains(err.Error(), "Gram matrix") {
		t.Errorf("NewGPTQHessian with 10 values: error %v, want one about the Gram matrix", err)
	}
}

// TestGPTQFactor: Uᵀ·U is the inverse of the damped Gram matrix, U is upper
// triangular, and U matches a float64 factorization (gonum's Cholesky and
// triangular inverse), for one block and for several blocks with a partial
// last one (the blocked factorization and inverse, and their GEMM updates).
func TestGPTQFactor(t *testing.T) {
	for _, cols := range []int{37, 3*cholNB + 45} {
		r := rand.New(rand.NewPCG(3, uint64(cols)))
		gram := scaledGram(randMat(r, 2*cols, cols, cols), 7, 5)
		u, err := gptqFactor(cols, gram.Data, Default())
		if err != nil {
			t.Fatal(err)
		}
		var mean float64
		for i := 0; i < cols; i++ {
			mean += float64(gram.Data[i*cols+i]) / float64(cols)
		}
		for i := 0; i < cols; i++ {
			for j := 0; j < i; j++ {
				if u[i*cols+j] != 0 {
					t.Fatalf("%d columns: U[%d][%d] = %v below the diagonal", cols, i, j, u[i*cols+j])
				}
			}
		}
		// (UᵀU)·(H + λI) = I
		inv := make([]float64, cols*cols)
		for i := 0; i < cols; i++ {
			for k := 0; k < cols; k++ {
				var s float64
				for m := 0; m <= min(i, k); m++ {
					s += float64(u[m*cols+i]) * float64(u[m*cols+k])
				}
				inv[i*cols+k] = s
			}
		}
		var worst float64
		for i := 0; i < cols; i++ {
			for j := 0; j < cols; j++ {
				var s float64
				for k := 0; k < cols; k++ {
					h := float64(gram.Data[k*cols+j])
					if k == j {
						h += GPTQDamp * mean
					}
					s += inv[i*cols+k] * h
				}
				if i == j {
					s--
				}
				worst = max(worst, math.Abs(s))
			}
		}
		ref := gptqFactor64(cols, gram.Data)
		var diff, scale float64
		for i := range u {
			diff = max(diff, math.Abs(float64(u[i])-ref[i]))
			scale = max(scale, math.Abs(ref[i]))
		}
		t.Logf("%d columns: max |(UᵀU·H − I)| %.2g; max |U − U₆₄| %.2g of max |U| %.2g", cols, worst, diff, scale)
		if worst > 1e-4 {
			t.Errorf("%d columns: (UᵀU·H − I) reaches %.3g", cols, worst)
		}
		if diff > 1e-5*scale {
			t.Errorf("%d columns: U differs from the float64 factor by %.3g (max |U| %.3g)", cols, diff, scale)
		}
	}
}

// gptqFactor64 is gptqFactor in float64 through gonum: the reference.
func gptqFactor64(n int, gram []float32) []float64 {
	var mean float64
	for i := 0; i < n; i++ {
		mean += float64(gram[i*n+i])
	}
	mean /= float64(n)
	h := mat.NewSymDense(n, nil) // J·H·J
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			h.SetSym(n-1-j, n-1-i, float64(gram[i*n+j]))
		}
		h.SetSym(n-1-i, n-1-i, h.At(n-1-i, n-1-i)+GPTQDamp*mean)
	}
	var ch mat.Cholesky
	if !ch.Factorize(h) {
		panic("not positive definite")
	}
	var l, li mat.TriDense
	ch.LTo(&l)
	if err := li.InverseTri(&l); err != nil {
		panic(err)
	}
	u := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			u[i*n+j] = li.At(n-1-i, n-1-j)
		}
	}
	return u
}

// BenchmarkGPTQFactor: the blocked float32 factorization on the pool against
// gonum's float64 Cholesky and triangular inverse, side by side, for the
// input widths of a 0.5B–1B model's projections (8192: Llama-3.2-1B's down
// projection, the blocked factorization only). GFLOPS counts the n³/3
// multiply-adds of each of the two steps.
func BenchmarkGPTQFactor(b *testing.B) {
	for _, n := range []int{1024, 2048, 4096, 8192} {
		r := rand.New(rand.NewPCG(3, 4))
		x := randMat(r, 2*n, n, n)
		gram := NewMat(n, n)
		Gemm(gram, 1, x, Trans, x, NoTrans, 0)
		flops := 4 * float64(n) * float64(n) * float64(n) / 3
		b.Run(fmt.Sprintf("n%d/blocked", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := gptqFactor(n, gram.Data, Default()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
		if n > 4096 {
			continue // gonum's float64 factorization takes minutes here
		}
		b.Run(fmt.Sprintf("n%d/gonum64", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				gptqFactor64(n, gram.Data)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}
