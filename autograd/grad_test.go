package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/kernels"
)

// The gradient harness: an op under test is run on a fresh tape with float32
// inputs; its output gradient is seeded with random dy and the recorded
// backward closures are run. The result is compared with
//   - the forward of an independent float64 reference implementation, and
//   - central differences in float64 of L(x) = Σ dy ⊙ ref(x), per input;
// plus a float32 smoke check: central differences of the op itself.

type input struct {
	name string
	t    *Tensor // float32 tensor given to the op (Grad set when checked)
}

type gradCase struct {
	name   string
	inputs []input
	// op builds the output on the tape from the inputs.
	op func(tp *Tape, in []*Tensor) *Tensor
	// ref computes the same output in float64 from float64 copies of the inputs.
	ref func(in [][]float64) []float64
	// tolerance for forward and gradients (relative to 1 + |value|)
	tol float64
}

func randT(r *rand.Rand, rows, cols int, grad bool) *Tensor {
	t := &Tensor{Data: make([]float32, rows*cols), Rows: rows, Cols: cols}
	for i := range t.Data {
		t.Data[i] = float32(r.NormFloat64())
	}
	if grad {
		t.Grad = make([]float32, rows*cols)
	}
	return t
}

// backwardFrom seeds y's gradient with dy and runs the recorded closures.
func backwardFrom(tp *Tape, y *Tensor, dy []float32) {
	copy(y.Grad, dy)
	for i := len(tp.ops) - 1; i >= 0; i-- {
		tp.ops[i]()
	}
}

func runGradCase(t *testing.T, c gradCase) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(len(c.name)), 77))
	tp := NewTape(nil)
	ts := make([]*Tensor, len(c.inputs))
	in64 := make([][]float64, len(c.inputs))
	for i, in := range c.inputs {
		ts[i] = in.t
		in64[i] = make([]float64, len(in.t.Data))
		for j, v := range in.t.Data {
			in64[i][j] = float64(v)
		}
	}
	y := c.op(tp, ts)
	want := c.ref(in64)
	if len(want) != len(y.Data) {
		t.Fatalf("%s: reference has %d outputs, op %d", c.name, len(want), len(y.Data))
	}
	for i, w := range want {
		if !(math.Abs(float64(y.Data[i])-w) <= c.tol*(1+math.Abs(w))) {
			t.Fatalf("%s: forward[%d] = %g, reference %g", c.name, i, y.Data[i], w)
		}
	}
	if y.Grad == nil {
		t.Fatalf("%s: output has no gradient", c.name)
	}
	dy := make([]float32, len(y.Data))
	dy64 := make([]float64, len(dy))
	for i := range dy {
		dy[i] = float32(r.NormFloat64())
		dy64[i] = float64(dy[i])
	}
	backwardFrom(tp, y, dy)
	lossOf := func() float64 {
		out := c.ref(in64)
		var s float64
		for i, v := range out {
			s += dy64[i] * v
		}
		return s
	}
	for i, in := range c.inputs {
		if in.t.Grad == nil {
			continue
		}
		for j := range in64[i] {
			old := in64[i][j]
			const h = 1e-6
			in64[i][j] = old + h
			lp := lossOf()
			in64[i][j] = old - h
			lm := lossOf()
			in64[i][j] = old
			num := (lp - lm) / (2 * h)
			got := float64(in.t.Grad[j])
			if !(math.Abs(got-num) <= c.tol*(1+math.Abs(num))) {
				t.Fatalf("%s: d%s[%d] = %g, central difference %g", c.name, in.name, j, got, num)
			}
		}
	}
	// float32 smoke check on a few elements of each input: the op's own forward.
	for _, in := range c.inputs {
		if in.t.Grad == nil {
			continue
		}
		for _, j := range []int{0, len(in.t.Data) / 2, len(in.t.Data) - 1} {
			old := in.t.Data[j]
			f := func(v float32) float64 {
				in.t.Data[j] = v
				tp2 := NewTape(nil)
				tp2.SetNoGrad(true)
				out := c.op(tp2, ts)
				var s float64
				for k, o := range out.Data {
					s += dy64[k] * float64(o)
				}
				return s
			}
			const h = 1e-2
			num := (f(old+h) - f(old-h)) / (2 * h)
			in.t.Data[j] = old
			if got := float64(in.t.Grad[j]); math.Abs(got-num) > 5e-2*(1+math.Abs(num)) {
				t.Errorf("%s: float32 check d%s[%d] = %g, difference quotient %g", c.name, in.name, j, got, num)
			}
		}
	}
}

