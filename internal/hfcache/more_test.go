package hfcache

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/hfcache/hubtest"
)

// TestToken: a gated repository without a token, with a token not granted
// access, with a token the hub does not know, and with a good one; the
// token's sources in huggingface_hub's order.
func TestToken(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := hubtest.New(t)
	c := client(t, f)
	for tok, want := range map[string]string{"": "set HF_TOKEN to a token", "hf_nope": "has not been granted", "hf_bad": "refuses the token"} {
		c.Token = tok
		if _, err := c.Pull(context.Background(), "org/gated", ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("token %q: %v, want %q", tok, err, want)
		}
	}
	c.Token = "hf_good"
	if snap, err := c.Pull(context.Background(), "org/gated", ""); err != nil {
		t.Fatal(err)
	} else if _, err := os.Stat(filepath.Join(snap, "model.safetensors")); err != nil {
		t.Error(err)
	}

	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "token"), []byte("hf_home\n"), 0o600)
	os.WriteFile(filepath.Join(home, "other"), []byte("hf_path\n"), 0o600)
	t.Setenv("HF_HOME", home)
	for _, cs := range []struct{ env, path, want string }{
		{"hf_env", filepath.Join(home, "other"), "hf_env"}, {"", filepath.Join(home, "other"), "hf_path"}, {"", "", "hf_home"},
	} {
		t.Setenv("HF_TOKEN", cs.env)
		t.Setenv("HF_TOKEN_PATH", cs.path)
		if got := NewClient().Token; got != cs.want {
			t.Errorf("HF_TOKEN=%q HF_TOKEN_PATH=%q: token %q, want %q", cs.env, cs.path, got, cs.want)
		}
	}
}

// TestDroppedConnection: a connection that drops on every attempt ends in
// one message saying so, keeping the bytes it has; the next run resumes
// from them with a Range request and ends with the verified file.
func TestDroppedConnection(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := hubtest.New(t)
	f.Cut, f.CutAlways = 1000, true
	c := client(t, f)
	_, err := c.Pull(context.Background(), "org/model", "")
	if err == nil || !strings.Contains(err.Error(), "the connection dropped 3 times; run again to resume") || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("got %v", err)
	}
	part := filepath.Join(c.Cache, "models--org--model", "blobs", hubtest.SHA256(f.Files["model.safetensors"])+".incomplete")
	if st, err := os.Stat(part); err != nil || st.Size() == 0 {
		t.Fatalf("the partial download was not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Cache, "models--org--model", "snapshots", f.Commit, "model.safetensors")); err == nil {
		t.Fatal("a partial file is in the snapshot")
	}
	f.CutAlways, f.Cut = false, 0
	snap, err := c.Pull(context.Background(), "org/model", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(snap, "model.safetensors")); string(got) != string(f.Files["model.safetensors"]) || f.Ranges.Load() == 0 {
		t.Errorf("the resumed file differs, or was not resumed (%d range requests)", f.Ranges.Load())
	}
}

// TestFullDisk: on a disk too small (a 16 KiB tmpfs), a download is
// refused before it starts when the hub says the size, and stops with a
// message naming the disk when the size was wrong; nothing half-written
// is in the snapshot.
func TestFullDisk(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	f := hubtest.New(t)
	c := client(t, f)
	c.Cache = dir
	// One file at a time here, so that the weights' free-space check is
	// the first to fail (in parallel, the small files can fill the 16 KiB
	// first and another file's check reports the full disk).
	c.Parallel = 1
	_, err := c.Pull(context.Background(), "org/model", "")
	c.Parallel = 0
	if err == nil || !strings.Contains(err.Error(), "needs 39.1 KiB") || !strings.Contains(err.Error(), "HF_HUB_CACHE") {
		t.Errorf("before the download: %v", err)
	}
	f.SizeLie = true
	_, err = c.Pull(context.Background(), "org/model", "")
	// (The disk is full, or, files fetched in parallel, the next file's
	// free-space check sees it full first.)
	if err == nil || !(strings.Contains(err.Error(), "is full") || strings.Contains(err.Error(), "has 0 bytes free")) || !strings.Contains(err.Error(), dir) || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("a disk that fills during the download: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "models--org--model", "snapshots", f.Commit, "model.safetensors")); err == nil {
		t.Error("a partial file is in the snapshot")
	}
}

// TestProgress: the last report counts every file and byte fetched.
func TestProgress(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := hubtest.New(t)
	c := client(t, f)
	var last Progress
	c.Progress = func(p Progress) { last = p }
	if _, err := c.Pull(context.Background(), "org/model", ""); err != nil {
		t.Fatal(err)
	}
	want := int64(len(f.Files["config.json"]) + len(f.Files["tokenizer.json"]) + len(f.Files["model.safetensors"]))
	if !last.Finished || last.Done != 3 || last.Files != 3 || last.Bytes != want || last.Total != want {
		t.Errorf("last progress %+v, want 3 files and %d bytes", last, want)
	}
}

