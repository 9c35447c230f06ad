package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/lowrank/lowrank/internal/atomicfile"
)

// Writer writes a GGUF v3 file: the metadata and the tensor directory
// first, then each tensor's bytes, produced by its fill function when its
// turn comes, so that a writer holds one tensor at a time, never the model.
type Writer struct {
	kvs     []KV
	kvIndex map[string]int
	tensors []wtensor
	names   map[string]bool
	// Alignment of the tensor data (general.alignment when not 32).
	Alignment uint64
}

type wtensor struct {
	info TensorInfo
	size uint64
	fill func(w io.Writer) error
}

// NewWriter returns an empty writer (alignment 32, as llama.cpp writes).
func NewWriter() *Writer {
	return &Writer{kvIndex: map[string]int{}, names: map[string]bool{}, Alignment: 32}
}

// Set adds (or replaces) a metadata entry, its GGUF type following v's Go
// type: uint8 … float64, bool, string, and slices of those ([]string,
// []float32, []int32, …) for arrays. Choose the Go type to get the value
// type llama.cpp's converter writes (uint32 for counts, float32 for
// epsilons).
func (w *Writer) Set(key string, v any) error {
	t, err := valueType(v)
	if err != nil {
		return fmt.Errorf("gguf: metadata %q: %w", key, err)
	}
	w.SetKV(KV{Key: key, Type: t, Value: v})
	return nil
}

// SetKV adds (or replaces) an entry as read from another file.
func (w *Writer) SetKV(kv KV) {
	if i, ok := w.kvIndex[kv.Key]; ok {
		w.kvs[i] = kv
		return
	}
	w.kvIndex[kv.Key] = len(w.kvs)
	w.kvs = append(w.kvs, kv)
}

// KV returns the entry set for key.
func (w *Writer) KV(key string) (KV, bool) {
	i, ok := w.kvIndex[key]
	if !ok {
		return KV{}, false
	}
	return w.kvs[i], true
}

// AddTensor adds a tensor of type t and dims (dims[0] the row length) whose
// bytes fill writes, exactly as many as the type and dims make, when the
// file is written.
func (w *Writer) AddTensor(name string, t Type, dims []uint64, fill func(w io.Writer) error) error {
	if w.names[name] {
		return fmt.Errorf("gguf: tensor %q added twice", name)
	}
	ti := TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: t}
	size, err := ti.Size()
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	w.names[name] = true
	w.tensors = append(w.tensors, wtensor{info: ti, size: size, fill: fill})
	return nil
}

// Tensors returns the directory as it will be written (offsets filled in).
func (w *Writer) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(w.tensors))
	var off uint64
	for i, t := range w.tensors {
		out[i] = t.info
		out[i].Offset = off
		off = w.pad(off + t.size)
	}
	return out
}

func (w *Writer) pad(n uint64) uint64 { return (n + w.Alignment - 1) / w.Alignment * w.Alignment }

// WriteTo writes the file to out.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	if w.Alignment == 0 || w.Alignment&(w.Alignment-1) != 0 {
		return 0, fmt.Errorf("gguf: alignment %d is not a power of two", w.Alignment)
	}
	if w.Alignment != 32 {
		w.SetKV(KV{Key: "general.alignment", Type: Uint32, Value: uint32(w.Alignment)})
	}
	cw := &countingWriter{w: bufio.NewWriterSize(out, 1<<20)}
	e := &encoder{w: cw}
	e.raw([]byte("GGUF"))
	e.u32(3)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Type))
		if err := e.value(kv.Type, kv.Value); err != nil {
			return cw.n, fmt.Errorf("gguf: metadata %q: %w", kv.Key, err)
		}
	}
	for _, ti := range w.Tensors() {
		e.str(ti.Name)
		e.u32(uint32(len(ti.Dims)))
		for _, d := range ti.Dims {
			e.u64(d)
		}
		e.u32(uint32(ti.Type))
		e.u64(ti.Offset)
	}
	if e.err != nil {
		return cw.n, e.err
	}
	e.zeros(w.pad(uint64(cw.n)) - uint64(cw.n))
	for _, t := range w.tensors {
		start := cw.n
		if err := t.fill(cw); err != nil {
			return cw.n, fmt.Errorf("gguf: tensor %q: %w", t.info.Name, err)
		}
		if got := uint64(cw.n - start); got != t.size {
			return cw.n, fmt.Errorf("gguf: tensor %q: %d bytes written, its type and shape make %d", t.info.Name, got, t.size)
		}
		e.zeros(w.pad(t.size) - t.size)
		if e.err != nil {
			return cw.n, e.err
		}
	}
	return cw.n, cw.w.(*bufio.Writer).Flush()
}

