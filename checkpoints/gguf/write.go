package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"

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
func (e *encoder) u16(v uint16) { binary.LittleEndian.PutUint16(e.buf[:2], v); e.raw(e.buf[:2]) }
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

// value writes v, which must be of GGUF type t (valueType's mapping).
func (e *encoder) value(t ValueType, v any) error {
	if vt, err := valueType(v); err != nil || vt != t {
		return fmt.Errorf("value %v (%T) is not a %d", v, v, t)
	}
	switch x := v.(type) {
	case uint8:
		e.raw([]byte{x})
	case int8:
		e.raw([]byte{byte(x)})
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		e.raw([]byte{b})
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case []uint8:
		e.u32(uint32(Uint8))
		e.u64(uint64(len(x)))
		e.raw(x)
	default: // another typed slice, or []any of arrays
		a := reflect.ValueOf(v)
		et := Array
		if _, isAny := v.([]any); !isAny {
			et, _ = valueType(reflect.Zero(a.Type().Elem()).Interface())
		}
		e.u32(uint32(et))
		e.u64(uint64(a.Len()))
		for i := 0; i < a.Len(); i++ {
			if err := e.value(et, a.Index(i).Interface()); err != nil {
				return err
			}
		}
	}
	return nil
}
