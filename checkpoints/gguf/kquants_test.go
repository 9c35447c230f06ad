package gguf

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

// readSafetensorsF32 reads one F32 tensor (this leaf package cannot import the
// safetensors package, so it parses the tiny format itself).
func readSafetensorsF32(t *testing.T, path string) map[string][]float32 {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for name, v := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Dtype   string   `json:"dtype"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		json.Unmarshal(v, &e)
		if e.Dtype != "F32" {
			t.Fatalf("%s: %s", name, e.Dtype)
		}
		b := raw[8+int64(n)+e.Offsets[0] : 8+int64(n)+e.Offsets[1]]
		f := make([]float32, len(b)/4)
		for i := range f {
			f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		out[name] = f
	}
	return out
}

// TestKQuantsMatchLlamaCpp: every tensor of the Q4_K_M, Q5_K_M and Q6_K files
// dequantizes to exactly the values llama.cpp's gguf-py produced.
func TestKQuantsMatchLlamaCpp(t *testing.T) {
	for _, name := range []string{"Q4_K_M", "Q5_K_M", "Q6_K"} {
		g, err := Open(testassets.Path(t, "models/rand-k256/rand-k256-"+name+".gguf"))
		if err != nil {
			t.Fatal(err)
		}
		want := readSafetensorsF32(t, testassets.Path(t, "models/rand-k256/rand-k256-"+name+".dequant.safetensors"))
		types := map[Type]int{}
		for i := range g.Tensors {
			ti := &g.Tensors[i]
			raw, err := g.ReadTensor(ti)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, ti.Elements())
			if err := Dequantize(ti.Type, got, raw); err != nil {
				t.Fatalf("%s %s: %v", name, ti.Name, err)
			}
			w, ok := want[ti.Name]
			if !ok || len(w) != len(got) {
				t.Fatalf("%s %s: reference has %d values, want %d", name, ti.Name, len(w), len(got))
			}
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(w[j]) {
					t.Fatalf("%s %s (%s) [%d] = %g, llama.cpp %g", name, ti.Name, ti.Type, j, got[j], w[j])
				}
			}
			types[ti.Type]++
		}
		g.Close()
		t.Logf("%s: %v tensors bit-exact", name, types)
	}
}
