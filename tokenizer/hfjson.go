package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
)

// HFFiles returns a tokenizer.json and a tokenizer_config.json that
// Hugging Face transformers (and lowrank) load as this tokenizer: what a
// merged model folder needs when its base was a GGUF file, whose
// vocabulary is metadata. A SentencePiece-style vocabulary becomes BPE with
// byte fallback, its merges derived from the scores as transformers derives
// them from a SentencePiece model (every split of a piece into two pieces
// of the vocabulary, ordered by the piece's score); a byte-level one keeps
// its merges and gets its pre-tokenizer's regex.
func (t *Tokenizer) HFFiles() (tokenizerJSON, tokenizerConfig []byte, err error) {
	vocab := make(map[string]int32, len(t.pieces))
	for i, p := range t.pieces {
		if _, dup := vocab[p]; !dup {
			vocab[p] = int32(i)
		}
	}
	type addedTok struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	addedToks := []addedTok{}
	for _, a := range t.added {
		addedToks = append(addedToks, addedTok{ID: a.id, Content: a.content, LStrip: a.lstrip, RStrip: a.rstrip, Normalized: a.normalized, Special: a.special})
	}
	sort.Slice(addedToks, func(i, j int) bool { return addedToks[i].ID < addedToks[j].ID })
	special := func(s string) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": s, "type_id": 0}}
	}
	seq := func(id string) map[string]any {
		return map[string]any{"Sequence": map[string]any{"id": id, "type_id": 0}}
	}
	var post any
	if t.addBOS && t.BOS >= 0 {
		bos := t.pieces[t.BOS]
		post = map[string]any{"type": "TemplateProcessing",
			"single": []any{special(bos), seq("A")}, "pair": []any{special(bos), seq("A"), special(bos), seq("B")},
			"special_tokens": map[string]any{bos: map[string]any{"id": bos, "ids": []int32{t.BOS}, "tokens": []string{bos}}}}
	}
	tj := map[string]any{"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": addedToks, "post_processor": post}
	m := map[string]any{"type": "BPE", "dropout": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil, "vocab": vocab}
	if t.byteLevel {
		pre, err := t.hfPreTokenizer()
		if err != nil {
			return nil, nil, err
		}
		tj["normalizer"], tj["pre_tokenizer"] = nil, pre
		tj["decoder"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}
		if post == nil {
			tj["post_processor"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}
		}
		m["unk_token"], m["fuse_unk"], m["byte_fallback"], m["ignore_merges"] = nil, false, false, t.ignoreMerges
		m["merges"] = t.mergeList()
	} else {
		norms := []any{map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}}
		if t.prefix {
			norms = append([]any{map[string]any{"type": "Prepend", "prepend": "▁"}}, norms...)
		}
		tj["normalizer"] = map[string]any{"type": "Sequence", "normalizers": norms}
		tj["pre_tokenizer"] = nil
		decs := []any{map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"}}
		if t.strip {
			decs = append(decs, map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0})
		}
		tj["decoder"] = map[string]any{"type": "Sequence", "decoders": decs}
		var unk any
		if t.unk >= 0 {
			unk = t.pieces[t.unk]
		}
		m["unk_token"], m["fuse_unk"], m["byte_fallback"], m["ignore_merges"] = unk, true, t.fallb, false
		m["merges"] = t.spmMerges(vocab)
	}
	tj["model"] = m
	if tokenizerJSON, err = json.MarshalIndent(tj, "", " "); err != nil {
		return nil, nil, err
	}
	cfg := map[string]any{"add_bos_token": t.addBOS, "add_eos_token": t.addEOS, "clean_up_tokenization_spaces": t.cleanup,
		"model_max_length": 1 << 30, "tokenizer_class": "PreTrainedTokenizerFast", "legacy": false}
	if !t.byteLevel {
		cfg["tokenizer_class"] = "LlamaTokenizerFast"
	}
	for key, id := range map[string]int32{"bos_token": t.BOS, "eos_token": t.EOS, "unk_token": t.unk} {
		if id >= 0 && int(id) < len(t.pieces) {
			cfg[key] = t.pieces[id]
		}
	}
	if t.chatTemplate != "" {
		cfg["chat_template"] = t.chatTemplate
	}
	tokenizerConfig, err = json.MarshalIndent(cfg, "", "  ")
	return tokenizerJSON, tokenizerConfig, err
}

// spmMerges derives BPE merges from SentencePiece scores: for every piece,
// each way of splitting it into two pieces of the vocabulary, ordered by
// the left then right piece's id; all ordered by the piece's score, highest
// first (a stable sort, pieces in id order), as transformers converts a
// SentencePiece model. Without scores (a vocabulary that came with ranked
// merges) the merges are kept.
func (t *Tokenizer) spmMerges(vocab map[string]int32) [][2]string {
	if len(t.scores) != len(t.pieces) {
		out := make([][2]string, 0, len(t.ranks))
		for _, m := range t.mergeList() {
			l, r, _ := cut2(m, vocab)
			out = append(out, [2]string{l, r})
		}
		return out
	}
	type merge struct {
		l, r  string
		li    int32
		ri    int32
		score float32
	}
	var all []merge
	for id, p := range t.pieces {
		if _, ok := vocab[p]; !ok || vocab[p] != int32(id) {
			continue
		}
		rs := []rune(p)
		var local []merge
		for i := 1; i < len(rs); i++ {
			l, r := string(rs[:i]), string(rs[i:])
			li, lok := vocab[l]
			ri, rok := vocab[r]
			if lok && rok {
				local = append(local, merge{l, r, li, ri, t.scores[id]})
			}
		}
		sort.SliceStable(local, func(a, b int) bool {
			if local[a].li != local[b].li {
				return local[a].li < local[b].li
			}
			return local[a].ri < local[b].ri
		})
		all = append(all, local...)
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].score > all[b].score })
	out := make([][2]string, len(all))
	for i, m := range all {
		out[i] = [2]string{m.l, m.r}
	}
	return out
}

// cut2 splits a "left right" merge line where both halves are pieces.
func cut2(m string, vocab map[string]int32) (string, string, bool) {
	for i := 0; i < len(m); i++ {
		if m[i] == ' ' {
			if _, ok := vocab[m[:i]]; ok {
				if _, ok := vocab[m[i+1:]]; ok {
					return m[:i], m[i+1:], true
				}
			}
		}
	}
	return m, "", false
}

// hfPreTokenizer is the tokenizer.json pre_tokenizer of a byte-level
// pre-tokenizer.
func (t *Tokenizer) hfPreTokenizer() (any, error) {
	split := func(pat string) any {
		return map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pat}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}}}
	}
	switch t.pre {
	case preGPT2:
		return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}, nil
	case preLlama3:
		return split(patLlama3), nil
	case preQwen2:
		return split(patQwen2), nil
	case preStarCoder:
		return map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits", "individual_digits": true},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}}}, nil
	}
	return nil, fmt.Errorf("tokenizer: this byte-level pre-tokenizer has no tokenizer.json form here (GPT-2, Llama-3, Qwen2 and SmolLM/StarCoder patterns do)")
}