// TestPullGGUF: org/name:TAG picks one GGUF file as llama.cpp's -hf does
// (by quantization, any case, or by file name), never a vision projector;
// a split model, an unknown tag and a repository of GGUF only (asked
// without a tag) say what there is.
func TestPullGGUF(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := hubtest.New(t)
	files := map[string][]byte{"README.md": []byte("hi"), "config.json": []byte("{}")}
	for _, n := range []string{"tiny-Q8_0.gguf", "tiny-Q4_K_M.gguf", "mmproj-tiny-f16.gguf", "big-Q2_K-00001-of-00002.gguf", "big-Q2_K-00002-of-00002.gguf", "sub/tiny.F16.gguf"} {
		files[n] = []byte("GGUF" + n)
	}
	f.Repos["models/org/tiny-GGUF"] = files
	c := client(t, f)
	for tag, want := range map[string]string{"Q8_0": "tiny-Q8_0.gguf", "q4_k_m": "tiny-Q4_K_M.gguf", "tiny-Q4_K_M.gguf": "tiny-Q4_K_M.gguf",
		"F16": "sub/tiny.F16.gguf", "mmproj-tiny-f16.gguf": "mmproj-tiny-f16.gguf"} {
		got, err := c.PullGGUF(context.Background(), "org/tiny-GGUF", "", tag)
		if err != nil || !strings.HasSuffix(filepath.ToSlash(got), "/"+want) {
			t.Errorf("tag %s: %s, %v; want %s", tag, got, err, want)
		}
	}
	for tag, want := range map[string]string{"Q2_K": "split into 2 files", "Q5_K_M": "its tags are F16, Q2_K, Q4_K_M, Q8_0", "K_M": "its tags are"} {
		if _, err := c.PullGGUF(context.Background(), "org/tiny-GGUF", "", tag); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tag %s: %v, want %q", tag, err, want)
		}
	}
	if _, err := c.Pull(context.Background(), "org/tiny-GGUF", ""); err == nil || !strings.Contains(err.Error(), "org/tiny-GGUF:TAG") {
		t.Errorf("no tag: %v", err)
	}
	f.Repos["models/org/bin-only"] = map[string][]byte{"config.json": []byte("{}"), "pytorch_model.bin": []byte("pickle")}
	if _, err := c.Pull(context.Background(), "org/bin-only", ""); err == nil || !strings.Contains(err.Error(), "org/bin-only@main has no safetensors weights") {
		t.Errorf("a repository of .bin weights: %v", err)
	}
	if _, ok := f.Fetched.Load("models/org/tiny-GGUF/-/big-Q2_K-00001-of-00002.gguf"); ok {
		t.Error("a refused shard was downloaded")
	}

	// Resolve: by tag from the cache, then downloading what it lacks.
	t.Setenv("HF_HUB_CACHE", c.Cache)
	if got, err := Resolve("org/tiny-GGUF:q8_0"); err != nil || filepath.Base(got) != "tiny-Q8_0.gguf" {
		t.Errorf("Resolve from the cache: %s, %v", got, err)
	}
	if _, err := Resolve("org/tiny-GGUF:Q6_K"); err == nil || !strings.Contains(err.Error(), "lowrank pull org/tiny-GGUF:Q6_K") {
		t.Errorf("an uncached tag, offline: %v", err)
	}
	f.Repos["models/org/tiny-GGUF"]["tiny-Q6_K.gguf"] = []byte("GGUF6")
	Hub = func() *Client { return c }
	t.Cleanup(func() { Hub = nil })
	if got, err := Resolve("org/tiny-GGUF:Q6_K"); err != nil || filepath.Base(got) != "tiny-Q6_K.gguf" {
		t.Errorf("Resolve downloading: %s, %v", got, err)
	}
}

