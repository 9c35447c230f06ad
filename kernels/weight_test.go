package kernels

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/x448/float16"
	"gonum.org/v1/gonum/stat/distuv"
)

func openGGUF(t *testing.T, rel string) *gguf.File {
	t.Helper()
	g, err := gguf.Open(testassets.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func f32Tensor(t *testing.T, g *gguf.File, name string) (rows, cols int, v []float32) {
	t.Helper()
	ti, ok := g.Tensor(name)
	if !ok || ti.Type != gguf.TypeF32 {
		t.Fatalf("%s: no F32 tensor %s", g.Path, name)
	}
	b, err := g.ReadTensor(ti)
	if err != nil {
		t.Fatal(err)
	}
	cols, rows = int(ti.Dims[0]), int(ti.Elements()/ti.Dims[0])
	v = make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return rows, cols, v
}

var ggufFormat = map[gguf.Type]Format{gguf.TypeQ8_0: Q8_0, gguf.TypeQ4_0: Q4_0}

// TestLlamaCppQuantized checks the Q8_0 and Q4_0 tensors that llama.cpp's
// llama-quantize wrote: (1) they dequantize to within each format's error of the
// F32 source, (2) quantizing the F32 source here reproduces their bytes exactly.
func TestLlamaCppQuantized(t *testing.T) {
	src := openGGUF(t, "models/rand-tiny64/rand-tiny64-f32.gguf")
	for _, file := range []string{"models/rand-tiny64/rand-tiny64-Q8_0.gguf", "models/rand-tiny64/rand-tiny64-Q4_0.gguf"} {
		q := openGGUF(t, file)
		checked := map[Format]int{}
		for _, ti := range q.Tensors {
			f, ok := ggufFormat[ti.Type]
			if !ok {
				continue
			}
			rows, cols, want := f32Tensor(t, src, ti.Name)
			raw, err := q.ReadTensor(&ti)
			if err != nil {
				t.Fatal(err)
			}
			w, err := WeightFromBytes(f, rows, cols, raw)
			if err != nil {
				t.Fatal(err)
			}
			got := w.Dequantize()
			bs := 32
			for blk := 0; blk < rows*cols/bs; blk++ {
				i, c0 := blk*bs/cols, blk*bs%cols
				d := float64(F16ToF32(binary.LittleEndian.Uint16(raw[blk*f.blockBytes():])))
				// Q8_0 rounds to the nearest step (≤ d/2); Q4_0 clamps the code +8 to 7
				// (≤ d); both plus the fp16 rounding of d times the largest code.
				bound := math.Abs(d)*0.5 + math.Abs(d)*127*(1.0/2048)
				if f == Q4_0 {
					bound = math.Abs(d)*1.0 + math.Abs(d)*8*(1.0/2048)
				}
				for j := c0; j < c0+bs; j++ {
					if e := math.Abs(float64(got.At(i, j)) - float64(want[i*cols+j])); e > bound {
						t.Fatalf("%s %s [%d,%d]: dequantized %g vs f32 %g, error %g > %g", file, ti.Name, i, j, got.At(i, j), want[i*cols+j], e, bound)
					}
				}
			}
			mine := Quantize(f, rows, cols, want)
			if !bytes.Equal(mine.q, raw) {
				for b := 0; b < len(raw); b += f.blockBytes() {
					if !bytes.Equal(mine.q[b:b+f.blockBytes()], raw[b:b+f.blockBytes()]) {
						t.Fatalf("%s %s: block %d differs from llama.cpp:\n mine  %x\n llama %x", file, ti.Name, b/f.blockBytes(), mine.q[b:b+f.blockBytes()], raw[b:b+f.blockBytes()])
					}
				}
			}
			checked[f]++
		}
		if len(checked) == 0 {
			t.Fatalf("%s: no Q8_0/Q4_0 tensors checked", file)
		}
		t.Logf("%s: %v tensors match llama.cpp byte for byte", file, checked)
	}
}

// TestNF4Codebook: the 16 NF4 values are QLoRA's construction, recomputed here
// in float64: N(0,1) quantiles at 8 evenly spaced probabilities from δ down to
// 0.5 (positive side) and 7 (negative side), δ = 0.9677083 as in bitsandbytes'
// create_normal_map, plus an exact zero, normalized by the largest.
func TestNF4Codebook(t *testing.T) {
	const offset = 0.9677083
	n := distuv.UnitNormal
	var v []float64
	for i := 0; i < 8; i++ { // linspace(offset, 0.5, 9)[:-1]
		v = append(v, n.Quantile(offset+(0.5-offset)*float64(i)/8))
	}
	v = append(v, 0)
	for i := 0; i < 7; i++ { // -linspace(offset, 0.5, 8)[:-1]
		v = append(v, -n.Quantile(offset+(0.5-offset)*float64(i)/7))
	}
	maxv := 0.0
	for _, x := range v {
		maxv = math.Max(maxv, math.Abs(x))
	}
	for i := range v {
		v[i] /= maxv
	}
	sortFloats(v)
	code := NF4Codebook()
	for i, c := range code {
		if math.Abs(float64(c)-v[i]) > 2e-7 {
			t.Errorf("NF4[%d] = %.9f, construction gives %.9f", i, c, v[i])
		}
	}
	if code[7] != 0 || code[0] != -1 || code[15] != 1 {
		t.Errorf("NF4 endpoints/zero not exact: %v", code)
	}
}

func sortFloats(v []float64) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// TestRoundTripBounds: quantize → dequantize error stays within each format's
// bound on random Gaussian-ish data, including rows that need padding.
func TestRoundTripBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, cols := range []int{172, 256, 33, 64} {
		rows := 9
		src := make([]float32, rows*cols)
		for i := range src {
			src[i] = float32(r.NormFloat64())
		}
		for _, f := range []Format{F32, F16, BF16, Q8_0, Q4_0, NF4} {
			for _, dq := range []bool{false, true} {
				if dq && f != NF4 {
					continue
				}
				w := Quantize(f, rows, cols, src)
				if dq {
					w.DoubleQuantize()
				}
				if w.Padded() != (cols%f.BlockSize() != 0) {
					t.Errorf("%s cols %d: Padded() = %v", f, cols, w.Padded())
				}
				got := w.Dequantize()
				bs := f.BlockSize()
				var rms float64
				for i := 0; i < rows; i++ {
					for b0 := 0; b0 < cols; b0 += bs {
						var amax float64
						for j := b0; j < min(cols, b0+bs); j++ {
							amax = math.Max(amax, math.Abs(float64(src[i*cols+j])))
						}
						for j := b0; j < min(cols, b0+bs); j++ {
							x := float64(src[i*cols+j])
							e := math.Abs(float64(got.At(i, j)) - x)
							rms += e * e
							var bound float64
							switch f {
							case F32:
								bound = 0
							case F16:
								bound = math.Abs(x)/2048 + 6e-8
							case BF16:
								bound = math.Abs(x) / 256
							case Q8_0:
								bound = amax/127*0.5 + amax/2048
							case Q4_0:
								bound = amax/8 + amax/2048
							case NF4: // half the widest gap between codes (-1 to -0.696) times a scale ≤ absmax, or the clip of a scale ≥ 0.75·absmax
								bound = amax * 0.25
								if dq {
									bound += amax * 0.02 // the scale itself is int8-quantized
								}
							}
							if e > bound {
								t.Fatalf("%s dq=%v cols=%d [%d,%d]: %g → %g, error %g > %g", f, dq, cols, i, j, x, got.At(i, j), e, bound)
							}
						}
					}
				}
				t.Logf("%-5s dq=%-5v cols=%3d: rms error %.4f, %.2f bits/value", f, dq, cols, math.Sqrt(rms/float64(rows*cols)), float64(w.Bytes())*8/float64(rows*cols))
			}
		}
	}
}

// TestNF4Index: the bucketed lookup picks the nearest code (ties to the lower)
// for values on, beside and between every threshold, and clamps outside ±1.
func TestNF4Index(t *testing.T) {
	nearest := func(v float32) byte {
		v = max(-1, min(1, v))
		best := byte(0)
		for c := 1; c < 16; c++ {
			if math.Abs(float64(v-nf4Code[c])) < math.Abs(float64(v-nf4Code[best])) {
				best = byte(c)
			}
		}
		return best
	}
	vals := []float32{-2, -1, 1, 2, float32(math.Inf(1)), float32(math.Inf(-1))}
	for _, m := range nf4Mid {
		vals = append(vals, math.Nextafter32(m, -2), math.Nextafter32(m, 2))
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		vals = append(vals, float32(r.Float64()*2.2-1.1))
	}
	for _, v := range vals {
		if got, want := nf4Index(v), nearest(v); got != want {
			t.Fatalf("nf4Index(%g) = %d, nearest code is %d", v, got, want)
		}
	}
	if got := nf4Index(float32(math.NaN())); got != 0 {
		t.Errorf("nf4Index(NaN) = %d", got)
	}
}

// TestNF4ScaleSearch: every block's squared error is at most that of
// bitsandbytes' absmax scale, and lower on average.
func TestNF4ScaleSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var sumRef, sumNew float64
	x := make([]float32, 64)
	for blk := range 2000 {
		for j := range x {
			x[j] = float32(r.NormFloat64())
			if blk%3 == 0 && j == 5 {
				x[j] *= 6 // an outlier
			}
		}
		var qa, qn [32]byte
		sa, sn := quantNF4Absmax(qa[:], x), quantNF4(qn[:], x)
		sse := func(q []byte, s float32) (e float64) {
			for j, v := range x {
				c := q[j/2] >> 4
				if j%2 == 1 {
					c = q[j/2] & 15
				}
				d := float64(v) - float64(s)*float64(nf4Code[c])
				e += d * d
			}
			return e
		}
		ea, en := sse(qa[:], sa), sse(qn[:], sn)
		if en > ea*(1+1e-6) {
			t.Fatalf("block %d: searched scale %g error %g > absmax %g error %g", blk, sn, en, sa, ea)
		}
		sumRef += ea
		sumNew += en
	}
	t.Logf("mean squared error per block: absmax %.4f, searched %.4f (%.1f%% lower)", sumRef/2000, sumNew/2000, 100*(1-sumNew/sumRef))
	if !(sumNew < 0.97*sumRef) {
		t.Errorf("the search lowers the error by only %.1f%%", 100*(1-sumNew/sumRef))
	}
}

