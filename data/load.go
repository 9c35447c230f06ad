package data

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/sourcegraph/conc/stream"
)

// LoadOptions control how a dataset becomes examples.
type LoadOptions struct {
	Columns     map[string]string
	Render      RenderOptions
	Threads     int     // tokenization workers (0: all cores)
	ValFraction float64 // share of examples held out, chosen by a seeded hash
	Seed        uint64
	CacheDir    string // directory for the token cache ("" disables it)
	// Split selects shards of a directory by the Hub's split names ("train",
	// "validation", "test"). Empty: "train" when the directory has train
	// shards (so validation shards beside them are not trained on), else all.
	Split string
	// TextUnit: "block" (default) or "file", for .txt/.md files (SourceOptions).
	TextUnit string
	// Variants > 0 also renders that many variants of every row, variant
	// e being Render(Vary(e, row index, row)), for text-level augmentation:
	// epoch e trains on variant e mod Variants (Dataset.Variants). Their
	// masks come from the edited text, re-rendered, never patched. Loading
	// with variants bypasses the token cache.
	Variants int
	Vary     func(epoch, index int, r Row) Row `json:"-"`
	// VaryKey names Vary and its settings in the dataset's fingerprint.
	VaryKey string
	// Format, if set, is how every row is rendered, instead of the format
	// detected from the first row's columns.
	Format Format
}

// splitOf returns the split Load reads from path.
func (o LoadOptions) splitOf(path string) string {
	if o.Split == "" && HasSplit(path, "train") {
		return "train"
	}
	return o.Split
}

// Dataset is a tokenized dataset.
type Dataset struct {
	Format     Format     `json:"format"`
	Rows       int        `json:"rows"`
	Train, Val []*Example `json:"-"`
	// Variants[i] are Train[i]'s text-level variants, one per epoch of a
	// cycle (LoadOptions.Variants); nil without them.
	Variants [][]*Example `json:"-"`
	// PerRow is how many examples the token store holds per kept row: 1,
	// or 1 + LoadOptions.Variants.
	PerRow     int            `json:"per_row,omitempty"`
	Dropped    map[string]int `json:"dropped,omitempty"` // reason → examples
	Tokens     int            `json:"tokens"`
	Truncated  int            `json:"truncated"` // examples --max-seq-len cut
	Supervised int            `json:"supervised"`
	FromCache  bool           `json:"from_cache"`
	// Key identifies the dataset as tokenized: a hash of the data files'
	// bytes, the tokenizer and the rendering options (the token cache's key).
	Key string `json:"-"`
	// CacheWarning says why the token cache could not be written (a full
	// or read-only cache directory): the dataset was then loaded uncached.
	CacheWarning string       `json:"-"`
	close        func() error // unmaps the token store
}

// storeError is a failure to write the token store (not a problem with the
// data): with a cache directory, Load then runs uncached.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// Load reads, renders and tokenizes a dataset. Rows are read in order and
// rendered in parallel on tokenizer clones, results kept in row order, so the
// output does not depend on the thread count. Examples that fail to render or
// have no supervised token are dropped and counted by reason. With a cache
// directory, the result is stored under a key of the data's content, the
// tokenizer (vocabulary and chat template) and the options, and reused.
func Load(path string, tok *tokenizer.Tokenizer, o LoadOptions) (*Dataset, error) {
	key, err := cacheKey(path, tok, o)
	if err != nil {
		return nil, err
	}
	if o.Variants > 0 {
		if o.Vary == nil {
			return nil, fmt.Errorf("data: %d variants and no function to make them", o.Variants)
		}
		o.CacheDir = "" // variants are rendered afresh: never cached
	}
	if o.CacheDir != "" {
		if ds, unmap, err := openStore(filepath.Join(o.CacheDir, key+".tokens")); err == nil {
			ds.FromCache, ds.close, ds.Key = true, unmap, key
			return ds.split(o), nil
		}
	}
	ds, err := load(path, tok, o, key)
	var se storeError
	if o.CacheDir != "" && errors.As(err, &se) {
		// The cache directory is full or read-only: the data itself is fine,
		// so run uncached (the store goes to the temporary directory).
		uncached := o
		uncached.CacheDir = ""
		if ds, err = load(path, tok, uncached, key); err == nil {
			ds.CacheWarning = fmt.Sprintf("could not write the token cache in %s (%v): loaded uncached", o.CacheDir, se.err)
		}
	}
	return ds, err
}

