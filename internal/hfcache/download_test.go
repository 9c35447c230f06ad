package hfcache

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeHub serves a repository as the hub does: the revision API, HEAD on
// resolve with the hub's headers, and GET redirected to a file store on
// another host (with Range support). cut > 0 drops the first GET of the
// weights after that many bytes.
type fakeHub struct {
	files   map[string][]byte
	commit  string
	gets    atomic.Int32
	ranges  atomic.Int32 // GETs that asked for a range
	cut     int
	store   *httptest.Server
	hub     *httptest.Server
	corrupt bool
}

func gitSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newFakeHub(t *testing.T) *fakeHub {
	f := &fakeHub{commit: strings.Repeat("ab", 20), files: map[string][]byte{
		"config.json": []byte(`{"a": 1}`), "tokenizer.json": []byte(`{"model": {}}`),
		"model.safetensors": []byte(strings.Repeat("weights!", 5000)), "pytorch_model.bin": []byte("no"), "README.md": []byte("# hi"),
	}}
	f.store = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		data := f.files[name]
		if f.corrupt {
			data = append([]byte("X"), data[1:]...)
		}
		f.gets.Add(1)
		if r.Header.Get("Range") != "" {
			f.ranges.Add(1)
		}
		http.ServeContent(w, r, name, time.Time{}, strings.NewReader(string(data)))
	}))
	t.Cleanup(f.store.Close)
	f.hub = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/models/org/private/revision/main":
			w.Header().Set("X-Error-Code", "RepoNotFound")
			w.WriteHeader(401)
		case r.URL.Path == "/api/models/org/gated/revision/main":
			w.Header().Set("X-Error-Code", "GatedRepo")
			w.WriteHeader(403)
		case r.URL.Path == "/api/models/org/model/revision/nope":
			w.Header().Set("X-Error-Code", "RevisionNotFound")
			w.WriteHeader(404)
		case strings.HasPrefix(r.URL.Path, "/api/models/org/model/revision/"):
			var sib []string
			for n := range f.files {
				sib = append(sib, fmt.Sprintf(`{"rfilename": %q}`, n))
			}
			fmt.Fprintf(w, `{"sha": %q, "siblings": [%s]}`, f.commit, strings.Join(sib, ","))
		case strings.HasPrefix(r.URL.Path, "/org/model/resolve/"+f.commit+"/"):
			name := strings.TrimPrefix(r.URL.Path, "/org/model/resolve/"+f.commit+"/")
			data, ok := f.files[name]
			if !ok {
				w.Header().Set("X-Error-Code", "EntryNotFound")
				w.WriteHeader(404)
				return
			}
			w.Header().Set("X-Repo-Commit", f.commit)
			if strings.HasSuffix(name, ".safetensors") { // LFS: the sha256, redirected to the store
				w.Header().Set("X-Linked-Etag", `"`+sha(data)+`"`)
				w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
				w.Header().Set("ETag", `"`+gitSHA1([]byte("pointer"))+`"`)
				if r.Method == "GET" && f.cut > 0 && f.gets.Load() == 0 {
					f.gets.Add(1)
					w.Header().Set("Content-Length", fmt.Sprint(len(data)))
					w.WriteHeader(200)
					w.Write(data[:f.cut])
					return // the connection drops
				}
				http.Redirect(w, r, f.store.URL+"/"+name, http.StatusFound)
				return
			}
			w.Header().Set("ETag", `"`+gitSHA1(data)+`"`)
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			if r.Method == "GET" {
				w.Write(data)
			}
		default:
			w.WriteHeader(404)
		}
	}))
	t.Cleanup(f.hub.Close)
	return f
}

func (f *fakeHub) client(t *testing.T) *Client {
	return &Client{Endpoint: f.hub.URL, Cache: t.TempDir(), HTTP: &http.Client{}, Retries: 2}
}

