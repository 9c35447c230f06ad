package tokenizer

import (
	"encoding/json"
	"strings"
	"testing"
)

// Seeds for the file fuzzers: a small tokenizer of each kind (byte-level
// BPE with merges and added tokens, SentencePiece style with byte fallback),
// a config, and the chat templates lowrank ships. The same inputs, and a
// few broken ones, are committed under testdata/fuzz/ as the corpus.
func seedTokenizerJSON() [][]byte {
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[ByteLevelChar(byte(b))] = b
	}
	vocab["he"], vocab["ll"], vocab["hell"], vocab["Ġw"] = 256, 257, 258, 259
	byteLevel, _ := json.Marshal(map[string]any{"version": "1.0",
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel"},
		"added_tokens":   []any{map[string]any{"id": 260, "content": "<|im_end|>", "special": true}},
		"post_processor": map[string]any{"type": "TemplateProcessing", "single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<|im_end|>"}}}},
		"model":          map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"h e", "l l", "he ll", "Ġ w"}}})
	spm := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "▁h": 4, "i": 5, "▁hi": 6}
	for b := 0; b < 256; b++ {
		spm[strings.ToUpper(string("<0x"+hex2(byte(b))+">"))] = 7 + b
	}
	sentencePiece, _ := json.Marshal(map[string]any{"version": "1.0",
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "Prepend", "prepend": "▁"}, map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}}},
		"decoder":    map[string]any{"type": "Sequence", "decoders": []any{map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0}}},
		"model":      map[string]any{"type": "BPE", "vocab": spm, "merges": [][]string{{"▁", "h"}, {"▁h", "i"}}, "unk_token": "<unk>", "byte_fallback": true}})
	return [][]byte{byteLevel, sentencePiece,
		[]byte(`{"model":{"type":"BPE","merges":[]}}`),
		[]byte(`{"model":{"type":"BPE","vocab":{"a":-1},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"}}`),
		[]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel"}}`),
		[]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[],"unk_token":"<unk>"},"normalizer":{"type":"Replace","content":"▁"}}`),
	}
}

func hex2(b byte) string {
	const h = "0123456789ABCDEF"
	return string([]byte{h[b>>4], h[b&15]})
}

// FuzzTokenizerJSON: no tokenizer.json (with or without a
// tokenizer_config.json) makes loading, encoding or decoding panic; a
// loaded tokenizer encodes text to ids below its vocabulary size.
func FuzzTokenizerJSON(f *testing.F) {
	for _, s := range seedTokenizerJSON() {
		f.Add(s, []byte(nil))
		f.Add(s, []byte(`{"bos_token":"<s>","eos_token":{"content":"</s>"},"add_bos_token":true,"add_eos_token":true}`))
	}
	f.Fuzz(func(t *testing.T, raw, cfg []byte) {
		tok, err := fromJSON("tokenizer.json", raw, "tokenizer_config.json", cfg)
		if err != nil {
			return
		}
		for _, s := range []string{"hello world", " <|im_end|>hi\n", "日本\x00\xff", ""} {
			ids := tok.Encode(s, true)
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("%q encodes to id %d, vocabulary %d", s, id, tok.VocabSize())
				}
			}
			tok.Decode(ids, false)
			tok.Decode(ids, true)
		}
	})
}

// FuzzChatTemplate: no template source makes parsing or rendering panic or
// run without bound (the rendering budget stops it with an error).
func FuzzChatTemplate(f *testing.F) {
	for _, name := range []string{"chatml", "llama3", "simple"} {
		f.Add(BuiltinTemplates[name])
	}
	for _, s := range []string{
		"{% for i in range(100000000) %}{{ i }}{% endfor %}",
		"{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
		"{{ 1 % 0 }}{{ 7 // 0 }}",
		"{{ messages | tojson(indent=100000000) }}",
		"{% for m in messages %}{% if m['role'] == 'user' %}{{ m.content | trim }}{% elif loop.last %}{{ raise_exception('x') }}{% endif %}{% endfor %}",
		"{{ messages[0]['content'][1:-1] }}{{ (messages | length) * 3 }}",
	} {
		f.Add(s)
	}
	msgs := []any{map[string]any{"role": "system", "content": "be brief"}, map[string]any{"role": "user", "content": "hi"},
		map[string]any{"role": "assistant", "content": "hello"}}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := ParseTemplate(src)
		if err != nil {
			return
		}
		tmpl.Render(map[string]any{"messages": msgs, "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})
	})
}
