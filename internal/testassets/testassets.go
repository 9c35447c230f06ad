// Package testassets finds the shared test assets (real models, tokenizers,
// datasets) that tests read in place: $LOWRANK_ASSETS, or ../shared/assets
// beside the repository root. Tests that need them skip, saying why, when the
// folder is absent.
package testassets

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the assets folder or "" when it cannot be found.
func Dir() string {
	if d := os.Getenv("LOWRANK_ASSETS"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			a := filepath.Join(d, "..", "shared", "assets")
			if st, err := os.Stat(a); err == nil && st.IsDir() {
				return a
			}
			return ""
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Path returns the asset at rel (slash-separated), or skips the test when the
// assets folder or the file is absent.
func Path(t testing.TB, rel string) string {
	t.Helper()
	d := Dir()
	if d == "" {
		t.Skip("shared test assets not found: set LOWRANK_ASSETS or place them at ../shared/assets")
	}
	p := filepath.Join(d, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("asset %s is absent: %v", rel, err)
	}
	return p
}

// RunWithTempCache runs a package's tests with the token cache
// ($LOWRANK_CACHE) in a temporary directory, so tests never write into the
// user's cache, and returns m.Run's code. Call it from TestMain.
func RunWithTempCache(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lowrank-test-cache-*")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	os.Setenv("LOWRANK_CACHE", dir)
	return m.Run()
}