// TestF16ToF32 checks every half value against x448/float16.
func TestF16ToF32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		want := float16.Frombits(uint16(h)).Float32()
		got := F16ToF32(uint16(h))
		if math.Float32bits(got) != math.Float32bits(want) && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want))) {
			t.Fatalf("F16ToF32(%#04x) = %g, want %g", h, got, want)
		}
	}
}

func TestBF16(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint16
	}{{1, 0x3f80}, {-2, 0xc000}, {1.00390625, 0x3f80}, {1.01171875, 0x3f82}, {float32(math.Inf(1)), 0x7f80}} {
		if got := F32ToBF16(c.in); got != c.want {
			t.Errorf("F32ToBF16(%g) = %#x, want %#x", c.in, got, c.want)
		}
	}
	if v := F32ToBF16(float32(math.NaN())); v&0x7f80 != 0x7f80 || v&0x7f == 0 {
		t.Errorf("NaN became %#x", v)
	}
}

func TestWeightFromBytesErrors(t *testing.T) {
	if _, err := WeightFromBytes(Q8_0, 2, 40, make([]byte, 100)); err == nil {
		t.Error("row length 40 accepted for Q8_0")
	}
	if _, err := WeightFromBytes(Q4_0, 2, 64, make([]byte, 10)); err == nil {
		t.Error("short data accepted")
	}
	if _, err := ParseFormat("q3_k"); err == nil {
		t.Error("unknown format parsed")
	}
	for _, f := range []Format{F32, F16, BF16, Q8_0, Q4_0, NF4} {
		g, err := ParseFormat(f.String())
		if err != nil || g != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), g, err)
		}
	}
}

