package gguf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

func TestRealFiles(t *testing.T) {
	cases := []struct {
		rel     string
		version uint32
		tensors int
		arch    string
	}{
		{"models/stories260K/tinyllamas-stories-260k-f32.gguf", 1, 48, "llama"},
		{"models/stories260K/stories260K-f32-v3.gguf", 3, 48, "llama"},
		{"models/rand-tiny64/rand-tiny64-Q4_0.gguf", 3, 21, "llama"},
		{"models/llama-2-tiny-random/llama-2-tiny-random.gguf", 3, -1, "llama"},
		{"models/rand-k256/rand-k256-Q4_K_M.gguf", 3, -1, "llama"},
	}
	for _, c := range cases {
		g, err := Open(testassets.Path(t, c.rel))
		if err != nil {
			t.Fatal(err)
		}
		if g.Version != c.version || (c.tensors >= 0 && len(g.Tensors) != c.tensors) {
			t.Errorf("%s: version %d, %d tensors; want %d, %d", c.rel, g.Version, len(g.Tensors), c.version, c.tensors)
		}
		if a, _ := g.String("general.architecture"); a != c.arch {
			t.Errorf("%s: architecture %q", c.rel, a)
		}
		for i := range g.Tensors {
			if _, err := g.ReadTensor(&g.Tensors[i]); err != nil {
				t.Errorf("%s: %v", c.rel, err)
			}
		}
		g.Close()
	}
	g, err := Open(testassets.Path(t, "models/stories260K/tinyllamas-stories-260k-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if n, _ := g.Uint("llama.embedding_length"); n != 64 {
		t.Errorf("embedding_length %d", n)
	}
	if toks, ok := g.Get("tokenizer.ggml.tokens"); !ok || len(toks.([]string)) != 512 {
		t.Errorf("tokenizer.ggml.tokens: %T", toks)
	}
	if ti, ok := g.Tensor("token_embd.weight"); !ok || ti.Dims[0] != 64 || ti.Dims[1] != 512 || ti.Type != TypeF32 {
		t.Errorf("token_embd.weight: %+v", ti)
	}
}

func TestVocabOnlyFiles(t *testing.T) {
	dir := filepath.Dir(testassets.Path(t, "tokenizers/llama.cpp-vocab"+"/"))
	files, _ := filepath.Glob(filepath.Join(dir, "llama.cpp-vocab", "*.gguf"))
	if len(files) == 0 {
		t.Skip("no vocab GGUFs")
	}
	for _, f := range files {
		g, err := Open(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if _, ok := g.Get("tokenizer.ggml.model"); !ok {
			t.Errorf("%s: no tokenizer.ggml.model", f)
		}
		g.Close()
	}
}

// TestCorrupt: truncations at every region and a hostile count give errors that
// name the file, never a panic or a huge allocation.
func TestCorrupt(t *testing.T) {
	src := testassets.Path(t, "models/rand-tiny64/rand-tiny64-Q8_0.gguf")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, n := range []int{0, 3, 7, 20, 100, 5000, 100000} {
		p := write("trunc.gguf", data[:n])
		g, err := Open(p)
		if err == nil {
			g.Close()
			t.Errorf("truncated to %d bytes: no error", n)
			continue
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not name the file: %v", err)
		}
	}
	// Header intact, tensor data cut: Open succeeds, ReadTensor says truncated.
	p := write("data.gguf", data[:len(data)-1000])
	g, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var readErr error
	for i := range g.Tensors {
		if _, err := g.ReadTensor(&g.Tensors[i]); err != nil {
			readErr = err
		}
	}
	g.Close()
	if readErr == nil || !strings.Contains(readErr.Error(), "truncated") {
		t.Errorf("cut tensor data: %v", readErr)
	}
	// A metadata count of 2^62 must be refused before allocation.
	bad := append([]byte(nil), data...)
	for i := 16; i < 24; i++ {
		bad[i] = 0xff
	}
	bad[23] = 0x3f
	if g, err := Open(write("count.gguf", bad)); err == nil {
		g.Close()
		t.Error("huge metadata count accepted")
	}
	if _, err := Open(write("magic.gguf", []byte("GGML\x03\x00\x00\x00"))); err == nil || !strings.Contains(err.Error(), "not a GGUF") {
		t.Errorf("bad magic: %v", err)
	}
}

// TestVersion2: GGUF v2 has v3's layout (64-bit counts); a v3 file relabelled
// as v2 reads to the same metadata and tensors.
func TestVersion2(t *testing.T) {
	src := testassets.Path(t, "models/stories260K/stories260K-f32-v3.gguf")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	data[4] = 2
	p := filepath.Join(t.TempDir(), "v2.gguf")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	g2, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	g3, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer g3.Close()
	if g2.Version != 2 || len(g2.Tensors) != len(g3.Tensors) || len(g2.KV) != len(g3.KV) || g2.DataOffset != g3.DataOffset {
		t.Fatalf("v2: version %d, %d tensors, %d kv, data at %d", g2.Version, len(g2.Tensors), len(g2.KV), g2.DataOffset)
	}
}
