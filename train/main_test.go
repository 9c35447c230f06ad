package train

import (
	"os"
	"testing"
)

// TestMain points the token cache ("auto") at a temporary directory, so
// tests never write into the user's cache.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lowrank-test-cache-*")
	if err != nil {
		panic(err)
	}
	os.Setenv("LOWRANK_CACHE", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
