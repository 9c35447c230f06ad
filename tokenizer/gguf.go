package tokenizer

import (
	"fmt"
	"sort"

	"github.com/lowrank/lowrank/checkpoints/gguf"
)

// llama.cpp's token types (tokenizer.ggml.token_type).
const (
	tokNormal      = 1
	tokUnknown     = 2
	tokControl     = 3
	tokUserDefined = 4
	tokByte        = 6
)

// ggufPreName is tokenizer.ggml.pre for each byte-level pre-tokenizer: the
// name llama.cpp's converter writes and its loader maps to the same regex.
var ggufPreName = map[preTokenizer]string{
	preGPT2: "gpt-2", preLlama3: "llama-bpe", preQwen2: "qwen2", preStarCoder: "smollm", preDeepSeekLLM: "deepseek-llm",
}

// GGUFMetadata is the vocabulary as llama.cpp reads it from a GGUF file,
// with the value types its converter writes: tokenizer.ggml.model ("llama"
// for SentencePiece-style BPE, "gpt2" for byte-level BPE), .pre, .tokens,
// .scores or .merges, .token_type, the special ids, add_bos/add_eos and
// the chat template. A SentencePiece-style vocabulary read from a
// tokenizer.json has ranked merges and no scores: each piece a merge makes
// scores minus its rank (llama.cpp merges the highest score first, as
// Hugging Face merges the lowest rank first), other pieces below every merge.
func (t *Tokenizer) GGUFMetadata() ([]gguf.KV, error) {
	var kvs []gguf.KV
	add := func(key string, typ gguf.ValueType, v any) { kvs = append(kvs, gguf.KV{Key: key, Type: typ, Value: v}) }
	n := len(t.pieces)
	types := make([]int32, n)
	for i := range types {
		types[i] = tokNormal
	}
	for _, id := range t.byteID {
		if id >= 0 && !t.byteLevel {
			types[id] = tokByte
		}
	}
	for _, a := range t.added {
		if a.special {
			types[a.id] = tokControl
		} else {
			types[a.id] = tokUserDefined
		}
	}
	if t.unk >= 0 && int(t.unk) < n && !t.byteLevel {
		types[t.unk] = tokUnknown
	}
	if t.byteLevel {
		name, ok := ggufPreName[t.pre]
		if !ok {
			return nil, fmt.Errorf("tokenizer: its pre-tokenizer (a sequence of Split patterns) has no name llama.cpp knows: it cannot be written to GGUF")
		}
		add("tokenizer.ggml.model", gguf.String, "gpt2")
		add("tokenizer.ggml.pre", gguf.String, name)
		add("tokenizer.ggml.tokens", gguf.Array, append([]string(nil), t.pieces...))
		add("tokenizer.ggml.token_type", gguf.Array, types)
		add("tokenizer.ggml.merges", gguf.Array, t.mergeList())
	} else {
		add("tokenizer.ggml.model", gguf.String, "llama")
		add("tokenizer.ggml.pre", gguf.String, "default")
		add("tokenizer.ggml.tokens", gguf.Array, append([]string(nil), t.pieces...))
		add("tokenizer.ggml.scores", gguf.Array, t.spmScores(types))
		add("tokenizer.ggml.token_type", gguf.Array, types)
	}
	if t.BOS >= 0 {
		add("tokenizer.ggml.bos_token_id", gguf.Uint32, uint32(t.BOS))
	}
	if t.EOS >= 0 {
		add("tokenizer.ggml.eos_token_id", gguf.Uint32, uint32(t.EOS))
	}
	if t.unk >= 0 && !t.byteLevel {
		add("tokenizer.ggml.unknown_token_id", gguf.Uint32, uint32(t.unk))
	}
	add("tokenizer.ggml.add_bos_token", gguf.Bool, t.addBOS)
	add("tokenizer.ggml.add_eos_token", gguf.Bool, t.addEOS)
	if !t.byteLevel {
		add("tokenizer.ggml.add_space_prefix", gguf.Bool, t.prefix)
	}
	if t.chatTemplate != "" {
		add("tokenizer.chat_template", gguf.String, t.chatTemplate)
	}
	return kvs, nil
}

// mergeList is the merges as "left right" strings, by rank.
func (t *Tokenizer) mergeList() []string {
	type m struct {
		pair [2]int32
		rank int32
	}
	ms := make([]m, 0, len(t.ranks))
	for p, r := range t.ranks {
		ms = append(ms, m{p, r})
	}
	sort.Slice(ms, func(a, b int) bool { return ms[a].rank < ms[b].rank })
	out := make([]string, len(ms))
	for i, x := range ms {
		out[i] = t.pieces[x.pair[0]] + " " + t.pieces[x.pair[1]]
	}
	return out
}

// spmScores are the SentencePiece scores: the file's own where it had them,
// else from the merge ranks (types: pieces other than normal ones score 0).
func (t *Tokenizer) spmScores(types []int32) []float32 {
	if len(t.scores) == len(t.pieces) {
		return append([]float32(nil), t.scores...)
	}
	n := len(t.pieces)
	scores := make([]float32, n)
	made := make([]bool, n)
	for p, r := range t.ranks {
		id, ok := t.ids[t.pieces[p[0]]+t.pieces[p[1]]]
		if !ok {
			continue
		}
		s := float32(-r) // (not -float32(r): no negative zero)
		if !made[id] || s > scores[id] {
			scores[id], made[id] = s, true
		}
	}
	low := -float32(len(t.ranks))
	for i, p := range t.pieces {
		if !made[i] && len([]rune(p)) > 1 && types[i] == tokNormal {
			scores[i] = low - float32(i) // no merge makes it: after every merge
		}
	}
	return scores
}
