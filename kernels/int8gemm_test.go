package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// goInt8GemmPath runs the int8 GEMM's reference kernel: the tests' path.
var goInt8GemmPath = &Path{mk: goKernel, i8: goInt8GemmKernel}

// int8GemmPaths are the paths with an int8 GEMM this CPU runs, and the
// Go reference.
func int8GemmPaths() []*Path {
	ps := []*Path{goInt8GemmPath}
	for _, p := range testInt8Twins() {
		if p.i8.gemm != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// int8GemmRef is C[i, j] as the int8 GEMM defines it (see int8gemm.go),
// from X and W's stored integers directly: X quantized per natural block
// of 32 by quantBlock, each block's exact integer dot, one fma per block.
func int8GemmRef(x Mat, w *Weight, i, j int) float32 {
	xr := x.Data[i*x.Stride:][:w.Cols]
	var q [32]int8
	var acc float32
	for b := 0; 32*b < w.Cols; b++ {
		blk := xr[32*b : min(32*b+32, w.Cols)]
		d := quantBlock(&q, blk)
		var sum int32
		var dw float64
		for t := range blk {
			iv, s := int8Value(w, j, 32*b+t)
			sum += int32(iv) * int32(q[t])
			dw = s
		}
		if len(blk) == 0 {
			continue
		}
		acc = fma32(float32(sum), float32(dw)*d, acc)
	}
	return acc
}

// TestInt8Gemm: the int8 GEMM (the Go reference and every CPU kernel)
// gives int8GemmRef's bits for every format, tails of M, N and K, alpha
// and beta; the CPU kernels give the reference's bits.
func TestInt8Gemm(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 1))
	shapes := [][3]int{{32, 64, 16}, {40, 100, 17}, {70, 172, 33}, {129, 576, 64}, {5, 32, 40}, {64, 1536, 100}}
	for _, pa := range int8GemmPaths() {
		p := NewPoolOn(2, pa)
		for _, sh := range shapes {
			rows, cols, m := sh[0], sh[1], sh[2]
			for name, w := range int8Weights(r, rows, cols) {
				for _, beta := range []float32{0, 1, 0.5} {
					x := randMat(r, m, cols, cols+3)
					for i := 0; i < m; i++ {
						for k := 0; k < cols; k++ {
							x.Data[i*x.Stride+k] *= float32(math.Exp2(float64(k/32%5) - 2))
						}
					}
					c := randMat(r, m, rows, rows+1)
					c0 := cloneMat(c)
					p.GemmW(c, 0.75, x, NoTrans, w, Trans, beta)
					label := fmt.Sprintf("%s %s W %d×%d M=%d beta %g", pa.Name(), name, rows, cols, m, beta)
					for i := 0; i < m; i++ {
						for j := 0; j < rows; j++ {
							want := float32(0.75 * int8GemmRef(x, w, i, j))
							if beta != 0 {
								want += float32(beta * c0.Data[i*c0.Stride+j])
							}
							if got := c.Data[i*c.Stride+j]; math.Float32bits(got) != math.Float32bits(want) {
								t.Fatalf("%s: C[%d,%d] = %g, want %g", label, i, j, got, want)
							}
						}
						if i < m-1 && math.Float32bits(c.Data[i*c.Stride+rows]) != math.Float32bits(c0.Data[i*c.Stride+rows]) {
							t.Fatalf("%s: the column past C's end changed", label)
						}
					}
				}
			}
		}
	}
}

// TestInt8GemmThreads: 1, 2, 3 and 7 workers, and M split across chunks,
// give the same bits; a row's result does not depend on M.
func TestInt8GemmThreads(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 2))
	w := int8Weights(r, 200, 320)
	for _, pa := range int8GemmPaths() {
		for name, wt := range w {
			x := randMat(r, 97, 320, 320)
			var first []float32
			for _, th := range []int{1, 2, 3, 7} {
				y := NewMat(97, 200)
				NewPoolOn(th, pa).GemmW(y, 1, x, NoTrans, wt, Trans, 0)
				if first == nil {
					first = y.Data
					continue
				}
				for i := range y.Data {
					if math.Float32bits(y.Data[i]) != math.Float32bits(first[i]) {
						t.Fatalf("%s %s, %d workers: element %d differs from 1 worker's", pa.Name(), name, th, i)
					}
				}
			}
			sub := NewMat(int8GemmMinRows, 200)
			NewPoolOn(2, pa).GemmW(sub, 1, Mat{Rows: int8GemmMinRows, Cols: 320, Stride: 320, Data: x.Data[40*320:]}, NoTrans, wt, Trans, 0)
			for i := range sub.Data {
				if math.Float32bits(sub.Data[i]) != math.Float32bits(first[40*200+i]) {
					t.Fatalf("%s %s: rows 40.. alone differ from the same rows within M = 97", pa.Name(), name)
				}
			}
		}
	}
}

