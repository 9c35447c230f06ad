// Package hubtest is a Hugging Face hub on a local HTTP server, for tests
// of downloads: it never touches the network.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Hub serves repositories as the hub does (huggingface_hub's
// file_download.py and its tests are what it follows): the revision API
// (/api/{models,datasets}/ORG/NAME/revision/REV), HEAD on resolve with the
// hub's headers (X-Repo-Commit, ETag, and for LFS files X-Linked-Etag and
// X-Linked-Size with a 302 to a file store on another host, which serves
// ranges), X-Error-Code on errors, and a gated repository that wants a
// token. cut > 0 drops the first GET of an LFS file after that many
// bytes; cutAlways drops every one.
type Hub struct {
	Files      map[string][]byte            // org/model at main
	Repos      map[string]map[string][]byte // "kind/id" or "kind/id@rev": other repositories
	Commit     string                       // org/model's
	Gets       atomic.Int32                 // GETs of files
	Ranges     atomic.Int32                 // GETs that asked for a range
	StoreHeads atomic.Int32                 // HEADs that reached the file store (should be none)
	APICalls   atomic.Int32                 // requests to the revision API
	Cut        int
	CutAlways  bool
	SizeLie    bool // X-Linked-Size says 100 bytes
	Corrupt    bool // the file store flips a byte
	Store      *httptest.Server
	Server     *httptest.Server  // the hub: HF_ENDPOINT
	Fetched    sync.Map          // "kind/id/-/file" fetched from the store
	Renamed    map[string]string // "kind/old-id" → "kind/id": a renamed repository, answered by a relative 307 as the hub does
	Rate       int               // > 0: the file store sends this many bytes a second
}

// GitSHA1 is git's blob hash of b: a non-LFS file's ETag.
func GitSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256 is an LFS file's ETag.
func SHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// commitOf is a repository's (fixed, made-up) commit hash.
func CommitOf(key string) string { return GitSHA1([]byte(key)) }

// New starts a hub serving org/model (f.Files) and org/gated (the same
// files, for the token hf_good), stopped when the test ends. Add
// repositories to f.Repos before the first request.
func New(t testing.TB) *Hub {
	f := &Hub{Commit: strings.Repeat("ab", 20), Files: map[string][]byte{
		"config.json": []byte(`{"a": 1}`), "tokenizer.json": []byte(`{"model": {}}`),
		"model.safetensors": []byte(strings.Repeat("weights!", 5000)), "pytorch_model.bin": []byte("no"), "README.md": []byte("# hi"),
	}}
	f.Repos = map[string]map[string][]byte{"models/org/gated": f.Files}
	f.Store = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/-/")
		data := f.repo(key)[name]
		if f.Corrupt {
			data = append([]byte("X"), data[1:]...)
		}
		if r.Method == "HEAD" {
			f.StoreHeads.Add(1)
		}
		f.Gets.Add(1)
		f.Fetched.Store(key+"/-/"+name, true)
		if r.Header.Get("Range") != "" {
			f.Ranges.Add(1)
		}
		var out http.ResponseWriter = w
		if f.Rate > 0 {
			out = throttled{w, f.Rate}
		}
		http.ServeContent(out, r, name, time.Time{}, strings.NewReader(string(data)))
	}))
	t.Cleanup(f.Store.Close)
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f
}

// repo is the files of "kind/id" or "kind/id@rev" (nil: none).
func (f *Hub) repo(key string) map[string][]byte {
	if key == "models/org/model" {
		return f.Files
	}
	return f.Repos[key]
}

func (f *Hub) commitFor(key string) string {
	if key == "models/org/model" {
		return f.Commit
	}
	return CommitOf(key)
}

// throttled sends a response at a given rate, in 16 KiB pieces.
type throttled struct {
	http.ResponseWriter
	rate int
}

func (t throttled) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), 16<<10)
		time.Sleep(time.Duration(k) * time.Second / time.Duration(t.rate))
		m, err := t.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		t.ResponseWriter.(http.Flusher).Flush()
		b = b[k:]
	}
	return n, nil
}

