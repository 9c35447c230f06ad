package hfcache

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/hfcache/hubtest"
)

func client(t *testing.T, f *hubtest.Hub) *Client {
	return &Client{Endpoint: f.Server.URL, Cache: t.TempDir(), HTTP: &http.Client{}, Retries: 2}
}

// TestPull: the files training needs land in the layout huggingface_hub
// writes and Resolve reads; a second pull downloads nothing; a dropped
// connection resumes; a corrupt download is refused; the hub's error codes
// become sentences.
func TestPull(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := hubtest.New(t)
	c := client(t, f)
	snap, err := c.Pull(context.Background(), "org/model", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config.json", "tokenizer.json", "model.safetensors"} {
		got, err := os.ReadFile(filepath.Join(snap, name))
		if err != nil || string(got) != string(f.Files[name]) {
			t.Errorf("%s: %v", name, err)
		}
		if fi, err := os.Lstat(filepath.Join(snap, name)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is not a symlink into blobs/", name)
		}
	}
	for _, name := range []string{"pytorch_model.bin", "README.md"} {
		if _, err := os.Stat(filepath.Join(snap, name)); err == nil {
			t.Errorf("%s was downloaded", name)
		}
	}
	repo := filepath.Join(c.Cache, "models--org--model")
	if ref, _ := os.ReadFile(filepath.Join(repo, "refs", "main")); string(ref) != f.Commit {
		t.Errorf("refs/main = %q", ref)
	}
	if _, err := os.Stat(filepath.Join(repo, "blobs", hubtest.SHA256(f.Files["model.safetensors"]))); err != nil {
		t.Error("the weights' blob is not named by its sha256")
	}
	t.Setenv("HF_HUB_CACHE", c.Cache)
	if got, err := Resolve("org/model"); err != nil || got != snap {
		t.Errorf("Resolve after a pull: %s, %v", got, err)
	}
	before := f.Gets.Load()
	if _, err := c.Pull(context.Background(), "org/model", "main"); err != nil || f.Gets.Load() != before {
		t.Errorf("a second pull downloaded again (%v)", err)
	}

	// A connection dropped after 1000 bytes: the next attempt resumes.
	f2 := hubtest.New(t)
	f2.Cut = 1000
	c2 := client(t, f2)
	if snap, err := c2.Pull(context.Background(), "org/model", ""); err != nil {
		t.Fatal(err)
	} else if got, _ := os.ReadFile(filepath.Join(snap, "model.safetensors")); string(got) != string(f2.Files["model.safetensors"]) || f2.Ranges.Load() != 1 {
		t.Errorf("the resumed download differs, or did not resume (%d range requests)", f2.Ranges.Load())
	}

	// Bytes that do not hash to the ETag never take the blob's place.
	f3 := hubtest.New(t)
	f3.Corrupt = true
	c3 := client(t, f3)
	if _, err := c3.Pull(context.Background(), "org/model", ""); err == nil || !strings.Contains(err.Error(), "hash to") {
		t.Errorf("a corrupt download: %v", err)
	}
	blobs := filepath.Join(c3.Cache, "models--org--model", "blobs")
	if _, err := os.Stat(filepath.Join(blobs, hubtest.SHA256(f3.Files["model.safetensors"]))); err == nil {
		t.Error("the corrupt download took the weights' place")
	}
	if _, err := os.Stat(filepath.Join(blobs, hubtest.SHA256(f3.Files["model.safetensors"])+".incomplete")); err == nil {
		t.Error("the corrupt download was kept to resume from")
	}
	// (Files cancelled by that failure may keep their .incomplete to resume
	// from, as huggingface_hub's do.) The next pull completes them all.
	f3.Corrupt = false
	if _, err := c3.Pull(context.Background(), "org/model", ""); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(blobs, "*.incomplete")); len(m) != 0 {
		t.Errorf("left %v", m)
	}
	if f3.StoreHeads.Load() != 0 {
		t.Errorf("%d HEAD requests followed the redirect to the file store", f3.StoreHeads.Load())
	}

	for _, cs := range []struct{ id, rev, want string }{
		{"org/private", "", "set HF_TOKEN"}, {"org/gated", "", "set HF_TOKEN to a token"}, {"org/model", "nope", `no revision "nope"`},
		{"not-an-id", "", "not a hub repository id"},
	} {
		if _, err := c.Pull(context.Background(), cs.id, cs.rev); err == nil || !strings.Contains(err.Error(), cs.want) {
			t.Errorf("%s@%s: %v, want %q", cs.id, cs.rev, err, cs.want)
		}
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	if _, err := c.Pull(context.Background(), "org/model", ""); err == nil || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Errorf("offline: %v", err)
	}
}

// TestResolveDownloads: with Download set, Resolve fetches an id missing
// from the cache; with HF_HUB_OFFLINE it does not even try.
func TestResolveDownloads(t *testing.T) {
	f := hubtest.New(t)
	c := client(t, f)
	t.Setenv("HF_HUB_CACHE", c.Cache)
	t.Setenv("HF_HUB_OFFLINE", "")
	calls := 0
	Hub = func() *Client { calls++; return c }
	t.Cleanup(func() { Hub = nil })
	snap, err := Resolve("org/model")
	if err != nil || calls != 1 {
		t.Fatalf("Resolve of an uncached id: %s, %v (%d downloads)", snap, err, calls)
	}
	if _, err := os.Stat(filepath.Join(snap, "config.json")); err != nil {
		t.Error(err)
	}
	if again, err := Resolve("org/model"); err != nil || again != snap || calls != 1 {
		t.Errorf("a cached id downloaded again: %v, %d downloads", err, calls)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	if _, err := Resolve("org/other"); err == nil || calls != 1 || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Errorf("offline: %v, %d downloads", err, calls)
	}
}

// TestPullConcurrent: two pulls of one repository at once both finish and
// leave one verified copy; a revision by tag and by commit.
func TestPullConcurrent(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := hubtest.New(t)
	c := client(t, f)
	errs := make(chan error, 2)
	snaps := make(chan string, 2)
	for range 2 {
		go func() {
			s, err := c.Pull(context.Background(), "org/model", "")
			errs <- err
			snaps <- s
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	snap := <-snaps
	if got, err := os.ReadFile(filepath.Join(snap, "model.safetensors")); err != nil || string(got) != string(f.Files["model.safetensors"]) {
		t.Errorf("after two concurrent pulls: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(c.Cache, "models--org--model", "blobs", "*.incomplete")); len(m) != 0 {
		t.Errorf("left %v", m)
	}
	if _, err := c.Pull(context.Background(), "org/model", "v1.0"); err != nil {
		t.Fatal(err)
	}
	if ref, _ := os.ReadFile(filepath.Join(c.Cache, "models--org--model", "refs", "v1.0")); string(ref) != f.Commit {
		t.Errorf("refs/v1.0 = %q", ref)
	}
	if s, err := c.Pull(context.Background(), "org/model", f.Commit); err != nil || filepath.Base(s) != f.Commit {
		t.Errorf("by commit: %s, %v", s, err)
	}
}
