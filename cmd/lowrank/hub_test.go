package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/lowrank/lowrank/internal/hfcache/hubtest"
	"github.com/parquet-go/parquet-go"
)

// tinyChatTemplate is the tiny model's chat_template.jinja: tokenize --chat
// shows it was read from the cache.
const tinyChatTemplate = "{% for m in messages %}<|s|>{{ m['role'] }}: {{ m['content'] }}<|e|>{% endfor %}"

// hubRepos fills a fake hub with org/tiny (the tiny model, a chat template,
// and files a download must skip), org/tiny-GGUF (the model as GGUF, by
// lowrank export) and datasets org/stories (Parquet train and validation
// splits).
func hubRepos(t *testing.T, f *hubtest.Hub) (src, gguf string) {
	t.Helper()
	dir := t.TempDir()
	src = filepath.Join(dir, "tiny")
	writeTinyHF(t, src, "qwen2")
	os.WriteFile(filepath.Join(src, "chat_template.jinja"), []byte(tinyChatTemplate), 0o644)
	files := map[string][]byte{"README.md": []byte("# tiny"), "pytorch_model.bin": []byte("not wanted"), "onnx/model.onnx": []byte("not wanted")}
	for _, n := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} {
		b, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
	}
	f.Repos["models/org/tiny"] = files
	gguf = filepath.Join(dir, "tiny-Q8_0.gguf")
	if code, _, stderr := lowrank(t, "export", "--model", src, "--format", "gguf", "--quant", "q8_0", "--out", gguf); code != 0 {
		t.Fatalf("export gguf: %s", stderr)
	}
	g, _ := os.ReadFile(gguf)
	f.Repos["models/org/tiny-GGUF"] = map[string][]byte{"README.md": []byte("# gguf"), "tiny-Q8_0.gguf": g}
	type row struct {
		Text string `parquet:"text"`
	}
	split := func(name string, lines ...string) []byte {
		var rows []row
		for i := 0; i < 30; i++ {
			rows = append(rows, row{lines[i%len(lines)]})
		}
		p := filepath.Join(dir, name+".parquet")
		if err := parquet.WriteFile(p, rows); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		return b
	}
	f.Repos["datasets/org/stories"] = map[string][]byte{"README.md": []byte("# stories"),
		"data/train-00000-of-00001.parquet":      split("train", "the robot counted the stars.", "the cat painted the clouds."),
		"data/validation-00000-of-00001.parquet": split("validation", "the robot painted the stars."),
		"data/test-00000-of-00001.parquet":       split("test", "a test split no command here should read."),
	}
	return src, gguf
}