// WriteFile writes the file to path whole or not at all (a temporary file,
// synced and renamed).
func (w *Writer) WriteFile(path string) error {
	err := atomicfile.Write(path, func(f *os.File) error {
		_, err := w.WriteTo(f)
		return err
	})
	if err != nil {
		return fmt.Errorf("gguf: %s: %w", path, err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type encoder struct {
	w   io.Writer
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u32(v uint32) { binary.LittleEndian.PutUint32(e.buf[:4], v); e.raw(e.buf[:4]) }
func (e *encoder) u64(v uint64) { binary.LittleEndian.PutUint64(e.buf[:8], v); e.raw(e.buf[:8]) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.raw([]byte(s)) }

func (e *encoder) zeros(n uint64) {
	var z [64]byte
	for n > 0 {
		k := min(n, 64)
		e.raw(z[:k])
		n -= k
	}
}

// valueType is the GGUF type of a Go value (for Set).
func valueType(v any) (ValueType, error) {
	switch v.(type) {
	case uint8:
		return Uint8, nil
	case int8:
		return Int8, nil
	case uint16:
		return Uint16, nil
	case int16:
		return Int16, nil
	case uint32:
		return Uint32, nil
	case int32:
		return Int32, nil
	case float32:
		return Float32, nil
	case bool:
		return Bool, nil
	case string:
		return String, nil
	case uint64:
		return Uint64, nil
	case int64:
		return Int64, nil
	case float64:
		return Float64, nil
	case []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32, []bool, []string, []uint64, []int64, []float64, []any:
		return Array, nil
	}
	return 0, fmt.Errorf("no GGUF type for a Go %T", v)
}

// elemType is an array value's element type.
func elemType(v any) (ValueType, int, error) {
	switch a := v.(type) {
	case []uint8:
		return Uint8, len(a), nil
	case []int8:
		return Int8, len(a), nil
	case []uint16:
		return Uint16, len(a), nil
	case []int16:
		return Int16, len(a), nil
	case []uint32:
		return Uint32, len(a), nil
	case []int32:
		return Int32, len(a), nil
	case []float32:
		return Float32, len(a), nil
	case []bool:
		return Bool, len(a), nil
	case []string:
		return String, len(a), nil
	case []uint64:
		return Uint64, len(a), nil
	case []int64:
		return Int64, len(a), nil
	case []float64:
		return Float64, len(a), nil
	case []any:
		return Array, len(a), nil
	}
	return 0, 0, fmt.Errorf("an array must be a typed slice, not %T", v)
}

func (e *encoder) value(t ValueType, v any) error {
	bad := func() error { return fmt.Errorf("value %v (%T) is not a %d", v, v, t) }
	switch t {
	case Uint8:
		x, ok := v.(uint8)
		if !ok {
			return bad()
		}
		e.raw([]byte{x})
	case Int8:
		x, ok := v.(int8)
		if !ok {
			return bad()
		}
		e.raw([]byte{byte(x)})
	case Uint16, Int16:
		var u uint16
		switch x := v.(type) {
		case uint16:
			u = x
		case int16:
			u = uint16(x)
		default:
			return bad()
		}
		binary.LittleEndian.PutUint16(e.buf[:2], u)
		e.raw(e.buf[:2])
	case Uint32:
		x, ok := v.(uint32)
		if !ok {
			return bad()
		}
		e.u32(x)
	case Int32:
		x, ok := v.(int32)
		if !ok {
			return bad()
		}
		e.u32(uint32(x))
	case Float32:
		x, ok := v.(float32)
		if !ok {
			return bad()
		}
		e.u32(math.Float32bits(x))
	case Bool:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		b := byte(0)
		if x {
			b = 1
		}
		e.raw([]byte{b})
	case String:
		x, ok := v.(string)
		if !ok {
			return bad()
		}
		e.str(x)
	case Uint64:
		x, ok := v.(uint64)
		if !ok {
			return bad()
		}
		e.u64(x)
	case Int64:
		x, ok := v.(int64)
		if !ok {
			return bad()
		}
		e.u64(uint64(x))
	case Float64:
		x, ok := v.(float64)
		if !ok {
			return bad()
		}
		e.u64(math.Float64bits(x))
	case Array:
		et, n, err := elemType(v)
		if err != nil {
			return err
		}
		e.u32(uint32(et))
		e.u64(uint64(n))
		switch a := v.(type) {
		case []uint8:
			e.raw(a)
		case []any:
			for _, x := range a {
				if _, err := valueType(x); err != nil {
					return err
				}
				if err := e.value(Array, x); err != nil {
					return err
				}
			}
		default:
			for i := 0; i < n; i++ {
				if err := e.value(et, index(v, i)); err != nil {
					return err
				}
			}
		}
	default:
		return fmt.Errorf("unknown value type %d", t)
	}
	return nil
}

func index(v any, i int) any {
	switch a := v.(type) {
	case []int8:
		return a[i]
	case []uint16:
		return a[i]
	case []int16:
		return a[i]
	case []uint32:
		return a[i]
	case []int32:
		return a[i]
	case []float32:
		return a[i]
	case []bool:
		return a[i]
	case []string:
		return a[i]
	case []uint64:
		return a[i]
	case []int64:
		return a[i]
	case []float64:
		return a[i]
	}
	return nil
}
