package kernels

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSameBitsEveryCPU: quantizing weights (Q8_0, Q4_0, NF4 with its
// search and double quantization, decoded back through the pure-Go
// decoder), quantizing X for int8 (quantBlock) and the int8 products
// (the row kernels' and the GEMM's, on this CPU's int8 path) give the same
// bytes on every CPU: the hashes below are amd64's, and the suite runs on arm64
// too (qemu-aarch64), where Go fuses a·b + c into one rounding unless the
// code says otherwise. The inputs are seeded; 393216 values of X make the
// rare double-rounding case (a product within half an ulp of k + ½)
// certain to occur (this test failed on arm64 before quantBlock and
// nf4Scale rounded their products). A deliberate change of a quantizer's
// bits changes these hashes: take the new ones from amd64 (-v logs the
// int8 ones) and check that arm64 gives the same.
func TestSameBitsEveryCPU(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 12))
	const rows, cols = 384, 1024
	src := make([]float32, rows*cols)
	for i := range src {
		src[i] = float32(r.NormFloat64() * math.Exp2(float64(r.IntN(12)-6)))
	}
	want := map[string]uint64{
		"q8_0": 0x7cfd279919152906, "q4_0": 0xacc1fc9fabfee70d, "nf4": 0xc5e6542d0d7ba2da,
		"nf4-dq": 0x6cdb5f79a8b83536, "quantBlock": 0x10b1b1a87020f41c,
		"int8 q8_0 M=5": 0xcef07dee10eabb04, "int8 q8_0 M=64": 0xab36e197364c329d,
		"int8 q4_0 M=5": 0x4debec45e862a5c8, "int8 q4_0 M=64": 0xfe088c0f97dce324,
		"int8 nf4 M=5": 0x461e667356306ded, "int8 nf4 M=64": 0xaae3033947c00b5d,
	}
	got := map[string]uint64{}
	for _, f := range []Format{Q8_0, Q4_0, NF4} {
		w := Quantize(f, rows, cols, src)
		names := []string{f.String()}
		if f == NF4 {
			names = append(names, "nf4-dq")
		}
		for _, name := range names {
			if name == "nf4-dq" {
				w.DoubleQuantize()
			}
			h := fnv.New64a()
			h.Write(w.q)
			row := make([]float32, cols)
			var b [4]byte
			for i := 0; i < rows; i++ {
				w.DecodeRow(row, i)
				for _, v := range row {
					binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
					h.Write(b[:])
				}
			}
			got[name] = h.Sum64()
		}
	}
	h := fnv.New64a()
	var q [32]int8
	var b [4]byte
	for k := 0; k+32 <= len(src); k += 32 {
		d := quantBlock(&q, src[k:k+32])
		for _, v := range q {
			h.Write([]byte{byte(v)})
		}
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(d))
		h.Write(b[:])
	}
	got["quantBlock"] = h.Sum64()
	// The int8 products (the row kernels at M = 5, the GEMM at M = 64) on
	// this CPU's best int8 path.
	i8 := must(PathFor("", "int8"))
	for _, f := range []Format{Q8_0, Q4_0, NF4} {
		w := Quantize(f, 200, 256, src[:200*256])
		for _, m := range []int{5, 64} {
			x := Mat{Rows: m, Cols: 256, Stride: 256, Data: src[300*256:][:m*256]}
			c := NewMat(m, 200)
			pa := i8
			if m >= int8GemmMinRows && pa.i8.gemm == nil {
				pa = goInt8GemmPath // the GEMM's bits: its reference where the path has none
			}
			NewPoolOn(2, pa).GemmW(c, 1, x, NoTrans, w, Trans, 0)
			h := fnv.New64a()
			for _, v := range c.Data {
				binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
				h.Write(b[:])
			}
			name := fmt.Sprintf("int8 %s M=%d", f, m)
			got[name] = h.Sum64()
			t.Logf("%s on %s: %#x", name, pa.Name(), got[name])
		}
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s: hash %#x, want %#x (amd64's)", name, got[name], v)
		}
	}
}