// TestHubEndToEnd: lowrank, as a user runs it, downloads a model, a GGUF
// file by tag and a dataset from a hub (a local one) into an empty cache,
// training as it goes; then a fresh process with HF_HUB_OFFLINE=1 and no
// hub at all runs every command that takes a model from that cache.
func TestHubEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("lowrank processes: skipped with -short (the emulated arm64 run, where this binary cannot run itself)")
	}
	f := hubtest.New(t)
	src, gguf := hubRepos(t, f)
	dir := t.TempDir()
	cache := filepath.Join(dir, "hub")
	t.Setenv("LOWRANK_TEST_HUB", "1") // TestMain: downloads on, as in main
	t.Setenv("HF_ENDPOINT", f.Server.URL)
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HOME", dir)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	run := filepath.Join(dir, "run")
	code, _, stderr := lowrank(t, "train", "--model", "org/tiny", "--data", "hf://datasets/org/stories", "--out", run,
		"--max-steps", "3", "--batch-size", "2", "--max-seq-len", "32", "--log-every", "1")
	if code != 0 {
		t.Fatalf("train from the hub: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "val_loss") {
		t.Errorf("the validation split was not used:\n%s", stderr)
	}
	for _, n := range []string{"models/org/tiny/-/pytorch_model.bin", "models/org/tiny/-/onnx/model.onnx", "models/org/tiny/-/README.md",
		"datasets/org/stories/-/data/test-00000-of-00001.parquet", "datasets/org/stories/-/README.md"} {
		if _, ok := f.Fetched.Load(n); ok {
			t.Errorf("%s was downloaded", n)
		}
	}
	code, out, stderr := lowrank(t, "pull", "org/tiny-GGUF:Q8_0")
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), filepath.Join("snapshots", hubtest.CommitOf("models/org/tiny-GGUF"), "tiny-Q8_0.gguf")) {
		t.Fatalf("pull GGUF: exit %d, %q\n%s", code, out, stderr)
	}
	code, out, stderr = lowrank(t, "pull", "org/tiny")
	if code != 0 || strings.TrimSpace(out) != filepath.Join(cache, "models--org--tiny", "snapshots", hubtest.CommitOf("models/org/tiny")) {
		t.Fatalf("pull of a cached model: exit %d, %q\n%s", code, out, stderr)
	}

	// Another implementation of the cache layout reads what lowrank wrote.
	t.Run("scanCacheDir", func(t *testing.T) {
		repos := scanCache(t, cache)
		tiny := repos["model/org/tiny"]
		if len(tiny.Revisions) != 1 || tiny.Revisions[0].Commit != hubtest.CommitOf("models/org/tiny") || strings.Join(tiny.Revisions[0].Refs, " ") != "main" {
			t.Errorf("scanCacheDir: org/tiny %+v", tiny)
		} else {
			var names []string
			for n, blob := range tiny.Revisions[0].Files {
				names = append(names, n)
				if want := "blobs/" + etagOf(n, f.Repos["models/org/tiny"][n]); blob != want {
					t.Errorf("scanCacheDir: %s resolves to %s, want %s", n, blob, want)
				}
			}
			slices.Sort(names)
			if got := strings.Join(names, " "); got != "chat_template.jinja config.json model.safetensors tokenizer.json tokenizer_config.json" {
				t.Errorf("scanCacheDir: org/tiny holds %s", got)
			}
		}
		for _, id := range []string{"model/org/tiny-GGUF", "dataset/org/stories"} {
			if r, ok := repos[id]; !ok || len(r.Revisions) != 1 || strings.Join(r.Revisions[0].Refs, " ") != "main" {
				t.Errorf("scanCacheDir: %s %+v", id, r)
			}
		}
	})

	// Offline, with no hub to reach.
	gets := f.Gets.Load()
	f.Server.Close()
	t.Setenv("HF_HUB_OFFLINE", "1")
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1")
	everyCommand(t, dir, filepath.Join(run, "adapter"), src, gguf,
		hubCase{[]string{"train", "--model", "org/tiny", "--data", "hf://datasets/org/stories", "--out", filepath.Join(dir, "run2"), "--max-steps", "2", "--batch-size", "2", "--max-seq-len", "32"}, ""},
		hubCase{[]string{"inspect", "org/tiny-GGUF:q8_0"}, "Q8_0"})
	if f.Gets.Load() != gets {
		t.Errorf("offline runs fetched %d files", f.Gets.Load()-gets)
	}
	for _, c := range []hubCase{
		{[]string{"inspect", "org/elsewhere"}, "HF_HUB_OFFLINE"},
		{[]string{"eval", "--model", "org/tiny", "--data", "hf://datasets/org/other"}, "HF_HUB_OFFLINE"},
		{[]string{"generate", "--model", "org/tiny-GGUF:Q4_K_M", "--prompt", "x"}, "Q8_0"},
	} {
		code, _, stderr := lowrank(t, c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "goroutine") {
			t.Errorf("offline %s: exit %d, want an error naming %q:\n%s", strings.Join(c.args, " "), code, c.want, stderr)
		}
	}
	var info map[string]any
	raw, _ := os.ReadFile(filepath.Join(run, "adapter", "adapter_config.json"))
	if json.Unmarshal(raw, &info) != nil || info["base_model_name_or_path"] != "org/tiny" {
		t.Errorf("adapter_config.json base_model_name_or_path: %v, want the hub name", info["base_model_name_or_path"])
	}
}

