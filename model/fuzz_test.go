package model

import (
	"testing"
)

// FuzzHFConfig: no config.json makes parsing panic, and a config that
// parses has every size within the limits that keep the allocations made
// from it bounded (make fuzz runs it).
func FuzzHFConfig(f *testing.F) {
	for _, s := range []string{
		`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":512,"rms_norm_eps":1e-05,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2}`,
		`{"architectures":["Qwen2ForCausalLM"],"hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,"num_key_value_heads":2,"vocab_size":151936,"max_position_embeddings":32768,"rope_theta":1000000.0,"eos_token_id":[151645,151643],"pad_token_id":null}`,
		`{"architectures":["LlamaForCausalLM"],"hidden_size":2048,"intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":64,"vocab_size":128256,"max_position_embeddings":131072,"rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}}`,
		`{"architectures":["Qwen3ForCausalLM"],"hidden_size":1099511627776,"intermediate_size":1,"num_hidden_layers":1000000000,"num_attention_heads":1,"vocab_size":1}`,
		`{"architectures":["MistralForCausalLM"],"hidden_size":64,"num_attention_heads":3,"num_hidden_layers":1,"intermediate_size":1,"vocab_size":1,"hidden_act":"gelu"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseHFConfig(raw)
		if err != nil {
			return
		}
		if c.Hidden > maxWidth || c.Intermediate > maxWidth || c.HeadDim > maxWidth || c.Heads > maxHeads || c.KVHeads > maxHeads ||
			c.Layers > maxLayers || c.Vocab > maxVocab || c.MaxPos > maxContext || c.Heads%c.KVHeads != 0 || c.HeadDim%2 != 0 {
			t.Fatalf("accepted %+v", c)
		}
	})
}
