package checkpoints

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

func lastLogits(t *testing.T, m *model.Model) []float32 {
	l, err := m.Step(autograd.NewTape(nil), m.NewCache(16), []int32{1, 403, 407, 261, 378})
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), l...)
}

// TestMergedEqualsAdapter: the merged directory gives the logits of base +
// adapter (f32: within 1e-5 relative; f16 within its rounding), and reloading
// it needs no adapter.
func TestMergedEqualsAdapter(t *testing.T) {
	base := testassets.Path(t, "models/stories260K/hf")
	m, err := model.Load(base, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ad, err := LoadAdapter("../train/testdata/parity/adapter", m)
	if err != nil {
		t.Fatal(err)
	}
	want := lastLogits(t, m)
	for _, c := range []struct {
		dtype string
		tol   float64
	}{{"f32", 1e-5}, {"f16", 5e-3}} {
		dir := t.TempDir()
		rep, err := WriteMerged(dir, m, ad, base, c.dtype)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Merged != 35 || rep.BaseFrom != "original weights" {
			t.Errorf("report %+v", rep)
		}
		mm, err := model.Load(dir, model.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := lastLogits(t, mm)
		mm.Close()
		var scale float64
		for _, w := range want {
			scale = math.Max(scale, math.Abs(float64(w)))
		}
		for i := range want {
			if d := math.Abs(float64(got[i]-want[i])) / scale; d > c.tol {
				t.Fatalf("%s: logit %d: merged %g, base+adapter %g", c.dtype, i, got[i], want[i])
			}
		}
	}
}

// TestMergedFolder: a merge replaces an earlier merged folder whole (no file
// of the old one stays) and refuses a folder that holds other files, or a
// file, leaving it untouched.
func TestMergedFolder(t *testing.T) {
	m := tinyModel(t, 32)
	dir := filepath.Join(t.TempDir(), "merged")
	if _, err := WriteMerged(dir, m, nil, "", "f32"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.model"), []byte("stale"), 0o644) // from an earlier merge
	if _, err := WriteMerged(dir, m, nil, "", "f16"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.model")); err == nil {
		t.Error("a file of the earlier merged folder stayed")
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	if _, err := WriteMerged(dir, m, nil, "", "f16"); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("a folder with other files: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "mine" {
		t.Error("the refused merge touched the folder")
	}
	file := filepath.Join(t.TempDir(), "x.gguf")
	os.WriteFile(file, nil, 0o644)
	if _, err := WriteMerged(file, m, nil, "", "f16"); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("a file as the output: %v", err)
	}
}

// TestMergedGPT2Tokenizer: a GPT-2 style base (vocab.json + merges.txt, no
// tokenizer.json) gives the merged folder the same files.
func TestMergedGPT2Tokenizer(t *testing.T) {
	m := tinyModel(t, 32)
	src := t.TempDir()
	for _, f := range []string{"vocab.json", "merges.txt"} {
		b, err := os.ReadFile(testassets.Path(t, "tokenizers/gpt2/"+f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, f), b, 0o644)
	}
	gpt2 := filepath.Join(t.TempDir(), "merged")
	if _, err := WriteMergedWith(gpt2, m, nil, MergeOptions{Src: src, Dtype: "f16"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tokenizer.Load(gpt2); err != nil {
		t.Errorf("the merged folder of a vocab.json + merges.txt base has no tokenizer: %v", err)
	}
}

// TestPEFTExportFolder: a PEFT export replaces an earlier adapter folder
// whole and refuses a folder holding files of another kind.
func TestPEFTExportFolder(t *testing.T) {
	m := tinyModel(t, 32)
	ad, err := lora.Apply(m, lora.Config{Rank: 2, Alpha: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "adapter")
	for i := 0; i < 2; i++ {
		if err := SavePEFTExport(dir, ad, "base", &AdapterInfo{ChatTemplate: "{{ x }}"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "chat_template.jinja")); err != nil {
		t.Error(err)
	}
	os.WriteFile(filepath.Join(dir, "data.parquet"), []byte("mine"), 0o644)
	if err := SavePEFTExport(dir, ad, "base", nil); err == nil || !strings.Contains(err.Error(), "data.parquet") {
		t.Errorf("a folder with other files: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "data.parquet")); string(b) != "mine" {
		t.Error("the refused export touched the folder")
	}
}

// TestMergedShards: above the shard size the weights go to
// model-0000i-of-0000n.safetensors with model.safetensors.index.json, which
// loads back to the same model.
func TestMergedShards(t *testing.T) {
	m := tinyModel(t, 32)
	dir := filepath.Join(t.TempDir(), "merged")
	rep, err := WriteMergedWith(dir, m, nil, MergeOptions{Dtype: "f32", ShardBytes: 20000})
	if err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(shards) < 2 {
		t.Fatalf("%d shards for %d bytes", len(shards), rep.Bytes)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err != nil {
		t.Fatal(err)
	}
	back, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	a, b := m.Entries(), back.Entries()
	for i := range a {
		x, y := a[i].Vec, b[i].Vec
		if a[i].W != nil {
			x, y = a[i].W.Dequantize().Data, b[i].W.Dequantize().Data
		}
		if !slices.Equal(x, y) {
			t.Fatalf("%s differs after the sharded round trip", a[i].HF)
		}
	}
}

// TestGGUFRoundTrip: models of every architecture written as F32 GGUF and
// loaded back give the same logits: the tensor table, the Q/K row
// permutation of llama (undone at load), Qwen2's biases, Qwen3's norms and
// Llama-3 rope scaling (rope_freqs.weight) all survive.
func TestGGUFRoundTrip(t *testing.T) {
	for _, c := range []model.Config{
		{Arch: "llama", RopeScaling: &autograd.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 16}},
		{Arch: "qwen2", QKVBias: true},
		{Arch: "qwen3", QKNorm: true},
	} {
		cfg := model.Config{Arch: c.Arch, Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Vocab: 500,
			MaxPos: 64, RMSEps: 1e-5, RopeTheta: 10000, TieEmbeddings: c.Arch != "qwen2", BOS: 498, EOS: []int{499}, Pad: -1,
			RopeScaling: c.RopeScaling, QKVBias: c.QKVBias, QKNorm: c.QKNorm}
		m, err := model.NewRandom(cfg, kernels.F32, 7)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.NewByteLevel(cfg.Vocab)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), c.Arch+".gguf")
		ft, _ := ParseGGUFType("f32")
		if _, err := WriteGGUF(path, m, nil, GGUFOptions{Type: ft, Tokenizer: tok}); err != nil {
			t.Fatal(err)
		}
		if g, err := gguf.Open(path); err != nil {
			t.Fatal(err)
		} else {
			_, hasFreqs := g.Tensor("rope_freqs.weight")
			g.Close()
			if hasFreqs != (c.RopeScaling != nil) {
				t.Errorf("%s: rope_freqs.weight written %v", c.Arch, hasFreqs)
			}
		}
		back, err := model.Load(path, model.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, got := lastLogits(t, m), lastLogits(t, back)
		back.Close()
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
				t.Fatalf("%s: logit %d: %g after the GGUF round trip, %g before", c.Arch, i, got[i], want[i])
			}
		}
	}
}
