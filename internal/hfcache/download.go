package hfcache

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/internal/flock"
	"github.com/sourcegraph/conc/pool"
)

// Client downloads repositories from the Hugging Face hub (or a mirror)
// into the cache layout the Python tools use and read:
// models--org--name/blobs/<etag>, snapshots/<commit>/<file> symlinks to
// them, refs/<revision>, and .locks/ so that lowrank and huggingface_hub
// never write one blob at once.
type Client struct {
	Endpoint string // https://huggingface.co, or $HF_ENDPOINT
	Token    string // $HF_TOKEN, else the file $HF_TOKEN_PATH, else $HF_HOME/token
	Cache    string // Dir()
	HTTP     *http.Client
	Log      func(msg string, args ...any) // a line per file (nil: none)
	Retries  int                           // attempts per file after a dropped connection
	Parallel int                           // files downloaded at once (0: 4)
	// Progress, if set, is called while files download (at most five times
	// a second) and once when they are all done.
	Progress func(Progress)
}

// Progress is a pull's state for a progress bar.
type Progress struct {
	Repo         string
	Files, Done  int   // files to fetch, and fetched
	Bytes, Total int64 // bytes on disk, and their sum as far as known
	Finished     bool
}

// NewClient is a client configured from the environment as huggingface_hub
// configures itself.
func NewClient() *Client {
	c := &Client{Endpoint: strings.TrimRight(os.Getenv("HF_ENDPOINT"), "/"), Cache: Dir(), Retries: 3}
	if c.Endpoint == "" {
		c.Endpoint = "https://huggingface.co"
	}
	c.Token = os.Getenv("HF_TOKEN")
	if c.Token == "" {
		p := os.Getenv("HF_TOKEN_PATH")
		if p == "" {
			if home := os.Getenv("HF_HOME"); home != "" {
				p = filepath.Join(home, "token")
			} else if h, err := os.UserHomeDir(); err == nil {
				p = filepath.Join(h, ".cache", "huggingface", "token")
			}
		}
		if raw, err := os.ReadFile(p); err == nil {
			c.Token = strings.TrimSpace(string(raw))
		}
	}
	c.HTTP = &http.Client{Timeout: 0}
	return c
}

// kind is a repository type: where its API, its files and its cache folder are.
type kind struct{ api, files, dir string }

var (
	models   = kind{api: "models", files: "", dir: "models--"}
	datasets = kind{api: "datasets", files: "datasets/", dir: "datasets--"}
)

// wanted reports whether a repository file is one training needs: the
// configs, the tokenizer files and the safetensors weights (never .bin,
// .pt, ONNX or GGUF duplicates).
func wanted(name string) bool {
	switch path.Base(name) {
	case "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
		"special_tokens_map.json", "chat_template.jinja", "model.safetensors.index.json":
		return !strings.Contains(name, "/")
	}
	return strings.HasSuffix(name, ".safetensors") && !strings.Contains(name, "/")
}

// hubError reads the hub's X-Error-Code (the status alone is ambiguous:
// a private or missing repository is 401 without a token).
func (c *Client) hubError(resp *http.Response, id, rev, file string) error {
	code := resp.Header.Get("X-Error-Code")
	switch {
	case code == "GatedRepo":
		if c.Token == "" {
			return fmt.Errorf("%s is gated: accept its terms on the hub, then set HF_TOKEN to a token of that account", id)
		}
		return fmt.Errorf("%s is gated and this token's account has not been granted access: accept its terms on the hub page", id)
	case resp.StatusCode == http.StatusUnauthorized && strings.Contains(resp.Header.Get("X-Error-Message"), "Invalid credentials"):
		return fmt.Errorf("%s: the hub refuses the token (HF_TOKEN, HF_TOKEN_PATH or $HF_HOME/token): it is not valid", id)
	case code == "RepoNotFound" || (code == "" && resp.StatusCode == http.StatusUnauthorized):
		if c.Token == "" {
			return fmt.Errorf("%s: no such repository, or a private one: set HF_TOKEN (or log in with a token file) if it is yours", id)
		}
		return fmt.Errorf("%s: no such repository (or this token cannot see it)", id)
	case code == "RevisionNotFound":
		return fmt.Errorf("%s: no revision %q", id, rev)
	case code == "EntryNotFound":
		return fmt.Errorf("%s@%s: no file %s", id, rev, file)
	}
	return fmt.Errorf("%s: the hub answered %s", id, resp.Status)
}

func (c *Client) request(ctx context.Context, method, u string, header http.Header) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("User-Agent", "lowrank")
	return req, nil
}

