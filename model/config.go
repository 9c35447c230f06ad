package model

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints/gguf"
)

// Config is a Llama-family architecture.
type Config struct {
	Arch          string  `json:"arch"` // llama, mistral, qwen2, qwen3
	Hidden        int     `json:"hidden_size"`
	Intermediate  int     `json:"intermediate_size"`
	Layers        int     `json:"num_hidden_layers"`
	Heads         int     `json:"num_attention_heads"`
	KVHeads       int     `json:"num_key_value_heads"`
	HeadDim       int     `json:"head_dim"`
	Vocab         int     `json:"vocab_size"`
	MaxPos        int     `json:"max_position_embeddings"`
	RMSEps        float64 `json:"rms_norm_eps"`
	RopeTheta     float64 `json:"rope_theta"`
	RopeScaling   *autograd.RopeScaling
	TieEmbeddings bool  `json:"tie_word_embeddings"`
	QKVBias       bool  `json:"qkv_bias"` // Qwen2: biases on q, k, v
	QKNorm        bool  `json:"qk_norm"`  // Qwen3: RMSNorm on each q and k head
	BOS           int   `json:"bos_token_id"`
	EOS           []int `json:"eos_token_ids"`
	Pad           int   `json:"pad_token_id"` // -1 when the model has none
}

// Limits on a config's sizes, far above any model lowrank can train and low
// enough that no product of them overflows: a size past one is a damaged or
// hostile file, refused before anything is allocated from it.
const (
	maxWidth   = 1 << 20 // hidden_size, intermediate_size, head_dim
	maxHeads   = 1 << 14
	maxLayers  = 1 << 14
	maxVocab   = 1 << 24
	maxContext = 1 << 24
)

func (c *Config) validate() error {
	for _, f := range []struct {
		name     string
		v, limit int
	}{
		{"hidden_size", c.Hidden, maxWidth}, {"intermediate_size", c.Intermediate, maxWidth}, {"head_dim", c.HeadDim, maxWidth},
		{"num_attention_heads", c.Heads, maxHeads}, {"num_key_value_heads", c.KVHeads, maxHeads},
		{"num_hidden_layers", c.Layers, maxLayers}, {"vocab_size", c.Vocab, maxVocab}, {"max_position_embeddings", c.MaxPos, maxContext},
	} {
		if f.v > f.limit {
			return fmt.Errorf("%s %d is beyond any model lowrank can load (at most %d)", f.name, f.v, f.limit)
		}
	}
	switch {
	case c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.Intermediate <= 0 || c.Vocab <= 0:
		return fmt.Errorf("hidden_size, num_hidden_layers, num_attention_heads, intermediate_size and vocab_size must be positive (have %d, %d, %d, %d, %d)", c.Hidden, c.Layers, c.Heads, c.Intermediate, c.Vocab)
	case c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
		return fmt.Errorf("num_key_value_heads %d must divide num_attention_heads %d", c.KVHeads, c.Heads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("head_dim %d must be positive and even", c.HeadDim)
	case c.RMSEps <= 0:
		return fmt.Errorf("rms_norm_eps %g must be positive", c.RMSEps)
	case c.MaxPos <= 0:
		return fmt.Errorf("max_position_embeddings %d must be positive", c.MaxPos)
	}
	return nil
}

// IsEOS reports whether id ends generation.
func (c *Config) IsEOS(id int) bool {
	for _, e := range c.EOS {
		if e == id {
			return true
		}
	}
	return false
}

// hfConfig mirrors the config.json fields lowrank reads.
type hfConfig struct {
	Architectures     []string        `json:"architectures"`
	ModelType         string          `json:"model_type"`
	HiddenSize        int             `json:"hidden_size"`
	IntermediateSize  int             `json:"intermediate_size"`
	NumLayers         int             `json:"num_hidden_layers"`
	NumHeads          int             `json:"num_attention_heads"`
	NumKVHeads        int             `json:"num_key_value_heads"`
	HeadDim           int             `json:"head_dim"`
	VocabSize         int             `json:"vocab_size"`
	MaxPos            int             `json:"max_position_embeddings"`
	RMSNormEps        float64         `json:"rms_norm_eps"`
	RopeTheta         float64         `json:"rope_theta"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
	AttentionBias     bool            `json:"attention_bias"`
	HiddenAct         string          `json:"hidden_act"`
	BOS               json.RawMessage `json:"bos_token_id"`
	EOS               json.RawMessage `json:"eos_token_id"`
	Pad               json.RawMessage `json:"pad_token_id"`
}

var hfArch = map[string]string{
	"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
	"Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
}

// ParseHFConfig reads a Hugging Face config.json.
func ParseHFConfig(data []byte) (*Config, error) {
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("config.json: %v", err)
	}
	arch := ""
	for _, a := range h.Architectures {
		if v, ok := hfArch[a]; ok {
			arch = v
		}
	}
	if arch == "" {
		return nil, fmt.Errorf("config.json: architectures %v (model_type %q) is not supported; lowrank supports %s", h.Architectures, h.ModelType, supportedHF())
	}
	if h.HiddenAct != "" && h.HiddenAct != "silu" {
		return nil, fmt.Errorf("config.json: hidden_act %q is not supported (Llama-family models use silu)", h.HiddenAct)
	}
	c := &Config{
		Arch: arch, Hidden: h.HiddenSize, Intermediate: h.IntermediateSize, Layers: h.NumLayers,
		Heads: h.NumHeads, KVHeads: h.NumKVHeads, HeadDim: h.HeadDim, Vocab: h.VocabSize,
		MaxPos: h.MaxPos, RMSEps: h.RMSNormEps, RopeTheta: h.RopeTheta,
		QKVBias: arch == "qwen2" || h.AttentionBias, QKNorm: arch == "qwen3", Pad: -1,
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.RMSEps == 0 {
		c.RMSEps = 1e-6
	}
	if c.MaxPos == 0 {
		c.MaxPos = 2048
	}
	if h.TieWordEmbeddings != nil {
		c.TieEmbeddings = *h.TieWordEmbeddings
	}
	var err error
	if c.RopeScaling, err = parseRopeScaling(h.RopeScaling); err != nil {
		return nil, err
	}
	bos, err := intList(h.BOS)
	if err != nil {
		return nil, fmt.Errorf("config.json: bos_token_id: %v", err)
	}
	if len(bos) > 0 {
		c.BOS = bos[0]
	}
	if c.EOS, err = intList(h.EOS); err != nil {
		return nil, fmt.Errorf("config.json: eos_token_id: %v", err)
	}
	if pad, err := intList(h.Pad); err == nil && len(pad) > 0 {
		c.Pad = pad[0]
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config.json: %v", err)
	}
	return c, nil
}

func supportedHF() string {
	var s []string
	for k := range hfArch {
		s = append(s, k)
	}
	return strings.Join(s, ", ")
}

// intList accepts an int, a list of ints or null.
func intList(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("%s is neither an int nor a list of ints", raw)
	}
	return many, nil
}

func parseRopeScaling(raw json.RawMessage) (*autograd.RopeScaling, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r struct {
		Type     string  `json:"type"`
		RopeType string  `json:"rope_type"`
		Factor   float64 `json:"factor"`
		Low      float64 `json:"low_freq_factor"`
		High     float64 `json:"high_freq_factor"`
		Orig     int     `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("config.json: rope_scaling: %v", err)
	}
	t := r.RopeType
	if t == "" {
		t = r.Type
	}
	if t == "" || t == "default" {
		return nil, nil
	}
	if t != "linear" && t != "llama3" {
		return nil, fmt.Errorf("config.json: rope_scaling type %q is not supported (supported: linear, llama3)", t)
	}
	return &autograd.RopeScaling{Type: t, Factor: r.Factor, LowFreqFactor: r.Low, HighFreqFactor: r.High, OriginalMaxPositions: r.Orig}, nil
}

