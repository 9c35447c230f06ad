package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/x448/float16"
)

func TestStories260K(t *testing.T) {
	f, err := Open(testassets.Path(t, "models/stories260K/hf/model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q, ok := f.Tensor("model.layers.0.self_attn.q_proj.weight")
	if !ok || q.Dtype != F32 || len(q.Shape) != 2 || q.Shape[0] != 64 || q.Shape[1] != 64 {
		t.Fatalf("q_proj: %+v", q)
	}
	k, _ := f.Tensor("model.layers.0.self_attn.k_proj.weight")
	if k == nil || k.Shape[0] != 32 { // 4 KV heads × 8
		t.Fatalf("k_proj: %+v", k)
	}
	if len(f.Names()) < 40 {
		t.Errorf("only %d tensors", len(f.Names()))
	}
}

func TestRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.safetensors")
	a := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	b := []byte{9, 10}
	if err := Write(p, []WriteEntry{{Name: "x", Dtype: F32, Shape: []int{2}, Data: a}, {Name: "y", Dtype: BF16, Shape: []int{1, 1}, Data: b}}, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := f.Tensor("x")
	y, _ := f.Tensor("y")
	if !bytes.Equal(x.Data, a) || !bytes.Equal(y.Data, b) || f.Metadata["format"] != "pt" {
		t.Fatalf("round trip: %v %v %v", x, y, f.Metadata)
	}
	f.Close()
	raw, _ := os.ReadFile(p)
	cases := map[string][]byte{
		"short":     raw[:5],
		"truncated": raw[:len(raw)-3],
		"json":      append(append([]byte{}, raw[:8]...), bytes.Repeat([]byte{'{'}, len(raw)-8)...),
		"hugehdr":   append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, raw[8:]...),
	}
	for name, data := range cases {
		bad := filepath.Join(dir, name+".safetensors")
		os.WriteFile(bad, data, 0o644)
		if _, err := Open(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: error %v (must name the file)", name, err)
		}
	}
	if err := Write(p, []WriteEntry{{Name: "x", Dtype: F32, Shape: []int{3}, Data: a}}, nil); err == nil {
		t.Error("shape/data mismatch accepted")
	}
	if f, err := Open(p); err != nil {
		t.Errorf("failed write damaged the existing file: %v", err)
	} else {
		f.Close()
	}
}

// TestFloat32s decodes each float dtype against values exact in all three
// (small integers and halves) and refuses other dtypes and wrong lengths.
func TestFloat32s(t *testing.T) {
	want := []float32{0, 1, -2.5, 384, 0.125}
	f32 := make([]byte, 4*len(want))
	f16 := make([]byte, 2*len(want))
	bf16 := make([]byte, 2*len(want))
	for i, v := range want {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
		binary.LittleEndian.PutUint16(f16[2*i:], float16.Fromfloat32(v).Bits())
		binary.LittleEndian.PutUint16(bf16[2*i:], uint16(math.Float32bits(v)>>16))
	}
	path := filepath.Join(t.TempDir(), "f.safetensors")
	err := Write(path, []WriteEntry{
		{Name: "a", Dtype: F32, Shape: []int{5}, Data: f32},
		{Name: "b", Dtype: F16, Shape: []int{5}, Data: f16},
		{Name: "c", Dtype: BF16, Shape: []int{5}, Data: bf16},
		{Name: "d", Dtype: I8, Shape: []int{5}, Data: make([]byte, 5)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []string{"a", "b", "c"} {
		tn, _ := f.Tensor(n)
		got := make([]float32, 5)
		if err := tn.Float32s(got); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s (%s)[%d] = %g, want %g", n, tn.Dtype, i, got[i], want[i])
			}
		}
		if err := tn.Float32s(make([]float32, 4)); err == nil {
			t.Errorf("%s: a 4-value destination for 5 values was accepted", n)
		}
	}
	d, _ := f.Tensor("d")
	if err := d.Float32s(make([]float32, 5)); err == nil || !strings.Contains(err.Error(), "I8") {
		t.Errorf("I8 tensor: got %v, want a dtype error", err)
	}
}

// TestNewReader: a file read through io.ReaderAt gives Open's tensors; a
// truncated one is an error naming it.
func TestNewReader(t *testing.T) {
	path := testassets.Path(t, "models/stories260K/hf/model.safetensors")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewReader(bytes.NewReader(raw), int64(len(raw)), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Names(), b.Names()) {
		t.Fatal("names differ")
	}
	for _, n := range a.Names() {
		x, _ := a.Tensor(n)
		y, _ := b.Tensor(n)
		if !bytes.Equal(x.Data, y.Data) || !slices.Equal(x.Shape, y.Shape) {
			t.Fatalf("%s differs", n)
		}
	}
	if _, err := NewReader(bytes.NewReader(raw[:len(raw)-9]), int64(len(raw)-9), "cut"); err == nil || !strings.Contains(err.Error(), "cut") {
		t.Errorf("truncated: %v", err)
	}
}

// FuzzReader: no input makes the reader panic or allocate past the input's
// size (make fuzz runs it).
func FuzzReader(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Add(append([]byte{40, 0, 0, 0, 0, 0, 0, 0}, []byte(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		NewReader(bytes.NewReader(data), int64(len(data)), "fuzz")
	})
}