// TestPythonCache: a cache laid out as huggingface_hub leaves it
// (testdata/hubcache, written by testdata/gen_hubcache.go from the hub's
// description of the layout: relative symlinks, refs for a branch, a tag
// and a pull request, .no_exist markers, leftover .locks, two revisions
// sharing a blob) is read as it is by every command, offline, and left as
// it was.
func TestPythonCache(t *testing.T) {
	if testing.Short() {
		t.Skip("lowrank processes: skipped with -short (the emulated arm64 run, where this binary cannot run itself)")
	}
	dir := t.TempDir()
	cache := filepath.Join(dir, "hub")
	copyTree(t, filepath.Join("testdata", "hubcache"), cache)
	before := treeOf(t, cache)
	t.Run("scanCacheDir", func(t *testing.T) {
		repos := scanCache(t, cache) // the fixture reads as the layout it claims to be
		refs := map[string]string{}
		for _, v := range repos["model/org/tiny"].Revisions {
			slices.Sort(v.Refs)
			refs[strings.Join(v.Refs, " ")] = v.Files["config.json"]
		}
		if len(refs) != 2 || refs["main"] == "" || refs["main"] != refs["v1.0"] {
			// (It lists the refs at the top of refs/ only: not refs/refs/pr/1.)
			t.Errorf("scanCacheDir: the fixture's org/tiny: %+v (want main, and v1.0, sharing config.json's blob)", refs)
		}
	})
	t.Setenv("LOWRANK_TEST_HUB", "1")
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HOME", dir)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1") // no hub: a request would fail
	t.Setenv("HF_HUB_OFFLINE", "1")
	snapshot := func(folder string) string {
		ref, err := os.ReadFile(filepath.Join(cache, folder, "refs", "main"))
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(cache, folder, "snapshots", string(ref))
	}
	local, gguf := snapshot("models--org--tiny"), filepath.Join(snapshot("models--org--tiny-GGUF"), "tiny-Q8_0.gguf")
	old, _ := os.ReadFile(filepath.Join(cache, "models--org--tiny", "refs", "v1.0"))
	run := filepath.Join(dir, "run")
	code, _, stderr := lowrank(t, "train", "--model", "org/tiny", "--data", "hf://datasets/org/stories", "--out", run,
		"--max-steps", "3", "--batch-size", "2", "--max-seq-len", "32", "--log-every", "1")
	if code != 0 || !strings.Contains(stderr, "val_loss") {
		t.Fatalf("train from a Python cache: exit %d (want a validation loss from the validation split)\n%s", code, stderr)
	}
	conv := everyCommand(t, dir, filepath.Join(run, "adapter"), local, gguf,
		hubCase{[]string{"inspect", "org/tiny@" + string(old)}, "qwen2"},
		hubCase{[]string{"inspect", "org/tiny-GGUF:tiny-Q8_0.gguf"}, "Q8_0"})
	for _, ref := range []string{"org/tiny@v1.0", "org/tiny@refs/pr/1"} { // a tag, a pull request: tokenizer_config.json's template
		if code, out, stderr := lowrank(t, "tokenize", "--model", ref, "--chat", conv); code != 0 || !strings.Contains(out, "[user] hi") {
			t.Errorf("tokenize --model %s --chat: exit %d, %q\n%s", ref, code, out, stderr)
		}
	}
	if after := treeOf(t, cache); after != before {
		t.Errorf("the cache changed:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// etagOf is the name of a file's blob: SHA-256 for LFS files, git's SHA-1
// for the others.
func etagOf(name string, b []byte) string {
	if strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".gguf") || strings.HasSuffix(name, ".parquet") {
		return hubtest.SHA256(b)
	}
	return hubtest.GitSHA1(b)
}

// hubCase is a command and what its stdout must hold.
type hubCase struct {
	args []string
	want string
}

// everyCommand runs every command that takes a model on org/tiny (and
// generate on org/tiny-GGUF:Q8_0) with the adapter ad, plus extra, in
// fresh processes, and checks what each prints: generate's text must be
// the same as from the local files (local, gguf), and merge must bring the
// tokenizer files and the chat template along. It returns the
// conversation file it wrote.
func everyCommand(t *testing.T, dir, ad, local, gguf string, extra ...hubCase) (conv string) {
	t.Helper()
	conv = filepath.Join(dir, "conv.json")
	os.WriteFile(conv, []byte(`[{"role": "user", "content": "hi"}]`), 0o644)
	merged := filepath.Join(dir, "merged")
	gen := []string{"--prompt", "the robot", "--max-tokens", "8", "--temperature", "0"}
	for _, c := range append([]hubCase{
		{[]string{"eval", "--model", "org/tiny", "--adapter", ad, "--data", "hf://datasets/org/stories", "--split", "validation", "--json"}, `"loss"`},
		{append([]string{"generate", "--model", "org/tiny", "--adapter", ad}, gen...), local},
		{append([]string{"generate", "--model", "org/tiny-GGUF:Q8_0"}, gen...), gguf},
		{[]string{"inspect", "org/tiny"}, "qwen2"},
		{[]string{"merge", "--model", "org/tiny", "--adapter", ad, "--out", merged}, ""},
		{[]string{"export", "--model", "org/tiny", "--adapter", ad, "--format", "gguf", "--out", filepath.Join(dir, "x.gguf")}, ""},
		{[]string{"tokenize", "--model", "org/tiny", "hi"}, "104 105"},
		{[]string{"tokenize", "--model", "org/tiny", "--chat", conv}, "<|s|>user: hi<|e|>"}, // chat_template.jinja
	}, extra...) {
		code, out, stderr := lowrank(t, c.args...)
		if c.args[0] == "generate" {
			local := append([]string{}, c.args...)
			local[2] = c.want
			_, c.want, _ = lowrank(t, local...)
			if c.want == "" || out != c.want {
				t.Errorf("%s: %q, from the local files %q", strings.Join(c.args, " "), out, c.want)
			}
		}
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, stdout %q, want %q\n%s", strings.Join(c.args, " "), code, out, c.want, stderr)
		}
	}
	for _, n := range []string{"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} {
		if _, err := os.Stat(filepath.Join(merged, n)); err != nil {
			t.Errorf("merge from a hub name: %v", err)
		}
	}
	return conv
}