// TestPull: the files training needs land in the layout huggingface_hub
// writes and Resolve reads; a second pull downloads nothing; a dropped
// connection resumes; a corrupt download is refused; the hub's error codes
// become sentences.
func TestPull(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := newFakeHub(t)
	c := f.client(t)
	snap, err := c.Pull(context.Background(), "org/model", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config.json", "tokenizer.json", "model.safetensors"} {
		got, err := os.ReadFile(filepath.Join(snap, name))
		if err != nil || string(got) != string(f.files[name]) {
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
	if ref, _ := os.ReadFile(filepath.Join(repo, "refs", "main")); string(ref) != f.commit {
		t.Errorf("refs/main = %q", ref)
	}
	if _, err := os.Stat(filepath.Join(repo, "blobs", sha(f.files["model.safetensors"]))); err != nil {
		t.Error("the weights' blob is not named by its sha256")
	}
	t.Setenv("HF_HUB_CACHE", c.Cache)
	if got, err := Resolve("org/model"); err != nil || got != snap {
		t.Errorf("Resolve after a pull: %s, %v", got, err)
	}
	before := f.gets.Load()
	if _, err := c.Pull(context.Background(), "org/model", "main"); err != nil || f.gets.Load() != before {
		t.Errorf("a second pull downloaded again (%v)", err)
	}

	// A connection dropped after 1000 bytes: the next attempt resumes.
	f2 := newFakeHub(t)
	f2.cut = 1000
	c2 := f2.client(t)
	if snap, err := c2.Pull(context.Background(), "org/model", ""); err != nil {
		t.Fatal(err)
	} else if got, _ := os.ReadFile(filepath.Join(snap, "model.safetensors")); string(got) != string(f2.files["model.safetensors"]) || f2.ranges.Load() != 1 {
		t.Errorf("the resumed download differs, or did not resume (%d range requests)", f2.ranges.Load())
	}

	// Bytes that do not hash to the ETag never take the blob's place.
	f3 := newFakeHub(t)
	f3.corrupt = true
	c3 := f3.client(t)
	if _, err := c3.Pull(context.Background(), "org/model", ""); err == nil || !strings.Contains(err.Error(), "hash to") {
		t.Errorf("a corrupt download: %v", err)
	}
	blobs := filepath.Join(c3.Cache, "models--org--model", "blobs")
	if _, err := os.Stat(filepath.Join(blobs, sha(f3.files["model.safetensors"]))); err == nil {
		t.Error("the corrupt download took the weights' place")
	}
	if m, _ := filepath.Glob(filepath.Join(blobs, "*.incomplete")); len(m) != 0 {
		t.Errorf("left %v", m)
	}

	for _, cs := range []struct{ id, rev, want string }{
		{"org/private", "", "set HF_TOKEN"}, {"org/gated", "", "is gated"}, {"org/model", "nope", `no revision "nope"`},
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
	f := newFakeHub(t)
	c := f.client(t)
	t.Setenv("HF_HUB_CACHE", c.Cache)
	t.Setenv("HF_HUB_OFFLINE", "")
	calls := 0
	Download = func(ctx context.Context, id, rev string) (string, error) { calls++; return c.Pull(ctx, id, rev) }
	t.Cleanup(func() { Download = nil })
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
	f := newFakeHub(t)
	c := f.client(t)
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
	if got, err := os.ReadFile(filepath.Join(snap, "model.safetensors")); err != nil || string(got) != string(f.files["model.safetensors"]) {
		t.Errorf("after two concurrent pulls: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(c.Cache, "models--org--model", "blobs", "*.incomplete")); len(m) != 0 {
		t.Errorf("left %v", m)
	}
	if _, err := c.Pull(context.Background(), "org/model", "v1.0"); err != nil {
		t.Fatal(err)
	}
	if ref, _ := os.ReadFile(filepath.Join(c.Cache, "models--org--model", "refs", "v1.0")); string(ref) != f.commit {
		t.Errorf("refs/v1.0 = %q", ref)
	}
	if s, err := c.Pull(context.Background(), "org/model", f.commit); err != nil || filepath.Base(s) != f.commit {
		t.Errorf("by commit: %s, %v", s, err)
	}
}
