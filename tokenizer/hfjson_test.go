package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

// viaHFFiles writes tok's tokenizer.json and tokenizer_config.json to a
// folder and loads that folder as lowrank loads a Hugging Face tokenizer.
func viaHFFiles(t *testing.T, tok *Tokenizer) (*Tokenizer, string) {
	t.Helper()
	tj, tc, err := tok.HFFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), tc, 0o644)
	back, err := FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return back, dir
}

// vocabTexts are llama.cpp's tokenizer test inputs and the reference texts.
func vocabTexts(t *testing.T) []string {
	var texts []string
	for _, name := range []string{"llama-spm", "gpt-2", "starcoder", "phi-3"} {
		inp, err := os.ReadFile(testassets.Path(t, "tokenizers/llama.cpp-vocab/ggml-vocab-"+name+".gguf.inp"))
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, strings.Split(string(inp), "\n__ggml_vocab_test__\n")...)
	}
	for _, r := range readRecords(t) {
		texts = append(texts, r.Text)
	}
	return texts
}

// TestHFFilesFromGGUF: the vocabularies of GGUF files (SentencePiece-style
// with scores, and byte-level), written as tokenizer.json +
// tokenizer_config.json and read back, encode every llama.cpp test input
// and reference text to the ids the GGUF vocabulary gives (with and without
// special tokens), and decode them back the same; a pre-tokenizer with no
// tokenizer.json form here (DeepSeek-LLM's) is an error, not a wrong file.
func TestHFFilesFromGGUF(t *testing.T) {
	texts := vocabTexts(t)
	for _, rel := range []string{
		"models/stories260K/stories260K-f32-v3.gguf", "models/llama-2-tiny-random/llama-2-tiny-random.gguf",
		"tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf", "tokenizers/llama.cpp-vocab/ggml-vocab-phi-3.gguf",
		"tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf", "tokenizers/llama.cpp-vocab/ggml-vocab-starcoder.gguf",
	} {
		tok, err := Load(testassets.Path(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		back, _ := viaHFFiles(t, tok)
		bad, skipped := 0, 0
		for _, text := range texts {
			if tok.spellsAdded(text) {
				skipped++ // an added token's flags: tokenizer.json keeps them, GGUF had none to give
				continue
			}
			for _, special := range []bool{false, true} {
				a, b := tok.Encode(text, special), back.Encode(text, special)
				if !slices.Equal(a, b) || tok.Decode(a, false) != back.Decode(a, false) {
					if bad == 0 {
						t.Errorf("%s %q (special %v):\n GGUF %v\n tokenizer.json %v", filepath.Base(rel), text, special, a, b)
					}
					bad++
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d encodings differ", rel, bad, 2*(len(texts)-skipped))
		}
		t.Logf("%s: %d texts encode alike (%d spell a special token: not compared)", filepath.Base(rel), len(texts)-skipped, skipped)
	}
	tok, err := Load(testassets.Path(t, "tokenizers/llama.cpp-vocab/ggml-vocab-deepseek-llm.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tok.HFFiles(); err == nil {
		t.Error("DeepSeek-LLM's pre-tokenizer written as if it had a tokenizer.json form")
	}
}