// mm64 returns X·Aᵀ for X (n×k) and A (m×k) in float64.
func mm64(x []float64, n, k int, a []float64, m int) []float64 {
	y := make([]float64, n*m)
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += x[i*k+p] * a[j*k+p]
			}
			y[i*m+j] = s
		}
	}
	return y
}

func TestGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const N, K, M = 5, 7, 3
	wsrc := randT(r, M, K, false)
	for _, f := range []kernels.Format{kernels.F32, kernels.Q8_0, kernels.NF4} {
		w := kernels.Quantize(f, M, K, wsrc.Data)
		wd := w.Dequantize().Data // the reference uses the weight's own stored values
		runGradCase(t, gradCase{
			name:   "Linear/" + f.String(),
			inputs: []input{{"x", randT(r, N, K, true)}},
			op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.Linear(in[0], w, []float32{0.5, -1, 2}) },
			ref: func(in [][]float64) []float64 {
				y := mm64(in[0], N, K, to64(wd), M)
				for i := range y {
					y[i] += []float64{0.5, -1, 2}[i%M]
				}
				return y
			},
			tol: 1e-4,
		})
	}
	runGradCase(t, gradCase{
		name:   "MatMulT",
		inputs: []input{{"x", randT(r, N, K, true)}, {"a", randT(r, M, K, true)}},
		op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.MatMulT(in[0], in[1]) },
		ref:    func(in [][]float64) []float64 { return mm64(in[0], N, K, in[1], M) },
		tol:    1e-4,
	})
	// The fused LoRA op over a quantized base, with its adapter input the same
	// tensor as X or a separate one (X after dropout).
	const Rk = 2
	wq := kernels.Quantize(kernels.Q8_0, M, K, wsrc.Data)
	wqd := to64(wq.Dequantize().Data)
	loraRef := func(x, xd, a, b []float64) []float64 {
		y := mm64(x, N, K, wqd, M)
		d := mm64(mm64(xd, N, K, a, Rk), N, Rk, b, M)
		for i := range y {
			y[i] += []float64{0.5, -1, 2}[i%M] + 1.5*d[i]
		}
		return y
	}
	runGradCase(t, gradCase{
		name:   "LoRA",
		inputs: []input{{"x", randT(r, N, K, true)}, {"a", randT(r, Rk, K, true)}, {"b", randT(r, M, Rk, true)}},
		op: func(tp *Tape, in []*Tensor) *Tensor {
			return tp.LoRA(in[0], in[0], wq, []float32{0.5, -1, 2}, in[1], in[2], 1.5)
		},
		ref: func(in [][]float64) []float64 { return loraRef(in[0], in[0], in[1], in[2]) },
		tol: 1e-4,
	})
	runGradCase(t, gradCase{
		name:   "LoRA/separate-input",
		inputs: []input{{"x", randT(r, N, K, true)}, {"xd", randT(r, N, K, true)}, {"a", randT(r, Rk, K, true)}, {"b", randT(r, M, Rk, true)}},
		op: func(tp *Tape, in []*Tensor) *Tensor {
			return tp.LoRA(in[0], in[1], wq, []float32{0.5, -1, 2}, in[2], in[3], 1.5)
		},
		ref: func(in [][]float64) []float64 { return loraRef(in[0], in[1], in[2], in[3]) },
		tol: 1e-4,
	})
	ew := func(name string, op func(tp *Tape, a, b *Tensor) *Tensor, ref func(a, b float64) float64) {
		runGradCase(t, gradCase{
			name:   name,
			inputs: []input{{"a", randT(r, 3, 5, true)}, {"b", randT(r, 3, 5, true)}},
			op:     func(tp *Tape, in []*Tensor) *Tensor { return op(tp, in[0], in[1]) },
			ref: func(in [][]float64) []float64 {
				y := make([]float64, len(in[0]))
				for i := range y {
					y[i] = ref(in[0][i], in[1][i])
				}
				return y
			},
			tol: 1e-4,
		})
	}
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	ew("Add", (*Tape).Add, func(a, b float64) float64 { return a + b })
	ew("AddScaled", func(tp *Tape, a, b *Tensor) *Tensor { return tp.AddScaled(a, 0.3, b) }, func(a, b float64) float64 { return a + float64(float32(0.3))*b })
	ew("Mul", (*Tape).Mul, func(a, b float64) float64 { return a * b })
	ew("Scale", func(tp *Tape, a, b *Tensor) *Tensor { return tp.Add(tp.Scale(a, -1.5), b) }, func(a, b float64) float64 { return -1.5*a + b })
	ew("SwiGLU", (*Tape).SwiGLU, func(g, u float64) float64 { return g * sig(g) * u })
	ew("SiLU", func(tp *Tape, a, b *Tensor) *Tensor { return tp.Add(tp.SiLU(a), b) }, func(a, b float64) float64 { return a*sig(a) + b })
	for _, kind := range []int{GELUTanh, GELUErf} {
		ew(fmt.Sprintf("GELU%d", kind), func(tp *Tape, a, b *Tensor) *Tensor { return tp.Mul(tp.GELU(a, kind), b) },
			func(a, b float64) float64 { f, _ := gelu(a, kind); return f * b })
	}
	runGradCase(t, gradCase{
		name:   "AddRow",
		inputs: []input{{"x", randT(r, 4, 5, true)}, {"b", randT(r, 1, 5, true)}},
		op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.AddRow(in[0], in[1]) },
		ref: func(in [][]float64) []float64 {
			y := make([]float64, 20)
			for i := range y {
				y[i] = in[0][i] + in[1][i%5]
			}
			return y
		},
		tol: 1e-6,
	})
	runGradCase(t, gradCase{
		name:   "MulRow",
		inputs: []input{{"x", randT(r, 4, 5, true)}, {"v", randT(r, 1, 5, true)}},
		op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.MulRow(in[0], in[1]) },
		ref: func(in [][]float64) []float64 {
			y := make([]float64, 20)
			for i := range y {
				y[i] = in[0][i] * in[1][i%5]
			}
			return y
		},
		tol: 1e-6,
	})
	// norms
	const R, C = 3, 9
	runGradCase(t, gradCase{
		name:   "RMSNorm",
		inputs: []input{{"x", randT(r, R, C, true)}, {"w", randT(r, 1, C, true)}},
		op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.RMSNorm(in[0], in[1], 1e-5) },
		ref: func(in [][]float64) []float64 {
			y := make([]float64, R*C)
			for i := 0; i < R; i++ {
				var ss float64
				for j := 0; j < C; j++ {
					ss += in[0][i*C+j] * in[0][i*C+j]
				}
				rs := 1 / math.Sqrt(ss/C+1e-5)
				for j := 0; j < C; j++ {
					y[i*C+j] = in[0][i*C+j] * rs * in[1][j]
				}
			}
			return y
		},
		tol: 2e-4,
	})
	runGradCase(t, gradCase{
		name:   "LayerNorm",
		inputs: []input{{"x", randT(r, R, C, true)}, {"w", randT(r, 1, C, true)}, {"b", randT(r, 1, C, true)}},
		op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.LayerNorm(in[0], in[1], in[2], 1e-5) },
		ref: func(in [][]float64) []float64 {
			y := make([]float64, R*C)
			for i := 0; i < R; i++ {
				var mu, v float64
				for j := 0; j < C; j++ {
					mu += in[0][i*C+j]
				}
				mu /= C
				for j := 0; j < C; j++ {
					d := in[0][i*C+j] - mu
					v += d * d
				}
				rs := 1 / math.Sqrt(v/C+1e-5)
				for j := 0; j < C; j++ {
					y[i*C+j] = (in[0][i*C+j]-mu)*rs*in[1][j] + in[2][j]
				}
			}
			return y
		},
		tol: 2e-4,
	})
	ids := []int32{3, 0, 3, 5, 1}
	runGradCase(t, gradCase{
		name:   "Embed",
		inputs: []input{{"table", randT(r, 6, 4, true)}},
		op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.Embed(ids, in[0]) },
		ref: func(in [][]float64) []float64 {
			var y []float64
			for _, id := range ids {
				y = append(y, in[0][int(id)*4:int(id)*4+4]...)
			}
			return y
		},
		tol: 1e-6,
	})
}