// copyTree copies a folder, keeping symlinks as symlinks.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// treeOf lists a folder: paths, sizes, symlink targets.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := d.Info()
		l, _ := os.Readlink(p)
		fmt.Fprintf(&b, "%s %d %s\n", rel, info.Size(), l)
		return nil
	})
	return b.String()
}

// scanned is a repository as @huggingface/hub's scanCacheDir reads a cache.
type scanned struct {
	ID        string `json:"id"`
	Revisions []struct {
		Commit string            `json:"commit"`
		Refs   []string          `json:"refs"`
		Files  map[string]string `json:"files"` // name → the blob it resolves to, from the repository folder
	} `json:"revisions"`
}

// scanCache reads a cache with another implementation of its layout,
// @huggingface/hub's scanCacheDir (the JavaScript port of huggingface_hub's
// scan_cache_dir): the repositories, their revisions and refs, and where
// each snapshot's top-level files resolve. It fails on the warnings the
// scan reports (a ref to a missing snapshot, a broken link, a bad folder).
func scanCache(t *testing.T, cache string) map[string]scanned {
	t.Helper()
	out := nodeScript(t, "@huggingface/hub", `
import { scanCacheDir } from "@huggingface/hub";
import { relative, dirname, basename } from "node:path";
const r = await scanCacheDir(process.argv[2]);
if (r.warnings.length) { console.error(r.warnings.map(String).join("\n")); process.exit(1); }
console.log(JSON.stringify(r.repos.map((repo) => ({
  id: repo.id.type + "/" + repo.id.name,
  revisions: repo.revisions.map((v) => ({ commit: v.commitOid, refs: v.refs,
    files: Object.fromEntries(v.files.map((f) => [basename(f.path), relative(repo.path, f.blob.path)])) })),
}))));
`, cache)
	var repos []scanned
	if err := json.Unmarshal([]byte(out), &repos); err != nil {
		t.Fatalf("scanCacheDir: %v\n%s", err, out)
	}
	m := map[string]scanned{}
	for _, r := range repos {
		m[r.ID] = r
	}
	return m
}

