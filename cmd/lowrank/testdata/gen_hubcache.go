//go:build ignore

// gen_hubcache writes testdata/hubcache: a Hugging Face cache laid out as
// huggingface_hub (transformers, datasets, mlx-lm, vLLM) leaves it, following
// the hub's own description of the layout (huggingface/hub-docs,
// docs/hub/local-cache.md) and huggingface_hub's file_download.py: blobs
// named by ETag (git SHA-1, or SHA-256 for LFS files), snapshots/<commit>/
// holding relative symlinks into ../../blobs (one level more per folder),
// refs/<branch or tag> holding the commit without a newline, refs/refs/pr/N,
// .no_exist/<commit>/ markers for optional files the hub lacks, leftover
// .locks/<repo folder>/<etag>.lock at the cache root, two revisions sharing
// a blob, and files lowrank never reads (README.md, pytorch_model.bin). lowrank
// did not write it (its own writes are tested elsewhere); the tests read it.
//
//	go run ./cmd/lowrank/testdata/gen_hubcache.go   (from the repository root)
package main

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/hfcache/hubtest"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/parquet-go/parquet-go"
	"github.com/x448/float16"
)

const root = "cmd/lowrank/testdata/hubcache"

func main() {
	if err := os.RemoveAll(root); err != nil {
		fail(err)
	}
	tmp, err := os.MkdirTemp("", "gen-hubcache")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)

	cfg, weights, tok := tinyModel()
	newTC := mustJSON(map[string]any{"bos_token": "<|s|>", "eos_token": "<|e|>", "model_max_length": 256})
	oldTC := mustJSON(map[string]any{"bos_token": "<|s|>", "eos_token": "<|e|>",
		"chat_template": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"})
	tmpl := []byte("{% for m in messages %}<|s|>{{ m['role'] }}: {{ m['content'] }}<|e|>{% endfor %}")
	lfs := map[string]bool{"model.safetensors": true, "pytorch_model.bin": true}

	// org/tiny: main (with chat_template.jinja) and the tag v1.0 (the
	// template inside tokenizer_config.json), sharing the weights' blob.
	oldC, newC := commit("org/tiny v1.0"), commit("org/tiny main")
	repo("models--org--tiny", oldC, []string{"v1.0", "refs/pr/1"}, map[string][]byte{
		"config.json": cfg, "model.safetensors": weights, "tokenizer.json": tok, "tokenizer_config.json": oldTC,
		"README.md": []byte("# tiny v1.0\n"), // (no .gitattributes: git would read a symlink of that name in this repository as its own)
	}, lfs, nil)
	repo("models--org--tiny", newC, []string{"main"}, map[string][]byte{
		"config.json": cfg, "model.safetensors": weights, "tokenizer.json": tok, "tokenizer_config.json": newTC,
		"chat_template.jinja": tmpl, "README.md": []byte("# tiny\n"), "pytorch_model.bin": []byte("a .bin a Python tool fetched"),
	}, lfs, []string{"generation_config.json", "tokenizer.model", "special_tokens_map.json", "model.safetensors.index.json"})
	lock("models--org--tiny", weights)

	// org/tiny-GGUF: the same model as one Q8_0 GGUF file (written by
	// lowrank export, as a user would upload it).
	src := filepath.Join(tmp, "tiny")
	os.MkdirAll(src, 0o755)
	for n, b := range map[string][]byte{"config.json": cfg, "model.safetensors": weights, "tokenizer.json": tok, "tokenizer_config.json": newTC} {
		os.WriteFile(filepath.Join(src, n), b, 0o644)
	}
	gguf := filepath.Join(tmp, "tiny-Q8_0.gguf")
	cmd := exec.Command("go", "run", "./cmd/lowrank", "export", "--model", src, "--format", "gguf", "--quant", "q8_0", "--out", gguf)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fail(err)
	}
	g, err := os.ReadFile(gguf)
	if err != nil {
		fail(err)
	}
	repo("models--org--tiny-GGUF", commit("org/tiny-GGUF main"), []string{"main"}, map[string][]byte{
		"tiny-Q8_0.gguf": g, "README.md": []byte("# tiny GGUF\n")}, map[string]bool{"tiny-Q8_0.gguf": true}, nil)

	// datasets org/stories: Parquet under data/, as the hub's dataset viewer
	// lays out an uploaded dataset; the symlinks one level deeper.
	type row struct {
		Text string `parquet:"text"`
	}
	pq := func(lines ...string) []byte {
		var rows []row
		for i := 0; i < 24; i++ {
			rows = append(rows, row{lines[i%len(lines)]})
		}
		p := filepath.Join(tmp, "x.parquet")
		if err := parquet.WriteFile(p, rows); err != nil {
			fail(err)
		}
		b, _ := os.ReadFile(p)
		return b
	}
	repo("datasets--org--stories", commit("org/stories main"), []string{"main"}, map[string][]byte{
		"data/train-00000-of-00001.parquet":      pq("the robot counted the stars.", "the cat painted the clouds."),
		"data/validation-00000-of-00001.parquet": pq("the robot painted the stars."),
		"README.md":                              []byte("# stories\n"),
	}, map[string]bool{"data/train-00000-of-00001.parquet": true, "data/validation-00000-of-00001.parquet": true}, nil)
	fmt.Println("wrote", root)
}