// logSumExp64 is log Σ exp(row), computed from the row's maximum.
func logSumExp64(row []float64) float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, v)
	}
	var z float64
	for _, v := range row {
		z += math.Exp(v - mx)
	}
	return mx + math.Log(z)
}

func to64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

// ropeRef rotates in float64 with angles pos·θ^(−2i/D) (no scaling).
func ropeRef(x []float64, rows, cols, D int, pos []int32, theta float64, interleaved bool) []float64 {
	y := make([]float64, len(x))
	half := D / 2
	for n := 0; n < rows; n++ {
		for h := 0; h < cols; h += D {
			v := x[n*cols+h:][:D]
			o := y[n*cols+h:][:D]
			for i := 0; i < half; i++ {
				a := float64(pos[n]) / math.Pow(theta, float64(2*i)/float64(D))
				c, s := math.Cos(a), math.Sin(a)
				i0, i1 := i, i+half
				if interleaved {
					i0, i1 = 2*i, 2*i+1
				}
				o[i0] = v[i0]*c - v[i1]*s
				o[i1] = v[i1]*c + v[i0]*s
			}
		}
	}
	return y
}

func TestRoPE(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pos := []int32{0, 5, 2, 11}
	for _, inter := range []bool{false, true} {
		rope, err := NewRope(6, 10000, 16, nil, inter)
		if err != nil {
			t.Fatal(err)
		}
		runGradCase(t, gradCase{
			name:   fmt.Sprintf("RoPE/interleaved=%v", inter),
			inputs: []input{{"x", randT(r, 4, 12, true)}},
			op:     func(tp *Tape, in []*Tensor) *Tensor { return tp.RoPE(in[0], rope, pos) },
			ref:    func(in [][]float64) []float64 { return ropeRef(in[0], 4, 12, 6, pos, 10000, inter) },
			tol:    1e-5,
		})
	}
	// The two layouts are the same rotation of a permuted vector.
	hf, _ := NewRope(8, 500000, 4, nil, false)
	meta, _ := NewRope(8, 500000, 4, nil, true)
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	perm := []int{0, 4, 1, 5, 2, 6, 3, 7} // interleaved position k holds HF element perm[k]
	a, b := make([]float32, 8), make([]float32, 8)
	xi := make([]float32, 8)
	for k, p := range perm {
		xi[k] = x[p]
	}
	hf.rotate(a, x, 3, 1)
	meta.rotate(b, xi, 3, 1)
	for k, p := range perm {
		if math.Abs(float64(a[p]-b[k])) > 1e-6 {
			t.Fatalf("layouts disagree at %d: %v vs %v", k, a, b)
		}
	}
}

