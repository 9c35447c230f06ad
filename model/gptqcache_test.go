package model

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lowrank/lowrank/internal/testassets"
)

// TestGPTQCache: a GPTQ load with a cache directory stores the base, and the
// same load again reads it back (same weights, notes and tuning report);
// other options miss; a damaged file is said to be ignored, the base is
// computed again and the file rewritten; unfinished files a day old go.
func TestGPTQCache(t *testing.T) {
	dir := testassets.Path(t, "models/stories260K/hf")
	cache := t.TempDir()
	samples := 256
	if testing.Short() {
		samples = 48 // sampling token by token is slow under emulation
	}
	load := func(seed uint64) *Model {
		o := BaseOptions("q4_0", samples, 1, seed)
		o.CacheDir = cache
		m, err := Load(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	// An unfinished file a killed process left a day ago, and one just begun.
	stale, fresh := filepath.Join(cache, ".tmp-stale"), filepath.Join(cache, ".tmp-fresh")
	for _, f := range []string{stale, fresh} {
		if err := os.WriteFile(f, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(stale, time.Now().Add(-48*time.Hour), time.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	first := load(3)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a day-old unfinished file was left: %v", err)
	}
	if err := os.Remove(fresh); err != nil {
		t.Errorf("a recent unfinished file was removed: %v", err)
	}
	if first.BaseCache == nil || first.BaseCache.Hit || first.BaseCache.Ignored != "" {
		t.Fatalf("first load: cache %+v", first.BaseCache)
	}
	if _, err := os.Stat(first.BaseCache.File); err != nil {
		t.Fatalf("no cache file: %v", err)
	}
	same := func(what string, m *Model) {
		t.Helper()
		if !slices.Equal(rawWeights(m), rawWeights(first)) || !slices.Equal(m.Stored, first.Stored) || *m.Tuned != *first.Tuned {
			t.Errorf("%s: the base differs from the one computed", what)
		}
	}
	again := load(3)
	if !again.BaseCache.Hit || again.BaseCache.File != first.BaseCache.File {
		t.Fatalf("second load did not read the cache: %+v", again.BaseCache)
	}
	same("read from the cache", again)
	if other := load(4); other.BaseCache.Hit || other.BaseCache.File == first.BaseCache.File {
		t.Errorf("another seed found the first seed's file: %+v", other.BaseCache)
	}
	// Damaged: cut short.
	raw, err := os.ReadFile(first.BaseCache.File)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(first.BaseCache.File, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	redone := load(3)
	if redone.BaseCache.Hit || redone.BaseCache.Ignored == "" {
		t.Errorf("a damaged cache file: %+v", redone.BaseCache)
	}
	same("recomputed", redone)
	if fixed := load(3); !fixed.BaseCache.Hit {
		t.Errorf("the damaged file was not rewritten: %+v", fixed.BaseCache)
	}
	if names, _ := filepath.Glob(filepath.Join(cache, ".tmp-*")); len(names) > 0 {
		t.Errorf("temporary files left: %v", names)
	}
}
