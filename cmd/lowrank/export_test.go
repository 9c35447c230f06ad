package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/lowrank/lowrank/train"
)

// nodeScript runs a Node.js script with the global npm modules reachable
// (node-llama-cpp, @huggingface/gguf), skipping the test, saying why, when
// node or the module is missing. It returns stdout.
func nodeScript(t *testing.T, module, script string, args ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("node is not installed: %s not checked (apt-get install nodejs npm)", module)
	}
	root := os.Getenv("LOWRANK_NODE_PATH")
	if root == "" {
		if out, err := exec.Command("npm", "root", "-g").Output(); err == nil {
			root = strings.TrimSpace(string(out))
		}
	}
	if _, err := os.Stat(filepath.Join(root, module)); err != nil {
		t.Skipf("%s is not installed (npm install -g %s, or set LOWRANK_NODE_PATH): not checked", module, module)
	}
	dir := t.TempDir()
	os.Symlink(root, filepath.Join(dir, "node_modules")) // ES modules resolve from the script's folder
	p := filepath.Join(dir, "s.mjs")
	os.WriteFile(p, []byte(script), 0o644)
	cmd := exec.Command(node, append([]string{p}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node %s: %v\n%s", module, err, stderr)
	}
	return string(out)
}

// llamaGreedy is llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build):
// n greedy tokens after the prompt ids, from a GGUF model and optionally a
// GGUF LoRA; and the ids llama.cpp's tokenizer gives the text.
const llamaGreedy = `import {getLlama} from "node-llama-cpp";
const [,, modelPath, loraPath, idsJSON, n, text] = process.argv;
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const opts = {contextSize: 256, threads: 1}; // one thread: on a busy 2-core machine two spin-wait each other (seconds a token)
if (loraPath) opts.lora = {adapters: [{filePath: loraPath}]};
const ctx = await model.createContext(opts);
const seq = ctx.getSequence();
const out = [];
for await (const t of seq.evaluate(JSON.parse(idsJSON), {temperature: 0})) {
  out.push(t);
  if (out.length >= Number(n)) break;
}
console.log(JSON.stringify({tokens: out, tokenize: model.tokenize(text, false)}));
`

type llamaOut struct {
	Tokens   []int32 `json:"tokens"`
	Tokenize []int32 `json:"tokenize"`
}

func runLlama(t *testing.T, modelPath, loraPath string, prompt []int32, n int, text string) llamaOut {
	t.Helper()
	ids, _ := json.Marshal(prompt)
	out := nodeScript(t, "node-llama-cpp", llamaGreedy, modelPath, loraPath, string(ids), fmt.Sprint(n), text)
	var r llamaOut
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("llama.cpp output %q: %v", out, err)
	}
	return r
}