// A table extended to more positions is the one built at that size.
func TestRopeExtend(t *testing.T) {
	s := &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	small, _ := NewRope(16, 500000, 3, s, true)
	want, _ := NewRope(16, 500000, 40, s, true)
	if small.Extend(2) != small {
		t.Error("Extend to fewer positions made a new table")
	}
	got := small.Extend(40)
	if got.MaxPos != 40 || small.MaxPos != 3 || len(small.Cos) != 3*8 || !got.Interleaved {
		t.Fatalf("extended table %d positions (interleaved %v), original now %d", got.MaxPos, got.Interleaved, small.MaxPos)
	}
	for i := range want.Cos {
		if math.Float32bits(got.Cos[i]) != math.Float32bits(want.Cos[i]) || math.Float32bits(got.Sin[i]) != math.Float32bits(want.Sin[i]) {
			t.Fatalf("value %d: extended (%g, %g), built (%g, %g)", i, got.Cos[i], got.Sin[i], want.Cos[i], want.Sin[i])
		}
	}
}

func TestRopeScaling(t *testing.T) {
	// Llama-3.x: factor 32 (3.2) / 8 (3.1), low 1, high 4, original 8192, θ 500000, D 64.
	s := &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	r, err := NewRope(64, 500000, 2, s, false)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := NewRope(64, 500000, 2, nil, false)
	// position 1: angle = inv_freq. High frequencies are unchanged, the lowest is divided by 8.
	ang := func(rp *Rope, i int) float64 { return math.Atan2(float64(rp.Sin[32+i]), float64(rp.Cos[32+i])) }
	if math.Abs(ang(r, 0)-ang(base, 0)) > 1e-7 {
		t.Errorf("highest frequency changed: %g vs %g", ang(r, 0), ang(base, 0))
	}
	if got, want := ang(r, 31), ang(base, 31)/8; math.Abs(got-want) > 1e-9 {
		t.Errorf("lowest frequency %g, want %g", got, want)
	}
	if _, err := NewRope(64, 1e4, 2, &RopeScaling{Type: "yarn", Factor: 2}, false); err == nil {
		t.Error("unsupported scaling accepted")
	}
}

