package data

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

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
	if got := ValidationSplit(dir); got != "validation" {
		t.Errorf("ValidationSplit = %q", got)
	}
	// WikiSQL's folder: train, valid and test, each as .parquet and .jsonl (the
	// same rows twice): a directory read takes the Parquet files only.
	wdir := filepath.Dir(testassets.Path(t, "datasets/wikisql/valid.parquet"))
	if ds, err := Load(wdir, tok, LoadOptions{}); err != nil || ds.Rows != 1000 {
		t.Errorf("wikisql folder: %v rows, %v; want the 1000 of train.parquet", ds, err)
	}
	// WikiSQL's layout: train.parquet, valid.parquet, test.parquet.
	if got := ValidationSplit(wdir); got != "valid" {
		t.Errorf("ValidationSplit(wikisql) = %q, want valid", got)
	}
	// A validation split answers to any of its names (--split validation
	// reads valid.parquet, as the datasets library's patterns do); other
	// splits to their own.
	valid, err := Load(wdir, tok, LoadOptions{Split: "valid", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, split := range []string{"validation", "val", "dev"} {
		if ds, err := Load(wdir, tok, LoadOptions{Split: split, Threads: 1}); err != nil || ds.Rows != valid.Rows {
			t.Errorf("wikisql --split %s: %v, %v; want valid.parquet's %d rows", split, ds, err, valid.Rows)
		}
	}
	if _, err := Load(dir, tok, LoadOptions{Split: "valid", Threads: 1}); err != nil {
		t.Errorf("--split valid with validation-00000-of-00001.jsonl: %v", err)
	}
	if _, err := Load(dir, tok, LoadOptions{Split: "test", Threads: 1}); err == nil || !strings.Contains(err.Error(), `for split "test"`) {
		t.Errorf("--split test without test files: %v", err)
	}
	// Where both are there, the name asked for wins.
	d3 := t.TempDir()
	os.WriteFile(filepath.Join(d3, "validation.jsonl"), []byte(`{"text":"v"}`+"\n"+`{"text":"w"}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(d3, "dev.jsonl"), []byte(`{"text":"d"}`+"\n"), 0o644)
	for split, want := range map[string]int{"dev": 1, "validation": 2, "valid": 2} {
		if ds, err := Load(d3, tok, LoadOptions{Split: split, Threads: 1}); err != nil || ds.Rows != want {
			t.Errorf("--split %s with validation.jsonl and dev.jsonl: %v, %v; want %d rows", split, ds, err, want)
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

// TestTokenStoreOnDisk: the tokenized dataset lives in a memory-mapped file,
// not on the heap: what a loaded dataset keeps alive on the heap is a small
// header per example, far less than the 5 bytes per token the examples take.
func TestTokenStoreOnDisk(t *testing.T) {
	tok, err := tokenizer.Load(testassets.Path(t, "tokenizers/llama3"))
	if err != nil {
		t.Fatal(err)
	}
	path := testassets.Path(t, "datasets/llamafactory/c4_demo.parquet")
	ds, err := Load(path, tok, LoadOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, e := range ds.Train {
		sum += len(e.IDs)
		if len(e.IDs) != len(e.Mask) || len(e.IDs) == 0 {
			t.Fatalf("example: %d ids, %d mask", len(e.IDs), len(e.Mask))
		}
	}
	if sum != ds.Tokens {
		t.Errorf("tokens %d, examples hold %d", ds.Tokens, sum)
	}
	heapNow := func() int64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	alive := heapNow()
	tokens := ds.Tokens
	if err := ds.Close(); err != nil || ds.Train != nil {
		t.Errorf("Close: %v", err)
	}
	ds = nil
	kept := alive - heapNow()
	t.Logf("%d tokens: the loaded dataset keeps %d KiB of heap alive (%.2f bytes/token; held in memory the examples would take %d KiB)",
		tokens, kept>>10, float64(kept)/float64(tokens), 5*tokens>>10)
	if kept > int64(tokens) { // < 1 byte per token, vs 5 when held
		t.Errorf("the dataset keeps %d bytes of heap for %d tokens: it is on the heap", kept, tokens)
	}
}

// TestTokenStoreDamage: a damaged token store (a cache file cut short or
// overwritten) is an error, never a crash, and Load re-tokenizes past it.
func TestTokenStoreDamage(t *testing.T) {
	tok, data, cache := storeFixture(t, `{"text":"one two three"}`+"\n"+`{"text":"four five"}`+"\n")
	ref, err := Load(data, tok, LoadOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	stores, _ := filepath.Glob(filepath.Join(cache, "*.tokens"))
	if len(stores) != 1 {
		t.Fatalf("%d cache files", len(stores))
	}
	good, _ := os.ReadFile(stores[0])
	// Replace the file as lowrank writes it (a new file renamed over the old
	// one): ref's examples map the old file, which must stay intact — a
	// mapped file truncated in place would fault, as any mmap reader would.
	replace := func(b []byte) {
		tmp := stores[0] + ".new"
		os.WriteFile(tmp, b, 0o644)
		os.Rename(tmp, stores[0])
	}
	for name, damage := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)-20] },
		"mask byte": func(b []byte) []byte { c := slices.Clone(b); c[8+4*len(ref.Train[0].IDs)] = 7; return c },
		"offset":    func(b []byte) []byte { c := slices.Clone(b); c[len(c)-40] ^= 0x55; return c },
		"empty":     func([]byte) []byte { return nil },
	} {
		replace(damage(good))
		if _, _, err := openStore(stores[0]); err == nil {
			t.Errorf("%s: damaged store accepted", name)
		}
		ds, err := Load(data, tok, LoadOptions{CacheDir: cache})
		if err != nil || ds.FromCache || !sameExamples(ds.Train, ref.Train) {
			t.Errorf("%s: Load past a damaged cache: %v (from cache %v)", name, err, ds != nil && ds.FromCache)
		}
		replace(good)
	}
	again, err := Load(data, tok, LoadOptions{CacheDir: cache})
	if err != nil || !again.FromCache || !sameExamples(again.Train, ref.Train) {
		t.Errorf("cache not reused: %v", err)
	}
}

// TestJSONLMatchesParquet: LlamaFactory's chat demo as JSONL (content as
// text parts, loss weights) and as Parquet (plain messages) give the same
// examples and masks.
func TestJSONLMatchesParquet(t *testing.T) {
	tok, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Load(testassets.Path(t, "datasets/llamafactory/v1_sft_demo.jsonl"), tok, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(testassets.Path(t, "datasets/llamafactory/v1_sft_demo.messages.parquet"), tok, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Train) != 500 || !sameExamples(a.Train, b.Train) {
		t.Errorf("JSONL (%d examples, %d tokens) and Parquet (%d, %d) differ", len(a.Train), a.Tokens, len(b.Train), b.Tokens)
	}
}

// TestStaleStoresRemoved: an unfinished store a killed run left behind more
// than a day ago is removed by the next Load; a recent one is left alone.
func TestStaleStoresRemoved(t *testing.T) {
	tok, data, cache := storeFixture(t, `{"text":"one two three"}`+"\n")
	os.MkdirAll(cache, 0o755)
	stale, fresh := filepath.Join(cache, ".lowrank-tokens-1"), filepath.Join(cache, ".lowrank-tokens-2")
	os.WriteFile(stale, []byte("x"), 0o644)
	os.WriteFile(fresh, []byte("x"), 0o644)
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := Load(data, tok, LoadOptions{CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale store left behind")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("recent store removed")
	}
}

// storeFixture returns the Qwen3 tokenizer, a JSONL file holding jsonl in a
// temporary directory, and a token cache directory beside it (not created).
func storeFixture(t *testing.T, jsonl string) (tok *tokenizer.Tokenizer, data, cache string) {
	t.Helper()
	tok, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data = filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(data, []byte(jsonl), 0o644); err != nil {
		t.Fatal(err)
	}
	return tok, data, filepath.Join(dir, "cache")
}
