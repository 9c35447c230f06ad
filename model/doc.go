// Package model holds the Llama-family transformer (Llama, Mistral, Qwen2,
// Qwen3): its configuration from a Hugging Face config.json or GGUF metadata,
// its frozen weights loaded from safetensors or GGUF and quantized tensor by
// tensor, and one block implementation shared by the training forward (over an
// autograd tape) and by generation (with a KV cache).
//
// Attention weights are held in one layout, Hugging Face's (rotate-half RoPE):
// GGUF files of the llama architecture store Q and K rows permuted for
// interleaved RoPE; they are permuted back at load (rows only, so quantized
// blocks stay intact).
//
// Every linear layer is a Linear: the frozen base implements it, and adapter
// packages wrap it without this package knowing about them.
package model