// attnRef computes causal GQA attention with segment ids in float64.
func attnRef(q, k, v []float64, s AttnShape, seg []int32) []float64 {
	B, T, H, Hkv, D := s.B, s.T, s.H, s.Hkv, s.D
	y := make([]float64, B*T*H*D)
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			g := h / (H / Hkv)
			for i := 0; i < T; i++ {
				qi := q[(b*T+i)*H*D+h*D:][:D]
				sc := make([]float64, T)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					if seg != nil && seg[b*T+j] != seg[b*T+i] {
						sc[j] = math.Inf(-1)
						continue
					}
					kj := k[(b*T+j)*Hkv*D+g*D:][:D]
					var d float64
					for p := range qi {
						d += qi[p] * kj[p]
					}
					sc[j] = d / math.Sqrt(float64(D))
					mx = math.Max(mx, sc[j])
				}
				var z float64
				for j := 0; j <= i; j++ {
					sc[j] = math.Exp(sc[j] - mx)
					z += sc[j]
				}
				out := y[(b*T+i)*H*D+h*D:][:D]
				for j := 0; j <= i; j++ {
					vj := v[(b*T+j)*Hkv*D+g*D:][:D]
					for p := range out {
						out[p] += sc[j] / z * vj[p]
					}
				}
			}
		}
	}
	return y
}

func TestAttention(t *testing.T) {
	defer func(b, u int) { attnBlock, attnMinUnits = b, u }(attnBlock, attnMinUnits)
	r := rand.New(rand.NewPCG(5, 6))
	for _, units := range []int{0, 1 << 20} { // one unit per key/value group; every group split into all its blocks
		attnMinUnits = units
		testAttention(t, r)
	}
}

func testAttention(t *testing.T, r *rand.Rand) {
	for _, c := range []struct {
		s   AttnShape
		seg []int32
	}{
		{AttnShape{B: 1, T: 5, H: 2, Hkv: 2, D: 3}, nil},
		{AttnShape{B: 2, T: 5, H: 4, Hkv: 2, D: 3}, nil},                                   // GQA
		{AttnShape{B: 2, T: 5, H: 3, Hkv: 1, D: 5}, []int32{0, 0, 1, 1, 1, 4, 4, 4, 7, 7}}, // packed
		{AttnShape{B: 1, T: 9, H: 2, Hkv: 1, D: 3}, []int32{0, 0, 0, 0, 1, 1, 1, 1, 1}},
	} {
		for _, blk := range []int{96, 2, 3} { // one query block; several (skipping masked keys)
			s := c.s
			attnBlock = blk
			runGradCase(t, gradCase{
				name: fmt.Sprintf("Attention/%+v/seg=%v/block=%d/minUnits=%d", s, c.seg != nil, blk, attnMinUnits),
				inputs: []input{
					{"q", randT(r, s.B*s.T, s.H*s.D, true)},
					{"k", randT(r, s.B*s.T, s.Hkv*s.D, true)},
					{"v", randT(r, s.B*s.T, s.Hkv*s.D, true)},
				},
				op:  func(tp *Tape, in []*Tensor) *Tensor { return tp.Attention(in[0], in[1], in[2], s, c.seg) },
				ref: func(in [][]float64) []float64 { return attnRef(in[0], in[1], in[2], s, c.seg) },
				tol: 2e-4,
			})
		}
	}
}

