// Package tokenizer turns text into token ids and back, exactly as the model's
// own tokenizer does.
//
// This version implements SentencePiece-style BPE: Hugging Face tokenizer.json
// files whose model is BPE with a "▁" normalizer and byte fallback (Llama-2,
// TinyLlama, Mistral, Phi-3, llama2.c models), and GGUF vocabularies of type
// "llama" (SentencePiece pieces with scores). Byte-level BPE (GPT-2, Llama-3,
// Qwen) is not implemented yet and is refused with a clear error.
package tokenizer