var ggufArch = map[string]bool{"llama": true, "qwen2": true, "qwen3": true, "mistral": true}

// configFromGGUF reads the architecture from GGUF metadata.
func configFromGGUF(g *gguf.File) (*Config, error) {
	arch, _ := g.String("general.architecture")
	if !ggufArch[arch] {
		return nil, fmt.Errorf("architecture %q is not supported (supported: llama, mistral, qwen2, qwen3)", arch)
	}
	u := func(key string) int {
		v, _ := g.Uint(arch + "." + key)
		return int(v)
	}
	c := &Config{
		Arch: arch, Hidden: u("embedding_length"), Intermediate: u("feed_forward_length"),
		Layers: u("block_count"), Heads: u("attention.head_count"), KVHeads: u("attention.head_count_kv"),
		HeadDim: u("attention.key_length"), MaxPos: u("context_length"),
		QKVBias: arch == "qwen2", QKNorm: arch == "qwen3", Pad: -1, RopeTheta: 10000,
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if f, ok := g.Float(arch + ".rope.freq_base"); ok {
		c.RopeTheta = f
	}
	if f, ok := g.Float(arch + ".attention.layer_norm_rms_epsilon"); ok {
		c.RMSEps = f
	}
	if toks, ok := g.Get("tokenizer.ggml.tokens"); ok {
		if ts, ok := toks.([]string); ok {
			c.Vocab = len(ts)
		}
	}
	if ti, ok := g.Tensor("token_embd.weight"); ok && len(ti.Dims) == 2 {
		c.Vocab = int(ti.Dims[1])
	}
	_, hasOutput := g.Tensor("output.weight")
	c.TieEmbeddings = !hasOutput
	if v, ok := g.Uint("tokenizer.ggml.bos_token_id"); ok {
		c.BOS = int(v)
	}
	if v, ok := g.Uint("tokenizer.ggml.eos_token_id"); ok {
		c.EOS = []int{int(v)}
	}
	if v, ok := g.Uint("tokenizer.ggml.eot_token_id"); ok && !c.IsEOS(int(v)) {
		c.EOS = append(c.EOS, int(v))
	}
	if v, ok := g.Uint("tokenizer.ggml.padding_token_id"); ok {
		c.Pad = int(v)
	}
	if f, ok := g.Float(arch + ".rope.scaling.factor"); ok && f > 1 {
		if t, _ := g.String(arch + ".rope.scaling.type"); t == "linear" {
			c.RopeScaling = &autograd.RopeScaling{Type: "linear", Factor: f}
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}