// TestAttentionStepMatchesFull: generation's attention over a cache gives
// the full causal attention's rows, one token at a time and several rows at
// once (in place from the cache below attnStepDirect rows, by GEMMs from
// it on), for a width the vectorized row kernels take (64) and one they do
// not (4), on 1 and 2 threads with the same bits.
func TestAttentionStepMatchesFull(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range []AttnShape{{B: 1, T: 6, H: 4, Hkv: 2, D: 4}, {B: 1, T: 70, H: 9, Hkv: 3, D: 64}} {
		qd, kvd := s.H*s.D, s.Hkv*s.D
		q, k, v := randT(r, s.T, qd, false), randT(r, s.T, kvd, false), randT(r, s.T, kvd, false)
		tp := NewTape(nil)
		tp.SetNoGrad(true)
		full := tp.Attention(q, k, v, s, nil)
		check := func(what string, got []float32, row int) {
			for j, val := range got {
				if math.Abs(float64(val-full.Row(row)[j])) > 1e-5 {
					t.Fatalf("D=%d %s, row %d: col %d step %g, full %g", s.D, what, row, j, val, full.Row(row)[j])
				}
			}
		}
		var one [2][]float32 // the one-token rows on 1 and 2 threads
		for ti, threads := range []int{1, 2} {
			pool, err := kernels.NewPool(threads, "")
			if err != nil {
				t.Fatal(err)
			}
			scratch := make([]float32, max(s.T, threads)*s.T)
			for pos := 0; pos < s.T; pos++ { // one token at a time, as generation steps
				out := &Tensor{Data: make([]float32, qd), Rows: 1, Cols: qd}
				qi := &Tensor{Data: q.Row(pos), Rows: 1, Cols: qd}
				AttentionStep(pool, out, qi, k.Data, v.Data, pos, s, scratch)
				check("one token", out.Data, pos)
				one[ti] = append(one[ti], out.Data...)
			}
			// A prompt fed after two cached tokens: 4 rows (in place), and
			// the rest (GEMMs where ≥ attnStepDirect).
			for _, n := range []int{4, s.T - 2} {
				out := &Tensor{Data: make([]float32, n*qd), Rows: n, Cols: qd}
				qn := &Tensor{Data: q.Data[2*qd:], Rows: n, Cols: qd}
				AttentionStep(pool, out, qn, k.Data, v.Data, 2, s, scratch)
				for i := 0; i < n; i++ {
					check(fmt.Sprintf("%d rows", n), out.Row(i), 2+i)
				}
			}
		}
		for i := range one[0] {
			if math.Float32bits(one[0][i]) != math.Float32bits(one[1][i]) {
				t.Fatalf("D=%d: one token at a time, value %d: %g on 1 thread, %g on 2", s.D, i, one[0][i], one[1][i])
			}
		}
	}
}

func TestCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const N, C, V = 6, 5, 11
	targets := []int32{3, IgnoreIndex, 10, 0, IgnoreIndex, 7}
	wsrc := randT(r, V, C, false)
	for _, f := range []kernels.Format{kernels.F32, kernels.Q4_0} {
		w := kernels.Quantize(f, V, C, wsrc.Data)
		wd := to64(w.Dequantize().Data)
		runGradCase(t, gradCase{
			name:   "CrossEntropy/" + f.String(),
			inputs: []input{{"h", randT(r, N, C, true)}},
			op: func(tp *Tape, in []*Tensor) *Tensor {
				l, n := tp.CrossEntropy(in[0], w, targets, 0)
				if n != 4 {
					t.Fatalf("supervised %d", n)
				}
				return l
			},
			ref: func(in [][]float64) []float64 {
				logits := mm64(in[0], N, C, wd, V)
				var s float64
				for i, tg := range targets {
					if tg < 0 {
						continue
					}
					row := logits[i*V : (i+1)*V]
					s += logSumExp64(row) - row[tg]
				}
				return []float64{s / 4}
			},
			tol: 1e-4,
		})
	}
}

// TestCrossEntropyChunks: the supervised rows gathered (runs of them
// between ignored rows, and none at the ends) in chunks of 4 rows give the
// loss and dH of one chunk of all of them, and ignored rows get zero
// gradient.
func TestCrossEntropyChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 11))
	const N, V = 40, 50
	targets := make([]int32, N)
	for i := range targets {
		targets[i] = int32(r.IntN(V))
		if i < 3 || i >= N-2 || i%7 < 3 {
			targets[i] = IgnoreIndex
		}
	}
	w := kernels.Quantize(kernels.Q8_0, V, 32, randT(r, V, 32, false).Data)
	h := randT(r, N, 32, true)
	run := func(chunk int) (float32, []float32) {
		defer func(c int) { ceChunkFloats = c }(ceChunkFloats)
		ceChunkFloats = chunk
		tp := NewTape(nil)
		h.ZeroGrad()
		l, _ := tp.CrossEntropy(h, w, targets, 0)
		tp.Backward(l)
		return l.Data[0], append([]float32(nil), h.Grad...)
	}
	l1, g1 := run(1 << 24)
	l4, g4 := run(4 * V)
	if math.Abs(float64(l1-l4)) > 1e-6*math.Abs(float64(l1)) {
		t.Fatalf("loss %g in chunks of 4 rows, %g in one", l4, l1)
	}
	for i := range g1 {
		if tg := targets[i/32]; tg < 0 && (g1[i] != 0 || g4[i] != 0) {
			t.Fatalf("ignored row %d has gradient %g, %g", i/32, g1[i], g4[i])
		}
		if math.Abs(float64(g1[i]-g4[i])) > 1e-6*(math.Abs(float64(g1[i]))+1e-3) {
			t.Fatalf("dH[%d] = %g in chunks of 4 rows, %g in one", i, g4[i], g1[i])
		}
	}
}