// repo adds one revision of a repository: its blobs, its snapshot's
// symlinks, its refs, and .no_exist markers.
func repo(folder, c string, refs []string, files map[string][]byte, lfs map[string]bool, missing []string) {
	dir := filepath.Join(root, folder)
	for name, b := range files {
		etag := hubtest.GitSHA1(b)
		if lfs[name] {
			etag = hubtest.SHA256(b)
		}
		blob := filepath.Join(dir, "blobs", etag)
		write(blob, b)
		link := filepath.Join(dir, "snapshots", c, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(link), 0o755)
		rel, err := filepath.Rel(filepath.Dir(link), blob)
		if err != nil {
			fail(err)
		}
		if err := os.Symlink(rel, link); err != nil {
			fail(err)
		}
	}
	for _, r := range refs {
		write(filepath.Join(dir, "refs", filepath.FromSlash(r)), []byte(c))
	}
	for _, m := range missing {
		write(filepath.Join(dir, ".no_exist", c, m), nil)
	}
}

func lock(folder string, b []byte) {
	write(filepath.Join(root, ".locks", folder, hubtest.SHA256(b)+".lock"), nil)
}

func write(p string, b []byte) {
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		fail(err)
	}
}

// tinyModel is a one-layer Qwen2 with tied embeddings in F16 and a
// byte-level tokenizer: config.json, model.safetensors, tokenizer.json.
func tinyModel() (cfg, weights, tok []byte) {
	const hidden, inter, heads, kv, hd, vocab = 32, 64, 2, 1, 16, 258
	cfg = mustJSON(map[string]any{"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2", "hidden_size": hidden,
		"intermediate_size": inter, "num_hidden_layers": 1, "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": hd,
		"vocab_size": vocab, "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": true,
		"bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "float16"})
	r := rand.New(rand.NewPCG(20, 26))
	var entries []safetensors.WriteEntry
	add := func(name string, std float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		b := make([]byte, 2*n)
		for i := 0; i < n; i++ {
			v := float32(r.NormFloat64() * std)
			if std == 0 {
				v = 1 + float32(r.NormFloat64()*0.1)
			}
			binary.LittleEndian.PutUint16(b[2*i:], float16.Fromfloat32(v).Bits())
		}
		entries = append(entries, safetensors.WriteEntry{Name: name, Dtype: safetensors.F16, Shape: shape, Data: b})
	}
	add("model.embed_tokens.weight", 1, vocab, hidden)
	add("model.norm.weight", 0, hidden)
	p := "model.layers.0."
	add(p+"input_layernorm.weight", 0, hidden)
	add(p+"post_attention_layernorm.weight", 0, hidden)
	add(p+"self_attn.q_proj.weight", 0.2, heads*hd, hidden)
	add(p+"self_attn.q_proj.bias", 0.5, heads*hd)
	add(p+"self_attn.k_proj.weight", 0.2, kv*hd, hidden)
	add(p+"self_attn.k_proj.bias", 0.5, kv*hd)
	add(p+"self_attn.v_proj.weight", 0.2, kv*hd, hidden)
	add(p+"self_attn.v_proj.bias", 0.5, kv*hd)
	add(p+"self_attn.o_proj.weight", 0.2, hidden, heads*hd)
	add(p+"mlp.gate_proj.weight", 0.2, inter, hidden)
	add(p+"mlp.up_proj.weight", 0.2, inter, hidden)
	add(p+"mlp.down_proj.weight", 0.2, hidden, inter)
	f, err := os.CreateTemp("", "tiny-*.safetensors")
	if err != nil {
		fail(err)
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := safetensors.Write(f.Name(), entries, map[string]string{"format": "pt"}); err != nil {
		fail(err)
	}
	weights, _ = os.ReadFile(f.Name())
	vocabMap := map[string]int{}
	for b := 0; b < 256; b++ {
		vocabMap[tokenizer.ByteLevelChar(byte(b))] = b
	}
	vocabMap["<|s|>"], vocabMap["<|e|>"] = 256, 257
	tok = mustJSON(map[string]any{"version": "1.0", "normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"added_tokens": []any{map[string]any{"id": 256, "content": "<|s|>", "special": true, "normalized": false},
			map[string]any{"id": 257, "content": "<|e|>", "special": true, "normalized": false}},
		"model": map[string]any{"type": "BPE", "vocab": vocabMap, "merges": []string{}}})
	return cfg, weights, tok
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fail(err)
	}
	return append(b, '\n')
}

func commit(s string) string { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen_hubcache:", strings.TrimSpace(err.Error()))
	os.Exit(1)
}
