package train

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// TestInt8EvalLoss is the int8 quality gate for eval: on stories260K held
// as q8_0, q4_0 and nf4, the loss over TinyStories and over WikiSQL's
// validation split with int8 products is within 0.5% (relative) of f32's.
func TestInt8EvalLoss(t *testing.T) {
	mdir := testassets.Path(t, "models/stories260K/hf")
	sets := map[string]string{
		"tinystories": testassets.Path(t, "datasets/tinystories_sample.txt"),
		"wikisql":     testassets.Path(t, "datasets/wikisql/valid.parquet"),
	}
	for _, q := range []string{"q8_0", "q4_0", "nf4"} {
		for name, path := range sets {
			var loss [2]float64
			for i, compute := range []string{"f32", "int8"} {
				c := Defaults()
				c.Quant, c.ComputeDType, c.MaxSeqLen, c.BatchSize, c.Threads = q, compute, 256, 8, 2
				r, err := Evaluate(mdir, "", path, c)
				if err != nil {
					t.Fatalf("%s %s %s: %v", q, name, compute, err)
				}
				loss[i] = r.Loss
			}
			rel := (loss[1] - loss[0]) / loss[0]
			t.Logf("%s %s: loss f32 %.5f, int8 %.5f (%+.3f%%)", q, name, loss[0], loss[1], 100*rel)
			if rel > 0.005 || rel < -0.005 || loss[0] == loss[1] {
				t.Errorf("%s %s: int8's loss %.5f is %+.3f%% from f32's %.5f, want within 0.5%% (and not identical: int8 must have run)", q, name, loss[1], 100*rel, loss[0])
			}
		}
	}
}

// TestInt8Greedy is the int8 quality gate for generation: stories260K held
// as q8_0 and nf4, greedy from the first words of each TinyStories line;
// the fraction of prompts whose first 32 tokens agree with f32's must be a
// majority (reported with the mean agreeing prefix).
func TestInt8Greedy(t *testing.T) {
	mdir := testassets.Path(t, "models/stories260K/hf")
	tok, err := tokenizer.Load(mdir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(testassets.Path(t, "datasets/tinystories_sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var prompts [][]int32
	for sc := bufio.NewScanner(f); sc.Scan(); {
		words := strings.Fields(sc.Text())
		for i := 0; i+4 <= len(words) && len(prompts) < 40; i += 9 {
			prompts = append(prompts, tok.Encode(strings.Join(words[i:i+4], " "), true))
		}
	}
	if len(prompts) < 20 {
		t.Fatalf("%d prompts", len(prompts))
	}
	for _, q := range []string{"q8_0", "nf4"} {
		m, err := model.Load(mdir, model.LoadOptions{Quant: q})
		if err != nil {
			t.Fatal(err)
		}
		gen := func(compute string, ids []int32) []int32 {
			tp := autograd.NewTape(kernels.NewPoolOn(1, must(kernels.PathFor("", compute))))
			out, err := m.Generate(tp, ids, 32, &model.Sampler{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		agree, prefix := 0, 0
		for _, ids := range prompts {
			a, b := gen("f32", ids), gen("int8", ids)
			n := 0
			for n < len(a) && n < len(b) && a[n] == b[n] {
				n++
			}
			prefix += n
			if n == 32 {
				agree++
			}
		}
		m.Close()
		frac := float64(agree) / float64(len(prompts))
		t.Logf("%s: greedy 32 tokens agree on %d/%d prompts (%.0f%%), mean agreeing prefix %.1f tokens", q, agree, len(prompts), 100*frac, float64(prefix)/float64(len(prompts)))
		if frac <= 0.5 {
			t.Errorf("%s: int8 agrees with f32 on %d/%d prompts, want a majority", q, agree, len(prompts))
		}
	}
}

// TestInt8Refused: training refuses int8 with a line that says why.
func TestInt8Refused(t *testing.T) {
	if err := trainsIn("int8"); err == nil || !strings.Contains(err.Error(), "eval and generate") {
		t.Fatalf("trainsIn(int8) = %v", err)
	}
	if _, err := benchSession(BenchConfig{ComputeDType: "int8"}, model.Presets["smollm2-135m"], kernels.Q8_0); err == nil {
		t.Fatal("bench train accepted int8")
	}
}

// TestComputeDTypeDefault: a new configuration computes in auto; one read
// from a checkpoint written before compute_dtype was recorded (no key)
// resumes in f32, the default it ran with; the resolved configuration
// records the dtype, so a resume keeps it.
func TestComputeDTypeDefault(t *testing.T) {
	if Defaults().ComputeDType != "auto" {
		t.Fatalf("default compute dtype %q", Defaults().ComputeDType)
	}
	dir := t.TempDir()
	ck := &checkpoints.Checkpoint{Dir: dir}
	if err := os.WriteFile(ck.Path(configFile), []byte("model: m\ndata: d\nout: o\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := readCheckpointConfig(ck)
	if err != nil || c.ComputeDType != "f32" {
		t.Fatalf("old checkpoint: compute dtype %q, %v", c.ComputeDType, err)
	}
	d := Defaults()
	d.Model, d.Data, d.Out = "m", "d", "o"
	if !strings.Contains(d.YAML(), `compute_dtype: "auto"`) {
		t.Fatalf("the resolved configuration does not record auto:\n%s", d.YAML())
	}
	if err := os.WriteFile(ck.Path(configFile), []byte(d.YAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := readCheckpointConfig(ck); err != nil || c.ComputeDType != "auto" {
		t.Fatalf("new checkpoint: compute dtype %q, %v", c.ComputeDType, err)
	}
}