var hexSHA = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// revision asks the hub which commit rev is and which files it holds.
func (c *Client) revision(ctx context.Context, k kind, id, rev string) (commit string, files []string, err error) {
	if !idPattern.MatchString(id) || strings.ContainsAny(id, "@:") {
		return "", nil, fmt.Errorf("%q is not a hub repository id (org/name)", id)
	}
	if Offline() {
		return "", nil, fmt.Errorf("%s: HF_HUB_OFFLINE is set: not downloading (the cache %s does not hold it)", id, c.Cache)
	}
	req, err := c.request(ctx, "GET", fmt.Sprintf("%s/api/%s/%s/revision/%s", c.Endpoint, k.api, id, url.PathEscape(rev)), nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", nil, fmt.Errorf("%s: cannot reach %s (%v): check the network, or set HF_ENDPOINT to a mirror", id, c.Endpoint, err)
	}
	var info struct {
		SHA      string `json:"sha"`
		Siblings []struct {
			Name string `json:"rfilename"`
		} `json:"siblings"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, c.hubError(resp, id, rev, "")
	}
	if err != nil || !hexSHA.MatchString(info.SHA) {
		return "", nil, fmt.Errorf("%s: the hub's answer about revision %s is not what it should be (%v)", id, rev, err)
	}
	for _, s := range info.Siblings {
		if validName(s.Name) {
			files = append(files, s.Name)
		}
	}
	sort.Strings(files) // a fixed order, whatever the hub lists
	return info.SHA, files, nil
}

// validName refuses repository file names that would leave the snapshot.
func validName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return false
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// Pull downloads the files training needs of model repository id at
// revision rev ("" is main) into the cache and returns the snapshot
// directory. Files already in the cache are not downloaded again; a
// download cut short resumes where it stopped; every file is verified
// (sha256 for LFS files, whose ETag it is, the git blob SHA-1 for the
// others) before it takes its place, so nothing half-written is taken for
// a file.
func (c *Client) Pull(ctx context.Context, id, rev string) (string, error) {
	rev = orMain(rev)
	commit, all, err := c.revision(ctx, models, id, rev)
	if err != nil {
		return "", err
	}
	var files []string
	weights := false
	for _, f := range all {
		if wanted(f) {
			files = append(files, f)
			weights = weights || strings.HasSuffix(f, ".safetensors")
		}
	}
	if !weights {
		if tags := ggufTags(all); len(tags) > 0 {
			return "", fmt.Errorf("%s@%s has no safetensors weights, only GGUF files: pick one as %s:TAG, TAG one of %s", id, rev, id, strings.Join(tags, ", "))
		}
		return "", fmt.Errorf("%s@%s has no safetensors weights (lowrank reads safetensors or a .gguf file)", id, rev)
	}
	return c.fetch(ctx, models, id, rev, commit, files)
}

// PullGGUF downloads the GGUF file of model repository id that tag names
// (a quantization such as Q4_K_M, as llama.cpp's -hf org/name:TAG, or a
// file name) and returns its path in the snapshot.
func (c *Client) PullGGUF(ctx context.Context, id, rev, tag string) (string, error) {
	rev = orMain(rev)
	commit, all, err := c.revision(ctx, models, id, rev)
	if err != nil {
		return "", err
	}
	file, err := matchGGUF(all, tag)
	if err != nil {
		return "", fmt.Errorf("%s@%s: %v", id, rev, err)
	}
	snap, err := c.fetch(ctx, models, id, rev, commit, []string{file})
	if err != nil {
		return "", err
	}
	return filepath.Join(snap, filepath.FromSlash(file)), nil
}

func orMain(rev string) string {
	if rev == "" {
		return "main"
	}
	return rev
}

// fetch downloads files of commit into the cache, a bounded number at
// once, records rev as that commit, and returns the snapshot directory.
func (c *Client) fetch(ctx context.Context, k kind, id, rev, commit string, files []string) (string, error) {
	repo := k.repoIn(c.Cache, id)
	snap := filepath.Join(repo, "snapshots", commit)
	var pr progress
	pr.p = Progress{Repo: id, Files: len(files)}
	stop := pr.report(c.Progress)
	n := c.Parallel
	if n <= 0 {
		n = 4
	}
	errs := make([]error, len(files))
	p := pool.New().WithMaxGoroutines(n).WithContext(ctx).WithCancelOnError()
	for i, f := range files {
		p.Go(func(ctx context.Context) error {
			errs[i] = c.pullFile(ctx, k, id, commit, repo, snap, f, &pr)
			if errs[i] == nil {
				pr.fileDone()
			}
			return errs[i]
		})
	}
	p.Wait()
	stop()
	// The first file's error in the files' order (the others may only be
	// the cancellation it caused), so that one message is reported.
	var cancelled error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return "", err
		}
		if err != nil && cancelled == nil {
			cancelled = err
		}
	}
	if cancelled != nil {
		return "", cancelled
	}
	if rev != commit {
		ref := filepath.Join(repo, "refs", filepath.FromSlash(rev))
		if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
			return "", err
		}
		// Through a temporary name of its own: two pulls writing one ref
		// both succeed, the last rename winning, each whole.
		if err := atomicfile.WriteFile(ref, []byte(commit)); err != nil {
			return "", err
		}
	}
	return snap, nil
}

// progress counts a pull's bytes and files for Client.Progress.
type progress struct {
	mu sync.Mutex
	p  Progress
}

func (pr *progress) add(bytes, total int64) {
	pr.mu.Lock()
	pr.p.Bytes += bytes
	pr.p.Total += total
	pr.mu.Unlock()
}

func (pr *progress) fileDone() {
	pr.mu.Lock()
	pr.p.Done++
	pr.mu.Unlock()
}

func (pr *progress) get() Progress {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.p
}

// report calls f five times a second until the returned stop, which
// calls it a last time with Finished set.
func (pr *progress) report(f func(Progress)) (stop func()) {
	if f == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f(pr.get())
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		p := pr.get()
		p.Finished = true
		f(p)
	}
}

// pullFile makes snapshots/<commit>/<file> point at its verified blob.
func (c *Client) pullFile(ctx context.Context, k kind, id, commit, repo, snap, file string, pr *progress) error {
	link := filepath.Join(snap, filepath.FromSlash(file))
	if _, err := os.Stat(link); err == nil {
		return nil // in the cache already
	}
	segs := strings.Split(file, "/")
	for i := range segs {
		segs[i] = url.PathEscape(segs[i])
	}
	u := fmt.Sprintf("%s/%s%s/resolve/%s/%s", c.Endpoint, k.files, id, commit, strings.Join(segs, "/"))
	// HEAD without following the redirect to the file store: the hub's own
	// answer carries the ETag (the LFS sha256) and size.
	head := *c.HTTP
	head.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == via[0].URL.Host { // a relative redirect on the hub: follow
			return nil
		}
		return http.ErrUseLastResponse
	}
	req, err := c.request(ctx, "HEAD", u, http.Header{"Accept-Encoding": {"identity"}})
	if err != nil {
		return err
	}
	resp, err := head.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %s: %v", id, file, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return c.hubError(resp, id, commit, file)
	}
	etag := strings.Trim(strings.TrimPrefix(firstOf(resp.Header.Get("X-Linked-Etag"), resp.Header.Get("ETag")), "W/"), `"`)
	size, _ := strconv.ParseInt(firstOf(resp.Header.Get("X-Linked-Size"), resp.Header.Get("Content-Length")), 10, 64)
	if !hexSHA.MatchString(etag) {
		return fmt.Errorf("%s: %s: the hub gave no usable ETag (%q): cannot verify the file", id, file, etag)
	}
	blob := filepath.Join(repo, "blobs", etag)
	if _, err := os.Stat(blob); err != nil {
		pr.add(0, size)
		if err := c.fetchBlob(ctx, id, file, u, blob, etag, size, pr); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return diskError(id, file, filepath.Dir(link), err)
	}
	rel, err := filepath.Rel(filepath.Dir(link), blob)
	if err != nil {
		return err
	}
	if err := os.Symlink(rel, link); err != nil {
		// Another pull of the same repository made it first: fine if it points here.
		if got, rerr := os.Readlink(link); rerr == nil && got == rel {
			return nil
		}
		os.Remove(link)
		return os.Symlink(rel, link)
	}
	return nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// diskError words a failed write: a full disk says which disk and what to
// do, as no retry helps.
func diskError(id, file, dir string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%s: %s: the disk holding %s is full (%s free): free some space, or set HF_HUB_CACHE to another disk, and run again to resume", id, file, dir, SizeString(freeSpace(dir)))
	}
	return fmt.Errorf("%s: %s: %v", id, file, err)
}

// SizeString prints a byte count for people (-1: unknown).
func SizeString(n int64) string {
	switch {
	case n < 0:
		return "unknown"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// fetchBlob downloads u into blob, resuming blob.incomplete with a Range
// request, under the lock huggingface_hub also takes, and verifies it.
func (c *Client) fetchBlob(ctx context.Context, id, file, u, blob, etag string, size int64, pr *progress) error {
	locks := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(blob))), ".locks", filepath.Base(filepath.Dir(filepath.Dir(blob))))
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return diskError(id, file, locks, err)
	}
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return diskError(id, file, filepath.Dir(blob), err)
	}
	var lock *flock.Lock
	for {
		var err error
		if lock, err = flock.Acquire(filepath.Join(locks, etag+".lock")); err == nil {
			break
		}
		var held *flock.HeldError
		if !errors.As(err, &held) {
			return diskError(id, file, locks, err)
		}
		select { // another process downloads it: wait for it
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := os.Stat(blob); err == nil {
			return nil
		}
	}
	defer lock.Close()
	if _, err := os.Stat(blob); err == nil {
		return nil
	}
	part := blob + ".incomplete"
	have := int64(0)
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
		pr.add(have, 0) // an earlier run's bytes
	}
	// As huggingface_hub does, look at the free space first: a full disk
	// found before the download is better than one found after an hour.
	if free := freeSpace(filepath.Dir(blob)); size > 0 && free >= 0 && free < size-have {
		return fmt.Errorf("%s: %s needs %s and the disk holding %s has %s free: free some space, or set HF_HUB_CACHE to another disk", id, file, SizeString(size-have), c.Cache, SizeString(free))
	}
	var lastErr error
	for attempt := 0; attempt <= c.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		done, err := c.fetchOnce(ctx, u, part, size, pr)
		if err == nil {
			break
		}
		lastErr = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if done { // not worth another attempt
			return diskError(id, file, filepath.Dir(blob), err)
		}
		if c.Log != nil {
			c.Log("download interrupted, resuming", "repo", id, "file", file, "attempt", attempt+1, "problem", err.Error())
		}
		if attempt == c.Retries {
			return fmt.Errorf("%s: %s: the connection dropped %d times; run again to resume: %v", id, file, c.Retries+1, lastErr)
		}
	}
	if err := verify(part, etag); err != nil {
		os.Remove(part)
		return fmt.Errorf("%s: %s: %v (removed; run again to download it afresh)", id, file, err)
	}
	if err := os.Rename(part, blob); err != nil {
		return diskError(id, file, filepath.Dir(blob), err)
	}
	if c.Log != nil {
		c.Log("downloaded", "repo", id, "file", file, "bytes", size)
	}
	return nil
}

