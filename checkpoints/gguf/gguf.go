// Package gguf reads GGUF files (versions 1, 2 and 3): the header, the typed
// metadata, the tensor directory and tensor bytes. It is a leaf package: it
// knows the format, not what the tensors mean.
//
// Every length in a file is checked against the bytes left before anything is
// allocated, so a corrupt or hostile file gives an error, never a huge
// allocation or a panic.
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// Type is a ggml tensor type.
type Type uint32

const (
	TypeF32  Type = 0
	TypeF16  Type = 1
	TypeQ4_0 Type = 2
	TypeQ4_1 Type = 3
	TypeQ5_0 Type = 6
	TypeQ5_1 Type = 7
	TypeQ8_0 Type = 8
	TypeQ8_1 Type = 9
	TypeQ2_K Type = 10
	TypeQ3_K Type = 11
	TypeQ4_K Type = 12
	TypeQ5_K Type = 13
	TypeQ6_K Type = 14
	TypeQ8_K Type = 15
	TypeI8   Type = 24
	TypeI16  Type = 25
	TypeI32  Type = 26
	TypeI64  Type = 27
	TypeF64  Type = 28
	TypeBF16 Type = 30
)

// typeInfo is (values per block, bytes per block).
var typeInfo = map[Type][2]int{
	TypeF32: {1, 4}, TypeF16: {1, 2}, TypeBF16: {1, 2}, TypeF64: {1, 8},
	TypeI8: {1, 1}, TypeI16: {1, 2}, TypeI32: {1, 4}, TypeI64: {1, 8},
	TypeQ4_0: {32, 18}, TypeQ4_1: {32, 20}, TypeQ5_0: {32, 22}, TypeQ5_1: {32, 24},
	TypeQ8_0: {32, 34}, TypeQ8_1: {32, 36},
	TypeQ2_K: {256, 84}, TypeQ3_K: {256, 110}, TypeQ4_K: {256, 144}, TypeQ5_K: {256, 176},
	TypeQ6_K: {256, 210}, TypeQ8_K: {256, 292},
}

var typeNames = map[Type]string{
	TypeF32: "F32", TypeF16: "F16", TypeBF16: "BF16", TypeF64: "F64", TypeI8: "I8", TypeI16: "I16",
	TypeI32: "I32", TypeI64: "I64", TypeQ4_0: "Q4_0", TypeQ4_1: "Q4_1", TypeQ5_0: "Q5_0",
	TypeQ5_1: "Q5_1", TypeQ8_0: "Q8_0", TypeQ8_1: "Q8_1", TypeQ2_K: "Q2_K", TypeQ3_K: "Q3_K",
	TypeQ4_K: "Q4_K", TypeQ5_K: "Q5_K", TypeQ6_K: "Q6_K", TypeQ8_K: "Q8_K",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// BlockSize returns the values per block and bytes per block, ok = false for a
// type this package does not know.
func (t Type) BlockSize() (values, bytes int, ok bool) {
	i, ok := typeInfo[t]
	return i[0], i[1], ok
}

// ValueType is the type of a metadata value.
type ValueType uint32

const (
	Uint8 ValueType = iota
	Int8
	Uint16
	Int16
	Uint32
	Int32
	Float32
	Bool
	String
	Array
	Uint64
	Int64
	Float64
)

var fixedSize = map[ValueType]int{Uint8: 1, Int8: 1, Uint16: 2, Int16: 2, Uint32: 4, Int32: 4, Float32: 4, Bool: 1, Uint64: 8, Int64: 8, Float64: 8}

// KV is one metadata entry. Value holds uint8, int8, uint16, int16, uint32,
// int32, float32, bool, string, uint64, int64 or float64; an array holds a
// typed slice of those ([]string, []float32, []int32, ...) or []any for arrays
// of arrays.
type KV struct {
	Key   string
	Type  ValueType
	Value any
}

// TensorInfo describes one tensor. Dims[0] is the fastest-varying dimension
// (the row length of a matrix); Offset is relative to the data section.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   Type
	Offset uint64
}