// TestTapeReuse: a second pass with the same shapes allocates no new arena chunk
// and gives the same numbers.
func TestTapeReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	x, a := randT(r, 64, 32, true), randT(r, 16, 32, true)
	tp := NewTape(nil)
	run := func() float32 {
		tp.Reset()
		x.ZeroGrad()
		a.ZeroGrad()
		y := tp.SwiGLU(tp.MatMulT(x, a), tp.MatMulT(x, a))
		w := kernels.Quantize(kernels.F32, 8, 16, make([]float32, 128))
		l, _ := tp.CrossEntropy(y, w, make([]int32, 64), 0)
		tp.Backward(l)
		return a.Grad[5]
	}
	g1 := run()
	chunks := len(tp.act.chunks)
	g2 := run()
	if len(tp.act.chunks) != chunks || g1 != g2 {
		t.Fatalf("second pass: %d chunks (was %d), grad %g vs %g", len(tp.act.chunks), chunks, g2, g1)
	}
}

func TestDropout(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	x := randT(r, 40, 50, true)
	tp := NewTape(nil)
	y := tp.Dropout(x, 0.25, Key(1, 2, 3))
	zeros := 0
	for i, v := range y.Data {
		if v == 0 {
			zeros++
		} else if math.Abs(float64(v)-float64(x.Data[i])/0.75) > 1e-6 {
			t.Fatalf("kept value %g, want %g", v, x.Data[i]/0.75)
		}
	}
	if frac := float64(zeros) / 2000; frac < 0.21 || frac > 0.29 {
		t.Errorf("dropped fraction %.3f, want ≈ 0.25", frac)
	}
	dy := make([]float32, len(y.Data))
	for i := range dy {
		dy[i] = 1
	}
	backwardFrom(tp, y, dy)
	for i, v := range y.Data {
		if want := float32(0); v != 0 {
			want = 1 / 0.75
			if math.Abs(float64(x.Grad[i]-want)) > 1e-6 {
				t.Fatalf("grad %g want %g", x.Grad[i], want)
			}
		} else if x.Grad[i] != want {
			t.Fatalf("dropped element got gradient %g", x.Grad[i])
		}
	}
	// same key → same mask; another key → another mask
	a := NewTape(nil).Dropout(x, 0.25, Key(1, 2, 3))
	b := NewTape(nil).Dropout(x, 0.25, Key(1, 2, 4))
	same, diff := true, false
	for i := range a.Data {
		same = same && a.Data[i] == y.Data[i]
		diff = diff || (a.Data[i] == 0) != (b.Data[i] == 0)
	}
	if !same || !diff {
		t.Errorf("mask not a function of the key: same=%v diff=%v", same, diff)
	}
}

