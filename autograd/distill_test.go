package autograd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/kernels"
)

// TestLinearScales checks the gradient of a weight's block scales (codes
// fixed) and of X against central differences of W[i][j] = s[i][b]·code[i][j]
// in float64, for each format with block scales; 37 columns leave a padded
// last block in every one of them.
func TestLinearScales(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const N, K, M = 5, 37, 3
	wsrc := randT(r, M, K, false)
	bias := []float32{0.5, -1, 2}
	for _, f := range []kernels.Format{kernels.Q8_0, kernels.Q4_0, kernels.NF4} {
		w := kernels.Quantize(f, M, K, wsrc.Data)
		s0, err := w.BlockScales()
		if err != nil {
			t.Fatal(err)
		}
		bpr := w.BlocksPerRow()
		wd := w.Dequantize().Data
		codes := make([]float64, M*K) // W's values before scaling
		for i := 0; i < M; i++ {
			for j := 0; j < K; j++ {
				if s := s0[i*bpr+j/f.BlockSize()]; s != 0 {
					codes[i*K+j] = float64(wd[i*K+j]) / float64(s)
				}
			}
		}
		scales := &Tensor{Data: append([]float32(nil), s0...), Grad: make([]float32, len(s0)), Rows: M, Cols: bpr}
		runGradCase(t, gradCase{
			name:   "LinearScales/" + f.String(),
			inputs: []input{{"x", randT(r, N, K, true)}, {"scales", scales}},
			op: func(tp *Tape, in []*Tensor) *Tensor {
				if err := w.SetBlockScales(in[1].Data); err != nil {
					t.Fatal(err)
				}
				return tp.LinearScales(in[0], w, bias, in[1])
			},
			ref: func(in [][]float64) []float64 {
				wv := make([]float64, M*K)
				for i := range wv {
					wv[i] = in[1][(i/K)*bpr+(i%K)/f.BlockSize()] * codes[i]
				}
				y := mm64(in[0], N, K, wv, M)
				for i := range y {
					y[i] += float64(bias[i%M])
				}
				return y
			},
			tol: 1e-4,
		})
	}
	// Without a gradient for the scales it is Linear.
	w := kernels.Quantize(kernels.Q4_0, M, K, wsrc.Data)
	x := randT(r, N, K, false)
	tp := NewTape(nil)
	a := tp.LinearScales(x, w, nil, &Tensor{Data: make([]float32, M*w.BlocksPerRow()), Rows: M, Cols: w.BlocksPerRow()})
	b := tp.Linear(x, w, nil)
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			t.Fatalf("LinearScales without a gradient differs from Linear at %d", i)
		}
	}
}