// Elements returns the number of values.
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Size returns the tensor's byte size.
func (t *TensorInfo) Size() (uint64, error) {
	vals, bytes, ok := t.Type.BlockSize()
	if !ok {
		return 0, fmt.Errorf("tensor %q has unknown type %d", t.Name, uint32(t.Type))
	}
	if len(t.Dims) > 0 && t.Dims[0]%uint64(vals) != 0 {
		return 0, fmt.Errorf("tensor %q: row length %d is not a multiple of %s's block of %d", t.Name, t.Dims[0], t.Type, vals)
	}
	return t.Elements() / uint64(vals) * uint64(bytes), nil
}

// File is an open GGUF file.
type File struct {
	Path       string
	Version    uint32
	KV         []KV
	Tensors    []TensorInfo
	Alignment  uint64
	DataOffset int64 // absolute offset of the tensor data section
	Size       int64 // file size

	kv      map[string]int
	tensors map[string]int
	ra      io.ReaderAt
	closer  io.Closer // nil when the caller owns ra
}

// ErrNotGGUF is returned (wrapped) when a file does not start with the GGUF magic.
var ErrNotGGUF = errors.New("not a GGUF file")

// Open reads the header, metadata and tensor directory of a GGUF file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	g, err := NewReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	g.closer = f
	return g, nil
}

// NewReader reads the header, metadata and tensor directory of the GGUF
// file of size bytes in r; name is used in errors. Tensor bytes are read
// from r when asked for, so r must stay valid while the File is used (its
// Close does not close r).
func NewReader(r io.ReaderAt, size int64, name string) (*File, error) {
	g := &File{Path: name, Size: size, ra: r}
	if err := g.readHeader(); err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", name, err)
	}
	return g, nil
}

// Close releases the file (for a File from Open).
func (g *File) Close() error {
	if g.closer == nil {
		return nil
	}
	return g.closer.Close()
}

type reader struct {
	r       *bufio.Reader
	pos     int64
	size    int64
	version uint32
}

func (r *reader) read(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.pos += int64(n)
	if err != nil {
		return fmt.Errorf("truncated at byte %d (file is %d bytes)", r.pos, r.size)
	}
	return nil
}

func (r *reader) u32() (uint32, error) {
	var b [4]byte
	err := r.read(b[:])
	return binary.LittleEndian.Uint32(b[:]), err
}

func (r *reader) u64() (uint64, error) {
	var b [8]byte
	err := r.read(b[:])
	return binary.LittleEndian.Uint64(b[:]), err
}

// count reads a length or count: u32 in version 1, u64 after.
func (r *reader) count() (uint64, error) {
	if r.version == 1 {
		v, err := r.u32()
		return uint64(v), err
	}
	return r.u64()
}

// left is the number of bytes not yet read.
func (r *reader) left() uint64 { return uint64(max(0, r.size-r.pos)) }

