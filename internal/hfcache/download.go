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
	"time"

	"github.com/lowrank/lowrank/internal/flock"
)

// Client downloads model repositories from the Hugging Face hub (or a
// mirror) into the cache layout the Python tools use and read:
// models--org--name/blobs/<etag>, snapshots/<commit>/<file> symlinks to
// them, refs/<revision>, and .locks/ so that lowrank and huggingface_hub
// never write one blob at once.
type Client struct {
	Endpoint string // https://huggingface.co, or $HF_ENDPOINT
	Token    string // $HF_TOKEN, else the file $HF_TOKEN_PATH, else $HF_HOME/token
	Cache    string // Dir()
	HTTP     *http.Client
	Log      func(msg string, args ...any) // progress lines (nil: none)
	Retries  int                           // attempts per file after a dropped connection
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
	switch code {
	case "RepoNotFound":
		if c.Token == "" {
			return fmt.Errorf("%s: no such repository, or a private one: set HF_TOKEN (or log in with a token file) if it is yours", id)
		}
		return fmt.Errorf("%s: no such repository (or this token cannot see it)", id)
	case "RevisionNotFound":
		return fmt.Errorf("%s: no revision %q", id, rev)
	case "EntryNotFound":
		return fmt.Errorf("%s@%s: no file %s", id, rev, file)
	case "GatedRepo":
		return fmt.Errorf("%s is gated: accept its terms on the hub, then set HF_TOKEN to a token of that account", id)
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

// Pull downloads the files training needs of repository id at revision
// rev ("" is main) into the cache and returns the snapshot directory.
// Files already in the cache are not downloaded again; a download cut
// short resumes where it stopped; every file is verified (sha256 for LFS
// files, whose ETag it is, the git blob SHA-1 for the others) before it
// takes its place, so nothing half-written is taken for a file.
func (c *Client) Pull(ctx context.Context, id, rev string) (string, error) {
	if !idPattern.MatchString(id) || strings.Contains(id, "@") {
		return "", fmt.Errorf("%q is not a hub repository id (org/name)", id)
	}
	if rev == "" {
		rev = "main"
	}
	if v := os.Getenv("HF_HUB_OFFLINE"); v == "1" || strings.EqualFold(v, "true") {
		return "", fmt.Errorf("%s: HF_HUB_OFFLINE is set: not downloading (the cache %s does not hold it)", id, c.Cache)
	}
	req, err := c.request(ctx, "GET", fmt.Sprintf("%s/api/models/%s/revision/%s", c.Endpoint, id, url.PathEscape(rev)), nil)
	if err != nil {
		return "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("%s: cannot reach %s (%v): check the network, or set HF_ENDPOINT to a mirror", id, c.Endpoint, err)
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
		return "", c.hubError(resp, id, rev, "")
	}
	if err != nil || !hexSHA.MatchString(info.SHA) {
		return "", fmt.Errorf("%s: the hub's answer about revision %s is not what it should be (%v)", id, rev, err)
	}
	var files []string
	weights := false
	for _, s := range info.Siblings {
		if wanted(s.Name) {
			files = append(files, s.Name)
			weights = weights || strings.HasSuffix(s.Name, ".safetensors")
		}
	}
	if !weights {
		return "", fmt.Errorf("%s@%s has no safetensors weights (lowrank reads safetensors or a .gguf file)", id, rev)
	}
	sort.Strings(files) // a fixed order, whatever the hub lists
	repo := filepath.Join(c.Cache, "models--"+strings.ReplaceAll(id, "/", "--"))
	snap := filepath.Join(repo, "snapshots", info.SHA)
	for _, f := range files {
		if err := c.pullFile(ctx, id, info.SHA, repo, snap, f); err != nil {
			return "", err
		}
	}
	if rev != info.SHA {
		ref := filepath.Join(repo, "refs", filepath.FromSlash(rev))
		if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
			return "", err
		}
		if err := writeAtomic(ref, []byte(info.SHA)); err != nil {
			return "", err
		}
	}
	return snap, nil
}

// pullFile makes snapshots/<commit>/<file> point at its verified blob.
func (c *Client) pullFile(ctx context.Context, id, commit, repo, snap, file string) error {
	link := filepath.Join(snap, filepath.FromSlash(file))
	if _, err := os.Stat(link); err == nil {
		return nil // in the cache already
	}
	u := fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, id, commit, file)
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
		if err := c.fetchBlob(ctx, id, file, u, blob, etag, size); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
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

// fetchBlob downloads u into blob, resuming blob.incomplete with a Range
// request, under the lock huggingface_hub also takes, and verifies it.
func (c *Client) fetchBlob(ctx context.Context, id, file, u, blob, etag string, size int64) error {
	locks := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(blob))), ".locks", filepath.Base(filepath.Dir(filepath.Dir(blob))))
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return fmt.Errorf("%s: %s: %v", id, file, err)
	}
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("%s: %s: %v", id, file, err)
	}
	var lock *flock.Lock
	for {
		var err error
		if lock, err = flock.Acquire(filepath.Join(locks, etag+".lock")); err == nil {
			break
		}
		var held *flock.HeldError
		if !errors.As(err, &held) {
			return fmt.Errorf("%s: %s: %v", id, file, err)
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
	var lastErr error
	for attempt := 0; attempt <= c.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		done, err := c.fetchOnce(ctx, u, part, size)
		if err == nil {
			break
		}
		lastErr = err
		if done || ctx.Err() != nil { // not worth another attempt
			return fmt.Errorf("%s: %s: %v", id, file, err)
		}
		if c.Log != nil {
			c.Log("download interrupted, resuming", "file", file, "attempt", attempt+1, "problem", err.Error())
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
		return fmt.Errorf("%s: %s: %v", id, file, err)
	}
	if c.Log != nil {
		c.Log("downloaded", "file", file, "bytes", size)
	}
	return nil
}

// fetchOnce appends to part from its current size. done is true when the
// problem will not go away by trying again (an HTTP error, a full disk).
func (c *Client) fetchOnce(ctx context.Context, u, part string, size int64) (done bool, err error) {
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
	if _, err := io.Copy(f, resp.Body); err != nil {
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

// writeAtomic writes a small file through a temporary name.
func writeAtomic(p string, data []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