// loadF32 loads path with its base held in f32 and, unless adapterDir is
// "", the adapter (unmerged); the model is closed when the test ends.
func loadF32(t *testing.T, path, adapterDir string) *model.Model {
	t.Helper()
	m, err := model.Load(path, model.LoadOptions{Quant: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if adapterDir != "" {
		if _, err := checkpoints.LoadAdapter(adapterDir, m); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// greedyIDs is lowrank's own greedy continuation of prompt over model dir
// with the adapter (unmerged), the base held in f32.
func greedyIDs(t *testing.T, dir, adapterDir string, prompt []int32, n int) []int32 {
	t.Helper()
	m := loadF32(t, dir, adapterDir)
	out, err := m.Generate(autograd.NewTape(nil), prompt, n, model.NewSampler(0, 0, 0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLlamaCppLoadsExports is the export issue's test with the real
// consumer: llama.cpp's greedy tokens from (a) the merged F32 GGUF, written
// from the Hugging Face base and from the GGUF base, and (b) the base GGUF
// with lowrank's GGUF LoRA, equal lowrank's own from base + adapter, from
// the same prompt ids; and llama.cpp tokenizes text as lowrank does with the
// vocabulary lowrank wrote.
func TestLlamaCppLoadsExports(t *testing.T) {
	if testing.Short() {
		t.Skip("exports and llama.cpp runs: skipped with -short (the emulated arm64 run)")
	}
	hf := testassets.Path(t, "models/stories260K/hf")
	base := testassets.Path(t, "models/stories260K/stories260K-f32-v3.gguf")
	dir := t.TempDir()
	adapter := trainedAdapter(t, hf, dir)
	tok, err := tokenizer.Load(hf)
	if err != nil {
		t.Fatal(err)
	}
	text := "Once upon a time, Zorb the robot saw a big tree."
	prompt := tok.Encode("Once upon a time", true)
	want := greedyIDs(t, hf, adapter, prompt, 64)
	for _, c := range []struct{ name, model, format, lora string }{
		{"merged F32 GGUF from the HF base", hf, "gguf", ""},
		{"merged F32 GGUF from the GGUF base", base, "gguf", ""},
		{"base GGUF + GGUF LoRA", hf, "gguf-lora", base},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".gguf")
		if code, stdout, stderr := capture(t, "export", "--model", c.model, "--adapter", adapter, "--format", c.format, "--quant", "f32", "--out", out); code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", c.name, code, stdout, stderr)
		}
		mp, lp := out, ""
		if c.lora != "" {
			mp, lp = c.lora, out
		}
		checkIndependentReader(t, out)
		got := runLlama(t, mp, lp, prompt, 64, text)
		if !slices.Equal(got.Tokens, want) {
			t.Errorf("%s: llama.cpp's greedy tokens\n %v\nlowrank's (base + adapter)\n %v", c.name, got.Tokens, want)
		}
		if c.format == "gguf" && !slices.Equal(got.Tokenize, tok.Encode(text, false)) {
			t.Errorf("%s: llama.cpp tokenizes %q as %v, lowrank as %v", c.name, text, got.Tokenize, tok.Encode(text, false))
		}
	}
	t.Logf("64 greedy tokens agree: %q", tok.Decode(want, true))
}

// writeTinyHF writes a Hugging Face model folder by hand (not through
// lowrank's writers): a Qwen2- or Qwen3-shaped model with seeded random
// weights large enough that greedy choices are clear, and a byte-level
// tokenizer of 256 bytes plus two special tokens.
func writeTinyHF(t *testing.T, dir, arch string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	const hidden, inter, layers, heads, kv, hd, vocab = 64, 128, 2, 4, 2, 16, 258
	cfg := map[string]any{"architectures": []string{map[string]string{"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}[arch]},
		"model_type": arch, "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
		"num_key_value_heads": kv, "head_dim": hd, "vocab_size": vocab, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
		"rope_theta": 10000.0, "tie_word_embeddings": false, "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "float32"}
	raw, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)
	r := rand.New(rand.NewPCG(9, uint64(len(arch))))
	var entries []safetensors.WriteEntry
	add := func(name string, std float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			v := float32(r.NormFloat64() * std)
			if std == 0 {
				v = 1 + float32(r.NormFloat64()*0.1)
			}
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		entries = append(entries, safetensors.WriteEntry{Name: name, Dtype: safetensors.F32, Shape: shape, Data: b})
	}
	add("model.embed_tokens.weight", 1, vocab, hidden)
	add("lm_head.weight", 0.3, vocab, hidden)
	add("model.norm.weight", 0, hidden)
	for l := 0; l < layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", 0, hidden)
		add(p+"post_attention_layernorm.weight", 0, hidden)
		add(p+"self_attn.q_proj.weight", 0.2, heads*hd, hidden)
		add(p+"self_attn.k_proj.weight", 0.2, kv*hd, hidden)
		add(p+"self_attn.v_proj.weight", 0.2, kv*hd, hidden)
		add(p+"self_attn.o_proj.weight", 0.2, hidden, heads*hd)
		add(p+"mlp.gate_proj.weight", 0.2, inter, hidden)
		add(p+"mlp.up_proj.weight", 0.2, inter, hidden)
		add(p+"mlp.down_proj.weight", 0.2, hidden, inter)
		if arch == "qwen2" {
			add(p+"self_attn.q_proj.bias", 0.5, heads*hd)
			add(p+"self_attn.k_proj.bias", 0.5, kv*hd)
			add(p+"self_attn.v_proj.bias", 0.5, kv*hd)
		} else {
			add(p+"self_attn.q_norm.weight", 0, hd)
			add(p+"self_attn.k_norm.weight", 0, hd)
		}
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), entries, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	vocabMap := map[string]int{}
	for b := 0; b < 256; b++ {
		vocabMap[tokenizer.ByteLevelChar(byte(b))] = b
	}
	vocabMap["<|s|>"], vocabMap["<|e|>"] = 256, 257
	tj := map[string]any{"version": "1.0", "normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"added_tokens": []any{map[string]any{"id": 256, "content": "<|s|>", "special": true, "normalized": false},
			map[string]any{"id": 257, "content": "<|e|>", "special": true, "normalized": false}},
		"model": map[string]any{"type": "BPE", "vocab": vocabMap, "merges": []string{}}}
	raw, _ = json.Marshal(tj)
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644)
	tc, _ := json.Marshal(map[string]any{"bos_token": "<|s|>", "eos_token": "<|e|>"})
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), tc, 0o644)
}

// randomAdapter attaches a rank-4 adapter with seeded non-zero factors to
// the model in dir on every projection and saves it to out.
func randomAdapter(t *testing.T, dir, out string, rslora bool) {
	t.Helper()
	m, err := model.Load(dir, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ad, err := lora.Apply(m, lora.Config{Rank: 4, Alpha: 8, RSLoRA: rslora, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 5))
	for _, l := range ad.Layers {
		for i := range l.B.Data {
			l.B.Data[i] = float32(r.NormFloat64() * 0.3)
		}
	}
	if err := checkpoints.SaveAdapter(out, ad, dir, nil); err != nil {
		t.Fatal(err)
	}
}

// TestLlamaCppQwen: the same for Qwen2-shaped (q/k/v biases) and
// Qwen3-shaped (q/k norms) models, which llama.cpp stores without the Q/K
// permutation; the GGUF LoRA uses rsLoRA, so its scale is folded into B.
func TestLlamaCppQwen(t *testing.T) {
	if testing.Short() {
		t.Skip("exports and llama.cpp runs: skipped with -short (the emulated arm64 run)")
	}
	for _, arch := range []string{"qwen2", "qwen3"} {
		dir := t.TempDir()
		hf, adapter := filepath.Join(dir, "hf"), filepath.Join(dir, "adapter")
		writeTinyHF(t, hf, arch)
		randomAdapter(t, hf, adapter, true)
		prompt := []int32{256, 72, 101, 108, 108, 111}
		want := greedyIDs(t, hf, adapter, prompt, 48)
		baseGGUF, merged, lor := filepath.Join(dir, "base.gguf"), filepath.Join(dir, "merged.gguf"), filepath.Join(dir, "lora.gguf")
		for _, args := range [][]string{
			{"export", "--model", hf, "--format", "gguf", "--quant", "f32", "--out", baseGGUF},
			{"export", "--model", hf, "--adapter", adapter, "--format", "gguf", "--quant", "f32", "--out", merged},
			{"export", "--model", hf, "--adapter", adapter, "--format", "gguf-lora", "--out", lor},
		} {
			if code, stdout, stderr := capture(t, args...); code != 0 {
				t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
			}
		}
		for name, got := range map[string]llamaOut{
			"merged":    runLlama(t, merged, "", prompt, 48, "Hello"),
			"base+lora": runLlama(t, baseGGUF, lor, prompt, 48, "Hello"),
		} {
			if !slices.Equal(got.Tokens, want) {
				t.Errorf("%s %s: llama.cpp\n %v\nlowrank\n %v", arch, name, got.Tokens, want)
			}
		}
		if base := greedyIDs(t, hf, "", prompt, 48); slices.Equal(base, want) {
			t.Errorf("%s: the adapter does not change the greedy text: the test tests nothing", arch)
		}
	}
}

// TestKQuantExports: rand-k256 (F32, from llama.cpp's converter) exported by
// lowrank as Q4_K_M, Q5_K_M and Q6_K gives every tensor the type
// llama-quantize gave it in the asset files, with the same bytes, and
// llama.cpp loads and runs each.
func TestKQuantExports(t *testing.T) {
	if testing.Short() {
		t.Skip("exports: skipped with -short (the emulated arm64 run)")
	}
	src := testassets.Path(t, "models/rand-k256/rand-k256-f32.gguf")
	dir := t.TempDir()
	for _, q := range []string{"Q4_K_M", "Q5_K_M", "Q6_K"} {
		out := filepath.Join(dir, q+".gguf")
		if code, stdout, stderr := capture(t, "export", "--model", src, "--format", "gguf", "--quant", strings.ToLower(q), "--out", out); code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", q, code, stdout, stderr)
		}
		mine, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := gguf.Open(testassets.Path(t, "models/rand-k256/rand-k256-"+q+".gguf"))
		if err != nil {
			t.Fatal(err)
		}
		same := 0
		for _, ti := range theirs.Tensors {
			m, ok := mine.Tensor(ti.Name)
			if !ok || m.Type != ti.Type {
				t.Errorf("%s %s: lowrank wrote %v, llama-quantize %s", q, ti.Name, m, ti.Type)
				continue
			}
			a, _ := mine.ReadTensor(m)
			b, _ := theirs.ReadTensor(&ti)
			if string(a) == string(b) {
				same++
			}
		}
		if ft, _ := mine.Uint("general.file_type"); same != len(theirs.Tensors) || ft != map[string]uint64{"Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}[q] {
			t.Errorf("%s: %d of %d tensors byte-identical to llama-quantize's; file type %d", q, same, len(theirs.Tensors), ft)
		}
		mine.Close()
		theirs.Close()
		checkIndependentReader(t, out)
		if got := runLlama(t, out, "", []int32{1, 300, 301}, 8, "Hello"); len(got.Tokens) != 8 {
			t.Errorf("%s: llama.cpp generated %v", q, got.Tokens)
		}
	}
}

// hfGGUF is @huggingface/gguf (an independent reader): a file's metadata
// and tensor directory as JSON.
const hfGGUF = `import {gguf} from "@huggingface/gguf";
const {metadata, tensorInfos} = await gguf(process.argv[2], {allowLocalFile: true});
const norm = v => typeof v === "bigint" ? Number(v) : Array.isArray(v) ? v.map(norm) : v;
const md = {};
for (const [k, v] of Object.entries(metadata)) md[k] = norm(v);
console.log(JSON.stringify({metadata: md, tensors: tensorInfos.map(t => ({name: t.name, shape: t.shape.map(Number), dtype: t.dtype}))}));
`

// checkIndependentReader: @huggingface/gguf reads path with the metadata
// and tensor shapes and types lowrank's reader sees.
func checkIndependentReader(t *testing.T, path string) {
	t.Helper()
	var theirs struct {
		Metadata map[string]any `json:"metadata"`
		Tensors  []struct {
			Name  string   `json:"name"`
			Shape []uint64 `json:"shape"`
			Dtype uint32   `json:"dtype"`
		} `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(nodeScript(t, "@huggingface/gguf", hfGGUF, path)), &theirs); err != nil {
		t.Fatal(err)
	}
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, kv := range g.KV {
		v := kv.Value
		switch x := v.(type) { // as a JavaScript number: the float32 value exactly, in float64
		case float32:
			v = float64(x)
		case []float32:
			f := make([]float64, len(x))
			for i, e := range x {
				if f[i] = float64(e); e == 0 {
					f[i] = 0 // JSON.stringify writes −0 as 0
				}
			}
			v = f
		}
		raw, _ := json.Marshal(v)
		var mine any
		json.Unmarshal(raw, &mine)
		a, _ := json.Marshal(mine)
		b, _ := json.Marshal(theirs.Metadata[kv.Key])
		if string(a) != string(b) {
			t.Errorf("%s: %s reads %.100s, @huggingface/gguf %.100s", filepath.Base(path), kv.Key, a, b)
		}
	}
	if len(theirs.Tensors) != len(g.Tensors) {
		t.Fatalf("%s: %d tensors, @huggingface/gguf %d", path, len(g.Tensors), len(theirs.Tensors))
	}
	for i, ti := range g.Tensors {
		o := theirs.Tensors[i]
		if o.Name != ti.Name || !slices.Equal(o.Shape, ti.Dims) || o.Dtype != uint32(ti.Type) {
			t.Errorf("%s: tensor %s %v %s, @huggingface/gguf %s %v %d", filepath.Base(path), ti.Name, ti.Dims, ti.Type, o.Name, o.Shape, o.Dtype)
		}
	}
}

// trainedAdapter trains an adapter for the model in hf: 40 steps on WikiSQL
// over the f32 base, into dir/run.
func trainedAdapter(t *testing.T, hf, dir string) string {
	t.Helper()
	run := filepath.Join(dir, "run")
	if code, _, stderr := capture(t, "train", "--model", hf, "--data", testassets.Path(t, "datasets/wikisql/train.parquet"), "--out", run,
		"--quant", "f32", "--max-steps", "40", "--lr", "3e-3", "--batch-size", "4", "--max-seq-len", "64", "--log-every", "0", "--no-progress"); code != 0 {
		t.Fatalf("train: exit %d\n%s", code, stderr)
	}
	return filepath.Join(run, "adapter")
}

func lastLogits(t *testing.T, path, adapterDir string, ids []int32) []float32 {
	t.Helper()
	m := loadF32(t, path, adapterDir)
	l, err := m.Step(autograd.NewTape(nil), m.NewCache(len(ids)), ids)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), l...)
}

// TestExportNumbers: base + adapter (unmerged), the merged safetensors folder
// and the merged F32 GGUF give the same logits within 1e-5 of the largest;
// the Q8_0 GGUF's perplexity is within 0.5% of the F32 GGUF's (--verify
// reads each back, on WikiSQL's validation split: the adapter's domain); and
// an F32 export is the merge in memory exactly.
func TestExportNumbers(t *testing.T) {
	if testing.Short() {
		t.Skip("a training run and exports: skipped with -short (the emulated arm64 run)")
	}
	hf := testassets.Path(t, "models/stories260K/hf")
	dir := t.TempDir()
	adapter := trainedAdapter(t, hf, dir)
	ids := []int32{1, 403, 407, 261, 378, 432, 383, 286}
	want := lastLogits(t, hf, adapter, ids)
	var scale float64
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	verify := testassets.Path(t, "datasets/wikisql/valid.parquet")
	loss := map[string]float64{}
	for _, c := range []struct{ name, format, quant string }{
		{"merged.safetensors", "safetensors", "f32"}, {"merged-f32.gguf", "gguf", "f32"}, {"merged-q8_0.gguf", "gguf", "q8_0"},
	} {
		out := filepath.Join(dir, c.name)
		args := []string{"export", "--model", hf, "--adapter", adapter, "--format", c.format, "--out", out, "--verify", verify, "--json"}
		if c.format == "gguf" {
			args = append(args, "--quant", c.quant)
		} else {
			args = append(args, "--dtype", c.quant)
		}
		code, stdout, stderr := capture(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", c.name, code, stdout, stderr)
		}
		var rep struct {
			Verify train.VerifyReport `json:"verify"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Verify.Rows) != 4 {
			t.Fatalf("%s: %v\n%s", c.name, err, stdout)
		}
		loss[c.name] = rep.Verify.Rows[3].Loss
		if c.quant == "f32" {
			if rep.Verify.MaxDiff != 0 || rep.Verify.Rows[2].Loss != rep.Verify.Rows[3].Loss {
				t.Errorf("%s: an f32 export differs from the merge: %+v", c.name, rep.Verify)
			}
			got := lastLogits(t, out, "", ids)
			var d float64
			for i := range want {
				d = math.Max(d, math.Abs(float64(got[i]-want[i])))
			}
			if d/scale > 1e-5 {
				t.Errorf("%s: max|Δlogit|/max|logit| = %.3g", c.name, d/scale)
			}
			t.Logf("%s: max|Δlogit|/max|logit| = %.3g vs base + adapter", c.name, d/scale)
		}
	}
	ratio := math.Exp(loss["merged-q8_0.gguf"]-loss["merged-f32.gguf"]) - 1
	t.Logf("perplexity on WikiSQL's validation split: F32 GGUF %.4f, Q8_0 GGUF %.4f (%+.3f%%)", math.Exp(loss["merged-f32.gguf"]), math.Exp(loss["merged-q8_0.gguf"]), 100*ratio)
	if math.Abs(ratio) > 0.005 {
		t.Errorf("Q8_0 export's perplexity is %.2f%% from the F32 export's", 100*ratio)
	}
}

// transformersEncode is @huggingface/transformers (transformers.js) encoding
// each text of a JSON list with the tokenizer files of a folder.
const transformersEncode = `import { PreTrainedTokenizer } from "@huggingface/transformers";
import fs from "fs";
const [,, dir, textsPath] = process.argv;
const tok = new PreTrainedTokenizer(JSON.parse(fs.readFileSync(dir + "/tokenizer.json")), JSON.parse(fs.readFileSync(dir + "/tokenizer_config.json")));
console.log(JSON.stringify(JSON.parse(fs.readFileSync(textsPath)).map(t => tok.encode(t))));
`

// TestMergeFromGGUF: a merge from a GGUF base (the old gap: no tokenizer
// files, a folder nothing could load) writes tokenizer.json and
// tokenizer_config.json from the GGUF vocabulary, so the folder loads in
// lowrank with the logits of base + adapter, and transformers.js tokenizes
// as lowrank does with the files written; the chat template the adapter was
// trained with is written as chat_template.jinja and read back.
func TestMergeFromGGUF(t *testing.T) {
	if testing.Short() {
		t.Skip("a training run and exports: skipped with -short (the emulated arm64 run)")
	}
	base := testassets.Path(t, "models/stories260K/stories260K-f32-v3.gguf")
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if code, _, stderr := capture(t, "train", "--model", base, "--data", testassets.Path(t, "datasets/wikisql/train.parquet"), "--out", run,
		"--quant", "f32", "--max-steps", "5", "--batch-size", "2", "--max-seq-len", "64", "--log-every", "0", "--no-progress", "--chat-template", "simple"); code != 0 {
		t.Fatalf("train: exit %d\n%s", code, stderr)
	}
	adapter := filepath.Join(run, "adapter")
	out := filepath.Join(dir, "merged")
	if code, stdout, stderr := capture(t, "merge", "--model", base, "--adapter", adapter, "--out", out, "--dtype", "f32"); code != 0 {
		t.Fatalf("merge: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, f := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("merged folder: %v", err)
		}
	}
	ids := []int32{1, 403, 407, 261, 378}
	want, got := lastLogits(t, base, adapter, ids), lastLogits(t, out, "", ids)
	var d, scale float64
	for i := range want {
		d, scale = math.Max(d, math.Abs(float64(got[i]-want[i]))), math.Max(scale, math.Abs(float64(want[i])))
	}
	if d/scale > 1e-5 {
		t.Errorf("merged folder from a GGUF base: max|Δlogit|/max|logit| = %.3g", d/scale)
	}
	gtok, err := tokenizer.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	mtok, err := tokenizer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if mtok.ChatTemplate() != tokenizer.BuiltinTemplates["simple"] {
		t.Errorf("chat template read back: %q", mtok.ChatTemplate())
	}
	texts := []string{"Once upon a time, there was a little girl named Lily.", "Hello world", "  two  spaces", "SELECT name FROM t WHERE x = 3;", "café ünïcode 日本", "a\nnew line"}
	tp := filepath.Join(dir, "texts.json")
	raw, _ := json.Marshal(texts)
	os.WriteFile(tp, raw, 0o644)
	var theirs [][]int32
	if err := json.Unmarshal([]byte(nodeScript(t, "@huggingface/transformers", transformersEncode, out, tp)), &theirs); err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		if mine := gtok.Encode(text, true); !slices.Equal(mine, theirs[i]) || !slices.Equal(mtok.Encode(text, true), mine) {
			t.Errorf("%q: lowrank (GGUF vocabulary) %v, the written tokenizer.json in transformers.js %v, in lowrank %v", text, mine, theirs[i], mtok.Encode(text, true))
		}
	}
}