// TestPullDataset: a dataset's Parquet files for the split and its
// validation split (never the other splits, nor its other files); a
// repository stored as JSON Lines read from the hub's Parquet conversion;
// configurations; a split it lacks; the cache read back offline.
func TestPullDataset(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := hubtest.New(t)
	f.Repos["datasets/org/ds"] = map[string][]byte{"README.md": []byte("# ds"), "data/train-00000-of-00002.parquet": []byte("PAR1 t0"),
		"data/train-00001-of-00002.parquet": []byte("PAR1 t1"), "data/validation-00000-of-00001.parquet": []byte("PAR1 v"), "data/test-00000-of-00001.parquet": []byte("PAR1 x")}
	f.Repos["datasets/org/jsonds"] = map[string][]byte{"data.jsonl": []byte(`{"text": "hi"}`)}
	f.Repos["datasets/org/jsonds@refs/convert/parquet"] = map[string][]byte{"default/train/0000.parquet": []byte("PAR1 ct"), "default/test/0000.parquet": []byte("PAR1 cx")}
	f.Repos["datasets/org/multi"] = map[string][]byte{"a.csv": []byte("x\n1\n")}
	f.Repos["datasets/org/multi@refs/convert/parquet"] = map[string][]byte{"en/train/0000.parquet": []byte("PAR1 en"), "fr/train/0000.parquet": []byte("PAR1 fr")}
	c := client(t, f)
	t.Setenv("HF_HUB_CACHE", c.Cache)
	Hub = func() *Client { return c }
	t.Cleanup(func() { Hub = nil; dsSeen, dsAll = map[string]resolved{}, map[string]resolved{} })
	names := func(root string, files []string) []string {
		var out []string
		for _, p := range files {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		slices.Sort(out)
		return out
	}
	if _, _, err := Dataset("hf://datasets/org/multi", ""); err == nil || !strings.Contains(err.Error(), "several configurations (en, fr): pick one as hf://datasets/org/multi@~parquet/CONFIG") {
		t.Errorf("several configurations: %v", err)
	}
	for _, cs := range []struct{ ref, split, want string }{
		{"hf://datasets/org/ds", "", "data/train-00000-of-00002.parquet data/train-00001-of-00002.parquet data/validation-00000-of-00001.parquet"},
		{"hf://datasets/org/ds", "test", "data/test-00000-of-00001.parquet data/validation-00000-of-00001.parquet"},
		{"hf://datasets/org/jsonds", "", "train/0000.parquet"},
		{"hf://datasets/org/multi@~parquet/fr", "", "train/0000.parquet"},
	} {
		root, files, err := Dataset(cs.ref, cs.split)
		if err != nil {
			t.Errorf("%s split %q: %v", cs.ref, cs.split, err)
			continue
		}
		if got := strings.Join(names(root, files), " "); got != cs.want {
			t.Errorf("%s split %q: %s, want %s", cs.ref, cs.split, got, cs.want)
		}
		for _, p := range files {
			if _, err := os.Stat(p); err != nil {
				t.Error(err)
			}
		}
	}
	if _, ok := f.Fetched.Load("datasets/org/ds/-/README.md"); ok {
		t.Error("README.md was downloaded")
	}
	if ref, err := os.ReadFile(filepath.Join(c.Cache, "datasets--org--jsonds", "refs", "refs", "convert", "parquet")); err != nil || string(ref) != hubtest.CommitOf("datasets/org/jsonds@refs/convert/parquet") {
		t.Errorf("refs/refs/convert/parquet: %q %v", ref, err)
	}
	for ref, want := range map[string]string{"hf://datasets/org/ds@nope": `no revision "nope"`,
		"hf://datasets/org/nothere": "no such repository", "hf://datasets/org": "hf://datasets/ORG/NAME", "hf://datasets/org/ds/../x": "not a hub dataset name", "hf://datasets/org/ds@": "not a hub dataset name"} {
		if _, _, err := Dataset(ref, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", ref, err, want)
		}
	}
	if _, _, err := Dataset("hf://datasets/org/jsonds", "validation"); err == nil || !strings.Contains(err.Error(), `no split "validation": its splits are test, train`) {
		t.Errorf("a split it lacks: %v", err)
	}

	// From a fresh process's point of view (nothing remembered), offline.
	dsSeen, dsAll = map[string]resolved{}, map[string]resolved{}
	t.Setenv("HF_HUB_OFFLINE", "1")
	gets := f.Gets.Load()
	if root, files, err := Dataset("hf://datasets/org/jsonds", ""); err != nil || strings.Join(names(root, files), " ") != "train/0000.parquet" {
		t.Errorf("offline from the cache: %v %v", files, err)
	}
	if _, _, err := Dataset("hf://datasets/org/other", ""); err == nil || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Errorf("offline, not cached: %v", err)
	}
	if f.Gets.Load() != gets {
		t.Error("offline touched the network")
	}
}

// TestRenamed: a renamed repository's old name still downloads: the hub
// answers it with relative redirects (API and files), which are followed,
// while the cross-host redirect to the file store is still not taken for
// metadata. The files land under the name asked for, as huggingface_hub
// puts them.
func TestRenamed(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "")
	f := hubtest.New(t)
	f.Renamed = map[string]string{"models/org/old-name": "models/org/model"}
	c := client(t, f)
	snap, err := c.Pull(context.Background(), "org/old-name", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.Cache, "models--org--old-name", "snapshots", f.Commit); snap != want {
		t.Errorf("snapshot %s, want %s", snap, want)
	}
	for n, b := range f.Files {
		if n == "pytorch_model.bin" || n == "README.md" {
			continue
		}
		if got, err := os.ReadFile(filepath.Join(snap, n)); err != nil || string(got) != string(b) {
			t.Errorf("%s: %v", n, err)
		}
	}
	if f.StoreHeads.Load() != 0 {
		t.Errorf("%d HEADs reached the file store", f.StoreHeads.Load())
	}
}
