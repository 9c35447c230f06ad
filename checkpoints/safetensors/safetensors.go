// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length, a JSON header mapping tensor names to dtype,
// shape and byte range, then the raw little-endian data. Files are memory-mapped
// read-only where the OS allows, so opening a model costs no copy.
//
// It is a leaf package: it knows the format, not what the tensors mean.
package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sort"

	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/internal/mmap"
	"github.com/x448/float16"
)

// Dtype is a safetensors element type name ("F32", "F16", "BF16", ...).
type Dtype string

const (
	F32  Dtype = "F32"
	F16  Dtype = "F16"
	BF16 Dtype = "BF16"
	F64  Dtype = "F64"
	I64  Dtype = "I64"
	I32  Dtype = "I32"
	I8   Dtype = "I8"
	U8   Dtype = "U8"
	BOOL Dtype = "BOOL"
)

var dtypeSize = map[Dtype]int{F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I8: 1, U8: 1, BOOL: 1, "I16": 2, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}

// Size returns the bytes per element, or 0 for an unknown dtype.
func (d Dtype) Size() int { return dtypeSize[d] }

// Tensor is one entry of a file.
type Tensor struct {
	Name  string
	Dtype Dtype
	Shape []int
	Data  []byte // a view of the mapped file; read-only
}

// Elements returns the number of values.
func (t *Tensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32s decodes an F32, F16 or BF16 tensor into dst, which must hold
// exactly Elements() values.
func (t *Tensor) Float32s(dst []float32) error {
	if len(dst) != t.Elements() {
		return fmt.Errorf("tensor %s has %d values, want %d", t.Name, t.Elements(), len(dst))
	}
	switch t.Dtype {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
	case F16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(t.Data[2*i:])).Float32()
		}
	default:
		return fmt.Errorf("tensor %s has dtype %s (want F32, F16 or BF16)", t.Name, t.Dtype)
	}
	return nil
}

// File is an open safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	tensors  map[string]*Tensor
	names    []string
	data     []byte
	unmap    func() error
}

