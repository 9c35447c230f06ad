package model

import (
	"fmt"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints/gguf"
)

// GGUFMetadata is the architecture's metadata as llama.cpp's converter
// writes it (configFromGGUF reads it back), with the same value types:
// general.architecture and the "{arch}." hyperparameters.
func (c *Config) GGUFMetadata() ([]gguf.KV, error) {
	if !ggufArch[c.Arch] {
		return nil, fmt.Errorf("architecture %q has no GGUF form here (supported: llama, mistral, qwen2, qwen3)", c.Arch)
	}
	a := c.Arch + "."
	kv := []gguf.KV{{Key: "general.architecture", Type: gguf.String, Value: c.Arch}}
	u := func(key string, v int) { kv = append(kv, gguf.KV{Key: a + key, Type: gguf.Uint32, Value: uint32(v)}) }
	f := func(key string, v float64) {
		kv = append(kv, gguf.KV{Key: a + key, Type: gguf.Float32, Value: float32(v)})
	}
	u("block_count", c.Layers)
	u("context_length", c.MaxPos)
	u("embedding_length", c.Hidden)
	u("feed_forward_length", c.Intermediate)
	u("attention.head_count", c.Heads)
	u("attention.head_count_kv", c.KVHeads)
	f("rope.freq_base", c.RopeTheta)
	f("attention.layer_norm_rms_epsilon", c.RMSEps)
	u("attention.key_length", c.HeadDim)
	u("attention.value_length", c.HeadDim)
	u("rope.dimension_count", c.HeadDim)
	u("vocab_size", c.Vocab)
	if s := c.RopeScaling; s != nil && s.Type == "linear" {
		kv = append(kv, gguf.KV{Key: a + "rope.scaling.type", Type: gguf.String, Value: "linear"})
		f("rope.scaling.factor", s.Factor)
	}
	return kv, nil
}

// RopeFreqFactors are the values of rope_freqs.weight, through which
// llama.cpp applies Llama-3 rope scaling (each frequency divided by its
// factor); nil when the configuration has no such scaling.
func (c *Config) RopeFreqFactors() ([]float32, error) {
	if c.RopeScaling == nil || c.RopeScaling.Type != "llama3" {
		return nil, nil
	}
	plain, err := autograd.InvFreqs(c.HeadDim, c.RopeTheta, nil)
	if err != nil {
		return nil, err
	}
	scaled, err := autograd.InvFreqs(c.HeadDim, c.RopeTheta, c.RopeScaling)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(plain))
	for i := range out {
		out[i] = float32(plain[i] / scaled[i])
	}
	return out, nil
}