// TestExportErrors: a wrong kind of --out, an existing --out (without
// --overwrite; with it, a file that is not a GGUF), an unwritable folder, a
// --quant GGUF has no type for and an adapter llama.cpp's LoRA format cannot
// hold are clear one-line errors that write nothing; --overwrite replaces an
// earlier export.
func TestExportErrors(t *testing.T) {
	hf := testassets.Path(t, "models/stories260K/hf")
	dir := t.TempDir()
	dora := filepath.Join(dir, "dora")
	m, err := model.Load(hf, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.Apply(m, lora.Config{Rank: 2, Alpha: 4, DoRA: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoints.SaveAdapter(dora, ad, hf, nil); err != nil {
		t.Fatal(err)
	}
	m.Close()
	notGGUF := filepath.Join(dir, "notes.gguf")
	os.WriteFile(notGGUF, []byte("mine"), 0o644)
	os.Mkdir(filepath.Join(dir, "folder.gguf"), 0o755)
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	earlier := filepath.Join(dir, "earlier.gguf")
	if code, _, stderr := capture(t, "export", "--model", hf, "--format", "gguf", "--quant", "f32", "--out", earlier); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}
	before, _ := os.ReadFile(earlier)
	merged := filepath.Join(dir, "merged")
	os.Mkdir(merged, 0o755)
	os.WriteFile(filepath.Join(merged, "config.json"), []byte("{}"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--format", "gguf", "--quant", "nf4", "--out", filepath.Join(dir, "x.gguf")}, "q4_k_m"},
		{[]string{"--format", "gguf", "--out", filepath.Join(dir, "x")}, "*.gguf"},
		{[]string{"--format", "gguf", "--out", filepath.Join(dir, "folder.gguf")}, "is a folder"},
		{[]string{"--format", "gguf", "--out", notGGUF}, "exists: not replaced (--overwrite"},
		{[]string{"--format", "gguf", "--out", notGGUF, "--overwrite"}, "not a GGUF"},
		{[]string{"--format", "gguf", "--quant", "q8_0", "--out", earlier}, "exists: not replaced"},
		{[]string{"--format", "safetensors", "--out", merged}, "exists: not replaced"},
		{[]string{"--format", "safetensors", "--out", filepath.Join(dir, "file")}, "is a file"},
		{[]string{"--format", "gguf", "--out", filepath.Join(dir, "no", "x.gguf")}, "does not exist"},
		{[]string{"--format", "gguf-lora", "--adapter", dora, "--out", filepath.Join(dir, "l.gguf")}, "DoRA"},
		{[]string{"--format", "tflite", "--out", filepath.Join(dir, "x")}, "gguf-lora"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"--format", "gguf", "--out", filepath.Join(ro, "x.gguf")}, "cannot write in"})
	}
	for _, c := range cases {
		code, _, stderr := capture(t, append([]string{"export", "--model", hf}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
	}
	if b, _ := os.ReadFile(notGGUF); string(b) != "mine" {
		t.Error("a refused export replaced a file")
	}
	if _, err := os.Stat(filepath.Join(dir, "l.gguf")); err == nil {
		t.Error("a refused GGUF LoRA was written")
	}
	if after, _ := os.ReadFile(earlier); !bytes.Equal(before, after) {
		t.Error("a refused export replaced an earlier one")
	}
	if code, _, stderr := capture(t, "merge", "--model", hf, "--adapter", dora, "--out", merged); code == 0 || !strings.Contains(stderr, "exists: not replaced") {
		t.Errorf("merge into an existing folder: exit %d, stderr %q", code, stderr)
	}
	leftover := filepath.Join(dir, ".tmp-earlier.gguf-0123456789ab") // a killed export's
	os.WriteFile(leftover, []byte("half"), 0o644)
	if code, _, stderr := capture(t, "export", "--model", hf, "--format", "gguf", "--quant", "q8_0", "--out", earlier, "--overwrite"); code != 0 {
		t.Fatalf("export --overwrite: exit %d\n%s", code, stderr)
	} else if !strings.Contains(stderr, "left by an interrupted export") {
		t.Errorf("removing a leftover: stderr %q", stderr)
	}
	if _, err := os.Stat(leftover); err == nil {
		t.Error("a killed export's temporary file stayed")
	}
	if after, _ := os.ReadFile(earlier); bytes.Equal(before, after) {
		t.Error("export --overwrite left the earlier export")
	}
}

// TestMergeBaseTrained: --merge-base trained merges onto the base as the
// adapter's lowrank.json says training held it (here q8_0) and says so; the
// written weights are then the q8_0 base's plus the delta, not the
// original's (they differ from the default merge).
func TestMergeBaseTrained(t *testing.T) {
	if testing.Short() {
		t.Skip("a training run and exports: skipped with -short (the emulated arm64 run)")
	}
	hf := testassets.Path(t, "models/stories260K/hf")
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if code, _, stderr := capture(t, "train", "--model", hf, "--data", testassets.Path(t, "datasets/wikisql/train.parquet"), "--out", run,
		"--quant", "q8_0", "--max-steps", "3", "--batch-size", "2", "--max-seq-len", "48", "--log-every", "0", "--no-progress"); code != 0 {
		t.Fatalf("train: exit %d\n%s", code, stderr)
	}
	adapter := filepath.Join(run, "adapter")
	outs := map[string]string{}
	for _, base := range []string{"original", "trained"} {
		out := filepath.Join(dir, base+".gguf")
		code, stdout, stderr := capture(t, "export", "--model", hf, "--adapter", adapter, "--format", "gguf", "--quant", "f32", "--out", out, "--merge-base", base)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", base, code, stderr)
		}
		outs[base] = stdout
		if base == "trained" && !strings.Contains(stdout, "as training held it (q8_0)") {
			t.Errorf("the report does not say what the merge started from: %q", stdout)
		}
	}
	a := lastLogits(t, filepath.Join(dir, "original.gguf"), "", []int32{1, 403, 407})
	b := lastLogits(t, filepath.Join(dir, "trained.gguf"), "", []int32{1, 403, 407})
	if slices.Equal(a, b) {
		t.Error("merging onto the q8_0 base gave the original base's weights")
	}
}