type headerEntry struct {
	Dtype   Dtype    `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header (the format's own limit is 100 MB).
const maxHeader = 100 << 20

// Open maps a safetensors file and parses its header. Every tensor's byte
// range is checked against the file and its dtype and shape, so a truncated or
// inconsistent file is an error here, not a crash later.
func Open(path string) (*File, error) {
	data, unmap, err := mmap.Map(path)
	if err != nil {
		return nil, err
	}
	f, err := parse(path, data, int64(len(data)))
	if err != nil {
		unmap()
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f.unmap = unmap
	return f, nil
}

// NewReader reads the safetensors file of size bytes in r (name is used in
// errors): the header is checked before anything is read for the tensors,
// whose bytes are then read into memory (Open maps a file instead).
func NewReader(r io.ReaderAt, size int64, name string) (*File, error) {
	bad := func(err error) (*File, error) { return nil, fmt.Errorf("safetensors: %s: %w", name, err) }
	if size < 8 {
		return bad(fmt.Errorf("file is %d bytes: too short for a header", size))
	}
	var nb [8]byte
	if _, err := r.ReadAt(nb[:], 0); err != nil {
		return bad(err)
	}
	n := binary.LittleEndian.Uint64(nb[:])
	if n > maxHeader || n > uint64(size-8) {
		return bad(fmt.Errorf("header length %d does not fit the file (%d bytes): truncated or not safetensors", n, size))
	}
	head := make([]byte, 8+n)
	if _, err := r.ReadAt(head, 0); err != nil {
		return bad(err)
	}
	// Check the header against the size before reading the data section.
	if _, err := parse(name, head, size); err != nil {
		return bad(err)
	}
	data := make([]byte, size)
	if _, err := r.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return bad(err)
	}
	f, err := parse(name, data, size)
	if err != nil {
		return bad(err)
	}
	return f, nil
}

// parse reads the header of data (the first bytes of a file of size bytes:
// all of it, or the header alone, to check it first).
func parse(path string, data []byte, size int64) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("file is %d bytes: too short for a header", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > maxHeader || n > uint64(size-8) || n > uint64(len(data)-8) {
		return nil, fmt.Errorf("header length %d does not fit the file (%d bytes): truncated or not safetensors", n, size)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %v", err)
	}
	body := data[8+n:]
	bodySize := size - 8 - int64(n)
	whole := int64(len(body)) == bodySize
	f := &File{Path: path, tensors: make(map[string]*Tensor, len(raw)), data: data}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__: %v", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: %v", name, err)
		}
		size := e.Dtype.Size()
		if size == 0 {
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", name, e.Dtype)
		}
		count := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && count > (1<<50)/int64(d)) {
				return nil, fmt.Errorf("tensor %q: bad shape %v", name, e.Shape)
			}
			count *= int64(d)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > bodySize {
			return nil, fmt.Errorf("tensor %q: bytes [%d, %d) outside the data section (%d bytes): truncated?", name, lo, hi, bodySize)
		}
		if hi-lo != count*int64(size) {
			return nil, fmt.Errorf("tensor %q: %s %v needs %d bytes, header gives %d", name, e.Dtype, e.Shape, count*int64(size), hi-lo)
		}
		t := &Tensor{Name: name, Dtype: e.Dtype, Shape: e.Shape}
		if whole {
			t.Data = body[lo:hi:hi]
		}
		f.tensors[name] = t
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f, nil
}

// Close unmaps the file; tensors' Data must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap, f.data, f.tensors = nil, nil, nil
	return err
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string { return f.names }

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// WriteEntry is one tensor to write: its bytes in Data, or, for a writer
// that holds one tensor at a time, written by Fill when its turn comes.
type WriteEntry struct {
	Name  string
	Dtype Dtype
	Shape []int
	Data  []byte
	Fill  func(w io.Writer) error // used when Data is nil; must write exactly the tensor's bytes
}

// Write writes tensors (in the given order) and metadata to path atomically:
// a temporary file in the same directory is written, synced and renamed, so a
// crash or a full disk never leaves a half-written file under the final name.
func Write(path string, tensors []WriteEntry, metadata map[string]string) error {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		n := int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		size := n * int64(t.Dtype.Size())
		if t.Dtype.Size() == 0 || t.Fill == nil && size != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: %s: tensor %q: %s %v does not match %d bytes", path, t.Name, t.Dtype, t.Shape, len(t.Data))
		}
		header[t.Name] = headerEntry{Dtype: t.Dtype, Shape: append([]int{}, t.Shape...), Offsets: [2]int64{off, off + size}}
		off += size
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 { // pad with spaces so the data section is 8-byte aligned
		hj = append(hj, ' ')
	}
	return writeAtomic(path, func(w *os.File) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(hj)))
		if _, err := w.Write(n[:]); err != nil {
			return err
		}
		if _, err := w.Write(hj); err != nil {
			return err
		}
		bw := bufio.NewWriterSize(w, 1<<20)
		for _, t := range tensors {
			if t.Data == nil && t.Fill != nil {
				cw := &countWriter{w: bw}
				if err := t.Fill(cw); err != nil {
					return fmt.Errorf("tensor %q: %w", t.Name, err)
				}
				h := header[t.Name].(headerEntry)
				if cw.n != h.Offsets[1]-h.Offsets[0] {
					return fmt.Errorf("tensor %q: %d bytes written, its dtype and shape make %d", t.Name, cw.n, h.Offsets[1]-h.Offsets[0])
				}
				continue
			}
			if _, err := bw.Write(t.Data); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeAtomic(path string, fill func(*os.File) error) error {
	if err := atomicfile.Write(path, fill); err != nil {
		if errors.As(err, new(*fs.PathError)) { // it names the file
			return fmt.Errorf("safetensors: %w", err)
		}
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return nil
}
