package kernels

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestBlockScales: the scales read back are the ones the decoder uses, and
// setting them rescales every block with its codes unchanged (doubling is
// exact in fp16); formats without block scales, double-quantized NF4 and a
// wrong count are refused.
func TestBlockScales(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 3, 100 // a padded last block in every format
	src := randMat(r, rows, cols, cols).Data
	for _, f := range []Format{Q8_0, Q4_0, NF4} {
		w := Quantize(f, rows, cols, src)
		before := w.Dequantize()
		s, err := w.BlockScales()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != rows*w.BlocksPerRow() {
			t.Fatalf("%s: %d scales", f, len(s))
		}
		for i := range s {
			s[i] *= 2
		}
		if err := w.SetBlockScales(s); err != nil {
			t.Fatal(err)
		}
		after := w.Dequantize()
		for i, v := range before.Data {
			if after.Data[i] != 2*v {
				t.Fatalf("%s: value %d is %g after doubling the scales, was %g", f, i, after.Data[i], v)
			}
		}
		if err := w.SetBlockScales(s[1:]); err == nil || !strings.Contains(err.Error(), "block scales") {
			t.Errorf("%s: a short scale list: %v", f, err)
		}
	}
	for _, w := range []*Weight{Quantize(F16, rows, cols, src), func() *Weight {
		w := Quantize(NF4, rows, cols, src)
		w.DoubleQuantize()
		return w
	}()} {
		if w.ScaledBlocks() {
			t.Errorf("%s reports tunable scales", w.describe())
		}
		if _, err := w.BlockScales(); err == nil {
			t.Errorf("%s: BlockScales gave no error", w.describe())
		}
		if err := w.SetBlockScales(nil); err == nil {
			t.Errorf("%s: SetBlockScales gave no error", w.describe())
		}
	}
}
