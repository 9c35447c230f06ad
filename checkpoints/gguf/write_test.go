package gguf

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

// TestWriteRoundTrip: GGUF v3 files written by llama.cpp, read and written
// again (metadata as read, every tensor streamed from the original), come
// out byte for byte the same: the writer lays out header, metadata,
// directory, alignment and data as llama.cpp does.
func TestWriteRoundTrip(t *testing.T) {
	for _, rel := range []string{
		"models/stories260K/stories260K-f32-v3.gguf",
		"models/rand-tiny64/rand-tiny64-Q4_0.gguf",
		"models/rand-k256/rand-k256-Q4_K_M.gguf",
		"models/llama-2-tiny-random/llama-2-tiny-random.gguf",
	} {
		path := testassets.Path(t, rel)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewReader(bytes.NewReader(orig), int64(len(orig)), path)
		if err != nil {
			t.Fatal(err)
		}
		w := NewWriter()
		for _, kv := range g.KV {
			if kv.Key != "general.alignment" {
				w.SetKV(kv)
			}
		}
		w.Alignment = g.Alignment
		for i := range g.Tensors {
			ti := &g.Tensors[i]
			if err := w.AddTensor(ti.Name, ti.Type, ti.Dims, func(out io.Writer) error {
				b, err := g.ReadTensor(ti)
				if err != nil {
					return err
				}
				_, err = out.Write(b)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), orig) {
			n := 0
			for n < min(buf.Len(), len(orig)) && buf.Bytes()[n] == orig[n] {
				n++
			}
			t.Errorf("%s: rewritten file differs from byte %d (%d vs %d bytes)", rel, n, buf.Len(), len(orig))
		}
	}
}

// TestWriteValueTypes: a value of every GGUF type, scalars, arrays of each
// and an array of arrays, is read back as it was set.
func TestWriteValueTypes(t *testing.T) {
	values := []any{uint8(7), int8(-7), uint16(700), int16(-700), uint32(7e6), int32(-7e6), float32(0.5), true, "héllo",
		uint64(7e12), int64(-7e12), float64(-0.25),
		[]uint8{1, 2}, []int8{-1, 2}, []uint16{3, 4}, []int16{-3, 4}, []uint32{5}, []int32{-5, 6}, []float32{0.5, -1},
		[]bool{true, false}, []string{"a", ""}, []uint64{9}, []int64{-9}, []float64{1.5}, []any{[]int32{1}, []string{"x"}}}
	w := NewWriter()
	for i, v := range values {
		if err := w.Set(fmt.Sprint("k", i), v); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	g, err := NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "values.gguf")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		got, ok := g.Get(fmt.Sprint("k", i))
		if !ok || !reflect.DeepEqual(got, v) {
			t.Errorf("%T %v: read back %v (%T)", v, v, got, got)
		}
	}
}

// TestWriteErrors: a fill that writes the wrong number of bytes, a value of
// the wrong Go type, a row length that is not whole blocks and a duplicate
// tensor are errors naming what is wrong.
func TestWriteErrors(t *testing.T) {
	w := NewWriter()
	if err := w.Set("x", struct{}{}); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("struct value: %v", err)
	}
	if err := w.AddTensor("q", TypeQ8_0, []uint64{33, 2}, nil); err == nil {
		t.Error("33-value rows accepted for Q8_0")
	}
	short := func(out io.Writer) error { _, err := out.Write(make([]byte, 7)); return err }
	if err := w.AddTensor("a", TypeF32, []uint64{2, 1}, short); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("a", TypeF32, []uint64{2}, short); err == nil {
		t.Error("duplicate tensor accepted")
	}
	if _, err := w.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), "7 bytes") {
		t.Errorf("short fill: %v", err)
	}
	w2 := NewWriter()
	w2.SetKV(KV{Key: "k", Type: Uint32, Value: "not a number"})
	if _, err := w2.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("mistyped value: %v", err)
	}
}

// FuzzReader: no input makes the GGUF reader panic or allocate past the
// input's size (make fuzz runs it); tensor bytes are read too.
func FuzzReader(f *testing.F) {
	w := NewWriter()
	w.Set("general.architecture", "llama")
	w.Set("tokenizer.ggml.tokens", []string{"a", "b"})
	w.AddTensor("t", TypeQ8_0, []uint64{32, 2}, func(out io.Writer) error { _, err := out.Write(make([]byte, 68)); return err })
	var buf bytes.Buffer
	w.WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := NewReader(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			return
		}
		for i := range g.Tensors {
			g.ReadTensor(&g.Tensors[i])
		}
	})
}
