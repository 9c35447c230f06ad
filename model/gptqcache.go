package model

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/lowrank/lowrank/kernels"
)

// The GPTQ base cache. GPTQ, and tuning after it, take minutes; what they
// produce is a function of the model files' bytes and the options alone, so
// it is kept under LoadOptions.CacheDir and a later load with the same
// inputs (eval, generate, a resumed run) reads it back in seconds. A cache
// file is written whole or not at all (atomicfile); one that does not read
// back whole, or does not fit the model, is ignored and written again.

// gptqCacheVersion names what GPTQ and tuning compute: change it with any
// change to what they produce, so older files are no longer found.
const gptqCacheVersion = "gptq-static-groups+tune-1"

const gptqCacheMagic = "LRGQ1\x00\x00\x00"

// gptqCacheKey hashes the model files' bytes (see Fingerprint) and every
// option that shapes the GPTQ base.
func gptqCacheKey(path string, f kernels.Format, o GPTQOptions, dq bool) (string, error) {
	h := sha256.New()
	if err := hashModelFiles(h, path); err != nil {
		return "", err
	}
	opts, err := json.Marshal([]any{gptqCacheVersion, f.String(), dq, o.Tokens, o.Samples, o.Seed, o.Window, o.Tune})
	if err != nil {
		return "", err
	}
	h.Write(opts)
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// modelFiles are the files whose bytes define a model: a GGUF file, or a
// Hugging Face directory's config.json, safetensors index and shards.
func modelFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	shards, err := filepath.Glob(filepath.Join(path, "*.safetensors"))
	if err != nil {
		return nil, err
	}
	sort.Strings(shards)
	files := []string{filepath.Join(path, "config.json")}
	if _, err := os.Stat(filepath.Join(path, "model.safetensors.index.json")); err == nil {
		files = append(files, filepath.Join(path, "model.safetensors.index.json"))
	}
	return append(files, shards...), nil
}

func hashModelFiles(h io.Writer, path string) error {
	files, err := modelFiles(path)
	if err != nil {
		return err
	}
	for _, name := range files {
		in, err := os.Open(name)
		if err != nil {
			return err
		}
		_, err = io.Copy(h, bufio.NewReaderSize(in, 1<<20))
		in.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(h, "\x00%s\x00", filepath.Base(name))
	}
	return nil
}

// Fingerprint identifies a model by its files' bytes: "sha256:" and the
// SHA-256 of a GGUF file, or of a Hugging Face directory's config.json,
// safetensors index and shards with their names (tokenizer files are
// fingerprinted by the tokenizer). path may be a hub id in the local cache.
// A copy or a move keeps it; any change to a weight changes it.
func Fingerprint(path string) (string, error) {
	local, err := hfcache.Resolve(path)
	if err != nil {
		return "", fmt.Errorf("model %w", err)
	}
	h := sha256.New()
	if err := hashModelFiles(h, local); err != nil {
		return "", fmt.Errorf("model %s: fingerprint: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// BaseCache says how a GPTQ load used the cache.
type BaseCache struct {
	File    string // the cache file for these inputs
	Hit     bool   // the base was read from it
	Ignored string // why an existing file was not used, or the base not stored
}

// gptqCached is gptq through the cache in dir ("" : none).
func (m *Model) gptqCached(path, dir string, src tensorSource, f kernels.Format, o GPTQOptions, permute, dq bool) error {
	if dir == "" {
		return m.gptq(src, f, o, permute, dq)
	}
	key, err := gptqCacheKey(path, f, o, dq)
	if err != nil {
		return err
	}
	c := &BaseCache{File: filepath.Join(dir, key+".gptq")}
	m.BaseCache = c
	err = m.readGPTQCache(c.File, key)
	if err == nil {
		c.Hit = true
		return nil
	}
	if !os.IsNotExist(err) {
		c.Ignored = fmt.Sprintf("%s: %v", c.File, err)
	}
	if err := m.gptq(src, f, o, permute, dq); err != nil {
		return err
	}
	if err := m.writeGPTQCache(c.File, key); err != nil {
		c.Ignored = fmt.Sprintf("not stored in %s: %v", c.File, err)
	}
	return nil
}

// gptqCacheIndex is the JSON index at the end of a cache file.
type gptqCacheIndex struct {
	Key     string           `json:"key"`
	Tuned   *TuneReport      `json:"tuned,omitempty"`
	Tensors []gptqCacheEntry `json:"tensors"`
}

// A cache file: the magic, each block projection's encoded weight in
// order, the JSON index, its length (u64) and the end mark. The index comes
// last so that the weights are written one at a time, as they are encoded.
const gptqCacheEnd = "LRGQEND\x00"

type gptqCacheEntry struct {
	Name  string `json:"name"`
	Note  string `json:"note"`
	Bytes int    `json:"bytes"` // of the encoded weight
}

// writeGPTQCache stores m's block projections (and tuning report) in file.
func (m *Model) writeGPTQCache(file, key string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	// A killed process leaves its unfinished file: remove those a day old.
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".tmp-*"))
	for _, f := range old {
		if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) > 24*time.Hour {
			os.Remove(f)
		}
	}
	return atomicfile.Write(file, func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<20)
		w.WriteString(gptqCacheMagic)
		idx := gptqCacheIndex{Key: key, Tuned: m.Tuned}
		for l := range m.Blocks {
			for _, lin := range m.Blocks[l].Linears() {
				fr := (*lin).Frozen()
				b, err := fr.W.MarshalBinary()
				if err != nil {
					return err
				}
				if _, err := w.Write(b); err != nil {
					return err
				}
				idx.Tensors = append(idx.Tensors, gptqCacheEntry{fr.Name, m.stored(fr.Name).Note, len(b)})
			}
		}
		head, err := json.Marshal(idx)
		if err != nil {
			return err
		}
		w.Write(head)
		binary.Write(w, binary.LittleEndian, uint64(len(head)))
		w.WriteString(gptqCacheEnd)
		return w.Flush()
	})
}

