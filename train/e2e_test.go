package train

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// greedy decodes maxTokens greedy tokens after BOS from model dir with the
// adapter in adapterDir ("" for the base).
func greedy(t *testing.T, dir, adapterDir string, maxTokens int) string {
	t.Helper()
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if adapterDir != "" {
		if _, err := checkpoints.LoadAdapter(adapterDir, m); err != nil {
			t.Fatal(err)
		}
	}
	prompt := tok.Encode("", true)
	ids, err := m.Generate(autograd.NewTape(nil), prompt, maxTokens, model.NewSampler(0, 0, 0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Decode(ids, true)
}

// TestDomainShiftStories260K is the training issue's end-to-end run: stories260K
// (HF form) fine-tuned on templated stories about a character it has never
// seen. The validation loss must fall by ≥ 30%, the greedy text must move to
// the new domain, and the same run over an nf4 base must end within 2% of the
// f32 one, with the log saying what share of the base is nf4.
// domainShiftData writes the domain-shift fine-tune's data into dir: 400
// demo stories to train on and 40 others to validate on.
func domainShiftData(t *testing.T, dir string) (trainData, valData string) {
	t.Helper()
	trainData, valData = filepath.Join(dir, "train.parquet"), filepath.Join(dir, "val.parquet")
	if err := writeDemoData(trainData, 400, 11); err != nil {
		t.Fatal(err)
	}
	if err := writeDemoData(valData, 40, 12); err != nil {
		t.Fatal(err)
	}
	return trainData, valData
}

func TestDomainShiftStories260K(t *testing.T) {
	if testing.Short() {
		t.Skip("two end-to-end training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	mdir := testassets.Path(t, "models/stories260K/hf")
	dir := t.TempDir()
	trainData, valData := domainShiftData(t, dir)
	run := func(quant string) (*Result, string) {
		c := Defaults()
		c.Model, c.Data, c.Val, c.Out, c.Quant = mdir, trainData, valData, filepath.Join(dir, quant), quant
		c.Rank, c.Alpha, c.LR, c.Epochs, c.BatchSize, c.MaxSeqLen, c.Pack = 8, 16, 3e-3, 3, 8, 128, true
		c.EvalEvery, c.LogEvery = 25, 0
		var log bytes.Buffer
		res, err := Run(context.Background(), c, RunOptions{}, slog.New(slog.NewTextHandler(&log, nil)), nil)
		if err != nil {
			t.Fatalf("%s run: %v", quant, err)
		}
		return res, log.String()
	}
	f32, _ := run("f32")
	nf4, nf4Log := run("nf4")
	t.Logf("validation loss: base %.4f → f32 %.4f, nf4 %.4f (%d steps)", f32.BaseValLoss, f32.BestValLoss, nf4.BestValLoss, f32.Steps)
	if drop := 1 - f32.BestValLoss/f32.BaseValLoss; drop < 0.30 {
		t.Errorf("validation loss fell %.1f%%, want ≥ 30%%", 100*drop)
	}
	if rel := math.Abs(nf4.BestValLoss-f32.BestValLoss) / f32.BestValLoss; rel > 0.02 {
		t.Errorf("nf4 run's validation loss %.4f is %.1f%% from the f32 run's %.4f, want within 2%%", nf4.BestValLoss, 100*rel, f32.BestValLoss)
	}
	// The log reports the share of base parameters actually held as nf4.
	m := regexp.MustCompile(`stored_as_nf4="([0-9.]+)% of parameters \((\d+)/(\d+) tensors\)"`).FindStringSubmatch(nf4Log)
	if m == nil {
		t.Fatalf("the nf4 run's log does not say how much is stored as nf4:\n%s", nf4Log)
	}
	if share, _ := strconv.ParseFloat(m[1], 64); share < 50 || share > 100 {
		t.Errorf("nf4 share %s%% of parameters: implausible", m[1])
	}
	t.Logf("stored as nf4: %s%% of parameters (%s/%s tensors)", m[1], m[2], m[3])

	base, tuned := greedy(t, mdir, "", 40), greedy(t, mdir, filepath.Join(dir, "f32", "best"), 40)
	t.Logf("greedy, base:  %q", base)
	t.Logf("greedy, tuned: %q", tuned)
	if strings.Contains(base, "Zorb") || !strings.Contains(tuned, "Zorb") {
		t.Errorf("greedy text did not move to the new domain: base %q, tuned %q", base, tuned)
	}
	out := filepath.Join(dir, "compare.png")
	if err := PlotRuns(out, filepath.Join(dir, "f32"), filepath.Join(dir, "nf4")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("comparison plot: %v", err)
	}
}

// TestRealDatasets trains a few steps on WikiSQL and on the chat dataset over
// llama-2-tiny-random (GGUF, 32000-token vocabulary) and stories260K (512
// tokens, no chat template of its own: chatml is given): every run ends with
// finite losses, a saved adapter and validation loss reported.
func TestRealDatasets(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	models := map[string]string{
		"llama-2-tiny-random": testassets.Path(t, "models/llama-2-tiny-random/llama-2-tiny-random.gguf"),
		"stories260K":         testassets.Path(t, "models/stories260K/hf"),
	}
	datasets := map[string][2]string{ // train, validation ("" = a fraction of train)
		"wikisql": {testassets.Path(t, "datasets/wikisql/train.parquet"), testassets.Path(t, "datasets/wikisql/valid.parquet")},
		"chat":    {testassets.Path(t, "datasets/llamafactory/v1_sft_demo.messages.parquet"), ""},
	}
	for mname, mpath := range models {
		for dname, d := range datasets {
			t.Run(mname+"/"+dname, func(t *testing.T) {
				c := Defaults()
				c.Model, c.Data, c.Val, c.Out = mpath, d[0], d[1], t.TempDir()
				if d[1] == "" {
					c.ValFraction = 0.05
				}
				c.MaxSteps, c.BatchSize, c.MaxSeqLen, c.Pack, c.LR, c.EvalEvery, c.LogEvery = 4, 2, 128, true, 1e-3, 0, 0
				c.ChatTemplate = "chatml"
				res, err := Run(context.Background(), c, RunOptions{}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
				if err != nil {
					t.Fatal(err)
				}
				if res.Steps != 4 || math.IsNaN(res.FinalLoss) || !(res.FinalLoss > 0) || !(res.BaseValLoss > 0) || !(res.BestValLoss > 0) {
					t.Errorf("result %+v", res)
				}
				raw, err := os.ReadFile(filepath.Join(c.Out, "metrics.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
				var last map[string]float64
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["val_loss"] <= 0 {
					t.Errorf("last metrics line %q: %v", lines[len(lines)-1], err)
				}
				if _, err := os.Stat(filepath.Join(c.Out, "adapter", "adapter_model.safetensors")); err != nil {
					t.Error(err)
				}
				t.Logf("loss %.3f; validation %.3f → %.3f", res.FinalLoss, res.BaseValLoss, res.BestValLoss)
			})
		}
	}
}

// TestEarlyStopping: with a threshold no step can beat, training stops at the
// first evaluation after `patience` of them; with no threshold it runs on.
func TestEarlyStopping(t *testing.T) {
	if testing.Short() {
		t.Skip("training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	mdir := testassets.Path(t, "models/stories260K/hf")
	c := Defaults()
	c.Model, c.Data, c.Val = mdir, testassets.Path(t, "datasets/wikisql/train.parquet"), testassets.Path(t, "datasets/wikisql/valid.parquet")
	c.MaxSteps, c.BatchSize, c.MaxSeqLen, c.Pack, c.LR, c.EvalEvery, c.LogEvery, c.Quant = 12, 2, 64, true, 1e-3, 3, 0, "f32"
	c.EarlyStoppingPatience, c.EarlyStoppingThreshold = 2, 10
	for _, threshold := range []float64{10, 0} {
		c.Out, c.EarlyStoppingThreshold = t.TempDir(), threshold
		res, err := Run(context.Background(), c, RunOptions{}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 6, false: 12}[threshold > 0]; res.Steps != want || res.StoppedEarly != (threshold > 0) {
			t.Errorf("threshold %g: stopped after %d steps (early %v), want %d", threshold, res.Steps, res.StoppedEarly, want)
		}
	}
	c.Val, c.ValFraction = "", 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "early_stopping_patience") {
		t.Errorf("early stopping without validation data: %v", err)
	}
}

// TestHubLayoutValidation: --data pointing at a Hub-style folder trains on
// its train shards and evaluates on its validation shards without --val.
func TestHubLayoutValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	mdir := testassets.Path(t, "models/stories260K/hf")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	if err := writeDemoData(filepath.Join(dir, "data", "train-00000-of-00001.parquet"), 16, 1); err != nil {
		t.Fatal(err)
	}
	if err := writeDemoData(filepath.Join(dir, "data", "validation-00000-of-00001.parquet"), 4, 2); err != nil {
		t.Fatal(err)
	}
	c := Defaults()
	c.Model, c.Data, c.Out, c.MaxSteps, c.BatchSize, c.MaxSeqLen, c.LogEvery = mdir, dir, t.TempDir(), 2, 4, 64, 0
	var log bytes.Buffer
	res, err := Run(context.Background(), c, RunOptions{}, slog.New(slog.NewTextHandler(&log, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !(res.BaseValLoss > 0) || !strings.Contains(log.String(), "examples=16 val=4") {
		t.Errorf("validation split not used: %+v\n%s", res, log.String())
	}
	// A second run starts from the token cache (cache_dir auto: $LOWRANK_CACHE here).
	log.Reset()
	c.Out = t.TempDir()
	if _, err := Run(context.Background(), c, RunOptions{}, slog.New(slog.NewTextHandler(&log, nil)), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "from_cache=true") {
		t.Errorf("second run did not use the token cache:\n%s", log.String())
	}
}

// TestGPTQRun: a run can quantize its base by GPTQ (--gptq-tokens) and tune
// its scales (--gptq-tune), logs what the tuning did, keeps the base in the
// cache for the next run, records both settings in config.yaml for
// resuming, and refuses GPTQ for 8-bit and wider bases and tuning without
// GPTQ.
func TestGPTQRun(t *testing.T) {
	if testing.Short() {
		t.Skip("training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	c := Defaults()
	c.Model, c.Data = testassets.Path(t, "models/stories260K/hf"), testassets.Path(t, "datasets/wikisql/train.parquet")
	c.MaxSteps, c.BatchSize, c.MaxSeqLen, c.LogEvery, c.EvalEvery = 2, 2, 64, 0, 0
	c.Quant, c.GPTQTokens, c.GPTQTune, c.Out = "nf4", 256, 1, t.TempDir()
	var log strings.Builder
	if _, err := Run(context.Background(), c, RunOptions{}, slog.New(slog.NewTextHandler(&log, nil)), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "GPTQ scales tuned") || !strings.Contains(log.String(), "calibration_kl_after") ||
		!strings.Contains(log.String(), "GPTQ base stored in the cache") {
		t.Errorf("the log does not report the tuning and the cache:\n%s", log.String())
	}
	// Another run on the same base reads it from the cache.
	again := c
	again.Out = t.TempDir()
	var log2 strings.Builder
	if _, err := Run(context.Background(), again, RunOptions{}, slog.New(slog.NewTextHandler(&log2, nil)), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log2.String(), "GPTQ base read from the cache") || !strings.Contains(log2.String(), "GPTQ scales tuned") {
		t.Errorf("the second run did not read the GPTQ base from the cache:\n%s", log2.String())
	}
	y, err := os.ReadFile(filepath.Join(c.Out, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "gptq_tokens: 256") || !strings.Contains(string(y), "gptq_tune: 1") {
		t.Errorf("config.yaml does not record gptq_tokens: 256 and gptq_tune: 1:\n%s", y)
	}
	c.GPTQTokens = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "gptq_tune") {
		t.Errorf("tuning without GPTQ: %v", err)
	}
	c.GPTQTokens, c.GPTQTune = 256, 0
	c.Quant = "q8_0"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "gptq_tokens") {
		t.Errorf("GPTQ with a q8_0 base: %v", err)
	}
}
