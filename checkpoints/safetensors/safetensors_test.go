package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
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
	if err := Write(p, []WriteEntry{{"x", F32, []int{2}, a}, {"y", BF16, []int{1, 1}, b}}, map[string]string{"format": "pt"}); err != nil {
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
	if err := Write(p, []WriteEntry{{"x", F32, []int{3}, a}}, nil); err == nil {
		t.Error("shape/data mismatch accepted")
	}
	if f, err := Open(p); err != nil {
		t.Errorf("failed write damaged the existing file: %v", err)
	} else {
		f.Close()
	}
}
