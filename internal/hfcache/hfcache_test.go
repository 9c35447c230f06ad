package hfcache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The cache layout huggingface_hub writes: blobs by hash, snapshots of
// symlinks, refs/main holding the commit.
func TestResolve(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	repo := filepath.Join(cache, "models--org--tiny-model")
	commit := "0123456789abcdef0123456789abcdef01234567"
	for _, d := range []string{"blobs", "refs", "snapshots/" + commit, "snapshots/feedface"} {
		os.MkdirAll(filepath.Join(repo, d), 0o755)
	}
	os.WriteFile(filepath.Join(repo, "blobs", "abc"), []byte("{}"), 0o644)
	os.Symlink("../../blobs/abc", filepath.Join(repo, "snapshots", commit, "config.json"))
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit+"\n"), 0o644)

	for ref, want := range map[string]string{
		"org/tiny-model":          filepath.Join(repo, "snapshots", commit),
		"org/tiny-model@main":     filepath.Join(repo, "snapshots", commit),
		"org/tiny-model@feedface": filepath.Join(repo, "snapshots", "feedface"),
		"not/../an-id":            "not/../an-id", // not an id: unchanged
	} {
		got, err := Resolve(ref)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if raw, err := os.ReadFile(filepath.Join(must(Resolve("org/tiny-model")), "config.json")); err != nil || string(raw) != "{}" {
		t.Errorf("config.json through the snapshot symlink: %q %v", raw, err)
	}
	for _, ref := range []string{"org/other-model", "org/tiny-model@v2"} {
		if _, err := Resolve(ref); err == nil || !strings.Contains(err.Error(), "lowrank pull") || !strings.Contains(err.Error(), cache) {
			t.Errorf("Resolve(%q): %v", ref, err)
		}
	}
	// Shaped like a hub name but not one, and no such path: an error that
	// says both, never a request.
	for _, ref := range []string{"org/na me", "org/name@", "org/x:", "org/-x"} {
		if _, err := Resolve(ref); err == nil || !strings.Contains(err.Error(), "no such file or directory, and not a hub name") {
			t.Errorf("Resolve(%q): %v", ref, err)
		}
	}
	// An existing local path that looks like an id is the path.
	local := filepath.Join(t.TempDir(), "org")
	os.MkdirAll(filepath.Join(local, "tiny-model"), 0o755)
	t.Chdir(filepath.Dir(local))
	if got, err := Resolve("org/tiny-model"); err != nil || got != "org/tiny-model" {
		t.Errorf("local directory: %q %v", got, err)
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
