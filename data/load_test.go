package data

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/tokenizer"
)

func sameExamples(a, b []*Example) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].IDs, b[i].IDs) || !slices.Equal(a[i].Mask, b[i].Mask) {
			return false
		}
	}
	return true
}

// TestLoad: parallel tokenization gives the single-threaded result in order;
// the cache returns it again; the validation split is seeded and stable.
func TestLoad(t *testing.T) {
	tok, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	path := testassets.Path(t, "datasets/llamafactory/v1_sft_demo.messages.parquet")
	one, err := Load(path, tok, LoadOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	four, err := Load(path, tok, LoadOptions{Threads: 4})
	if err != nil {
		t.Fatal(err)
	}
	if one.Rows != 500 || len(one.Train) != 500 || !sameExamples(one.Train, four.Train) {
		t.Fatalf("threads change the result: %d/%d examples", len(one.Train), len(four.Train))
	}
	cache := t.TempDir()
	first, err := Load(path, tok, LoadOptions{CacheDir: cache})
	if err != nil || first.FromCache {
		t.Fatalf("first load: %v, from cache %v", err, first.FromCache)
	}
	again, err := Load(path, tok, LoadOptions{CacheDir: cache})
	if err != nil || !again.FromCache || !sameExamples(again.Train, one.Train) || again.Tokens != one.Tokens {
		t.Fatalf("cached load: %v, from cache %v", err, again.FromCache)
	}
	// A different template is a different key.
	tok2 := tok.Clone()
	if err := tok2.UseChatTemplate("chatml"); err != nil {
		t.Fatal(err)
	}
	other, err := Load(path, tok2, LoadOptions{CacheDir: cache})
	if err != nil || other.FromCache {
		t.Fatalf("changed template hit the cache: %v", err)
	}
	a, _ := Load(path, tok, LoadOptions{CacheDir: cache, ValFraction: 0.1, Seed: 3})
	b, _ := Load(path, tok, LoadOptions{ValFraction: 0.1, Seed: 3, Threads: 2})
	if len(a.Val) < 30 || len(a.Val) > 75 || len(a.Val)+len(a.Train) != 500 || !sameExamples(a.Val, b.Val) {
		t.Errorf("val split: %d val, %d train (or not stable)", len(a.Val), len(a.Train))
	}
}

// TestHubSplits: a directory in the Hub's layout trains on its train shards
// only (not on the validation shards beside them, nor a file that merely
// contains "train" in its name); Split selects the validation shards.
func TestHubSplits(t *testing.T) {
	tok, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"data/train-00000-of-00002.jsonl":      `{"text":"a"}` + "\n" + `{"text":"b"}`,
		"data/train-00001-of-00002.jsonl":      `{"text":"c"}`,
		"data/validation-00000-of-00001.jsonl": `{"text":"v"}`,
		"data/constrained.jsonl":               `{"text":"x"}`,
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body+"\n"), 0o644)
	}
	if !HasSplit(dir, "train") || !HasSplit(dir, "validation") || HasSplit(dir, "test") || HasSplit(filepath.Join(dir, "data", "constrained.jsonl"), "train") {
		t.Error("HasSplit")
	}
	for split, want := range map[string]int{"": 3, "validation": 1} {
		ds, err := Load(dir, tok, LoadOptions{Split: split, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if ds.Rows != want {
			t.Errorf("split %q: %d rows, want %d", split, ds.Rows, want)
		}
	}
	// Folders named by split (the parquet-converter layout) count too.
	d2 := t.TempDir()
	os.MkdirAll(filepath.Join(d2, "default", "train"), 0o755)
	os.WriteFile(filepath.Join(d2, "default", "train", "0000.jsonl"), []byte(`{"text":"a"}`+"\n"), 0o644)
	if !HasSplit(d2, "train") || HasSplit(d2, "validation") {
		t.Error("HasSplit by folder")
	}
}
