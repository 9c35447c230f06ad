package train

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
)

// tinySession is a session over a small random model (no files): every
// micro-batch is one fixed batch of random tokens, as the benchmark's.
func tinySession(t *testing.T, edit func(c *Config)) *Session {
	t.Helper()
	c := Defaults()
	c.Rank, c.Alpha, c.Seed, c.LR, c.Threads, c.MaxSteps = 4, 8, 3, 1e-2, 2, 10
	if edit != nil {
		edit(&c)
	}
	s, err := newSession(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{Arch: "llama", Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		Vocab: 50, MaxPos: 64, RMSEps: 1e-5, RopeTheta: 10000, TieEmbeddings: true, EOS: []int{2}, Pad: -1}
	if s.Model, err = model.NewRandom(cfg, kernels.Q8_0, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.attach("", true); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	const B, T = 2, 12
	b := &data.Batch{B: B, T: T, IDs: make([]int32, B*T), Pos: make([]int32, B*T), Targets: make([]int32, B*T), Supervised: B * T}
	for i := range b.IDs {
		b.IDs[i], b.Targets[i], b.Pos[i] = int32(r.IntN(cfg.Vocab)), int32(r.IntN(cfg.Vocab)), int32(i%T)
	}
	s.fixed, s.PerEpoch = b, 4
	return s
}

// TestDropoutPerMicroBatch: with gradient accumulation, each micro-batch of
// a step draws its own dropout masks. The accumulated gradient of one step
// over the same batch twice is the sum of the two micro-batches' gradients
// (masks keyed by the global micro-batch index 0 and 1), not twice the
// first's, which is what keying the masks by the optimizer step gave.
func TestDropoutPerMicroBatch(t *testing.T) {
	cfg := func(c *Config) { c.Dropout, c.GradAccum = 0.3, 2 }
	s := tinySession(t, cfg)
	ad := s.Adapter
	ad.Training = true
	want := make([][]float32, 2)
	for micro := range want {
		ad.ZeroGrad()
		ad.Micro = uint64(micro)
		tp := autograd.NewTape(s.Pool)
		loss, _, err := s.Model.Loss(tp, toModel(s.fixed), float32(2*s.fixed.Supervised))
		if err != nil {
			t.Fatal(err)
		}
		tp.Backward(loss)
		want[micro] = append([]float32(nil), ad.Grads()...)
	}
	s2 := tinySession(t, cfg)
	tr := s2.NewTrainer()
	if _, err := tr.Step(); err != nil {
		t.Fatal(err)
	}
	got := s2.Adapter.Grads()
	var dSum, dTwice, scale float64
	for i, g := range got {
		sum := float64(want[0][i]) + float64(want[1][i])
		dSum = math.Max(dSum, math.Abs(float64(g)-sum))
		dTwice = math.Max(dTwice, math.Abs(float64(g)-2*float64(want[0][i])))
		scale = math.Max(scale, math.Abs(sum))
	}
	if dSum > 1e-5*scale {
		t.Errorf("accumulated gradient is %.3g from the sum of the micro-batches' (scale %.3g)", dSum, scale)
	}
	if dTwice < 1e-2*scale {
		t.Errorf("accumulated gradient is twice the first micro-batch's (%.3g): the masks repeat", dTwice)
	}
	if tr.State.Micro != 2 || tr.State.Step != 1 {
		t.Errorf("state %+v after one step of 2 micro-batches", tr.State)
	}
}

// TestStateRoundTrip: a checkpoint written after k steps and read into a
// fresh session continues bit for bit as the uninterrupted trainer does, for
// AdamW and for SGD with momentum (optimizer state keyed by parameter name).
func TestStateRoundTrip(t *testing.T) {
	for _, opt := range []string{"adamw", "sgd"} {
		cfg := func(c *Config) {
			c.Optimizer, c.Momentum, c.Dropout, c.GradAccum, c.WarmupSteps, c.MaxGradNorm = opt, 0.9, 0.1, 2, 2, 0.5
		}
		a := tinySession(t, cfg)
		ta := a.NewTrainer()
		for i := 0; i < 3; i++ {
			if _, err := ta.Step(); err != nil {
				t.Fatal(err)
			}
		}
		run := t.TempDir()
		ck, err := checkpoints.WriteCheckpoint(run, ta.State.Step, nil, func(dir string) error {
			if err := checkpoints.WriteAdapterFiles(dir, a.Adapter, "m", nil); err != nil {
				return err
			}
			return ta.writeState(dir)
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := ta.Step(); err != nil {
				t.Fatal(err)
			}
		}
		b := tinySession(t, cfg)
		tb := b.NewTrainer()
		ts, err := readState(ck)
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.restore(ck, ts); err != nil {
			t.Fatal(err)
		}
		if tb.State.Step != 3 || tb.State.Micro != 6 {
			t.Fatalf("%s: restored state %+v", opt, tb.State)
		}
		for i := 0; i < 3; i++ {
			if _, err := tb.Step(); err != nil {
				t.Fatal(err)
			}
		}
		va, vb := a.Adapter.Values(), b.Adapter.Values()
		for i := range va {
			if math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
				t.Fatalf("%s: value %d after resume %g, uninterrupted %g", opt, i, vb[i], va[i])
			}
		}
		if ta.State != tb.State {
			t.Errorf("%s: state %+v, uninterrupted %+v", opt, tb.State, ta.State)
		}
		// A state that does not fit the adapter is refused, naming the tensor.
		for n := range ts.Optimizer.Tensors {
			ts.Optimizer.Tensors[n+"x"] = ts.Optimizer.Tensors[n]
			delete(ts.Optimizer.Tensors, n)
			if err := tb.Opt.Restore(b.Adapter.Params(), ts.Optimizer); err == nil || !strings.Contains(err.Error(), n) {
				t.Errorf("%s: a renamed tensor: %v", opt, err)
			}
			break
		}
	}
}

// TestConfigFile: config.yaml as a run writes it reads back as the same
// configuration, strings with quotes, '#', newlines and spaces included;
// comments are ignored; bad lines and unknown keys are errors naming the file.
func TestConfigFile(t *testing.T) {
	c := Defaults()
	c.Model, c.Data, c.Out = "/models/my model", "data #1.jsonl", "runs/a"
	c.ChatTemplate = "{# a comment #}{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
	c.LR, c.Seed, c.Pack, c.SaveEvery = 3e-5, 1<<40, true, "epoch"
	path := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(path, []byte("# written by hand\n"+c.YAML()+"# resumed at step 3 with --force: lr 1 → 2\n"), 0o644)
	got := Defaults()
	if err := ReadConfigFile(&got, path); err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Errorf("read back\n%+v\nwant\n%+v", got, c)
	}
	os.WriteFile(path, []byte("lr: 0.1 # a comment\nrank: 4\n"), 0o644)
	got = Defaults()
	if err := ReadConfigFile(&got, path); err != nil || got.LR != 0.1 || got.Rank != 4 {
		t.Errorf("comment after a value: %v, %+v", err, got)
	}
	// Real YAML: lists, maps, a data list with weights, the augment list.
	os.WriteFile(path, []byte(`model: m
targets: [q_proj, v_proj]
columns: {prompt: question, completion: answer}
data:
  - {path: domain.parquet, weight: 0.3, columns: {prompt: q, completion: a}}
  - path: general.jsonl
    weight: 0.7
    format: chat
augment:
  - neftune: {alpha: 5}
  - token_dropout: 0.1
  - token_replace: {p: 0.05, from: data, answers: true}
  - word_swap: {p: 0.1, fields: all}
  - char_noise: {p: 0.02, fields: all}
val: ~
`), 0o644)
	got = Defaults()
	if err := ReadConfigFile(&got, path); err != nil {
		t.Fatal(err)
	}
	if got.Targets != "q_proj,v_proj" || got.Columns != "prompt=question,completion=answer" || got.Data != "domain.parquet,general.jsonl" ||
		got.DataWeights != "0.3,0.7" || got.DataColumns != "prompt=q,completion=a;" || got.DataFormats != ";chat" || got.NEFTuneAlpha != 5 || got.TokenDropout != 0.1 || got.TokenReplace != 0.05 ||
		got.TokenReplaceFrom != "data" || !got.AugmentAnswers || got.Val != "" || got.TextWordSwap != 0.1 || got.TextCharNoise != 0.02 || got.TextFields != "all" {
		t.Errorf("read %+v", got)
	}
	for _, c := range []struct{ text, want string }{
		{"rank 4\n", "line 1"},
		{"bogus: 1\n", `line 1: unknown key "bogus"`},
		{"lr: 1\nrank: four\n", `line 2: rank: "four" is not an integer`},
		{"rank: 4\nlr: 1\nrank: 8\n", "line 3: rank is given twice (first on line 1)"},
		{"rank: [1, [2]]\n", "line 1"},
		{"data:\n  - {path: a, weight: 1}\n  - {path: b}\n", "1 of 2 datasets have a weight"},
		{"data:\n  - {weight: 1}\n", "an entry without a path"},
		{"data:\n  - {path: a, format: csv}\n", `line 2: data: format "csv": want text`},
		{"augment:\n  - mixup: 0.1\n", `unknown transform "mixup"`},
		{"augment:\n  - word_swap: {p: 0.1, fields: all}\n  - char_noise: {p: 0.1, fields: prompt}\n", "text_fields is set twice"},
		{"augment:\n  - token_dropout: {q: 0.1}\n", `token_dropout has no field "q"`},
		{"token_dropout: 0.2\naugment:\n  - token_dropout: 0.1\n", "token_dropout is set twice"},
		{"- a\n- b\n", "want settings"},
	} {
		os.WriteFile(path, []byte(c.text), 0o644)
		got = Defaults()
		if err := ReadConfigFile(&got, path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v (want %q)", c.text, err, c.want)
		}
	}
}

// TestResumeChanges: settings that change the result are listed; those
// that do not (threads, how often things are written, activation
// checkpointing) and the paths of the model and data (compared by their
// fingerprints instead) are not.
func TestResumeChanges(t *testing.T) {
	a, b := Defaults(), Defaults()
	b.Threads, b.EvalEvery, b.SaveEvery, b.LogEvery, b.KeepLast, b.CacheDir = 7, 3, "epoch", 1, 9, "off"
	b.Checkpointing, b.CheckpointLayers, b.Model, b.Data, b.Out = true, 2, "moved/model", "moved/data", "elsewhere"
	if ch := configChanges(&a, &b); len(ch) != 0 {
		t.Errorf("free settings reported as changes: %v", ch)
	}
	b.LR, b.Epochs, b.Dropout = 1, 5, 0.2
	ch := configChanges(&a, &b)
	if s := joinChanges(ch); len(ch) != 3 || !strings.Contains(s, "lr 0.0002 → 1") || !strings.Contains(s, "epochs 1 → 5") {
		t.Errorf("changes %q", s)
	}
	fa := Fingerprints{Base: "sha256:aa", Tokenizer: "t", Data: "d", Kernel: "k1"}
	fb := fa
	fb.Kernel = "k2" // another CPU: a warning, not a change
	if pc := printChanges(fa, fb); len(pc) != 0 {
		t.Errorf("kernel path reported as a change: %v", pc)
	}
	fb.Data = "e"
	if pc := printChanges(fa, fb); len(pc) != 1 || !strings.Contains(pc[0].Key, "data") {
		t.Errorf("data change: %v", pc)
	}
}
