package gguf

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

func readF32(t *testing.T, g *File, name string) ([]float32, *TensorInfo) {
	t.Helper()
	ti, ok := g.Tensor(name)
	if !ok {
		t.Fatalf("%s: no %s", g.Path, name)
	}
	raw, err := g.ReadTensor(ti)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, ti.Elements())
	if err := Dequantize(ti.Type, v, raw); err != nil {
		t.Fatal(err)
	}
	return v, ti
}

func rmse(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s / float64(len(a)))
}

// TestKQuantsAgainstLlamaCpp: every tensor of the rand-k256 F32 model,
// quantized by lowrank to the type llama-quantize chose for it in the
// Q4_K_M, Q5_K_M and Q6_K files, reconstructs with an RMSE at most 1.05× of
// llama.cpp's own (most are the same bytes); and that type's dequantization
// of llama.cpp's bytes is what lowrank reads.
func TestKQuantsAgainstLlamaCpp(t *testing.T) {
	src, err := Open(testassets.Path(t, "models/rand-k256/rand-k256-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, file := range []string{"Q4_K_M", "Q5_K_M", "Q6_K"} {
		g, err := Open(testassets.Path(t, "models/rand-k256/rand-k256-"+file+".gguf"))
		if err != nil {
			t.Fatal(err)
		}
		same, total := 0, 0
		worst := 0.0
		for _, ti := range g.Tensors {
			if ti.Type == TypeF32 {
				continue
			}
			x, _ := readF32(t, src, ti.Name)
			theirs, _ := readF32(t, g, ti.Name)
			_, bb, _ := ti.Type.BlockSize()
			vals, _, _ := ti.Type.BlockSize()
			mine := make([]byte, len(x)/vals*bb)
			if err := Quantize(ti.Type, mine, x); err != nil {
				t.Fatal(err)
			}
			raw, _ := g.ReadTensor(&ti)
			total++
			if string(raw) == string(mine) {
				same++
			}
			back := make([]float32, len(x))
			Dequantize(ti.Type, back, mine)
			r, ref := rmse(back, x), rmse(theirs, x)
			worst = max(worst, r/ref)
			if r > 1.05*ref {
				t.Errorf("%s %s (%s): RMSE %.4g, llama.cpp's %.4g", file, ti.Name, ti.Type, r, ref)
			}
		}
		t.Logf("%s: %d of %d quantized tensors byte-identical to llama.cpp's; worst RMSE ratio %.4f", file, same, total, worst)
		g.Close()
	}
}

// TestQ5RoundTrip: Q5_0 and Q5_1 reconstruct random blocks within half a
// step, Q5_0's clipped top level (the side opposite the block's extreme)
// within one.
func TestQ5RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 32*64)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(5)-2)))
	}
	for _, ty := range []Type{TypeQ5_0, TypeQ5_1} {
		_, bb, _ := ty.BlockSize()
		q := make([]byte, len(x)/32*bb)
		if err := Quantize(ty, q, x); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, len(x))
		if err := Dequantize(ty, y, q); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < len(x)/32; b++ {
			var lo, hi, amax float32
			lo, hi = x[b*32], x[b*32]
			for _, v := range x[b*32 : b*32+32] {
				lo, hi, amax = min(lo, v), max(hi, v), max(amax, abs32(v))
			}
			step := amax / 16
			if ty == TypeQ5_1 {
				step = (hi - lo) / 31
			}
			for j := b * 32; j < b*32+32; j++ {
				tol := 0.51 * step
				if ty == TypeQ5_0 {
					tol = 1.01 * step
				}
				if d := abs32(y[j] - x[j]); d > tol+1e-3*amax {
					t.Fatalf("%s block %d [%d]: %g → %g (step %g)", ty, b, j, x[j], y[j], step)
				}
			}
		}
	}
}