func (r *reader) str() (string, error) {
	n, err := r.count()
	if err != nil {
		return "", err
	}
	if n > r.left() {
		return "", fmt.Errorf("string of %d bytes at byte %d runs past the end of the file", n, r.pos)
	}
	b := make([]byte, n)
	if err := r.read(b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (g *File) readHeader() error {
	r := &reader{r: bufio.NewReaderSize(io.NewSectionReader(g.ra, 0, g.Size), 1<<16), size: g.Size}
	var magic [4]byte
	if err := r.read(magic[:]); err != nil || string(magic[:]) != "GGUF" {
		return ErrNotGGUF
	}
	v, err := r.u32()
	if err != nil {
		return err
	}
	if v < 1 || v > 3 {
		return fmt.Errorf("unsupported GGUF version %d", v)
	}
	g.Version, r.version = v, v
	nt, err := r.count()
	if err != nil {
		return err
	}
	nkv, err := r.count()
	if err != nil {
		return err
	}
	// Every entry takes at least 8 bytes (a key length and a type): reject counts
	// the file cannot hold before allocating for them.
	if nkv > r.left()/8 || nt > r.left()/8 {
		return fmt.Errorf("header claims %d metadata entries and %d tensors: more than the file can hold", nkv, nt)
	}
	g.kv = make(map[string]int, nkv)
	g.KV = make([]KV, 0, nkv)
	for i := uint64(0); i < nkv; i++ {
		key, err := r.str()
		if err != nil {
			return fmt.Errorf("metadata entry %d: %w", i, err)
		}
		t, err := r.u32()
		if err != nil {
			return err
		}
		val, err := r.value(ValueType(t), 0)
		if err != nil {
			return fmt.Errorf("metadata %q: %w", key, err)
		}
		g.kv[key] = len(g.KV)
		g.KV = append(g.KV, KV{Key: key, Type: ValueType(t), Value: val})
	}
	g.tensors = make(map[string]int, nt)
	g.Tensors = make([]TensorInfo, 0, nt)
	for i := uint64(0); i < nt; i++ {
		var ti TensorInfo
		if ti.Name, err = r.str(); err != nil {
			return fmt.Errorf("tensor %d: %w", i, err)
		}
		nd, err := r.u32()
		if err != nil {
			return err
		}
		if nd > 8 {
			return fmt.Errorf("tensor %q has %d dimensions", ti.Name, nd)
		}
		ti.Dims = make([]uint64, nd)
		for d := range ti.Dims {
			if ti.Dims[d], err = r.count(); err != nil {
				return err
			}
			if ti.Dims[d] > 1<<40 {
				return fmt.Errorf("tensor %q dimension %d is %d", ti.Name, d, ti.Dims[d])
			}
		}
		t, err := r.u32()
		if err != nil {
			return err
		}
		ti.Type = Type(t)
		if ti.Offset, err = r.u64(); err != nil {
			return err
		}
		if _, dup := g.tensors[ti.Name]; dup {
			return fmt.Errorf("tensor %q appears twice", ti.Name)
		}
		g.tensors[ti.Name] = len(g.Tensors)
		g.Tensors = append(g.Tensors, ti)
	}
	g.Alignment = 32
	if a, ok := g.Uint("general.alignment"); ok {
		if a == 0 || a&(a-1) != 0 {
			return fmt.Errorf("general.alignment %d is not a power of two", a)
		}
		g.Alignment = a
	}
	g.DataOffset = int64((uint64(r.pos) + g.Alignment - 1) / g.Alignment * g.Alignment)
	return nil
}

func (r *reader) value(t ValueType, depth int) (any, error) {
	var b [8]byte
	if n, ok := fixedSize[t]; ok {
		if err := r.read(b[:n]); err != nil {
			return nil, err
		}
		return decodeFixed(t, b[:n]), nil
	}
	switch t {
	case String:
		return r.str()
	case Array:
		if depth > 2 {
			return nil, errors.New("arrays nested too deeply")
		}
		et, err := r.u32()
		if err != nil {
			return nil, err
		}
		n, err := r.count()
		if err != nil {
			return nil, err
		}
		min := uint64(fixedSize[ValueType(et)])
		if ValueType(et) == String || ValueType(et) == Array {
			min = 8
			if r.version == 1 {
				min = 4
			}
		}
		if min == 0 {
			return nil, fmt.Errorf("array of unknown type %d", et)
		}
		if n > r.left()/min {
			return nil, fmt.Errorf("array of %d elements runs past the end of the file", n)
		}
		return r.array(ValueType(et), int(n), depth)
	}
	return nil, fmt.Errorf("unknown value type %d", t)
}

func (r *reader) array(et ValueType, n, depth int) (any, error) {
	switch et {
	case String:
		out := make([]string, n)
		for i := range out {
			s, err := r.str()
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	case Array:
		out := make([]any, n)
		for i := range out {
			v, err := r.value(Array, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	size := fixedSize[et]
	buf := make([]byte, n*size)
	if err := r.read(buf); err != nil {
		return nil, err
	}
	switch et {
	case Uint8:
		return buf, nil
	case Int8:
		return sliceOf(buf, size, func(b []byte) int8 { return int8(b[0]) }), nil
	case Bool:
		return sliceOf(buf, size, func(b []byte) bool { return b[0] != 0 }), nil
	case Uint16:
		return sliceOf(buf, size, binary.LittleEndian.Uint16), nil
	case Int16:
		return sliceOf(buf, size, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) }), nil
	case Uint32:
		return sliceOf(buf, size, binary.LittleEndian.Uint32), nil
	case Int32:
		return sliceOf(buf, size, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) }), nil
	case Float32:
		return sliceOf(buf, size, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }), nil
	case Uint64:
		return sliceOf(buf, size, binary.LittleEndian.Uint64), nil
	case Int64:
		return sliceOf(buf, size, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) }), nil
	case Float64:
		return sliceOf(buf, size, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }), nil
	}
	return nil, fmt.Errorf("array of unknown type %d", et)
}