// TestPullKilled: a pull killed with SIGKILL mid-file leaves nothing that
// passes for the file; the next pull resumes the partial download with a
// range request and ends with a verified model every command can load.
func TestPullKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("lowrank processes: skipped with -short (the emulated arm64 run, where this binary cannot run itself)")
	}
	f := hubtest.New(t)
	hubRepos(t, f)
	f.Rate = 128 << 10 // the 420 KiB weights take about 3 s
	cache := filepath.Join(t.TempDir(), "hub")
	t.Setenv("LOWRANK_TEST_HUB", "1")
	t.Setenv("HF_ENDPOINT", f.Server.URL)
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	weights := f.Repos["models/org/tiny"]["model.safetensors"]
	blob := filepath.Join(cache, "models--org--tiny", "blobs", hubtest.SHA256(weights))
	p := startLowrank(t, "pull", "org/tiny")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(blob + ".incomplete"); err == nil && st.Size() > 64<<10 {
			break
		}
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			_, stderr := p.wait()
			t.Fatalf("no partial download to interrupt:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	if code, _ := p.wait(); code != -1 {
		t.Fatalf("pull ended (%d) before the kill", code)
	}
	snap := filepath.Join(cache, "models--org--tiny", "snapshots", hubtest.CommitOf("models/org/tiny"))
	if _, err := os.Stat(filepath.Join(snap, "model.safetensors")); err == nil {
		t.Fatal("the killed pull left model.safetensors in the snapshot")
	}
	if _, err := os.Stat(blob); err == nil {
		t.Fatal("the killed pull left a blob under the final name")
	}
	ranges := f.Ranges.Load()
	code, out, stderr := lowrank(t, "pull", "org/tiny")
	if code != 0 || strings.TrimSpace(out) != snap {
		t.Fatalf("pull after the kill: exit %d %q\n%s", code, out, stderr)
	}
	if f.Ranges.Load() == ranges {
		t.Error("the second pull did not resume with a range request")
	}
	if got, err := os.ReadFile(filepath.Join(snap, "model.safetensors")); err != nil || string(got) != string(weights) {
		t.Errorf("the resumed weights differ from the hub's (%v)", err)
	}
	if _, err := os.Stat(blob + ".incomplete"); err == nil {
		t.Error("the .incomplete file is left behind")
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	if code, _, stderr := lowrank(t, "inspect", "org/tiny"); code != 0 {
		t.Errorf("inspect after the resumed pull: exit %d\n%s", code, stderr)
	}
}

// TestBarWriter: a log line written under a pull's progress bar clears the
// bar's line first and draws the bar again below it; the last report ends
// the line.
func TestBarWriter(t *testing.T) {
	var b strings.Builder
	w := &barWriter{w: &b}
	w.progress(hfcache.Progress{Repo: "org/x", Files: 2, Done: 1, Bytes: 1 << 20, Total: 4 << 20})
	bar := formatPull(hfcache.Progress{Repo: "org/x", Files: 2, Done: 1, Bytes: 1 << 20, Total: 4 << 20})
	fmt.Fprintln(w, "level=INFO msg=downloaded file=config.json")
	w.progress(hfcache.Progress{Repo: "org/x", Files: 2, Done: 2, Bytes: 4 << 20, Total: 4 << 20, Finished: true})
	fmt.Fprintln(w, "after")
	want := "\r\033[K" + bar + "\r\033[Klevel=INFO msg=downloaded file=config.json\n" + bar +
		"\r\033[K" + formatPull(hfcache.Progress{Repo: "org/x", Files: 2, Done: 2, Bytes: 4 << 20, Total: 4 << 20}) + "\n\r\033[Kafter\n"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
	if !strings.Contains(bar, "[======                  ]  25% 1.0 MiB / 4.0 MiB, 1/2 files") {
		t.Errorf("bar %q", bar)
	}
}
