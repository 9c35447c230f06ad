package lora

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
)

func tinyConfig() model.Config {
	return model.Config{Arch: "llama", Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		Vocab: 50, MaxPos: 64, RMSEps: 1e-5, RopeTheta: 10000, TieEmbeddings: true, EOS: []int{2}, Pad: -1}
}

func batch(cfg model.Config, seed uint64) *model.Batch {
	r := rand.New(rand.NewPCG(seed, 3))
	const B, T = 2, 11
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Pos: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range b.IDs {
		b.IDs[i] = int32(r.IntN(cfg.Vocab))
		b.Targets[i] = int32(r.IntN(cfg.Vocab))
		b.Pos[i] = int32(i % T)
	}
	b.Targets[0] = autograd.IgnoreIndex
	return b
}

func lossOf(t *testing.T, m *model.Model, b *model.Batch) (float32, *autograd.Tape, *autograd.Tensor) {
	tp := autograd.NewTape(nil)
	loss, _, err := m.Loss(tp, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return loss.Data[0], tp, loss
}

// checkCentral compares p.Grad[i] (already filled by a backward pass) with
// the central difference of the model's loss in p.Data[i].
func checkCentral(t *testing.T, m *model.Model, b *model.Batch, p *autograd.Tensor, i int, tag string) {
	t.Helper()
	const h = 1e-2
	old := p.Data[i]
	p.Data[i] = old + h
	lp, _, _ := lossOf(t, m, b)
	p.Data[i] = old - h
	lm, _, _ := lossOf(t, m, b)
	p.Data[i] = old
	num := (float64(lp) - float64(lm)) / (2 * h)
	if got := float64(p.Grad[i]); math.Abs(got-num) > 2e-3+0.05*math.Abs(num) {
		t.Errorf("%s gradient %g, central difference %g", tag, got, num)
	}
}

func randomize(ad *Adapter, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 5))
	for _, l := range ad.Layers {
		for i := range l.B.Data {
			l.B.Data[i] = float32(r.NormFloat64() * 0.05)
		}
	}
}