// TestRopeFactors: llama.cpp's rope_freqs divisors reproduce llama3 scaling.
func TestRopeFactors(t *testing.T) {
	s := &RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	want, _ := NewRope(64, 500000, 64, s, false)
	base, _ := NewRope(64, 500000, 2, nil, false)
	scaled, _ := NewRope(64, 500000, 2, s, false)
	f := make([]float32, 32)
	for i := range f { // divisor = unscaled frequency / scaled frequency (angles at position 1)
		f[i] = float32(math.Atan2(float64(base.Sin[32+i]), float64(base.Cos[32+i])) / math.Atan2(float64(scaled.Sin[32+i]), float64(scaled.Cos[32+i])))
	}
	got, err := NewRopeFactors(64, 500000, 64, nil, f, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Cos {
		if math.Abs(float64(got.Cos[i]-want.Cos[i])) > 1e-4 || math.Abs(float64(got.Sin[i]-want.Sin[i])) > 1e-4 {
			t.Fatalf("[%d] factors give %g,%g; llama3 scaling %g,%g", i, got.Cos[i], got.Sin[i], want.Cos[i], want.Sin[i])
		}
	}
	if _, err := NewRopeFactors(64, 1e4, 2, nil, make([]float32, 5), false); err == nil {
		t.Error("wrong factor count accepted")
	}
}

// TestAttentionThreads: one sequence of a grouped-query shape (each group
// split by query blocks) and four sequences (one unit per group) give the
// same bits, output and every gradient, on 1, 2 and 3 threads.
func TestAttentionThreads(t *testing.T) {
	defer func(b int) { attnBlock = b }(attnBlock)
	attnBlock = 12
	for _, s := range []AttnShape{{B: 1, T: 40, H: 6, Hkv: 2, D: 8}, {B: 1, T: 40, H: 3, Hkv: 1, D: 8}, {B: 4, T: 40, H: 6, Hkv: 2, D: 8}} {
		var ref [][]float32
		for _, th := range []int{1, 2, 3} {
			pool, err := kernels.NewPool(th, "")
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(9, 10))
			q := randT(r, s.B*s.T, s.H*s.D, true)
			k := randT(r, s.B*s.T, s.Hkv*s.D, true)
			v := randT(r, s.B*s.T, s.Hkv*s.D, true)
			dy := randT(r, s.B*s.T, s.H*s.D, false).Data
			tp := NewTape(pool)
			y := tp.Attention(q, k, v, s, nil)
			out := [][]float32{append([]float32(nil), y.Data...)}
			backwardFrom(tp, y, dy)
			out = append(out, q.Grad, k.Grad, v.Grad)
			if ref == nil {
				ref = out
				continue
			}
			for i := range out {
				for j := range out[i] {
					if math.Float32bits(out[i][j]) != math.Float32bits(ref[i][j]) {
						t.Fatalf("%+v: %d threads differ from 1 in output %d at %d: %g vs %g", s, th, i, j, out[i][j], ref[i][j])
					}
				}
			}
		}
	}
}

// BenchmarkAttention times one layer's attention forward + backward on one
// thread for the smollm2 and stories15m shapes at 4×256, with query blocks of
// several sizes (256 = one block: no masked keys skipped).
func BenchmarkAttention(b *testing.B) {
	defer func(blk int) { attnBlock = blk }(attnBlock)
	pool, err := kernels.NewPool(1, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, sh := range []AttnShape{{B: 4, T: 256, H: 9, Hkv: 3, D: 64}, {B: 4, T: 256, H: 6, Hkv: 6, D: 48}, {B: 1, T: 512, H: 32, Hkv: 4, D: 64}} {
		for _, blk := range []int{48, 96, 256} {
			b.Run(fmt.Sprintf("D%d/block%d", sh.D, blk), func(b *testing.B) {
				attnBlock = blk
				benchAttention(b, pool, sh)
			})
		}
	}
}

// benchAttention times forward + backward of attention of shape sh.
func benchAttention(b *testing.B, pool *kernels.Pool, sh AttnShape) {
	r := rand.New(rand.NewPCG(1, 2))
	q := randT(r, sh.B*sh.T, sh.H*sh.D, true)
	k := randT(r, sh.B*sh.T, sh.Hkv*sh.D, true)
	v := randT(r, sh.B*sh.T, sh.Hkv*sh.D, true)
	dy := make([]float32, sh.B*sh.T*sh.H*sh.D)
	tp := NewTape(pool)
	for i := 0; i < b.N; i++ {
		tp.Reset()
		backwardFrom(tp, tp.Attention(q, k, v, sh, nil), dy)
	}
}

// BenchmarkAttentionFewHeads times one layer's attention forward + backward
// for one 512-token sequence on 2 threads, with one key/value head (9 query
// heads) and two (14 heads, Qwen2.5-0.5B's shape): each group as one unit
// (minUnits0) against groups split by query blocks (minUnits8, the default).
func BenchmarkAttentionFewHeads(b *testing.B) {
	defer func(u int) { attnMinUnits = u }(attnMinUnits)
	pool, err := kernels.NewPool(2, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, sh := range []AttnShape{{B: 1, T: 512, H: 9, Hkv: 1, D: 64}, {B: 1, T: 512, H: 14, Hkv: 2, D: 64}} {
		for _, units := range []int{0, 8} {
			b.Run(fmt.Sprintf("Hkv%d/minUnits%d", sh.Hkv, units), func(b *testing.B) {
				attnMinUnits = units
				benchAttention(b, pool, sh)
			})
		}
	}
}
