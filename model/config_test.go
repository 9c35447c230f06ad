package model

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/checkpoints/gguf"
)

func TestParseHFConfig(t *testing.T) {
	// Llama-3.2-style: EOS as a list, llama3 rope scaling, no pad token, tied.
	c, err := ParseHFConfig([]byte(`{
		"architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "intermediate_size": 8192,
		"num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
		"vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
		"rope_theta": 500000.0, "tie_word_embeddings": true, "hidden_act": "silu",
		"rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
		                 "original_max_position_embeddings": 8192, "rope_type": "llama3"},
		"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsEOS(128009) || !c.IsEOS(128001) || c.IsEOS(128000) || c.Pad != -1 || !c.TieEmbeddings {
		t.Errorf("tokens: %+v", c)
	}
	if c.RopeScaling == nil || c.RopeScaling.Type != "llama3" || c.RopeScaling.Factor != 32 || c.RopeScaling.OriginalMaxPositions != 8192 {
		t.Errorf("rope scaling: %+v", c.RopeScaling)
	}
	// Qwen2 defaults: biases; head_dim derived.
	q, err := ParseHFConfig([]byte(`{"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
		"num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
		"max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "eos_token_id": 151643}`))
	if err != nil || !q.QKVBias || q.HeadDim != 64 || q.QKNorm {
		t.Errorf("qwen2: %+v %v", q, err)
	}
	for _, bad := range []struct{ json, want string }{
		{`{"architectures": ["GPT2LMHeadModel"]}`, "not supported"},
		{`{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1, "num_attention_heads": 8, "num_key_value_heads": 3, "vocab_size": 10}`, "num_key_value_heads"},
		{`{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1, "num_attention_heads": 8, "vocab_size": 10, "rope_scaling": {"rope_type": "yarn", "factor": 4}}`, "yarn"},
		{`{"architectures": ["LlamaForCausalLM"], "hidden_act": "gelu"}`, "hidden_act"},
		{`{not json`, "config.json"},
	} {
		if _, err := ParseHFConfig([]byte(bad.json)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want it to mention %q", bad.json, err, bad.want)
		}
	}
}

// TestGGUFConfigLimits: a GGUF whose metadata claims absurd sizes, or more
// or fewer blocks than its tensors, is refused before anything is
// allocated from them, naming the key.
func TestGGUFConfigLimits(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		key   string
		value uint32
		want  string
	}{
		{"llama.block_count", 1 << 30, "num_hidden_layers 1073741824"},
		{"llama.block_count", 3, "llama.block_count is 3, the weights hold 1 layer"},
		{"llama.embedding_length", 1 << 30, "hidden_size 1073741824"},
		{"llama.context_length", 1 << 30, "max_position_embeddings 1073741824"},
		{"llama.attention.head_count", 1 << 20, "num_attention_heads 1048576"},
	} {
		w := gguf.NewWriter()
		meta := map[string]uint32{"llama.block_count": 1, "llama.embedding_length": 8, "llama.feed_forward_length": 16, "llama.context_length": 64,
			"llama.attention.head_count": 2, "llama.attention.head_count_kv": 2}
		meta[c.key] = c.value
		w.Set("general.architecture", "llama")
		for _, k := range []string{"llama.block_count", "llama.embedding_length", "llama.feed_forward_length", "llama.context_length", "llama.attention.head_count", "llama.attention.head_count_kv"} {
			w.Set(k, meta[k])
		}
		w.Set("llama.attention.layer_norm_rms_epsilon", float32(1e-5))
		for _, name := range []string{"token_embd.weight", "blk.0.attn_q.weight"} {
			w.AddTensor(name, gguf.TypeF32, []uint64{8, 8}, func(out io.Writer) error { _, err := out.Write(make([]byte, 256)); return err })
		}
		path := filepath.Join(dir, "m.gguf")
		f, _ := os.Create(path)
		if _, err := w.WriteTo(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err := Load(path, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s = %d: %v, want %q", c.key, c.value, err, c.want)
		}
	}
}
