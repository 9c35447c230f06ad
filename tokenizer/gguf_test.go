package tokenizer

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/internal/testassets"
	"golang.org/x/text/unicode/norm"
)

// viaGGUF writes t's GGUF metadata to a vocab-only GGUF in memory and reads
// it back as lowrank reads a GGUF's vocabulary.
func viaGGUF(t *testing.T, tok *Tokenizer) *Tokenizer {
	t.Helper()
	kvs, err := tok.GGUFMetadata()
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	w.Set("general.architecture", "llama")
	for _, kv := range kvs {
		w.SetKV(kv)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	g, err := gguf.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "vocab.gguf")
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromGGUF(g)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestGGUFMetadata: every tokenizer of the reference set (SentencePiece-style
// from tokenizer.json, whose scores come from merge ranks, and byte-level),
// written as GGUF metadata and read back, encodes every reference text to
// the same ids as before, with and without special tokens, and keeps its
// special ids and chat template.
func TestGGUFMetadata(t *testing.T) {
	dirs := map[string]string{
		"stories260K": "models/stories260K/hf", "llama2-hf": "tokenizers/llama2-hf", "phi-3-mini": "tokenizers/phi-3-mini",
		"llama3": "tokenizers/llama3", "qwen3": "tokenizers/qwen3", "gpt2": "tokenizers/gpt2",
	}
	recs := readRecords(t)
	for name, rel := range dirs {
		tok, err := FromDir(testassets.Path(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		back := viaGGUF(t, tok)
		if back.BOS != tok.BOS || back.EOS != tok.EOS || back.ChatTemplate() != tok.ChatTemplate() || back.VocabSize() != tok.VocabSize() {
			t.Errorf("%s: BOS %d/%d EOS %d/%d, template kept %v", name, back.BOS, tok.BOS, back.EOS, tok.EOS, back.ChatTemplate() == tok.ChatTemplate())
		}
		bad, n, skipped := 0, 0, 0
		for _, r := range recs {
			if r.Tokenizer != name {
				continue
			}
			// Not representable in GGUF, so llama.cpp does without them: an
			// added token's lstrip/rstrip/normalized flags (texts that spell a
			// special token) and the NFC normalizer (texts that are not NFC).
			if tok.spellsAdded(r.Text) || tok.nfc && norm.NFC.String(r.Text) != r.Text {
				skipped++
				continue
			}
			n++
			for _, special := range []bool{false, true} {
				if a, b := tok.Encode(r.Text, special), back.Encode(r.Text, special); !slices.Equal(a, b) {
					if bad == 0 {
						t.Errorf("%s %q (special %v):\n direct %v\n via GGUF %v", name, r.Text, special, a, b)
					}
					bad++
				}
			}
		}
		if bad > 0 || n == 0 {
			t.Errorf("%s: %d of %d encodings differ after GGUF", name, bad, 2*n)
		}
		t.Logf("%s: %d texts encode the same after GGUF (%d spell a special token or are not NFC: not compared)", name, n, skipped)
	}
}

// spellsAdded reports whether text contains an added token's content.
func (t *Tokenizer) spellsAdded(text string) bool {
	for _, a := range t.added {
		if strings.Contains(text, a.content) {
			return true
		}
	}
	return false
}
