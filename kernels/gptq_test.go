package kernels

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
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
	for i := 0; i < n; i++ {
		for j := 0; j < cols; j += 17 {
			x.Data[i*cols+j] *= 4
		}
	}
	gram := NewMat(cols, cols)
	Gemm(gram, 1, x, Trans, x, NoTrans, 0)
	w := randMat(r, rows, cols, cols).Data
	for _, f := range []Format{Q4_0, NF4} {
		plain := Quantize(f, rows, cols, w)
		scratch := append([]float32(nil), w...)
		g, err := QuantizeGPTQ(f, rows, cols, scratch, gram.Data, Default())
		if err != nil {
			t.Fatal(err)
		}
		if g.Format != f || g.Rows != rows || g.Cols != cols || g.Bytes() != plain.Bytes() {
			t.Fatalf("%s: GPTQ gave %s %d×%d, %d bytes; want %s %d×%d, %d bytes", f, g.Format, g.Rows, g.Cols, g.Bytes(), f, rows, cols, plain.Bytes())
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
	scratch := append([]float32(nil), w...)
	g, err := QuantizeGPTQ(NF4, rows, cols, scratch, dead, Default())
	if err != nil {
		t.Fatal(err)
	}
	dec := make([]float32, cols)
	g.DecodeRow(dec, 0)
	if dec[5] != 0 {
		t.Errorf("column 5, which no input reaches, decodes to %v, want 0", dec[5])
	}
	for _, c := range []struct {
		f    Format
		gram []float32
		want string
	}{
		{Q8_0, gram.Data, "q4_0 or nf4"},
		{NF4, gram.Data[:10], "Gram matrix"},
	} {
		_, err := QuantizeGPTQ(c.f, rows, cols, append([]float32(nil), w...), c.gram, Default())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("QuantizeGPTQ(%s, %d-value Gram): error %v, want one mentioning %q", c.f, len(c.gram), err, c.want)
		}
	}
}

// TestGPTQFactor: Uᵀ·U is the inverse of the damped Gram matrix and U is
// upper triangular.
func TestGPTQFactor(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, cols = 200, 37
	x := randMat(r, n, cols, cols)
	gram := NewMat(cols, cols)
	Gemm(gram, 1, x, Trans, x, NoTrans, 0)
	u, err := gptqFactor(cols, gram.Data, make([]float32, cols), 1)
	if err != nil {
		t.Fatal(err)
	}
	var mean float64
	for i := 0; i < cols; i++ {
		mean += float64(gram.Data[i*cols+i]) / cols
	}
	for i := 0; i < cols; i++ {
		for j := 0; j < i; j++ {
			if u[i*cols+j] != 0 {
				t.Fatalf("U[%d][%d] = %v below the diagonal", i, j, u[i*cols+j])
			}
		}
	}
	// (UᵀU)·H = I
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			var s float64
			for k := 0; k < cols; k++ {
				var inv float64 // (UᵀU)[i][k]
				for m := 0; m <= min(i, k); m++ {
					inv += float64(u[m*cols+i]) * float64(u[m*cols+k])
				}
				h := float64(gram.Data[k*cols+j])
				if k == j {
					h += GPTQDamp * mean
				}
				s += inv * h
			}
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(s-want) > 1e-4 {
				t.Fatalf("(UᵀU·H)[%d][%d] = %v, want %v", i, j, s, want)
			}
		}
	}
}
