package kernels

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestWeightWire: every format (double-quantized NF4 and padded rows
// included) reads back with the same values and bytes; truncated, padded,
// mislabelled or inconsistent encodings are refused.
func TestWeightWire(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 5, 300 // padded in every block format
	src := randMat(r, rows, cols, cols).Data
	var ws []*Weight
	for _, f := range []Format{F32, F16, BF16, Q8_0, Q4_0, NF4} {
		ws = append(ws, Quantize(f, rows, cols, src))
	}
	dq := Quantize(NF4, 600, cols, randMat(r, 600, cols, cols).Data) // more than one group of 256 scales
	dq.DoubleQuantize()
	ws = append(ws, dq)
	for _, w := range ws {
		b, err := w.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalWeight(b)
		if err != nil {
			t.Fatalf("%s: %v", w.describe(), err)
		}
		if got.Format != w.Format || got.Rows != w.Rows || got.Cols != w.Cols || got.Bytes() != w.Bytes() || got.DoubleQuantized() != w.DoubleQuantized() {
			t.Fatalf("%s read back as %s, %d bytes", w.describe(), got.describe(), got.Bytes())
		}
		if !slices.Equal(got.Dequantize().Data, w.Dequantize().Data) {
			t.Fatalf("%s: values differ after a round trip", w.describe())
		}
		for name, bad := range map[string][]byte{
			"truncated":   b[:len(b)-1],
			"extended":    append(slices.Clone(b), 0),
			"header only": b[:20],
			"magic":       append([]byte("XXXX"), b[4:]...),
			"format":      func() []byte { c := slices.Clone(b); c[4] = 99; return c }(),
			"rows":        func() []byte { c := slices.Clone(b); binary.LittleEndian.PutUint32(c[8:], uint32(w.Rows+1)); return c }(),
		} {
			if _, err := UnmarshalWeight(bad); err == nil {
				t.Errorf("%s: %s encoding accepted", w.describe(), name)
			}
		}
	}
}

// FuzzUnmarshalWeight: no input makes UnmarshalWeight panic, and what it
// accepts encodes to bytes that read back to the same encoding (the header's
// padding, and the NF4 offset of a weight not double-quantized, are not
// kept).
func FuzzUnmarshalWeight(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 8))
	src := randMat(r, 3, 70, 70).Data
	for _, fm := range []Format{F32, F16, Q8_0, Q4_0, NF4} {
		w := Quantize(fm, 3, 70, src)
		b, _ := w.MarshalBinary()
		f.Add(b)
	}
	dq := Quantize(NF4, 3, 70, src)
	dq.DoubleQuantize()
	b, _ := dq.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := UnmarshalWeight(b)
		if err != nil {
			return
		}
		again, err := w.MarshalBinary()
		if err != nil || len(again) != len(b) {
			t.Fatalf("accepted %d bytes that encode to %d (%v)", len(b), len(again), err)
		}
		w2, err := UnmarshalWeight(again)
		if err != nil {
			t.Fatalf("its own encoding refused: %v", err)
		}
		third, _ := w2.MarshalBinary()
		if !slices.Equal(third, again) {
			t.Fatal("encoding is not stable")
		}
		w.Dequantize()
	})
}
