package kernels

import (
	"strings"
	"testing"
)

// TestPaths: a path is what its name says, whole. The pure-Go path runs no
// vectorized piece; a path without AVX-512 (avx2, neon) runs no AVX-512 row
// kernel, decoder or transpose (LOWRANK_KERNEL=avx2 once still ran AVX-512
// row kernels); a Pool runs the path it was given, and its ID names every piece.
func TestPaths(t *testing.T) {
	ps := Paths()
	if ps[len(ps)-1] != goPath {
		t.Fatalf("the pure-Go path must come last: %v", Kernels())
	}
	for _, pa := range ps {
		in := pa.Info()
		p, err := NewPool(1, pa.Name())
		if err != nil {
			t.Fatal(err)
		}
		if p.Path() != pa || p.Kernel() != pa.Name() {
			t.Errorf("NewPool(%q) runs %s", pa.Name(), p.Path())
		}
		for _, piece := range []string{in.Rows, in.Blocks, in.Transpose} {
			if piece != "go" && piece != pa.simd {
				t.Errorf("%s: piece %q is neither go nor the path's own instructions", pa.Name(), piece)
			}
			if pa.Name() != "avx512" && strings.Contains(piece, "avx512") {
				t.Errorf("path %s runs AVX-512 code: %s", pa.Name(), pa.ID())
			}
		}
		if !strings.HasPrefix(pa.ID(), pa.Name()+" ") || !strings.Contains(pa.ID(), "rows="+in.Rows) {
			t.Errorf("ID %q does not describe %+v", pa.ID(), in)
		}
	}
	if in := goPath.Info(); in.Rows != "go" || in.Blocks != "go" || in.Transpose != "go" || in.Dot || in.Outer {
		t.Errorf("pure-Go path has vectorized pieces: %+v", in)
	}
	t.Setenv("LOWRANK_KERNEL", "go")
	if p, err := ChoosePath(""); err != nil || p != goPath {
		t.Errorf("LOWRANK_KERNEL=go chose %v, %v", p, err)
	}
	if _, err := ChoosePath("sse9"); err == nil || !strings.Contains(err.Error(), "sse9") {
		t.Errorf("unknown path: %v", err)
	}
}
