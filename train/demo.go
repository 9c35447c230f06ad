package train

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/parquet-go/parquet-go"
)

// DemoSampleTokens is how long the demo's greedy samples are at most.
const DemoSampleTokens = 200

// DemoResult says where the demo put things and what it measured.
type DemoResult struct {
	Dir, Model, Train, Val, Run, Merged string
	Result                              *Result
	// Before and After are greedy continuations of Prompt by the base model
	// and by the fine-tuned one.
	Prompt, Before, After string
}

// Demo runs the whole job offline: it makes a small Llama-shaped model with
// seeded weights and its own byte-level tokenizer, writes a built-in dataset
// to Parquet, fine-tunes a LoRA adapter over the q8_0-quantized base,
// evaluates before and after, generates a sample, and merges the adapter.
// maxSteps > 0 caps the training steps (tests).
func Demo(ctx context.Context, dir string, threads, maxSteps int, log *slog.Logger) (*DemoResult, error) {
	r := &DemoResult{Dir: dir, Model: filepath.Join(dir, "model"), Train: filepath.Join(dir, "data", "train.parquet"),
		Val: filepath.Join(dir, "data", "val.parquet"), Run: filepath.Join(dir, "run"), Merged: filepath.Join(dir, "merged")}
	if err := writeDemoModel(r.Model); err != nil {
		return nil, err
	}
	if err := writeDemoData(r.Train, 600, 1); err != nil {
		return nil, err
	}
	if err := writeDemoData(r.Val, 60, 2); err != nil {
		return nil, err
	}
	c := Defaults()
	c.Model, c.Data, c.Val, c.Out = r.Model, r.Train, r.Val, r.Run
	c.Rank, c.Alpha, c.LR, c.Epochs, c.BatchSize, c.MaxSeqLen, c.Pack = 16, 32, 3e-3, 8, 8, 256, true
	c.EvalEvery, c.LogEvery, c.Threads, c.WarmupSteps, c.MaxSteps = 40, 20, threads, 10, maxSteps
	c.Overwrite = true // the demo makes its folder afresh each time
	res, err := Run(ctx, c, RunOptions{}, log, nil)
	r.Result = res
	if err != nil {
		return r, err
	}
	// A sample from the tuned model, then the merged model.
	tok, err := tokenizer.Load(r.Model)
	if err != nil {
		return nil, err
	}
	// The samples from the base as training held it (q8_0), as generate
	// --adapter holds it: the suggested command prints the same text.
	m, err := model.Load(r.Model, c.ModelOptions())
	if err != nil {
		return nil, err
	}
	defer m.Close()
	r.Prompt = "Zorb the robot"
	greedy := func() (string, error) {
		prompt := tok.Encode(r.Prompt, true)
		ids, err := m.Generate(autograd.NewTape(nil), prompt, DemoSampleTokens, model.NewSampler(0, 0, 0, 0), nil)
		if err != nil {
			return "", err
		}
		return r.Prompt + strings.TrimPrefix(tok.Decode(append(prompt, ids...), true), tok.Decode(prompt, true)), nil
	}
	if r.Before, err = greedy(); err != nil {
		return nil, err
	}
	ad, err := checkpoints.LoadAdapter(filepath.Join(r.Run, "adapter"), m)
	if err != nil {
		return nil, err
	}
	if r.After, err = greedy(); err != nil {
		return nil, err
	}
	// The merged model from the full-precision base.
	full, err := model.Load(r.Model, model.LoadOptions{})
	if err != nil {
		return nil, err
	}
	defer full.Close()
	ad, err = checkpoints.LoadAdapter(filepath.Join(r.Run, "adapter"), full)
	if err != nil {
		return nil, err
	}
	if _, err := checkpoints.WriteMerged(r.Merged, full, ad, r.Model, "f32"); err != nil {
		return nil, err
	}
	return r, nil
}

// writeDemoModel writes a Hugging Face directory: a 4-layer Llama with seeded
// random weights and a byte-level tokenizer (256 bytes + <s>, </s>).
func writeDemoModel(dir string) error {
	cfg := model.Config{Arch: "llama", Hidden: 128, Intermediate: 256, Layers: 4, Heads: 4, KVHeads: 2, HeadDim: 32,
		Vocab: 258, MaxPos: 512, RMSEps: 1e-5, RopeTheta: 10000, TieEmbeddings: true, BOS: 256, EOS: []int{257}, Pad: -1}
	m, err := model.NewRandom(cfg, kernels.F32, 42)
	if err != nil {
		return err
	}
	if _, err := checkpoints.WriteMerged(dir, m, nil, "", "f32"); err != nil {
		return err
	}
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[tokenizer.ByteLevelChar(byte(b))] = b
	}
	vocab["<s>"], vocab["</s>"] = 256, 257
	tj := map[string]any{
		"version": "1.0", "normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}}},
		"decoder": map[string]any{"type": "ByteLevel"},
		"added_tokens": []any{
			map[string]any{"id": 256, "content": "<s>", "special": true, "normalized": false},
			map[string]any{"id": 257, "content": "</s>", "special": true, "normalized": false}},
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}},
	}
	raw, _ := json.MarshalIndent(tj, "", " ")
	if err := checkpoints.WriteFileAtomic(filepath.Join(dir, "tokenizer.json"), raw); err != nil {
		return err
	}
	tc, _ := json.Marshal(map[string]any{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true})
	return checkpoints.WriteFileAtomic(filepath.Join(dir, "tokenizer_config.json"), tc)
}

// writeDemoData writes n seeded stories about a robot named Zorb to Parquet.
func writeDemoData(path string, n int, seed uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, 7))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	places := []string{"the moon garden", "a crystal cave", "the robot school", "a floating island"}
	acts := []string{"fixed a broken lamp", "planted silver seeds", "counted the stars", "built a tiny rocket", "painted the clouds blue"}
	feels := []string{"happy", "proud", "curious", "sleepy", "excited"}
	type row struct {
		Text string `parquet:"text"`
	}
	rows := make([]row, n)
	for i := range rows {
		rows[i].Text = fmt.Sprintf("Zorb the robot lived in %s. One day Zorb %s. Zorb felt %s. His friend Pim the cat said, \"Zorb, you are a good robot!\" Then Zorb %s. The end.",
			pick(places), pick(acts), pick(feels), pick(acts))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := parquet.NewGenericWriter[row](f)
	if _, err := w.Write(rows); err != nil {
		f.Close()
		return err
	}
	if err := w.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
