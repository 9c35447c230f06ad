package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/internal/testassets"
)

type encodeRecord struct {
	Tokenizer          string  `json:"tokenizer"`
	Text               string  `json:"text"`
	IDs                []int32 `json:"ids"`
	IDsWithSpecial     []int32 `json:"ids_with_special"`
	Decoded            string  `json:"decoded"`
	DecodedWithSpecial string  `json:"decoded_with_special"`
	Note               string  `json:"note"`
}

func readRecords(t *testing.T) []encodeRecord {
	f, err := os.Open(testassets.Path(t, "tokenizers/reference/encode_public.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []encodeRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r encodeRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestReferenceVectors compares encode (with and without special tokens) and
// decode with transformers.js's outputs for every SentencePiece-style
// tokenizer in the assets. Records with a note are disputed between reference
// implementations; they are counted, not required.
func TestReferenceVectors(t *testing.T) {
	dirs := map[string]string{
		"stories260K": "models/stories260K/hf",
		"llama2-hf":   "tokenizers/llama2-hf",
		"phi-3-mini":  "tokenizers/phi-3-mini",
		"llama3":      "tokenizers/llama3",
		"qwen3":       "tokenizers/qwen3",
		"gpt2":        "tokenizers/gpt2",
	}
	recs := readRecords(t)
	for name, rel := range dirs {
		tok, err := FromDir(testassets.Path(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		var ok, total, disputed, disputedOK int
		for _, r := range recs {
			if r.Tokenizer != name {
				continue
			}
			good := slices.Equal(tok.Encode(r.Text, false), r.IDs) &&
				slices.Equal(tok.Encode(r.Text, true), r.IDsWithSpecial) &&
				tok.Decode(r.IDs, false) == r.Decoded && tok.Decode(r.IDsWithSpecial, false) == r.DecodedWithSpecial
			if r.Note != "" {
				disputed++
				if good {
					disputedOK++
				}
				continue
			}
			total++
			if good {
				ok++
			} else if total-ok <= 3 {
				t.Errorf("%s %q:\n ids  %v\n want %v\n decoded %q want %q", name, r.Text, tok.Encode(r.Text, false), r.IDs, tok.Decode(r.IDs, false), r.Decoded)
			}
		}
		t.Logf("%s: %d/%d undisputed records match; %d/%d disputed match transformers.js", name, ok, total, disputedOK, disputed)
		if total == 0 || ok != total {
			t.Errorf("%s: %d/%d records match", name, ok, total)
		}
	}
}

// TestGGUFMatchesHF: the GGUF-embedded stories260K vocabulary (scores) encodes
// like the HF one (merges) on the reference strings without special-token text.
func TestGGUFMatchesHF(t *testing.T) {
	hf, err := FromDir(testassets.Path(t, "models/stories260K/hf"))
	if err != nil {
		t.Fatal(err)
	}
	gg, err := Load(testassets.Path(t, "models/stories260K/stories260K-f32-v3.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range readRecords(t) {
		if r.Tokenizer != "stories260K" || r.Note != "" {
			continue
		}
		if a, b := gg.Encode(r.Text, true), hf.Encode(r.Text, true); !slices.Equal(a, b) {
			t.Errorf("%q: GGUF %v, HF %v", r.Text, a, b)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no records")
	}
}

// TestLlamaCppVocab runs llama.cpp's own tokenizer test vectors for the
// SentencePiece vocab-only GGUFs (ids without BOS, as test-tokenizer-0 prints).
func TestLlamaCppVocab(t *testing.T) {
	for _, c := range []struct{ vectors, tok string }{
		{"llama-spm", "tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf"},
		{"phi-3", "tokenizers/llama.cpp-vocab/ggml-vocab-phi-3.gguf"},
		{"gpt-2", "tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf"},
		{"starcoder", "tokenizers/llama.cpp-vocab/ggml-vocab-starcoder.gguf"},
		{"deepseek-llm", "tokenizers/llama.cpp-vocab/ggml-vocab-deepseek-llm.gguf"},
		{"llama-bpe", "tokenizers/llama3"},
		{"qwen2", "tokenizers/qwen3"},
		{"deepseek-r1-qwen", "tokenizers/qwen3"},
	} {
		name := c.vectors
		base := testassets.Path(t, "tokenizers/llama.cpp-vocab/ggml-vocab-"+name+".gguf.inp")
		tok, err := Load(testassets.Path(t, c.tok))
		if err != nil {
			t.Fatal(err)
		}
		inp, err := os.ReadFile(base)
		if err != nil {
			t.Fatal(err)
		}
		outp, err := os.ReadFile(strings.TrimSuffix(base, ".inp") + ".out")
		if err != nil {
			t.Fatal(err)
		}
		cases := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
		lines := strings.Split(strings.TrimRight(string(outp), "\n"), "\n")
		if len(cases) != len(lines) {
			cases = cases[:min(len(cases), len(lines))]
		}
		ok := 0
		for i, c := range cases {
			var want []int32
			for _, f := range strings.Fields(lines[i]) {
				v, err := strconv.Atoi(f)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, int32(v))
			}
			if got := tok.Encode(c, false); slices.Equal(got, want) {
				ok++
			} else if i-ok < 3 {
				t.Errorf("%s %q: %v, want %v", name, c, got, want)
			}
		}
		t.Logf("%s: %d/%d llama.cpp vectors match", name, ok, len(cases))
		if ok != len(cases) {
			t.Errorf("%s: %d/%d", name, ok, len(cases))
		}
	}
}

// TestClonesInParallel: clones encode concurrently and agree (run with -race).
func TestClonesInParallel(t *testing.T) {
	tok, err := Load(testassets.Path(t, "tokenizers/llama3"))
	if err != nil {
		t.Fatal(err)
	}
	text := "The quick brown fox jumps over the lazy dog. 12345 ünïcödé"
	want := tok.Encode(text, false)
	done := make(chan []int32)
	for i := 0; i < 4; i++ {
		go func(c *Tokenizer) { done <- c.Encode(text, false) }(tok.Clone())
	}
	for i := 0; i < 4; i++ {
		if got := <-done; !slices.Equal(got, want) {
			t.Fatalf("clone gave %v, want %v", got, want)
		}
	}
}

// TestSplitSequenceTokenizerJSON: a tokenizer.json whose pre-tokenizer is
// DeepSeek-LLM's sequence of Split regexes (built here from the DeepSeek GGUF's
// own vocabulary and merges) reproduces llama.cpp's DeepSeek-LLM vectors.
func TestSplitSequenceTokenizerJSON(t *testing.T) {
	g, err := gguf.Open(testassets.Path(t, "tokenizers/llama.cpp-vocab/ggml-vocab-deepseek-llm.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	tv, _ := g.Get("tokenizer.ggml.tokens")
	mv, _ := g.Get("tokenizer.ggml.merges")
	tt, _ := g.Get("tokenizer.ggml.token_type")
	g.Close()
	// Control (3) and user-defined (4) tokens are the file's added_tokens.
	addedTokens := []any{}
	for i, ty := range tt.([]int32) {
		if ty == 3 || ty == 4 {
			addedTokens = append(addedTokens, map[string]any{"id": i, "content": tv.([]string)[i], "special": ty == 3, "normalized": false})
		}
	}
	vocab := map[string]int{}
	for i, p := range tv.([]string) {
		if _, dup := vocab[p]; !dup {
			vocab[p] = i
		}
	}
	split := func(re string) map[string]any {
		return map[string]any{"type": "Split", "pattern": map[string]string{"Regex": re}, "behavior": "Isolated", "invert": false}
	}
	var pats []any
	for _, re := range []string{`[\r\n]`, deepseekClass(1), deepseekClass(2), `\s+$`, deepseekClass(4), `\p{N}+`} {
		pats = append(pats, split(re))
	}
	pats = append(pats, map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false})
	tj := map[string]any{
		"normalizer": nil, "pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": pats},
		"decoder": map[string]any{"type": "ByteLevel"}, "added_tokens": addedTokens,
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": mv.([]string)},
	}
	raw, _ := json.Marshal(tj)
	dir := t.TempDir()
	os.WriteFile(dir+"/tokenizer.json", raw, 0o644)
	tok, err := FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.pre != preSplits {
		t.Fatalf("generic split path not taken: %v", tok.pre)
	}
	base := testassets.Path(t, "tokenizers/llama.cpp-vocab/ggml-vocab-deepseek-llm.gguf.inp")
	inp, _ := os.ReadFile(base)
	outp, _ := os.ReadFile(strings.TrimSuffix(base, ".inp") + ".out")
	cases := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	lines := strings.Split(strings.TrimRight(string(outp), "\n"), "\n")
	for i := range lines {
		var want []int32
		for _, f := range strings.Fields(lines[i]) {
			v, _ := strconv.Atoi(f)
			want = append(want, int32(v))
		}
		if got := tok.Encode(cases[i], false); !slices.Equal(got, want) {
			t.Fatalf("%q: %v, want %v", cases[i], got, want)
		}
	}
}

// deepseekClass returns the source of DeepSeek-LLM split i in tokenizer.json
// syntax (\s, not the widened class).
func deepseekClass(i int) string {
	s := deepseekLLMSplits[i].String()
	return strings.ReplaceAll(s, `[\t\n\v\f\r \x{85}\p{Z}]`, `\s`)
}