// TestDistill checks the KL divergence to a teacher's top-k distributions
// (with the rest of the vocabulary as one outcome where they leave some
// probability) and its gradient against a float64 reference; a teacher that
// is the student itself costs nothing and pulls nowhere.
func TestDistill(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const N, C, V, k = 4, 5, 13, 3
	ids := []int32{3, 0, 12, 7, -1, 2, 5, 6, 4, 11, 10, -1}
	probs := []float32{0.5, 0.3, 0.2, 0.6, 0, 0.1, 0.25, 0.25, 0.4, 0.6, 0.3, 0} // rows 2-4 leave 0.3, 0.1, 0.1 to the rest
	wsrc := randT(r, V, C, false)
	for _, f := range []kernels.Format{kernels.F32, kernels.Q4_0} {
		w := kernels.Quantize(f, V, C, wsrc.Data)
		wd := to64(w.Dequantize().Data)
		runGradCase(t, gradCase{
			name:   "Distill/" + f.String(),
			inputs: []input{{"h", randT(r, N, C, true)}},
			op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.Distill(in[0], w, ids, probs, k, 2.5) },
			ref: func(in [][]float64) []float64 {
				logits := mm64(in[0], N, C, wd, V)
				var s float64
				for i := 0; i < N; i++ {
					row := logits[i*V : (i+1)*V]
					lse := logSumExp64(row)
					pt, qt := 1.0, 1.0 // the rest of the vocabulary
					for j := 0; j < k; j++ {
						id, p := ids[i*k+j], float64(probs[i*k+j])
						if id < 0 {
							continue
						}
						lq := row[id] - lse
						pt, qt = pt-p, qt-math.Exp(lq)
						if p > 0 {
							s += p * (math.Log(p) - lq)
						}
					}
					if pt > 1e-6 {
						s += pt * math.Log(pt/qt)
					}
				}
				return []float64{s / 2.5}
			},
			tol: 1e-4,
		})
	}
	// The student's own full distribution as the teacher.
	w := kernels.Quantize(kernels.F32, V, C, wsrc.Data)
	h := randT(r, N, C, true)
	tp := NewTape(nil)
	lg := tp.Logits(h, w)
	all := make([]int32, N*V)
	p := make([]float32, N*V)
	for i := 0; i < N; i++ {
		row := lg.Row(i)
		z := kernels.ExpShiftSum(row, kernels.Max(row))
		for j := 0; j < V; j++ {
			all[i*V+j], p[i*V+j] = int32(j), row[j]/z
		}
	}
	loss := tp.Distill(h, w, all, p, V, 0)
	tp.Backward(loss)
	if math.Abs(float64(loss.Data[0])) > 1e-6 {
		t.Errorf("KL to itself = %g", loss.Data[0])
	}
	for i, g := range h.Grad {
		if math.Abs(float64(g)) > 1e-5 {
			t.Fatalf("gradient toward itself: dh[%d] = %g", i, g)
		}
	}
}

// TestDistillTail: the term of the rest of the vocabulary when the
// teacher's top k hold nearly all the mass (the student's rest 7e-6 of a
// 4096-token vocabulary, each of its tokens below half an ulp of the sum)
// matches float64 on the pure-Go path and the best one. The student's rest
// mass is the difference of two sums; taken from the float32 sum of the
// whole vocabulary it came out as rounding noise, even negative (then
// clamped to 1e-30, and the tail's gradient scaled by −pT·1e30).
func TestDistillTail(t *testing.T) {
	const N, V, k = 3, 4096, 64
	r := rand.New(rand.NewPCG(7, 8))
	wv := make([]float32, V) // C = 1, h = 1: the logits are w
	for j := range wv {
		wv[j] = float32(r.NormFloat64() * 0.3)
		if j < k {
			wv[j] += 16
		}
	}
	w := kernels.Quantize(kernels.F32, V, 1, wv)
	// The teacher: the student's own top k, scaled to leave it twice the
	// student's rest.
	l64 := to64(wv)
	lse := logSumExp64(l64)
	var qt float64 = 1
	for j := 0; j < k; j++ {
		qt -= math.Exp(l64[j] - lse)
	}
	ids, probs := make([]int32, N*k), make([]float32, N*k)
	var want float64
	for i := 0; i < N; i++ {
		pt := qt * float64(i+2)
		var mass float64
		for j := 0; j < k; j++ {
			ids[i*k+j] = int32(j)
			probs[i*k+j] = float32(math.Exp(l64[j]-lse) * (1 - pt) / (1 - qt))
			mass += float64(probs[i*k+j])
		}
		for j := 0; j < k; j++ {
			p := float64(probs[i*k+j])
			want += p * (math.Log(p) - (l64[j] - lse))
		}
		want += (1 - mass) * math.Log((1-mass)/qt)
	}
	want /= N
	for _, name := range []string{"go", ""} {
		pool, err := kernels.NewPool(1, name)
		if err != nil {
			t.Fatal(err)
		}
		h := &Tensor{Data: []float32{1, 1, 1}, Rows: N, Cols: 1}
		got := float64(NewTape(pool).Distill(h, w, ids, probs, k, 0).Data[0])
		if math.Abs(got-want) > 1e-3*math.Abs(want) {
			t.Errorf("%s path: KL %.6g, float64 %.6g", pool.Path().Name(), got, want)
		}
		t.Logf("%s path: KL %.6g, float64 %.6g", pool.Path().Name(), got, want)
	}
}