// TestInt8GemmNonFinite: an Inf or NaN in X makes its row's outputs NaN;
// a zero row gives zeros.
func TestInt8GemmNonFinite(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 3))
	w := Quantize(Q8_0, 8, 64, randMat(r, 8, 64, 64).Data)
	for _, pa := range int8GemmPaths() {
		x := NewMat(int8GemmMinRows, 64)
		x.Data[64+5] = float32(math.Inf(1))
		x.Data[128+40] = float32(math.NaN())
		for k := 0; k < 64; k++ {
			x.Data[192+k] = float32(k) - 30
		}
		y := NewMat(int8GemmMinRows, 8)
		NewPoolOn(1, pa).GemmW(y, 1, x, NoTrans, w, Trans, 0)
		for j := 0; j < 8; j++ {
			if y.Data[j] != 0 || !math.IsNaN(float64(y.Data[8+j])) || !math.IsNaN(float64(y.Data[16+j])) || y.Data[24+j] == 0 {
				t.Fatalf("%s: row outputs %v", pa.Name(), y.Data[:32])
			}
		}
	}
}

// TestFMA32: fma32 rounds a·b + c once, including where the float64 sum
// lands on the midpoint of two fp32 values and rounding it again to even
// would go the wrong way; and against math/big on random operands.
func TestFMA32(t *testing.T) {
	b := float32(0x1p-24 - 0x1p-47) // (1+2⁻²³)·b = 2⁻²⁴ − 2⁻⁷⁰
	for _, c := range []struct{ a, b, c, want float32 }{
		{2, 3, 1, 7},
		{1 + 0x1p-23, b, 1 + 0x1p-23, 1 + 0x1p-23},        // just below 1 + 3·2⁻²⁴
		{-(1 + 0x1p-23), b, 1 + 3*0x1p-23, 1 + 3*0x1p-23}, // just above 1 + 5·2⁻²⁴
		{float32(math.Inf(1)), 1, 1, float32(math.Inf(1))},
	} {
		if got := fma32(c.a, c.b, c.c); got != c.want {
			t.Errorf("fma32(%g, %g, %g) = %g (%x), want %g", c.a, c.b, c.c, got, math.Float32bits(got), c.want)
		}
	}
	r := rand.New(rand.NewPCG(9, 4))
	f := func() float32 {
		return float32(r.NormFloat64() * math.Exp2(float64(r.IntN(60)-30)))
	}
	for n := 0; n < 200000; n++ {
		av, bv, cv := f(), f(), f()
		if n%3 == 0 { // near-cancellation
			cv = -av * bv * (1 + float32(r.IntN(9)-4)*0x1p-23)
		}
		e := new(big.Float).SetPrec(300).SetFloat64(float64(av))
		e.Mul(e, new(big.Float).SetFloat64(float64(bv)))
		e.Add(e, new(big.Float).SetFloat64(float64(cv)))
		want, _ := e.Float32()
		if got := fma32(av, bv, cv); got != want {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", av, bv, cv, got, want)
		}
	}
}

// TestInt8GemmChunks: a product whose quantized X exceeds int8GemmChunk
// runs in chunks of rows; the rows on either side of a chunk's edge give
// int8GemmRef's bits.
func TestInt8GemmChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 5))
	const k = 1 << 15
	w := Quantize(Q8_0, 40, k, randMat(r, 40, k, k).Data)
	x := randMat(r, int8GemmChunk/(int8Units(w)*int8GemmXBlock)*int8GemmXRows+9, k, k) // rows for the largest chunk
	for _, pa := range int8GemmPaths() {
		chunk := max(1, int8GemmChunk/(int8Units(w)*pa.i8.xBlock())) * int8GemmXRows
		m := chunk + 9
		x := MatOf(x.Data[:m*k], m, k)
		y := NewMat(m, 40)
		NewPoolOn(2, pa).GemmW(y, 1, x, NoTrans, w, Trans, 0)
		for _, i := range []int{0, chunk - 1, chunk, chunk + 1, m - 1} {
			for j := 0; j < 40; j++ {
				if got, want := y.Data[i*40+j], int8GemmRef(x, w, i, j); math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("%s: C[%d,%d] = %g, want %g (chunks of %d rows)", pa.Name(), i, j, got, want, chunk)
				}
			}
		}
	}
}

