package train

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
)

// bf16Path is the bf16 twin of this CPU's path, or a skip saying why not.
func bf16Path(t *testing.T) *kernels.Path {
	t.Helper()
	p, err := kernels.PathFor("", "bf16")
	if err != nil {
		t.Skipf("no bf16 path on this CPU: %v", err)
	}
	return p
}

// gradAgreement computes the adapter's gradient and the loss for one batch
// on an fp32 pool and on a bf16 one, the same model, adapter and batch, and
// returns their cosine similarity and the losses.
func gradAgreement(t *testing.T, m *model.Model, ad *lora.Adapter, b *model.Batch, norm float32, bf16 *kernels.Path) (cos, lossF, lossB float64) {
	t.Helper()
	var grads [2][]float32
	var losses [2]float64
	for i, pa := range []*kernels.Path{must(kernels.PathFor("", "f32")), bf16} {
		tp := autograd.NewTape(kernels.NewPoolOn(2, pa))
		ad.ZeroGrad()
		loss, _, err := m.Loss(tp, b, norm)
		if err != nil {
			t.Fatal(err)
		}
		tp.Backward(loss)
		grads[i], losses[i] = append([]float32(nil), ad.Grads()...), float64(loss.Data[0])
	}
	var dot, n0, n1 float64
	for j := range grads[0] {
		a, c := float64(grads[0][j]), float64(grads[1][j])
		dot, n0, n1 = dot+a*c, n0+a*a, n1+c*c
	}
	if n0 == 0 {
		t.Fatal("the fp32 gradient is zero: nothing to compare")
	}
	return dot / math.Sqrt(n0*n1), losses[0], losses[1]
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// randomizeAdapter gives every adapter value a small seeded random value
// (B is zero at PEFT's initialization, which would leave A's gradient zero).
func randomizeAdapter(ad *lora.Adapter, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	for _, p := range ad.Params() {
		for i := range p.T.Data {
			p.T.Data[i] = float32(r.NormFloat64() * 0.05)
		}
	}
}

// TestBF16GradientAgreement: issue 21's first gate. With the frozen base's
// products in bf16, the adapter's gradient over a batch stays within a
// cosine similarity of 0.999 of the fp32 path's, and the loss within 0.2%
// relative, on stories260K (real text, its q8_0 base) and on the
// smollm2-135m shape (random q8_0 weights, 2×128 tokens).
func TestBF16GradientAgreement(t *testing.T) {
	if testing.Short() {
		t.Skip("a 135M-parameter model's forward and backward: skipped with -short (the emulated arm64 run)")
	}
	bf := bf16Path(t)
	check := func(name string, cos, lf, lb float64) {
		t.Logf("%s: gradient cosine %.6f, loss f32 %.6f bf16 %.6f (%.4f%%)", name, cos, lf, lb, 100*math.Abs(lb-lf)/lf)
		if cos < 0.999 {
			t.Errorf("%s: the bf16 gradient's cosine similarity to the fp32 one is %.6f, want ≥ 0.999", name, cos)
		}
		if rel := math.Abs(lb-lf) / lf; rel > 0.002 {
			t.Errorf("%s: bf16 loss %.6f is %.3f%% from fp32's %.6f, want within 0.2%%", name, lb, 100*rel, lf)
		}
	}

	c := Defaults()
	c.Model, c.Data = testassets.Path(t, "models/stories260K/hf"), testassets.Path(t, "datasets/tinystories_sample.txt")
	c.Out, c.BatchSize, c.MaxSeqLen, c.CacheDir = t.TempDir(), 8, 128, "off"
	s, err := OpenSession(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	randomizeAdapter(s.Adapter, 1)
	b, err := s.Batch(0)
	if err != nil {
		t.Fatal(err)
	}
	cos, lf, lb := gradAgreement(t, s.Model, s.Adapter, toModel(b), float32(b.Supervised), bf)
	check("stories260K q8_0, 8×128", cos, lf, lb)

	m, err := model.NewRandom(model.Presets["smollm2-135m"], kernels.Q8_0, 5)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.Apply(m, lora.Config{Rank: 8, Alpha: 16, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	randomizeAdapter(ad, 2)
	r := rand.New(rand.NewPCG(3, 3))
	mb := &model.Batch{B: 2, T: 128, IDs: make([]int32, 256), Pos: make([]int32, 256), Targets: make([]int32, 256)}
	for i := range mb.IDs {
		mb.IDs[i], mb.Targets[i], mb.Pos[i] = int32(r.IntN(m.Config.Vocab)), int32(r.IntN(m.Config.Vocab)), int32(i%128)
	}
	cos, lf, lb = gradAgreement(t, m, ad, mb, 256, bf)
	check("smollm2-135m shape q8_0, 2×128", cos, lf, lb)
}

// TestBF16FineTune: issue 21's second gate: with the same seed and steps,
// the final validation loss computing in bf16 is within 0.01 nats of
// fp32's, on the domain-shift fine-tune (stories260K on the demo stories)
// and on WikiSQL (chat-free SQL answers), over a q8_0 base; the run log
// records the bf16 path.
func TestBF16FineTune(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	bf16Path(t)
	mdir := testassets.Path(t, "models/stories260K/hf")
	trainData, valData := domainShiftData(t, t.TempDir())
	// The final validation loss: the last evaluation's, at the run's end.
	final := func(log string) float64 {
		m := regexp.MustCompile(`msg=eval step=\d+ val_loss=([0-9.]+)`).FindAllStringSubmatch(log, -1)
		if m == nil {
			t.Fatalf("no evaluation in the log:\n%s", log)
		}
		v, _ := strconv.ParseFloat(m[len(m)-1][1], 64)
		return v
	}
	for _, cs := range []struct {
		name, data, val string
		epochs, steps   int
	}{
		{"domain shift", trainData, valData, 3, 0},
		{"wikisql", testassets.Path(t, "datasets/wikisql/train.parquet"), testassets.Path(t, "datasets/wikisql/valid.parquet"), 0, 80},
	} {
		run := func(compute string) (*Result, float64, string) {
			c := Defaults()
			c.Model, c.Data, c.Val, c.Out, c.ComputeDType = mdir, cs.data, cs.val, t.TempDir(), compute
			c.Rank, c.Alpha, c.LR, c.Epochs, c.MaxSteps, c.BatchSize, c.MaxSeqLen, c.Pack = 8, 16, 3e-3, cs.epochs, cs.steps, 8, 128, true
			c.EvalEvery, c.LogEvery = 40, 0
			var log bytes.Buffer
			res, err := Run(context.Background(), c, RunOptions{}, slog.New(slog.NewTextHandler(&log, nil)), nil)
			if err != nil {
				t.Fatalf("%s, %s: %v", cs.name, compute, err)
			}
			return res, final(log.String()), log.String()
		}
		f32, lf, _ := run("f32")
		bf, lb, bfLog := run("bf16")
		t.Logf("%s: final validation loss: base %.4f → f32 %.4f, bf16 %.4f (Δ %+.4f nats, %d steps)", cs.name, f32.BaseValLoss, lf, lb, lb-lf, bf.Steps)
		if math.Abs(lb-lf) > 0.01 || bf.Steps != f32.Steps {
			t.Errorf("%s: bf16's final validation loss %.4f is %+.4f nats from fp32's %.4f (steps %d, %d), want within 0.01", cs.name, lb, lb-lf, lf, bf.Steps, f32.Steps)
		}
		if !bytes.Contains([]byte(bfLog), []byte("compute=bf16(")) {
			t.Errorf("%s: the bf16 run's log does not record the bf16 path:\n%s", cs.name, bfLog)
		}
	}
}