func load(path string, tok *tokenizer.Tokenizer, o LoadOptions, key string) (*Dataset, error) {
	src, err := OpenWith(path, SourceOptions{Split: o.splitOf(path), TextUnit: o.TextUnit})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	clones := make(chan *tokenizer.Tokenizer, threads)
	for i := 0; i < threads; i++ {
		clones <- tok.Clone()
	}
	ds := &Dataset{Dropped: map[string]int{}}
	storeDir := o.CacheDir
	if storeDir == "" {
		storeDir = os.TempDir()
	}
	sw, err := newStoreWriter(storeDir)
	if err != nil {
		return nil, storeError{err}
	}
	kept := 0
	st := stream.New().WithMaxGoroutines(threads)
	var readErr error
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if ds.Rows == 0 {
			if err := CheckColumns(r, o.Columns); err != nil {
				readErr = fmt.Errorf("data: %s: %v", src.Where(), err)
				break
			}
		}
		r = MapColumns(r, o.Columns)
		if ds.Rows == 0 && o.Format != "" {
			ds.Format = o.Format
		} else if ds.Rows == 0 {
			if ds.Format, err = Detect(r); err != nil {
				readErr = fmt.Errorf("data: %s: %v", src.Where(), err)
				break
			}
		}
		ds.Rows++
		row, format, opts, index := r, ds.Format, o.Render, ds.Rows-1
		st.Go(func() stream.Callback {
			t := <-clones
			ex, err := Render(row, format, t, opts)
			var variants []*Example
			if err == nil && ex.Supervised() > 0 {
				for e := range o.Variants {
					v, verr := Render(o.Vary(e, index, row), format, t, opts)
					if verr != nil || v.Supervised() == 0 {
						v = ex // an edit that breaks the row: that epoch trains on it as it is
					}
					variants = append(variants, v)
				}
			}
			clones <- t
			return func() {
				switch {
				case err != nil:
					ds.Dropped[firstLine(err.Error())]++
				case ex.Supervised() == 0:
					ds.Dropped["no supervised tokens (truncated away or none in the row)"]++
				default:
					if ex.Truncated > 0 {
						ds.Truncated++
					}
					sw.add(ex) // to disk in row order; the example itself is not kept
					for _, v := range variants {
						sw.add(v)
					}
					kept++
				}
			}
		})
	}
	st.Wait()
	if readErr == nil && ds.Rows == 0 {
		readErr = fmt.Errorf("data: %s has no rows", path)
	}
	if readErr == nil && kept == 0 {
		readErr = fmt.Errorf("data: %s: no usable example in %d rows: %s", path, ds.Rows, DroppedSummary(ds.Dropped))
	}
	if readErr != nil {
		sw.abort()
		return nil, readErr
	}
	cached := o.CacheDir != ""
	ds.PerRow = 1 + o.Variants
	store, err := sw.finish(ds, cached)
	if err != nil {
		return nil, storeError{err}
	}
	if cached {
		final := filepath.Join(o.CacheDir, key+".tokens")
		if err := os.Rename(store, final); err != nil {
			os.Remove(store)
			return nil, storeError{fmt.Errorf("data: token cache: %w", err)}
		}
		store = final
	}
	mapped, unmap, err := openStore(store)
	if !cached {
		os.Remove(store) // mapped (or read): the name is no longer needed
	}
	if err != nil {
		return nil, err
	}
	mapped.close, mapped.Key = unmap, key
	return mapped.split(o), nil
}

// group gathers a store's examples into rows: each kept row's example and
// its variants (PerRow > 1).
func (ds *Dataset) group() error {
	per := max(ds.PerRow, 1)
	if per == 1 {
		return nil
	}
	all := ds.Train
	if len(all)%per != 0 {
		return fmt.Errorf("%d examples are not rows of %d", len(all), per)
	}
	ds.Train, ds.Variants = make([]*Example, len(all)/per), make([][]*Example, len(all)/per)
	ds.Tokens, ds.Supervised = 0, 0
	for i := range ds.Train {
		ds.Train[i], ds.Variants[i] = all[i*per], all[i*per+1:(i+1)*per]
		ds.Tokens += len(ds.Train[i].IDs)
		ds.Supervised += ds.Train[i].Supervised()
	}
	return nil
}

// Close releases the memory-mapped token store; the examples must not be
// used afterwards.
func (ds *Dataset) Close() error {
	if ds == nil || ds.close == nil {
		return nil
	}
	err := ds.close()
	ds.close, ds.Train, ds.Val = nil, nil, nil
	return err
}

// split moves examples whose seeded hash falls under ValFraction to Val.
func (ds *Dataset) split(o LoadOptions) *Dataset {
	if o.ValFraction <= 0 {
		return ds
	}
	all, variants := append(ds.Train, ds.Val...), ds.Variants
	ds.Train, ds.Val, ds.Variants = nil, nil, nil
	for i, e := range all {
		if float64(autograd.Key(o.Seed, 0x7a1, uint64(i))>>11)/(1<<53) < o.ValFraction {
			ds.Val = append(ds.Val, e) // validation is never augmented: no variants
		} else {
			ds.Train = append(ds.Train, e)
			if variants != nil {
				ds.Variants = append(ds.Variants, variants[i])
			}
		}
	}
	return ds
}

// cacheKey hashes the dataset files' bytes, the tokenizer and the options.
func cacheKey(path string, tok *tokenizer.Tokenizer, o LoadOptions) (string, error) {
	files, err := resolve(path, o.splitOf(path))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		in, err := os.Open(f)
		if err != nil {
			return "", fmt.Errorf("data: %w", err)
		}
		_, err = io.Copy(h, bufio.NewReader(in))
		in.Close()
		if err != nil {
			return "", fmt.Errorf("data: %s: %w", f, err)
		}
	}
	cols := make([]string, 0, len(o.Columns))
	for k, v := range o.Columns {
		cols = append(cols, k+"="+v)
	}
	sort.Strings(cols)
	parts := []any{o.Render, cols, tok.Fingerprint(), "v2", o.TextUnit}
	if o.Format != "" {
		parts = append(parts, "format", o.Format)
	}
	if o.Variants > 0 {
		parts = append(parts, "variants", o.Variants, o.VaryKey)
	}
	if tok.ChatTemplate() != "" {
		// Chat masks supervise the end of each turn in every case since this
		// revision: caches of chat data rendered before are not reused (and a
		// key without a template stays what it was, so runs resume).
		parts = append(parts, "turn-end-1")
	}
	opts, _ := json.Marshal(parts)
	h.Write(opts)
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}