func TestTargets(t *testing.T) {
	m, _ := model.NewRandom(tinyConfig(), kernels.F32, 1)
	for _, c := range []struct {
		targets []string
		want    int
	}{
		{nil, 14}, {[]string{"all-linear"}, 14}, {[]string{"q_proj", "v_proj"}, 4},
		{[]string{"model.layers.1.mlp.*"}, 3}, {[]string{"re:.*\\.(k|o)_proj"}, 4},
	} {
		m2, _ := model.NewRandom(tinyConfig(), kernels.F32, 1)
		ad, err := Apply(m2, Config{Rank: 4, Alpha: 8, Targets: c.targets})
		if err != nil || len(ad.Layers) != c.want {
			t.Errorf("targets %v: %v layers, %v; want %d", c.targets, len(ad.Layers), err, c.want)
		}
	}
	if _, err := Apply(m, Config{Rank: 4, Targets: []string{"lm_head"}}); err == nil {
		t.Error("a target matching nothing was accepted")
	}
	ad, err := Apply(m, Config{Rank: 4, Alpha: 16, RankPattern: map[string]int{"v_proj": 2, "model.layers.1.mlp.down_proj": 8}, AlphaPattern: map[string]float64{"q_proj": 4}, RSLoRA: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ad.Layers {
		want := 4
		switch l.Base.Name {
		case "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj":
			want = 2
		case "model.layers.1.mlp.down_proj":
			want = 8
		}
		alpha := 16.0
		if l.Base.Name[len(l.Base.Name)-6:] == "q_proj" {
			alpha = 4
		}
		if l.Rank != want || l.A.Rows != want || l.Scale != float32(alpha/math.Sqrt(float64(want))) {
			t.Errorf("%s: rank %d scale %g, want %d, %g", l.Base.Name, l.Rank, l.Scale, want, alpha/math.Sqrt(float64(want)))
		}
	}
}

// TestInvariants: B = 0 is the identity; merged equals unmerged (f32 base);
// unmerge restores W.
func TestInvariants(t *testing.T) {
	cfg := tinyConfig()
	b := batch(cfg, 1)
	for _, f := range []kernels.Format{kernels.F32, kernels.Q8_0, kernels.NF4} {
		m, _ := model.NewRandom(cfg, f, 7)
		base, _, _ := lossOf(t, m, b)
		orig := make([]kernels.Mat, 0)
		for bi := range m.Blocks {
			for _, lin := range m.Blocks[bi].Linears() {
				orig = append(orig, (*lin).Frozen().W.Dequantize())
			}
		}
		ad, err := Apply(m, Config{Rank: 4, Alpha: 8, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		if l0, _, _ := lossOf(t, m, b); l0 != base {
			t.Errorf("%s: B = 0 changed the loss: %g vs %g", f, l0, base)
		}
		randomize(ad, 9)
		unmerged, _, _ := lossOf(t, m, b)
		if math.Abs(float64(unmerged-base)) < 1e-4 {
			t.Fatalf("%s: a non-zero adapter left the loss at %g", f, base)
		}
		ad.Merge(nil)
		merged, _, _ := lossOf(t, m, b)
		rel := math.Abs(float64(merged-unmerged)) / math.Abs(float64(unmerged))
		t.Logf("%-5s base loss %.7f; with adapter: merged %.7f, unmerged %.7f (relative %.2g)", f, base, merged, unmerged, rel)
		if f == kernels.F32 && rel > 1e-5 {
			t.Errorf("f32: merged differs from unmerged by %g", rel)
		}
		ad.Unmerge(nil)
		if f == kernels.F32 {
			i := 0
			for bi := range m.Blocks {
				for _, lin := range m.Blocks[bi].Linears() {
					w := (*lin).Frozen().W.Dequantize()
					for j := range w.Data {
						if d := math.Abs(float64(w.Data[j] - orig[i].Data[j])); d > 1e-6 {
							t.Fatalf("unmerge left W[%d] off by %g", j, d)
						}
					}
					i++
				}
			}
		}
	}
}

// TestAdapterGradients: dA and dB through a whole 2-layer model with a
// quantized (q4_0) base agree with central differences of the loss.
func TestAdapterGradients(t *testing.T) {
	cfg := tinyConfig()
	m, _ := model.NewRandom(cfg, kernels.Q4_0, 11)
	ad, err := Apply(m, Config{Rank: 3, Alpha: 6, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	randomize(ad, 2)
	b := batch(cfg, 4)
	_, tp, loss := lossOf(t, m, b)
	tp.Backward(loss)
	r := rand.New(rand.NewPCG(8, 8))
	checked := 0
	for _, pa := range ad.Params() {
		p := pa.T
		for k := 0; k < 3; k++ {
			checkCentral(t, m, b, p, r.IntN(len(p.Data)), "")
			checked++
		}
	}
	// A directional check over all parameters at once.
	var dot float64
	dirs := make([][]float32, 0)
	for _, pa := range ad.Params() {
		p := pa.T
		d := make([]float32, len(p.Data))
		for i := range d {
			d[i] = float32(r.NormFloat64())
			dot += float64(d[i]) * float64(p.Grad[i])
		}
		dirs = append(dirs, d)
	}
	shift := func(h float32) float64 {
		for k, p := range ad.Params() {
			for i := range p.T.Data {
				p.T.Data[i] += h * dirs[k][i]
			}
		}
		l, _, _ := lossOf(t, m, b)
		return float64(l)
	}
	const h = 1e-3
	lp := shift(h)
	lm := shift(-2 * h)
	shift(h)
	if num := (lp - lm) / (2 * h); math.Abs(num-dot) > 0.02*math.Abs(dot)+1e-3 {
		t.Errorf("directional derivative %g, gradient·direction %g", num, dot)
	}
	t.Logf("%d single-element checks and one directional check over %d parameters", checked, ad.NumParams())
}

// TestPiSSA: at step 0 the model's output is unchanged (residual + B·A = W),
// and B·A is the best rank-r part of W (non-zero).
func TestPiSSA(t *testing.T) {
	cfg := tinyConfig()
	b := batch(cfg, 2)
	m, _ := model.NewRandom(cfg, kernels.F32, 5)
	base, _, _ := lossOf(t, m, b)
	ad, err := Apply(m, Config{Rank: 4, Alpha: 8, Init: "pissa"})
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := lossOf(t, m, b)
	if math.Abs(float64(got-base)) > 1e-5*math.Abs(float64(base)) {
		t.Errorf("PiSSA changed the loss at step 0: %g vs %g", got, base)
	}
	var norm float64
	for _, v := range ad.Layers[0].B.Data {
		norm += float64(v * v)
	}
	if norm == 0 {
		t.Error("PiSSA left B at zero")
	}
}

// TestCombine: "cat" reproduces Σ wᵢΔWᵢ exactly; "svd" at full combined rank too,
// and at a lower rank gives the truncated approximation.
func TestCombine(t *testing.T) {
	cfg := tinyConfig()
	var ads []*Adapter
	for seed := uint64(1); seed <= 2; seed++ {
		m, _ := model.NewRandom(cfg, kernels.F32, 1)
		ad, _ := Apply(m, Config{Rank: 3, Alpha: 6, Seed: seed})
		randomize(ad, seed+10)
		ads = append(ads, ad)
	}
	w := []float64{0.7, -0.4}
	m, _ := model.NewRandom(cfg, kernels.F32, 1)
	dst, _ := Apply(m, Config{Rank: 3, Alpha: 6})
	want := kernels.NewMat(dst.Layers[0].B.Rows, dst.Layers[0].A.Cols)
	for k, ad := range ads {
		d := ad.Layers[0].Delta()
		for i := range want.Data {
			want.Data[i] += float32(w[k]) * d.Data[i]
		}
	}
	srcs := []*Linear{ads[0].Layers[0], ads[1].Layers[0]}
	for _, c := range []struct {
		method string
		rank   int
		tol    float64
	}{{"cat", 0, 1e-6}, {"svd", 6, 1e-5}} {
		if err := CombineLayer(dst.Layers[0], srcs, w, c.method, c.rank); err != nil {
			t.Fatal(err)
		}
		got := dst.Layers[0].Delta()
		for i := range want.Data {
			if d := math.Abs(float64(got.Data[i] - want.Data[i])); d > c.tol {
				t.Fatalf("%s: ΔW[%d] = %g, want %g", c.method, i, got.Data[i], want.Data[i])
			}
		}
	}
	if err := CombineLayer(dst.Layers[0], srcs, w, "svd", 2); err != nil || dst.Layers[0].Rank != 2 {
		t.Errorf("rank-2 svd: %v", err)
	}
}

// TestDoRA: at init the output is the base's; gradients of A, B and the
// magnitude pass central differences through a 2-layer q8_0 model; merged
// equals unmerged (f32), and unmerge restores W.
func TestDoRA(t *testing.T) {
	cfg := tinyConfig()
	b := batch(cfg, 6)
	for _, f := range []kernels.Format{kernels.F32, kernels.Q8_0} {
		m, _ := model.NewRandom(cfg, f, 13)
		base, _, _ := lossOf(t, m, b)
		ad, err := Apply(m, Config{Rank: 3, Alpha: 6, DoRA: true, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		if l0, _, _ := lossOf(t, m, b); math.Abs(float64(l0-base)) > 1e-5*float64(base) {
			t.Fatalf("%s: DoRA at init changed the loss %g → %g", f, base, l0)
		}
		randomize(ad, 3)
		r := rand.New(rand.NewPCG(4, 4))
		for _, l := range ad.Layers {
			for i := range l.Magnitude.Data {
				l.Magnitude.Data[i] *= float32(1 + 0.2*r.NormFloat64())
			}
		}
		_, tp, loss := lossOf(t, m, b)
		tp.Backward(loss)
		// PEFT detaches ‖W'‖ from the graph: the gradient is that of the loss
		// with the norm held at its current value, so hold it there.
		for _, l := range ad.Layers {
			l.fixedNorm = l.weightNorm(nil, make([]float32, l.Base.W.Cols))
		}
		for _, p := range []*autograd.Tensor{ad.Layers[0].A, ad.Layers[3].B, ad.Layers[5].Magnitude, ad.Layers[13].Magnitude} {
			for k := 0; k < 3; k++ {
				checkCentral(t, m, b, p, r.IntN(len(p.Data)), f.String())
			}
		}
		for _, l := range ad.Layers {
			l.fixedNorm = nil
		}
		if f != kernels.F32 {
			continue
		}
		orig := ad.Layers[2].Base.W.Dequantize()
		unmerged, _, _ := lossOf(t, m, b)
		ad.Merge(nil)
		merged, _, _ := lossOf(t, m, b)
		if rel := math.Abs(float64(merged-unmerged)) / float64(unmerged); rel > 1e-5 {
			t.Errorf("DoRA merged %g vs unmerged %g", merged, unmerged)
		}
		ad.Unmerge(nil)
		w := ad.Layers[2].Base.W.Dequantize()
		for i := range w.Data {
			if math.Abs(float64(w.Data[i]-orig.Data[i])) > 1e-5 {
				t.Fatalf("DoRA unmerge left W[%d] off: %g vs %g", i, w.Data[i], orig.Data[i])
			}
		}
	}
}

// TestCheckpointedAdapterGradients: with activation checkpointing the adapter
// gradients are bitwise identical (dropout on: its mask replays).
func TestCheckpointedAdapterGradients(t *testing.T) {
	cfg := tinyConfig()
	b := batch(cfg, 9)
	var grads [2][]float32
	for i, ckpt := range []bool{false, true} {
		m, _ := model.NewRandom(cfg, kernels.NF4, 21)
		m.Checkpointing = ckpt
		ad, err := Apply(m, Config{Rank: 3, Alpha: 6, Dropout: 0.1, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		ad.Training = true
		randomize(ad, 5)
		_, tp, loss := lossOf(t, m, b)
		tp.Backward(loss)
		grads[i] = append(grads[i], ad.Grads()...)
	}
	for j := range grads[0] {
		if math.Float32bits(grads[0][j]) != math.Float32bits(grads[1][j]) {
			t.Fatalf("gradient %d: %g with checkpointing, %g without", j, grads[1][j], grads[0][j])
		}
	}
}
