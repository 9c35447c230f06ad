package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/model"
)

// capture runs the command line with stdout and stderr redirected.
func capture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	done := make(chan [2]string)
	go func() {
		var a, b bytes.Buffer
		ch := make(chan struct{})
		go func() { io.Copy(&b, re); close(ch) }()
		io.Copy(&a, ro)
		<-ch
		done <- [2]string{a.String(), b.String()}
	}()
	code = run(args)
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = oldOut, oldErr
	out := <-done
	return code, out[0], out[1]
}

func TestBenchKernelsJSON(t *testing.T) {
	code, out, errOut := capture(t, "bench", "kernels", "--shapes", "512", "--formats", "f32,q4_0", "--time", "20ms", "--threads", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		Kernel  string `json:"kernel"`
		Threads int    `json:"threads"`
		Results []struct {
			Shape  string  `json:"shape"`
			Format string  `json:"format"`
			Op     string  `json:"op"`
			GFLOPS float64 `json:"gflops"`
		} `json:"results"`
		PeakRSS int64 `json:"peak_rss_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if res.Threads != 1 || len(res.Results) != 4 || res.PeakRSS <= 0 {
		t.Fatalf("unexpected result: %+v", res)
	}
	for _, r := range res.Results {
		if r.GFLOPS <= 0 || r.Shape != "512x512x512" {
			t.Errorf("bad row %+v", r)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "kernels", "--bogus"},
		{"bench", "kernels", "--formats", "q5_k"},
		{"bench", "kernels", "--kernel", "sse9"},
		{"bench", "kernels", "--shapes", "nothing-matches"},
		{"eval", "--model", "m", "--data", "d", "--quant", "nf4", "--gptq-tune", "2"},
		{"train", "--model", "m", "--data", "d", "--quant", "nf4", "--gptq-tune", "2"},
		{"inspect"},            // a missing argument
		{"pull", "org/a", "b"}, // one too many
	} {
		code, _, errOut := capture(t, args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != 2 || !strings.HasPrefix(lines[0], "lowrank: ") || strings.Contains(errOut, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestGenerateStories260K: the README's generate example reproduces llama2.c's
// greedy text byte for byte from the HF directory and both GGUF files.
func TestGenerateStories260K(t *testing.T) {
	want, err := os.ReadFile(testassets.Path(t, "models/stories260K/expected_greedy_200.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"hf", "tinyllamas-stories-260k-f32.gguf", "stories260K-f32-v3.gguf"} {
		code, out, errOut := capture(t, "generate", "--model", testassets.Path(t, "models/stories260K/"+m), "--max-tokens", "200", "--temperature", "0")
		if code != 0 || out != string(want) {
			t.Errorf("%s: exit %d %s\n got  %q\n want %q", m, code, errOut, out[:min(len(out), 100)], want[:100])
		}
	}
	code, _, errOut := capture(t, "generate", "--model", "/no/such/model")
	if code != 1 || !strings.Contains(errOut, "/no/such/model") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("missing model: exit %d, %q", code, errOut)
	}
}

func TestInspectDataset(t *testing.T) {
	code, out, errOut := capture(t, "inspect", testassets.Path(t, "datasets/llamafactory/identity.parquet"), "--model", testassets.Path(t, "tokenizers/qwen3"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Format string `json:"format"`
		Rows   int    `json:"rows"`
		Tokens struct {
			Coverage float64 `json:"mask_coverage"`
		} `json:"tokens"`
		Example string `json:"example"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Format != "alpaca" || rep.Rows != 91 || rep.Tokens.Coverage <= 0.3 || rep.Tokens.Coverage >= 0.7 || !strings.Contains(rep.Example, "[") {
		t.Errorf("report %+v", rep)
	}
	code, _, errOut = capture(t, "inspect", testassets.Path(t, "parquet-testing/bad_data/ARROW-GH-41321.parquet"))
	if code != 1 || !strings.Contains(errOut, "ARROW-GH-41321.parquet") || strings.Contains(errOut, "goroutine") {
		t.Errorf("bad parquet: exit %d, %q", code, errOut)
	}
}

// TestTrainParity: the command line — one SGD step from a PEFT adapter
// on stories260K at f32 — writes RUN/adapter equal to PyTorch's update and the
// step's loss to metrics.jsonl.
func TestTrainParity(t *testing.T) {
	dir := t.TempDir()
	example := filepath.Join(dir, "one.jsonl")
	raw, err := os.ReadFile("../../train/testdata/parity/example.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(example, append(raw, '\n'), 0o644)
	run := filepath.Join(dir, "run")
	code, _, errOut := capture(t, "train", "--model", testassets.Path(t, "models/stories260K/hf"), "--adapter", "../../train/testdata/parity/adapter",
		"--data", example, "--optimizer", "sgd", "--lr", "0.1", "--max-steps", "1", "--quant", "f32", "--compute-dtype", "f32", "--out", run)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got, err := safetensors.Open(filepath.Join(run, "adapter", "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want, err := safetensors.Open("../../train/testdata/parity/golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	compared := 0
	for _, name := range got.Names() {
		g, _ := got.Tensor(name)
		w, ok := want.Tensor("sgd." + name)
		if !ok {
			continue
		}
		for i := 0; i < len(g.Data)/4; i++ {
			a := math.Float32frombits(binary.LittleEndian.Uint32(g.Data[4*i:]))
			b := math.Float32frombits(binary.LittleEndian.Uint32(w.Data[4*i:]))
			if math.Abs(float64(a-b)) > 1e-5 {
				t.Fatalf("%s[%d] = %g, PyTorch %g", name, i, a, b)
			}
		}
		compared++
	}
	if compared != 70 {
		t.Errorf("compared %d tensors, want 70", compared)
	}
	m, _ := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	if !strings.Contains(string(m), `"loss":4.2127`) {
		t.Errorf("metrics.jsonl lacks the step loss: %s", m)
	}
	// Bad configuration: one line naming the field.
	code, _, errOut = capture(t, "train", "--model", "m", "--data", "d", "--out", "o", "--optimizer", "adam")
	if code != 2 || !strings.Contains(errOut, "optimizer") {
		t.Errorf("bad optimizer: exit %d %q", code, errOut)
	}
}

// TestGenerateGPTQ: generate's --quant nf4 --gptq-tokens --gptq-tune
// --gptq-seed build the base training builds (double-quantized, GPTQ with
// that seed, scales tuned): its greedy tokens are the library's on that base
// and neither plain nf4's nor untuned GPTQ's; GPTQ without a 4-bit format
// and tuning without GPTQ are usage errors.
func TestGenerateGPTQ(t *testing.T) {
	dir := testassets.Path(t, "models/stories260K/hf")
	tokens := 256
	if testing.Short() {
		tokens = 64 // sampling token by token is slow under emulation
	}
	code, out, errOut := capture(t, "generate", "--model", dir, "--quant", "nf4", "--gptq-tokens", strconv.Itoa(tokens), "--gptq-tune", "2", "--gptq-seed", "3", "--max-tokens", "200", "--temperature", "0", "--compute-dtype", "f32", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r struct {
		Tokens []int32 `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// Again, from the GPTQ base cache ($LOWRANK_CACHE, a temporary directory here).
	code, out, errOut = capture(t, "generate", "--model", dir, "--quant", "nf4", "--gptq-tokens", strconv.Itoa(tokens), "--gptq-tune", "2", "--gptq-seed", "3", "--max-tokens", "200", "--temperature", "0", "--compute-dtype", "f32", "--json")
	var r2 struct {
		Tokens []int32 `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(out), &r2); code != 0 || err != nil || !slices.Equal(r2.Tokens, r.Tokens) {
		t.Errorf("the second generate (from the cache): exit %d %s %v, tokens %v…, the first's %v…", code, errOut, err, r2.Tokens[:min(10, len(r2.Tokens))], r.Tokens[:min(10, len(r.Tokens))])
	}
	if names, _ := filepath.Glob(filepath.Join(os.Getenv("LOWRANK_CACHE"), "gptq", "*.gptq")); len(names) != 1 {
		t.Errorf("GPTQ cache files: %v, want one", names)
	}
	greedy := func(o model.LoadOptions) []int32 {
		m, err := model.Load(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ids, err := m.Generate(autograd.NewTape(nil), []int32{int32(m.Config.BOS)}, 200, model.NewSampler(0, 0, 0, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	gptq := &model.GPTQOptions{Samples: tokens, Seed: 3, Tune: model.TuneOptions{Epochs: 2}}
	if want := greedy(model.LoadOptions{Quant: "nf4", DoubleQuant: true, GPTQ: gptq}); !slices.Equal(r.Tokens, want) {
		t.Errorf("generate --gptq-tokens %d --gptq-tune 2 --gptq-seed 3 gave %v…, the library on that base %v…", tokens, r.Tokens[:min(10, len(r.Tokens))], want[:min(10, len(want))])
	}
	if plain := greedy(model.LoadOptions{Quant: "nf4", DoubleQuant: true}); slices.Equal(r.Tokens, plain) {
		t.Error("generate with GPTQ gave plain nf4's tokens")
	}
	gptq.Tune.Epochs = 0
	if untuned := greedy(model.LoadOptions{Quant: "nf4", DoubleQuant: true, GPTQ: gptq}); slices.Equal(r.Tokens, untuned) {
		t.Error("generate --gptq-tune 2 gave untuned GPTQ's tokens")
	}
	for _, c := range []struct{ args, msg string }{
		{"--gptq-tokens 128", "--gptq-tokens needs --quant q4_0 or nf4"},
		{"--quant nf4 --gptq-tune 1", "--gptq-tune needs --gptq-tokens"},
	} {
		code, _, errOut = capture(t, append([]string{"generate", "--model", dir}, strings.Fields(c.args)...)...)
		if code != 2 || !strings.Contains(errOut, c.msg) {
			t.Errorf("generate %s: exit %d, %q", c.args, code, errOut)
		}
	}
}

// TestEval: eval with the parity adapter on the parity example gives PyTorch's loss.
func TestEval(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile("../../train/testdata/parity/example.json")
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(dir, "one.jsonl")
	os.WriteFile(example, append(raw, '\n'), 0o644)
	code, out, errOut := capture(t, "eval", "--model", testassets.Path(t, "models/stories260K/hf"), "--adapter", "../../train/testdata/parity/adapter", "--data", example, "--compute-dtype", "f32", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r struct {
		Loss   float64 `json:"loss"`
		Tokens int     `json:"supervised_tokens"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Loss-4.212725) > 1e-5 || r.Tokens != 32 {
		t.Errorf("eval %+v, want loss 4.212725 on 32 tokens", r)
	}
}

// TestHubID: a hub id resolves through the Hugging Face cache layout
// (refs/main → snapshots/<commit>/ of symlinks into blobs/), offline; an id
// that is not cached gets one line saying how to get it.
func TestHubID(t *testing.T) {
	hf := testassets.Path(t, "models/stories260K/hf")
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	commit := "4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e"
	repo := filepath.Join(cache, "models--karpathy--stories260K")
	snap := filepath.Join(repo, "snapshots", commit)
	os.MkdirAll(snap, 0o755)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644)
	entries, _ := os.ReadDir(hf)
	for _, e := range entries {
		abs, _ := filepath.Abs(filepath.Join(hf, e.Name()))
		if err := os.Symlink(abs, filepath.Join(snap, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := os.ReadFile(filepath.Join(filepath.Dir(hf), "expected_greedy_200.txt"))
	code, out, errOut := capture(t, "generate", "--model", "karpathy/stories260K", "--max-tokens", "200", "--temperature", "0")
	if code != 0 || strings.TrimSpace(out) != strings.TrimSpace(string(want)) {
		t.Errorf("generate from a hub id: exit %d, %s\n%q", code, errOut, out)
	}
	code, _, errOut = capture(t, "generate", "--model", "karpathy/stories15M", "--max-tokens", "5")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "lowrank pull karpathy/stories15M") {
		t.Errorf("uncached hub id: exit %d, %q", code, errOut)
	}
	// inspect takes the id as the other commands do.
	code, out, errOut = capture(t, "inspect", "karpathy/stories260K")
	if code != 0 || !strings.HasPrefix(out, "karpathy/stories260K: llama, 5 layers") {
		t.Errorf("inspect of a hub id: exit %d %s\n%s", code, errOut, out)
	}
	if code, _, errOut = capture(t, "inspect", "karpathy/stories15M"); code != 1 || !strings.Contains(errOut, "not in the Hugging Face cache") {
		t.Errorf("inspect of an uncached hub id: exit %d, %q", code, errOut)
	}
}