func sliceOf[T any](buf []byte, size int, f func([]byte) T) []T {
	out := make([]T, len(buf)/size)
	for i := range out {
		out[i] = f(buf[i*size : (i+1)*size])
	}
	return out
}

func decodeFixed(t ValueType, b []byte) any {
	switch t {
	case Uint8:
		return b[0]
	case Int8:
		return int8(b[0])
	case Bool:
		return b[0] != 0
	case Uint16:
		return binary.LittleEndian.Uint16(b)
	case Int16:
		return int16(binary.LittleEndian.Uint16(b))
	case Uint32:
		return binary.LittleEndian.Uint32(b)
	case Int32:
		return int32(binary.LittleEndian.Uint32(b))
	case Float32:
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	case Uint64:
		return binary.LittleEndian.Uint64(b)
	case Int64:
		return int64(binary.LittleEndian.Uint64(b))
	case Float64:
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
	return nil
}

// Get returns a metadata value.
func (g *File) Get(key string) (any, bool) {
	i, ok := g.kv[key]
	if !ok {
		return nil, false
	}
	return g.KV[i].Value, true
}

// String returns a string metadata value.
func (g *File) String(key string) (string, bool) {
	v, ok := g.Get(key)
	s, isStr := v.(string)
	return s, ok && isStr
}

// Uint returns an unsigned or non-negative signed integer metadata value.
func (g *File) Uint(key string) (uint64, bool) {
	v, ok := g.Get(key)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	}
	return 0, false
}

// Float returns a floating-point metadata value.
func (g *File) Float(key string) (float64, bool) {
	v, ok := g.Get(key)
	switch x := v.(type) {
	case float32:
		return float64(x), ok
	case float64:
		return x, ok
	}
	return 0, false
}

// Tensor returns the named tensor's directory entry.
func (g *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := g.tensors[name]
	if !ok {
		return nil, false
	}
	return &g.Tensors[i], true
}

// TensorNames returns the tensor names in file order.
func (g *File) TensorNames() []string {
	names := make([]string, len(g.Tensors))
	for i, t := range g.Tensors {
		names[i] = t.Name
	}
	return names
}

// Keys returns the metadata keys, sorted.
func (g *File) Keys() []string {
	keys := make([]string, 0, len(g.KV))
	for _, kv := range g.KV {
		keys = append(keys, kv.Key)
	}
	sort.Strings(keys)
	return keys
}

// ReadTensor returns a tensor's bytes (a new slice).
func (g *File) ReadTensor(t *TensorInfo) ([]byte, error) {
	size, err := t.Size()
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", g.Path, err)
	}
	start := uint64(g.DataOffset) + t.Offset
	if t.Offset%g.Alignment != 0 {
		return nil, fmt.Errorf("gguf: %s: tensor %q offset %d is not aligned to %d", g.Path, t.Name, t.Offset, g.Alignment)
	}
	if start+size > uint64(g.Size) || start+size < start {
		return nil, fmt.Errorf("gguf: %s: tensor %q (%d bytes at %d) runs past the end of the file (%d bytes): truncated?", g.Path, t.Name, size, start, g.Size)
	}
	b := make([]byte, size)
	if _, err := g.ra.ReadAt(b, int64(start)); err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", g.Path, t.Name, err)
	}
	return b, nil
}

func f32(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

func f32bits(u uint32) float32 { return math.Float32frombits(u) }
