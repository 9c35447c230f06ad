package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/kernels"
	"github.com/x448/float16"
)

// decodeSP turns ids into text with a GGUF SentencePiece vocabulary: ▁ is a
// space, <0xHH> a raw byte, and the first piece after BOS loses its leading
// space (what llama2.c and SentencePiece do). Enough for checking generated
// text here; the tokenizer package owns real decoding.
func decodeSP(t *testing.T, vocab []string, ids []int32) string {
	var b strings.Builder
	for i, id := range ids {
		p := vocab[id]
		if len(p) == 6 && strings.HasPrefix(p, "<0x") && strings.HasSuffix(p, ">") {
			v, err := strconv.ParseUint(p[3:5], 16, 8)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteByte(byte(v))
			continue
		}
		p = strings.ReplaceAll(p, "▁", " ")
		if i == 0 {
			p = strings.TrimPrefix(p, " ")
		}
		b.WriteString(p)
	}
	return b.String()
}

func stories260KVocab(t *testing.T) []string {
	g, err := gguf.Open(testassets.Path(t, "models/stories260K/stories260K-f32-v3.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	v, _ := g.Get("tokenizer.ggml.tokens")
	return v.([]string)
}

// TestStories260KGreedy: greedy decoding of 200 tokens from BOS reproduces
// llama2.c's expected text from the HF directory (rotate-half Q/K) and from
// both GGUF files (interleaved Q/K, permuted at load).
func TestStories260KGreedy(t *testing.T) {
	want, err := os.ReadFile(testassets.Path(t, "models/stories260K/expected_greedy_200.txt"))
	if err != nil {
		t.Fatal(err)
	}
	vocab := stories260KVocab(t)
	for _, rel := range []string{
		"models/stories260K/hf",
		"models/stories260K/tinyllamas-stories-260k-f32.gguf",
		"models/stories260K/stories260K-f32-v3.gguf",
	} {
		m, err := Load(testassets.Path(t, rel), LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tp := autograd.NewTape(nil)
		ids, err := m.Generate(tp, []int32{int32(m.Config.BOS)}, 200, NewSampler(0, 0, 0, 1), nil)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 200 {
			t.Errorf("%s: generated %d tokens, want 200", rel, len(ids))
		}
		got := decodeSP(t, vocab, ids)
		if got != strings.TrimRight(string(want), "\n") && got != string(want) {
			n := 0
			for n < len(got) && n < len(want) && got[n] == want[n] {
				n++
			}
			t.Errorf("%s: %d tokens; text differs from byte %d:\n got  %q\n want %q", rel, len(ids), n, got[n:min(len(got), n+80)], string(want[n:min(len(want), n+80)]))
		}
	}
}

// TestKQuantModel: a Q4_K_M file (Q4_K and Q6_K tensors, as users download)
// loads by dequantizing at load; its logits are those of a model built from
// llama.cpp's own dequantized values, re-quantized the same way.
func TestKQuantModel(t *testing.T) {
	for _, q := range []string{"", "nf4", "f32"} {
		m, err := Load(testassets.Path(t, "models/rand-k256/rand-k256-Q4_K_M.gguf"), LoadOptions{Quant: q})
		if err != nil {
			t.Fatal(err)
		}
		notes := 0
		for _, s := range m.Stored {
			if strings.Contains(s.Note, "re-quantized") {
				notes++
			}
		}
		if q == "" && notes == 0 {
			t.Error("K-quant tensors were not reported as re-quantized")
		}
		tp := autograd.NewTape(nil)
		ids, err := m.Generate(tp, []int32{1, 5, 9}, 5, NewSampler(0, 0, 0, 0), nil)
		if err != nil || len(ids) == 0 {
			t.Fatalf("quant %q: %v %v", q, ids, err)
		}
		m.Close()
	}
	// The f32 load must equal the F32 reference of llama.cpp's dequantization
	// (the Q4_K_M file's dequant.safetensors) on a forward pass.
	mk, err := Load(testassets.Path(t, "models/rand-k256/rand-k256-Q4_K_M.gguf"), LoadOptions{Quant: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	defer mk.Close()
	ref, err := safetensors.Open(testassets.Path(t, "models/rand-k256/rand-k256-Q4_K_M.dequant.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	q := mk.Blocks[1].Down.Frozen().W.Dequantize()
	want := f32s(t, ref, "blk.1.ffn_down.weight")
	for i := range want {
		if q.Data[i] != want[i] {
			t.Fatalf("blk.1.ffn_down.weight[%d] = %g, llama.cpp %g", i, q.Data[i], want[i])
		}
	}
}

// TestShardedAndHalfPrecision writes the tiny Llama as two shards with an
// index, and as F16 and BF16 files, and checks each loads to the same logits
// as the F32 original (within each dtype's rounding).
func TestShardedAndHalfPrecision(t *testing.T) {
	src, err := safetensors.Open("testdata/tiny-llama/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfg, err := os.ReadFile("testdata/tiny-llama/config.json")
	if err != nil {
		t.Fatal(err)
	}
	logitsOf := func(dir string) []float32 {
		m, err := Load(dir, LoadOptions{Quant: "f32"})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		tp := autograd.NewTape(nil)
		c := m.NewCache(8)
		l, err := m.Step(tp, c, []int32{1, 7, 3, 9})
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), l...)
	}
	ref := logitsOf("testdata/tiny-llama")
	convert := func(dtype safetensors.Dtype, v []byte) []byte {
		if dtype == safetensors.F32 {
			return v
		}
		out := make([]byte, len(v)/2)
		for i := 0; i < len(v)/4; i++ {
			f := math.Float32frombits(binary.LittleEndian.Uint32(v[4*i:]))
			var h uint16
			if dtype == safetensors.BF16 {
				h = kernels.F32ToBF16(f)
			} else {
				h = float16.Fromfloat32(f).Bits()
			}
			binary.LittleEndian.PutUint16(out[2*i:], h)
		}
		return out
	}
	for _, c := range []struct {
		name   string
		dtype  safetensors.Dtype
		shards int
		tol    float64
	}{{"sharded", safetensors.F32, 2, 1e-6}, {"f16", safetensors.F16, 1, 2e-2}, {"bf16", safetensors.BF16, 1, 1e-1}} {
		dir := t.TempDir()
		os.WriteFile(dir+"/config.json", cfg, 0o644)
		names := src.Names()
		weightMap := map[string]string{}
		for s := 0; s < c.shards; s++ {
			var entries []safetensors.WriteEntry
			for i, n := range names {
				if i%c.shards != s {
					continue
				}
				tn, _ := src.Tensor(n)
				entries = append(entries, safetensors.WriteEntry{Name: n, Dtype: c.dtype, Shape: tn.Shape, Data: convert(c.dtype, tn.Data)})
			}
			file := "model.safetensors"
			if c.shards > 1 {
				file = fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, c.shards)
				for _, e := range entries {
					weightMap[e.Name] = file
				}
			}
			if err := safetensors.Write(dir+"/"+file, entries, nil); err != nil {
				t.Fatal(err)
			}
		}
		if c.shards > 1 {
			idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
			os.WriteFile(dir+"/model.safetensors.index.json", idx, 0o644)
		}
		got := logitsOf(dir)
		for i := range ref {
			if d := math.Abs(float64(got[i] - ref[i])); d > c.tol*(1+math.Abs(float64(ref[i]))) {
				t.Fatalf("%s: logit %d = %g, f32 original %g", c.name, i, got[i], ref[i])
			}
		}
	}
}

// TestBadModelInput: a wrong config or a truncated weight file gives one error
// that names the file.
func TestBadModelInput(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := os.ReadFile("testdata/tiny-llama/config.json")
	raw, _ := os.ReadFile("testdata/tiny-llama/model.safetensors")
	os.WriteFile(dir+"/config.json", []byte(strings.Replace(string(cfg), `"num_key_value_heads": 2`, `"num_key_value_heads": 3`, 1)), 0o644)
	os.WriteFile(dir+"/model.safetensors", raw, 0o644)
	if _, err := Load(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "num_key_value_heads") || !strings.Contains(err.Error(), dir) {
		t.Errorf("bad config: %v", err)
	}
	os.WriteFile(dir+"/config.json", cfg, 0o644)
	os.WriteFile(dir+"/model.safetensors", raw[:len(raw)-100], 0o644)
	if _, err := Load(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("truncated weights: %v", err)
	}
	os.WriteFile(dir+"/model.safetensors", raw, 0o644)
	if _, err := Load(dir, LoadOptions{Quant: "q3"}); err == nil || !strings.Contains(err.Error(), "q3") {
		t.Errorf("bad quant: %v", err)
	}
}

// TestGenerateBatch: sequences generated together (one batched step per
// token) are those generated one by one: greedy from BOS reproduces the
// 200-token greedy text, greedy from a longer prompt continues it, a seeded
// sampled sequence draws the same tokens (the per-row logits agree to the
// last bits here; GenerateBatch only promises closeness), and each sequence
// stops at its own length.
func TestGenerateBatch(t *testing.T) {
	m, err := Load(testassets.Path(t, "models/stories260K/hf"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tp := autograd.NewTape(nil)
	bos := int32(m.Config.BOS)
	greedy, err := m.Generate(tp, []int32{bos}, 200, NewSampler(0, 0, 0, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	sampled, err := m.Generate(tp, []int32{bos}, 120, NewSampler(1, 0, 0, 5), nil)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int32{{bos}, append([]int32{bos}, greedy[:10]...), {bos}, {bos}}
	outs, err := m.GenerateBatch(tp, prompts, []int{200, 50, 120, 0},
		[]*Sampler{NewSampler(0, 0, 0, 1), NewSampler(0, 0, 0, 1), NewSampler(1, 0, 0, 5), NewSampler(0, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]int32{greedy, greedy[10:60], sampled, nil} {
		if !slices.Equal(outs[i], want) {
			t.Errorf("sequence %d: batched generation gave %d tokens %v, one by one %d tokens %v", i, len(outs[i]), outs[i][:min(8, len(outs[i]))], len(want), want[:min(8, len(want))])
		}
	}
	if _, err := m.GenerateBatch(tp, prompts, []int{1}, nil); err == nil {
		t.Error("GenerateBatch with 4 prompts and 1 length: no error")
	}
	if _, err := m.GenerateBatch(tp, [][]int32{{}}, []int{1}, []*Sampler{NewSampler(0, 0, 0, 1)}); err == nil || !strings.Contains(err.Error(), "empty prompt") {
		t.Errorf("GenerateBatch with an empty prompt: error %v, want one about the empty prompt", err)
	}
}

// TestNEFTuneNoise: the embedding noise is uniform in ±scale (mean 0,
// variance scale²/3), the same for the same key and different for another.
func TestNEFTuneNoise(t *testing.T) {
	const n, scale = 200000, 0.05
	a, b, c := make([]float32, n), make([]float32, n), make([]float32, n)
	addNoise(a, scale, [2]uint64{1, 2})
	addNoise(b, scale, [2]uint64{1, 2})
	addNoise(c, scale, [2]uint64{1, 3})
	var sum, sq float64
	for i, v := range a {
		if v != b[i] {
			t.Fatal("the same key gave other noise")
		}
		if math.Abs(float64(v)) > scale {
			t.Fatalf("value %g outside ±%g", v, scale)
		}
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	if a[0] == c[0] && a[1] == c[1] {
		t.Error("another key gave the same noise")
	}
	mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
	if math.Abs(mean) > 4*scale/math.Sqrt(3*n) || math.Abs(variance-scale*scale/3)/(scale*scale/3) > 0.02 {
		t.Errorf("mean %g, variance %g (want 0, %g)", mean, variance, scale*scale/3)
	}
}