// TestBlockDecoders: each path's vectorized block decoders equal the
// pure-Go ones bit for bit on random blocks (including extreme scales).
func TestBlockDecoders(t *testing.T) {
	n := 0
	for _, pa := range paths() {
		if pa.blocks.q8_0 != nil {
			t.Run(pa.Name(), func(t *testing.T) { testBlockDecoders(t, pa) })
			n++
		}
	}
	if n == 0 {
		t.Skip("no vectorized decoders on this CPU/build")
	}
}

// TestHalfDecoders: each path's F16 and BF16 row conversions equal the
// pure-Go ones on every 16-bit pattern (NaN for NaN), at every offset of
// a row's vector part and its tail.
func TestHalfDecoders(t *testing.T) {
	n := 0
	for _, pa := range paths() {
		if pa.blocks.f16 == nil {
			continue
		}
		n++
		for _, c := range []struct {
			f   Format
			fn  func(dst *float32, src *uint16, n int)
			ref func(uint16) float32
		}{{F16, pa.blocks.f16, F16ToF32}, {BF16, pa.blocks.bf16, fromBF16}} {
			src := make([]uint16, 1<<16+13)
			for i := range src {
				src[i] = uint16(i * 40503) // every pattern once in the first 65536 (40503 is odd)
			}
			dst := make([]float32, len(src))
			for _, off := range []int{0, 1, 7, 8, 9, 31, 32, 40} {
				clear(dst)
				decodeHalves(c.fn, dst[off:], src[off:], c.ref)
				for i := off; i < len(src); i++ {
					want, got := c.ref(src[i]), dst[i]
					if math.IsNaN(float64(want)) && math.IsNaN(float64(got)) {
						continue
					}
					if math.Float32bits(want) != math.Float32bits(got) {
						t.Fatalf("%s %s offset %d: %#04x → %g (%#08x), Go %g (%#08x)", pa.Name(), c.f, off, src[i], got, math.Float32bits(got), want, math.Float32bits(want))
					}
				}
			}
		}
	}
	if n == 0 {
		t.Skip("no vectorized half-precision decoders on this CPU/build")
	}
}

func testBlockDecoders(t *testing.T, pa *Path) {
	r := rand.New(rand.NewPCG(61, 62))
	for _, f := range []Format{Q8_0, Q4_0, NF4} {
		src := make([]float32, 7*192)
		for i := range src {
			src[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(7)-3)))
		}
		w := Quantize(f, 7, 192, src)
		fast := NewMat(w.Rows, w.Cols)
		for i := 0; i < w.Rows; i++ {
			pa.DecodeRow(w, fast.Row(i), i)
		}
		slow := w.Dequantize()
		for i := range slow.Data {
			if math.Float32bits(slow.Data[i]) != math.Float32bits(fast.Data[i]) {
				t.Fatalf("%s [%d]: vectorized %g, Go %g", f, i, fast.Data[i], slow.Data[i])
			}
		}
	}
}