// readGPTQCache replaces m's block projections by those stored in file under
// key, reading one tensor at a time; on any error m is left as it was.
func (m *Model) readGPTQCache(file, key string) error {
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	var head, tail [8]byte
	var n uint64
	if _, err := in.ReadAt(head[:], 0); err != nil || string(head[:]) != gptqCacheMagic || size < 32 {
		return fmt.Errorf("not a GPTQ cache file")
	}
	if _, err := in.ReadAt(tail[:], size-8); err != nil || string(tail[:]) != gptqCacheEnd {
		return fmt.Errorf("truncated: no end mark")
	}
	if err := binary.Read(io.NewSectionReader(in, size-16, 8), binary.LittleEndian, &n); err != nil || n > uint64(size-24) {
		return fmt.Errorf("truncated")
	}
	blobs := size - 16 - int64(n) - 8 // the encoded weights' bytes
	raw := make([]byte, n)
	if _, err := in.ReadAt(raw, 8+blobs); err != nil {
		return err
	}
	var idx gptqCacheIndex
	if err := json.Unmarshal(raw, &idx); err != nil {
		return err
	}
	if idx.Key != key {
		return fmt.Errorf("key %s, want %s", idx.Key, key)
	}
	var lins []*Frozen
	for l := range m.Blocks {
		for _, lin := range m.Blocks[l].Linears() {
			lins = append(lins, (*lin).Frozen())
		}
	}
	if len(idx.Tensors) != len(lins) {
		return fmt.Errorf("%d tensors for a model with %d projections", len(idx.Tensors), len(lins))
	}
	r := bufio.NewReaderSize(io.NewSectionReader(in, 8, blobs), 1<<20)
	ws := make([]*kernels.Weight, len(lins))
	var buf []byte
	for i, t := range idx.Tensors {
		fr := lins[i]
		if t.Name != fr.Name || t.Bytes < 0 || int64(t.Bytes) > blobs {
			return fmt.Errorf("tensor %d: %s, %d bytes", i, t.Name, t.Bytes)
		}
		if cap(buf) < t.Bytes {
			buf = make([]byte, t.Bytes)
		}
		if _, err := io.ReadFull(r, buf[:t.Bytes]); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		w, err := kernels.UnmarshalWeight(buf[:t.Bytes])
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		if w.Rows != fr.W.Rows || w.Cols != fr.W.Cols {
			return fmt.Errorf("%s is %d×%d, the model's %d×%d", t.Name, w.Rows, w.Cols, fr.W.Rows, fr.W.Cols)
		}
		ws[i] = w
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("bytes after the last tensor")
	}
	for i, fr := range lins {
		fr.W = ws[i]
		m.restored(fr).Note = idx.Tensors[i].Note
	}
	m.Tuned = idx.Tuned
	return nil
}
