package data

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/lowrank/lowrank/internal/mmap"
)

// The token store: tokenized examples on disk, memory-mapped, so a dataset
// costs page cache the kernel can evict, not heap: only one small header per
// example stays in memory. Load writes it as examples are rendered (in row
// order) and maps it once written; with a cache directory it is the cache.
//
// Layout (little-endian):
//
//	"LRTC3\0\0\0"
//	per example: ids (4·n bytes), mask (n bytes, 0 or 1), own (n bytes, 0 or
//	1: the row's own text, not a template's), zero padding to 4
//	index: per example offset (u64) and n (u32)
//	meta: the Dataset's JSON (format, rows, dropped, counts)
//	trailer: index offset (u64), examples (u64), meta offset (u64), meta length (u64), "LRTC3END"
const (
	storeMagic   = "LRTC3\x00\x00\x00"
	storeTrailer = "LRTC3END"
)

// storeTempPattern names unfinished stores (and, without a cache, stores in
// use: they are unlinked once mapped).
const storeTempPattern = ".lowrank-tokens-*"

// removeStale deletes unfinished stores that a killed run left in dir more
// than a day ago (a live one is written in minutes, or unlinked at once).
func removeStale(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, storeTempPattern))
	for _, f := range old {
		if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) > 24*time.Hour {
			os.Remove(f)
		}
	}
}

// storeWriter appends examples to a token store.
type storeWriter struct {
	f     *os.File
	w     *bufio.Writer
	off   int64
	index []storeEntry
	buf   []byte
	err   error
}

type storeEntry struct {
	off int64
	n   uint32
}

func newStoreWriter(dir string) (*storeWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data: token store: %w", err)
	}
	removeStale(dir)
	f, err := os.CreateTemp(dir, storeTempPattern)
	if err != nil {
		return nil, fmt.Errorf("data: token store: %w", err)
	}
	s := &storeWriter{f: f, w: bufio.NewWriterSize(f, 1<<20)}
	s.write([]byte(storeMagic))
	return s, nil
}

func (s *storeWriter) write(b []byte) {
	if s.err == nil {
		_, s.err = s.w.Write(b)
		s.off += int64(len(b))
	}
}

// add appends one example: its ids, mask and padding in one write.
func (s *storeWriter) add(e *Example) {
	n := len(e.IDs)
	s.index = append(s.index, storeEntry{off: s.off, n: uint32(n)})
	size := 6*n + (4-(2*n)%4)%4
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	b := s.buf[:size]
	for i, id := range e.IDs {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(id))
	}
	m := b[4*n:]
	clear(m)
	for i, v := range e.Mask {
		if v {
			m[i] = 1
		}
	}
	own := m[n:]
	for i := range n {
		if e.Own == nil || e.Own[i] {
			own[i] = 1
		}
	}
	s.write(b)
}

// finish writes the index, meta and trailer, closes the file (synced first
// when durable: a cache that must survive a crash), and returns its path.
func (s *storeWriter) finish(ds *Dataset, durable bool) (string, error) {
	indexOff := s.off
	b := make([]byte, 12)
	for _, e := range s.index {
		binary.LittleEndian.PutUint64(b, uint64(e.off))
		binary.LittleEndian.PutUint32(b[8:], e.n)
		s.write(b)
	}
	meta, _ := json.Marshal(ds)
	metaOff := s.off
	s.write(meta)
	t := make([]byte, 32)
	binary.LittleEndian.PutUint64(t, uint64(indexOff))
	binary.LittleEndian.PutUint64(t[8:], uint64(len(s.index)))
	binary.LittleEndian.PutUint64(t[16:], uint64(metaOff))
	binary.LittleEndian.PutUint64(t[24:], uint64(len(meta)))
	s.write(t)
	s.write([]byte(storeTrailer))
	err := s.err
	if err == nil {
		err = s.w.Flush()
	}
	if err == nil && durable {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(s.f.Name())
		return "", fmt.Errorf("data: token store %s: %w", s.f.Name(), err)
	}
	return s.f.Name(), nil
}

// abort removes an unfinished store.
func (s *storeWriter) abort() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// nativeLittleEndian: token ids can be used in place from the mapped file.
var nativeLittleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// openStore maps a token store and returns its dataset, whose examples point
// into the mapping (read-only), and the function that unmaps it. Every
// offset, length and mask byte is checked first: a damaged store is an error,
// never a crash.
func openStore(path string) (*Dataset, func() error, error) {
	data, unmap, err := mmap.Map(path)
	if err != nil {
		return nil, nil, err
	}
	ds, err := parseStore(data)
	if err != nil {
		unmap()
		return nil, nil, fmt.Errorf("data: token store %s: %v", path, err)
	}
	return ds, unmap, nil
}

func parseStore(data []byte) (*Dataset, error) {
	size := uint64(len(data))
	if size < 8+40 || string(data[:8]) != storeMagic || string(data[size-8:]) != storeTrailer {
		return nil, fmt.Errorf("not a token store (or written by another version)")
	}
	t := data[size-40 : size-8]
	indexOff, count := binary.LittleEndian.Uint64(t), binary.LittleEndian.Uint64(t[8:])
	metaOff, metaLen := binary.LittleEndian.Uint64(t[16:]), binary.LittleEndian.Uint64(t[24:])
	if indexOff < 8 || count > (size-indexOff)/12 || indexOff+12*count != metaOff || metaLen > size || metaOff+metaLen != size-40 {
		return nil, fmt.Errorf("damaged trailer")
	}
	ds := &Dataset{}
	if err := json.Unmarshal(data[metaOff:metaOff+metaLen], ds); err != nil {
		return nil, fmt.Errorf("damaged metadata: %v", err)
	}
	ds.Tokens, ds.Supervised = 0, 0
	ds.Train = make([]*Example, count)
	for i := range ds.Train {
		e := data[indexOff+12*uint64(i):]
		off, n := binary.LittleEndian.Uint64(e), uint64(binary.LittleEndian.Uint32(e[8:]))
		end := off + 4*n + 2*n
		if off < 8 || off%4 != 0 || end > indexOff || off > indexOff {
			return nil, fmt.Errorf("example %d lies outside the examples", i)
		}
		mask, own := data[off+4*n:off+5*n], data[off+5*n:end]
		for j, m := range mask {
			if m > 1 || own[j] > 1 {
				return nil, fmt.Errorf("example %d: damaged mask", i)
			}
			ds.Supervised += int(m)
		}
		ex := &Example{}
		if n > 0 {
			ex.Mask = unsafe.Slice((*bool)(unsafe.Pointer(&mask[0])), n)
			ex.Own = unsafe.Slice((*bool)(unsafe.Pointer(&own[0])), n)
			if nativeLittleEndian {
				ex.IDs = unsafe.Slice((*int32)(unsafe.Pointer(&data[off])), n)
			} else {
				ex.IDs = make([]int32, n)
				for j := range ex.IDs {
					ex.IDs[j] = int32(binary.LittleEndian.Uint32(data[off+4*uint64(j):]))
				}
			}
		}
		ds.Tokens += int(n)
		ds.Train[i] = ex
	}
	if err := ds.group(); err != nil {
		return nil, err
	}
	return ds, nil
}