// fetchOnce appends to part from its current size. done is true when the
// problem will not go away by trying again (an HTTP error, a full disk).
func (c *Client) fetchOnce(ctx context.Context, u, part string, size int64, pr *progress) (done bool, err error) {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return true, err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return true, err
	}
	if size > 0 && have == size {
		return false, nil
	}
	hdr := http.Header{"Accept-Encoding": {"identity"}}
	if have > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	req, err := c.request(ctx, "GET", u, hdr)
	if err != nil {
		return true, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && have > 0: // the server ignored the range: start over
		pr.add(-have, 0)
		if err := f.Truncate(0); err != nil {
			return true, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return true, err
		}
	case resp.StatusCode == http.StatusOK, resp.StatusCode == http.StatusPartialContent:
	default:
		return true, fmt.Errorf("the hub answered %s", resp.Status)
	}
	if _, err := io.Copy(f, &counter{r: resp.Body, pr: pr}); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) { // writing failed (a full disk): no retry helps
			return true, err
		}
		return false, err
	}
	if err := f.Sync(); err != nil {
		return true, err
	}
	if st, err := f.Stat(); err == nil && size > 0 && st.Size() < size {
		return false, fmt.Errorf("%d of %d bytes", st.Size(), size)
	}
	return false, nil
}

// counter counts the bytes read through it into a pull's progress.
type counter struct {
	r  io.Reader
	pr *progress
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.pr.add(int64(n), 0)
	return n, err
}

// verify checks a downloaded file against its ETag: a sha256 (64 hex
// digits, LFS files) or a git blob SHA-1 (40, the others).
func verify(file, etag string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var h hash.Hash
	if len(etag) == 64 {
		h = sha256.New()
	} else {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		h = sha1.New()
		fmt.Fprintf(h, "blob %d\x00", st.Size())
	}
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != etag {
		return fmt.Errorf("the downloaded bytes hash to %s, the hub says %s", got[:12], etag[:12])
	}
	return nil
}