// TestInt8GemmQuant: each path's GEMM quantizer gives quantBlock's values,
// scale and correction (where the layout has one) for every block, in its own layout: ordinary
// blocks, blocks of zeros, of subnormals (1/d overflows), with an Inf or a
// NaN, and values on rounding midpoints.
func TestInt8GemmQuant(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 6))
	const nb = 69 // four groups of 16 (the quantizers that take 16 blocks at a time) and a tail
	src := make([]float32, 32*nb)
	for b := 0; b < nb; b++ {
		blk := src[32*b : 32*b+32]
		for i := range blk {
			blk[i] = float32(r.NormFloat64() * math.Exp2(float64(r.IntN(40)-20)))
		}
		kind := b % 8
		if (kind == 3 || kind == 4) && b/16 != 1 && b < 64 {
			kind = 0 // Inf and NaN in the second group and the tail alone: the others all finite
		}
		switch kind {
		case 1:
			clear(blk)
		case 2:
			for i := range blk {
				blk[i] = float32(i-16) * 0x1p-140
			}
		case 3:
			blk[r.IntN(32)] = float32(math.Inf(-1))
		case 4:
			blk[r.IntN(32)] = float32(math.NaN())
		case 5: // max 127: every value an integer, halves between them
			for i := range blk {
				blk[i] = float32(r.IntN(255)-127) + 0.5*float32(r.IntN(2))
			}
			blk[0] = 127
		}
	}
	for _, pa := range int8GemmPaths() {
		k := pa.i8
		if k.quant == nil {
			continue
		}
		xbl := k.xBlock()
		q, sc, corr, size := k.xAt(int8GemmXRows - 1) // the last row of a region
		buf := make([]byte, nb*xbl)
		var cp *int32
		if corr >= 0 {
			cp = (*int32)(unsafe.Pointer(&buf[corr]))
		}
		k.quant(&buf[q], (*float32)(unsafe.Pointer(&buf[sc])), cp, &src[0], nb, xbl)
		for b := 0; b < nb; b++ {
			var want [32]int8
			d := quantBlock(&want, src[32*b:32*b+32])
			blk := buf[b*xbl:]
			var sum int32
			for i, v := range want {
				got := int16(int8(blk[q+i]))
				if size == 2 {
					got = int16(binary.LittleEndian.Uint16(blk[q+2*i:]))
				}
				if got != int16(v) {
					t.Fatalf("%s: block %d value %d = %d, want %d", pa.Name(), b, i, got, v)
				}
				sum += int32(v)
			}
			gs := math.Float32frombits(binary.LittleEndian.Uint32(blk[sc:]))
			if gs != d && !(math.IsNaN(float64(gs)) && math.IsNaN(float64(d))) {
				t.Fatalf("%s: block %d scale %g, want %g", pa.Name(), b, gs, d)
			}
			if corr < 0 { // no corrections in this layout
				continue
			}
			if gc := int32(binary.LittleEndian.Uint32(blk[corr:])); gc != -128*sum {
				t.Fatalf("%s: block %d correction %d, want %d", pa.Name(), b, gc, -128*sum)
			}
		}
		t.Logf("%s: %d blocks as quantBlock quantizes them", pa.Name(), nb)
	}
}