func (f *Hub) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	// A renamed repository: the hub redirects its old name, API and files
	// alike, to the new one with a relative Location.
	for old, now := range f.Renamed {
		kind, oldID, _ := strings.Cut(old, "/")
		_, newID, _ := strings.Cut(now, "/")
		prefix := "/" + oldID + "/"
		if kind == "datasets" {
			prefix = "/datasets" + prefix
		}
		if rest, ok := strings.CutPrefix(p, "/api/"+kind+"/"+oldID+"/"); ok {
			w.Header().Set("Location", "/api/"+kind+"/"+newID+"/"+rest)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			w.Header().Set("Location", strings.TrimSuffix(prefix, oldID+"/")+newID+"/"+rest)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
	}
	fail := func(status int, code string) {
		if code != "" {
			w.Header().Set("X-Error-Code", code)
		}
		w.WriteHeader(status)
	}
	// The gated repository: 401 without a token, 403 with one not granted,
	// and a token the hub does not know.
	if strings.Contains(p, "org/gated") {
		switch r.Header.Get("Authorization") {
		case "Bearer hf_good":
		case "":
			fail(401, "GatedRepo")
			return
		case "Bearer hf_bad":
			w.Header().Set("X-Error-Message", "Invalid credentials in Authorization header")
			fail(401, "")
			return
		default:
			fail(403, "GatedRepo")
			return
		}
	}
	if rest, ok := strings.CutPrefix(p, "/api/"); ok {
		f.APICalls.Add(1)
		parts := strings.SplitN(rest, "/", 5) // kind, org, name, "revision", rev
		if len(parts) != 5 || parts[3] != "revision" {
			fail(404, "")
			return
		}
		rev, _ := url.PathUnescape(parts[4])
		key := parts[0] + "/" + parts[1] + "/" + parts[2]
		if f.repo(key) == nil {
			fail(401, "RepoNotFound") // as the hub answers for a missing or private repository
			return
		}
		if rev == "refs/convert/parquet" {
			key += "@" + rev
		}
		files := f.repo(key)
		if rev == "nope" || files == nil {
			fail(404, "RevisionNotFound")
			return
		}
		var sib []string
		for n := range files {
			sib = append(sib, fmt.Sprintf(`{"rfilename": %q}`, n))
		}
		fmt.Fprintf(w, `{"_id": "x", "id": %q, "sha": %q, "siblings": [%s]}`, parts[1]+"/"+parts[2], f.commitFor(key), strings.Join(sib, ","))
		return
	}
	// /[datasets/]ORG/NAME/resolve/COMMIT/FILE
	kind := "models"
	if rest, ok := strings.CutPrefix(p, "/datasets/"); ok {
		kind, p = "datasets", "/"+rest
	}
	parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 5)
	if len(parts) != 5 || parts[2] != "resolve" {
		fail(404, "")
		return
	}
	key := kind + "/" + parts[0] + "/" + parts[1]
	if f.commitFor(key+"@refs/convert/parquet") == parts[3] && f.repo(key+"@refs/convert/parquet") != nil {
		key += "@refs/convert/parquet"
	} else if f.commitFor(key) != parts[3] {
		fail(404, "RevisionNotFound")
		return
	}
	name, _ := url.PathUnescape(parts[4])
	data, ok := f.repo(key)[name]
	if !ok {
		fail(404, "EntryNotFound")
		return
	}
	w.Header().Set("X-Repo-Commit", parts[3])
	if strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".gguf") || strings.HasSuffix(name, ".parquet") {
		// LFS: the sha256, and the bytes on the file store.
		w.Header().Set("X-Linked-Etag", `"`+SHA256(data)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		if f.SizeLie {
			w.Header().Set("X-Linked-Size", "100")
		}
		w.Header().Set("ETag", `"`+GitSHA1([]byte("pointer"))+`"`)
		if r.Method == "GET" && f.Cut > 0 && (f.CutAlways || f.Gets.Load() == 0) {
			f.Gets.Add(1)
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(200)
			w.Write(data[:f.Cut])
			return // the connection drops
		}
		http.Redirect(w, r, f.Store.URL+"/"+key+"/-/"+name, http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+GitSHA1(data)+`"`)
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	if r.Method == "GET" {
		w.Write(data)
	}
}