// TestInt8GemmPack: each path's W packer lays a region out as
// packInt8WGo does, byte for byte (random rows and scales, 1..70 blocks).
func TestInt8GemmPack(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 7))
	for _, pa := range int8GemmPaths() {
		k := pa.i8
		if k.pack == nil {
			continue
		}
		for _, kb := range []int{1, 2, 18, 70} {
			rows := make([]byte, 32*32*kb)
			for i := range rows {
				rows[i] = byte(r.Uint32())
			}
			sc := make([]float32, 32*kb)
			for i := range sc {
				sc[i] = float32(r.NormFloat64())
			}
			var idx [64]int32
			for j := 0; j < 32; j++ {
				idx[j], idx[32+j] = int32(j*32*kb), int32(4*j*kb)
			}
			got, want := make([]byte, kb*k.wBlock()), make([]byte, kb*k.wBlock())
			k.pack(&got[0], &rows[0], &sc[0], kb, &idx)
			packInt8WGo(k, want, rows, sc, kb)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s kb=%d: byte %d of the region is %#x, want %#x", pa.Name(), kb, i, got[i], want[i])
				}
			}
		}
	}
}

// TestInt8Row: int8Row through a path's row decoders (q8Row, q4Row,
// nf4Row) gives the Go decoding's bytes and scales, fp16 scales subnormal,
// infinite and NaN included.
func TestInt8Row(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 11))
	for _, pa := range testInt8Twins() {
		k := pa.i8
		if k.q8Row == nil && k.q4Row == nil && k.nf4Row == nil {
			continue
		}
		goK := *k
		goK.q8Row, goK.q4Row, goK.nf4Row = nil, nil, nil
		for _, f := range []Format{Q8_0, Q4_0, NF4} {
			const rows, cols = 7, 1088
			w := Quantize(f, rows, cols, randMat(r, rows, cols, cols).Data)
			if f != NF4 {
				bs := map[Format]int{Q8_0: 34, Q4_0: 18}[f]
				for _, h := range []uint16{0x0001, 0x03ff, 0x7c00, 0xfc00, 0x7e00, 0x8001} {
					binary.LittleEndian.PutUint16(w.q[bs*r.IntN(rows*w.blocksPerRow):], h)
				}
			}
			kb := int8Units(w)
			for n := 0; n < rows; n++ {
				got, want := make([]byte, 32*kb), make([]byte, 32*kb)
				gs, ws := make([]float32, kb), make([]float32, kb)
				int8Row(got, gs, w, n, k)
				int8Row(want, ws, w, n, &goK)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s %s row %d: value %d is %d, want %d", pa.Name(), f, n, i, int8(got[i]), int8(want[i]))
					}
				}
				for i := range ws {
					if math.Float32bits(gs[i]) != math.Float32bits(ws[i]) {
						t.Fatalf("%s %s row %d: scale %d is %g, want %g", pa.Name(), f, n, i, gs[i], ws[i])
					}
				}
			}
		}
	}
}

// TestInt8UnitQuant: each path's quantizer of the row kernels' X units
// gives quantizeInt8's units in Go byte for byte (values, lane
// corrections, scales) on TestInt8GemmQuant's kinds of block, a partial
// last block included.
func TestInt8UnitQuant(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 8))
	const nb = 40
	src := make([]float32, 32*nb-5)
	for b := 0; b < nb; b++ {
		blk := src[32*b : min(32*b+32, len(src))]
		for i := range blk {
			blk[i] = float32(r.NormFloat64() * math.Exp2(float64(r.IntN(40)-20)))
		}
		switch b % 8 {
		case 1:
			clear(blk)
		case 2:
			for i := range blk {
				blk[i] = float32(i-16) * 0x1p-140
			}
		case 3:
			blk[r.IntN(len(blk))] = float32(math.Inf(1))
		case 4:
			blk[r.IntN(len(blk))] = float32(math.NaN())
		case 5:
			for i := range blk {
				blk[i] = float32(r.IntN(255)-127) + 0.5*float32(r.IntN(2))
			}
			blk[0] = -127
		}
	}
	want := make([]int8Unit, nb)
	quantizeInt8(want, src, Q8_0, nil)
	for _, pa := range testInt8Twins() {
		if pa.i8.unitQuant == nil {
			continue
		}
		got := make([]int8Unit, nb)
		quantizeInt8(got, src, Q8_0, pa.i8.unitQuant)
		for b := range want {
			g, w := got[b], want[b]
			same := g.q == w.q && g.c == w.c
			for l := range g.s {
				same = same && math.Float32bits(g.s[l]) == math.Float32bits(w.s[l])
			}
			if !same {
				t.Fatalf("%s: unit %d is %v, want %v", pa.Name(), b, g, w)
			}
		}
	}
}
