package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// int8 compute: on a path with an int8Kernel, the forward products with a
// Q8_0, Q4_0 or NF4 base (GemmW's X·Wᵀ, what eval and generation run)
// are computed as llama.cpp's CPU inference computes them: each row of X
// is quantized per block of 32 along K to int8 with one fp32 scale
// (d = max|x|/127, q = round-to-even(x/d)), the integer dot of each block
// with the weight's own integers is exact, and the block's sum is scaled by
// both scales and accumulated in fp32. The weight stays as stored: Q8_0's
// bytes, Q4_0's nibbles minus 8, NF4's nibbles through an int8 codebook
// (round(127·code), the block's absmax/127 its scale). Other formats, the
// input gradient dY·W, LoRA's factors and everything else stay fp32.
//
// The one computation every int8 kernel performs, bit for bit (the pure-Go
// kernel is the reference): the weights of a row come in units of 32
// bytes, made unsigned (+128) as VPDPBUSD takes them; for each unit and
// each of 8 lanes l (bytes 4l..4l+3),
//
//	s_l = c_l + Σ_t w[4l+t]·q[4l+t]   (int32, exact; c_l = −128·Σ_t q[4l+t])
//	acc_l = fma(float32(s_l), sx_l · dw, acc_l)
//
// (sx_l·dw rounded to fp32, the fma rounded once), sx_l the scale of
// the X block that lane's values come from and dw the unit's weight scale;
// the row's result is ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).

// f16Table holds every fp16 bit pattern's value (F16ToF32), 256 KiB,
// built on first use: kernels that look a block's fp16 scale up in it
// rather than convert it (AVX2's Q4_0) give the reference's bits.
var f16Table = sync.OnceValue(func() *[65536]float32 {
	t := new([65536]float32)
	for h := range t {
		t[h] = F16ToF32(uint16(h))
	}
	return t
})

// int8Unit is one unit of a quantized X row, laid out for the kernels:
// the 32 int8 values matching the weight unit's bytes, the 8 lanes'
// corrections c_l and the 8 lanes' X scales (96 bytes).
type int8Unit struct {
	q [32]int8
	c [8]int32
	s [8]float32
}

// int8Kernel holds a path's int8 kernels. Each computes out[r] for rows
// r < rows of W (ldw bytes apart, from w) against one quantized X row of
// the given units: q8_0 and q4_0 take a unit per block, nf4 two per block
// (scales: one fp32 per block, lds floats apart per row).
type int8Kernel struct {
	name   string // vnni, avx2, go
	suffix string // of the path's name: "int8"
	// signed: the kernel takes the nibble tables' signed values (q4TabS,
	// nf4TabS) rather than the unsigned ones, and a g8 GEMM's W regions
	// hold W's own bytes, not +128. (x86's Q4_0 kernels take the nibbles as
	// they are and ignore q4_0's table.)
	signed bool
	q8_0   func(x *int8Unit, w *byte, units, rows, ldw int, out *float32)
	q4_0   func(x *int8Unit, w *byte, units, rows, ldw int, out *float32, tab *byte)
	nf4    func(x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte)
	// gemm, when set, runs products of at least int8GemmMinRows rows (see
	// int8gemm.go), its X rows quantized by quant and W's regions laid out
	// by pack (nil: Go).
	gemm  int8GemmFn
	quant int8QuantFn
	pack  int8PackFn
	// timed: the gemm was measured faster than the fp32 and bf16 packed
	// kernels on a CPU it runs on, so generation's auto runs a prompt's
	// products on it (GeneratePath); not set, auto keeps them in fp32.
	timed bool
	// x16: the GEMM's regions hold int16 values: X's (int8GemmX16Block;
	// quant writes them so) and W's in pairs along K (int8GemmW16Block),
	// not the VNNI layout's bytes.
	x16 bool
	// g8: the GEMM's W regions are int8GemmG8Block's (bytes in groups of
	// 8 rows), its X regions the VNNI layout's (their corrections unused
	// by a signed kernel).
	g8 bool
	// unitQuant, when set, quantizes the row kernels' X units of Q8_0 and
	// Q4_0 (int8QuantFn over int8Units: q, s, c, stride 96) as
	// quantizeInt8 does; nil: Go.
	unitQuant int8QuantFn
	nf4Row    func(dst, src *byte, n int, tab *byte)          // NF4's codes of 16·n bytes, natural order
	q4Row     func(dst, src *byte, nb int, tab *byte)         // Q4_0's values of nb blocks
	q8Row     func(dst *byte, sc *float32, src *byte, nb int) // Q8_0's values and scales of nb blocks
}

// int8Formats are the weight formats int8 computes with.
func int8Format(f Format) bool { return f == Q8_0 || f == Q4_0 || f == NF4 }

// q4Tab maps a Q4_0 nibble v to v−8+128; nf4Tab an NF4 nibble to
// round(127·code)+128; q4TabS and nf4TabS to the signed values (v−8,
// round(127·code)). Each 16-entry table is repeated for VPSHUFB's two
// 128-bit lanes.
var q4Tab, nf4Tab, q4TabS, nf4TabS = func() (q, n, qs, ns [32]byte) {
	for i := 0; i < 32; i++ {
		qs[i] = byte(int8(i%16 - 8))
		ns[i] = byte(int8(math.Round(127 * float64(nf4Code[i%16]))))
		q[i], n[i] = qs[i]+128, ns[i]+128
	}
	return
}()

// nf4Int8Scale turns an NF4 block scale into the int8 codebook's.
const nf4Int8Scale = float32(1.0 / 127)

// int8Units is the number of 32-value units per row of w.
func int8Units(w *Weight) int {
	if w.Format == NF4 {
		return 2 * w.blocksPerRow
	}
	return w.blocksPerRow
}

// quantBlock quantizes x (at most 32 values; the rest taken as zero) to q
// and returns the scale: max|x|/127, 0 for an all-zero block, NaN where x
// holds an Inf or a NaN (the product is then NaN).
func quantBlock(q *[32]int8, x []float32) float32 {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v)) // a NaN makes amax NaN
	}
	*q = [32]int8{}
	if !(amax <= math.MaxFloat32) {
		return float32(math.NaN())
	}
	if amax == 0 {
		return 0
	}
	d := amax / 127
	id := 1 / d
	if !(id <= math.MaxFloat32) { // d is (nearly) zero: so is the block's part
		return 0
	}
	for t, v := range x {
		// v·id is within ±127.00002: adding 1.5·2²³ rounds it to an integer
		// (to even) in the low mantissa bits.
		// (float32(·): the product rounded before the sum, as on x86, not
		// fused into one rounding as Go may compile it on arm64.)
		r := int32(math.Float32bits(float32(v*id)+roundMagic)) - roundMagicBits
		q[t] = int8(max(-127, min(127, r)))
	}
	return d
}

const (
	roundMagic     = float32(3 << 22)
	roundMagicBits = 0x4b400000
)

// quantizeInt8 fills dst (int8Units(w) units) with the X row x (w.Cols
// values) quantized for w's format.
func quantizeInt8(dst []int8Unit, x []float32, f Format, qf int8QuantFn) {
	block := func(b int) []float32 { // X block b's values present
		lo := min(32*b, len(x))
		return x[lo:min(lo+32, len(x))]
	}
	corr := func(u *int8Unit) {
		for l := 0; l < 8; l++ {
			u.c[l] = -128 * (int32(u.q[4*l]) + int32(u.q[4*l+1]) + int32(u.q[4*l+2]) + int32(u.q[4*l+3]))
		}
	}
	if f != NF4 {
		b0 := 0
		if nb := len(x) / 32; qf != nil && nb > 0 { // the whole blocks
			u := &dst[0]
			qf((*byte)(unsafe.Pointer(&u.q[0])), &u.s[0], &u.c[0], &x[0], nb, int(unsafe.Sizeof(*u)))
			b0 = nb
		}
		for b := b0; b < len(dst); b++ {
			u := &dst[b]
			d := quantBlock(&u.q, block(b))
			for l := range u.s {
				u.s[l] = d
			}
			corr(u)
		}
		return
	}
	// NF4: unit 2B holds block B's even values (its high nibbles), 2B+1
	// its odd ones; each takes 16 values from X block 2B, then 16 from 2B+1.
	var qa, qb [32]int8
	for b := 0; 2*b < len(dst); b++ {
		da, db := quantBlock(&qa, block(2*b)), quantBlock(&qb, block(2*b+1))
		for h := 0; h < 2; h++ {
			u := &dst[2*b+h]
			for t := 0; t < 16; t++ {
				u.q[t], u.q[16+t] = qa[2*t+h], qb[2*t+h]
			}
			for l := 0; l < 4; l++ {
				u.s[l], u.s[4+l] = da, db
			}
			corr(u)
		}
	}
}

// unitDotGo is one unit of the int8 computation (see the top of this file).
func unitDotGo(acc *[8]float32, u *int8Unit, w *[32]byte, dw float32) {
	for l := 0; l < 8; l++ {
		s := u.c[l]
		for t := 4 * l; t < 4*l+4; t++ {
			s += int32(w[t]) * int32(u.q[t])
		}
		acc[l] = fma32(float32(s), u.s[l]*dw, acc[l])
	}
}

// hsum8 is the fixed order a row's 8 lanes are summed in.
func hsum8(a *[8]float32) float32 {
	return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

func dotQ8_0Go(x *int8Unit, w *byte, units, rows, ldw int, out *float32) {
	xs := unsafe.Slice(x, units)
	o := unsafe.Slice(out, rows)
	var wu [32]byte
	for r := range o {
		row := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(w), r*ldw)), units*34)
		var acc [8]float32
		for b := range xs {
			blk := row[b*34 : b*34+34]
			for t := range wu {
				wu[t] = blk[2+t] ^ 0x80
			}
			unitDotGo(&acc, &xs[b], &wu, F16ToF32(binary.LittleEndian.Uint16(blk)))
		}
		o[r] = hsum8(&acc)
	}
}

func dotQ4_0Go(x *int8Unit, w *byte, units, rows, ldw int, out *float32, tab *byte) {
	xs := unsafe.Slice(x, units)
	o := unsafe.Slice(out, rows)
	tb := unsafe.Slice(tab, 16)
	var wu [32]byte
	for r := range o {
		row := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(w), r*ldw)), units*18)
		var acc [8]float32
		for b := range xs {
			blk := row[b*18 : b*18+18]
			for t, v := range blk[2:] {
				wu[t], wu[16+t] = tb[v&15], tb[v>>4]
			}
			unitDotGo(&acc, &xs[b], &wu, F16ToF32(binary.LittleEndian.Uint16(blk)))
		}
		o[r] = hsum8(&acc)
	}
}

func dotNF4Go(x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte) {
	xs := unsafe.Slice(x, units)
	o := unsafe.Slice(out, rows)
	tb := unsafe.Slice(tab, 16)
	var hi, lo [32]byte
	for r := range o {
		row := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(w), r*ldw)), units*16)
		scales := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(sc), 4*r*lds)), units/2)
		var acc [8]float32
		for b := 0; 2*b < units; b++ {
			for t, v := range row[b*32 : b*32+32] {
				hi[t], lo[t] = tb[v>>4], tb[v&15]
			}
			dw := scales[b] * nf4Int8Scale
			unitDotGo(&acc, &xs[2*b], &hi, dw)
			unitDotGo(&acc, &xs[2*b+1], &lo, dw)
		}
		o[r] = hsum8(&acc)
	}
}

// goInt8Kernel is the pure-Go int8 kernel: the reference for every int8
// path, and what a CPU without int8 dot instructions runs when int8 is
// asked for.
var goInt8Kernel = &int8Kernel{name: "go", suffix: "int8", q8_0: dotQ8_0Go, q4_0: dotQ4_0Go, nf4: dotNF4Go}

// goInt8Path is the go path computing in int8: the reference.
var goInt8Path = &Path{mk: goKernel, i8: goInt8Kernel}

// int8Rows is how many W rows one kernel call takes (the output tile).
const int8Rows = 32

// int8Dot computes out[0:rows] = W[j0:j0+rows] · x for one quantized X row.
func (ws *workspace) int8Dot(w *Weight, x []int8Unit, j0, rows int, out []float32) {
	k := ws.path.i8
	units := len(x)
	q4, nf := &q4Tab, &nf4Tab
	if k.signed {
		q4, nf = &q4TabS, &nf4TabS
	}
	switch w.Format {
	case Q8_0:
		ldw := w.blocksPerRow * 34
		_ = w.q[(j0+rows)*ldw-1]
		k.q8_0(&x[0], &w.q[j0*ldw], units, rows, ldw, &out[0])
	case Q4_0:
		ldw := w.blocksPerRow * 18
		_ = w.q[(j0+rows)*ldw-1]
		k.q4_0(&x[0], &w.q[j0*ldw], units, rows, ldw, &out[0], &q4[0])
	case NF4:
		bpr := w.blocksPerRow
		ldw := bpr * 32
		_ = w.q[(j0+rows)*ldw-1]
		sc := w.absmax
		s0 := j0 * bpr
		if w.dq != nil { // the scales decoded for these rows
			if cap(ws.i8scales) < rows*bpr {
				ws.i8scales = make([]float32, rows*bpr)
			}
			sc, s0 = ws.i8scales[:rows*bpr], 0
			for i := range sc {
				sc[i] = w.nf4Scale(j0*bpr + i)
			}
		}
		_ = sc[s0+rows*bpr-1]
		k.nf4(&x[0], &w.q[j0*ldw], &sc[s0], units, rows, ldw, bpr, &out[0], &nf[0])
	default:
		panic(fmt.Sprintf("kernels: int8 product with a %s weight", w.Format))
	}
}

// runInt8Quant quantizes rows i8r0+[i0, i1) of X into g.i8x.
func (ws *workspace) runInt8Quant(g *gemmArgs, i0, i1 int) {
	u := int8Units(g.b.w)
	for i := i0; i < i1; i++ {
		quantizeInt8(g.i8x[i*u:(i+1)*u], g.a.Data[(g.i8r0+i)*g.a.Stride:][:g.k], g.b.w.Format, ws.path.i8.unitQuant)
	}
}

// int8RowBlock is how many rows of X are quantized at a time.
const int8RowBlock = 256

// runInt8 computes C[i8r0:i8r0+i8m, j0:j1] from the quantized rows of X,
// int8Rows W rows at a time against every X row.
func (ws *workspace) runInt8(g *gemmArgs, j0, j1 int) {
	u := int8Units(g.b.w)
	out := ws.tile[:int8Rows]
	for jb := j0; jb < j1; jb += int8Rows {
		rows := min(int8Rows, j1-jb)
		for i := 0; i < g.i8m; i++ {
			c := g.c.Data[(g.i8r0+i)*g.c.Stride+jb:][:rows]
			if g.alpha == 1 && g.beta == 0 { // the kernel's results are C's
				ws.int8Dot(g.b.w, g.i8x[i*u:(i+1)*u], jb, rows, c)
				continue
			}
			ws.int8Dot(g.b.w, g.i8x[i*u:(i+1)*u], jb, rows, out)
			for r := range c {
				if g.beta == 0 {
					c[r] = g.alpha * out[r]
				} else {
					c[r] = float32(g.alpha*out[r]) + float32(g.beta*c[r]) // each rounded: no fused multiply-add on any CPU
				}
			}
		}
	}
}

// useInt8 reports whether a GemmW call on an int8 path computes in int8:
// the forward product X·Wᵀ with a Q8_0, Q4_0 or NF4 weight.
func (g *gemmArgs) useInt8() bool {
	return g.b.w != nil && g.b.op == Trans && g.ta == NoTrans && int8Format(g.b.w.Format) && g.k > 0 && g.alpha != 0
}

// Int8 returns the twin of p that computes GemmW's forward products with a
// Q8_0, Q4_0 or NF4 base in int8 (eval and generation; training refuses
// it). It fails where this CPU has no int8 dot instructions for p (the go
// path's twin, exact, always exists).
func (p *Path) Int8() (*Path, error) {
	if p.i8 != nil {
		return p, nil
	}
	for _, t := range int8Twins() {
		if t.mk == p.mk && t.bf16 == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("kernels: the %s path has no int8 form on this CPU (it needs AVX2, AVX-VNNI or AVX512_VNNI; the go path's is exact but slower)", p.Name())
}

// Int8Paths lists the int8 paths this CPU and build can run, best first
// (go-int8 last).
func Int8Paths() []*Path { return int8Twins() }

// int8TokenRows is the most rows generation's auto computes in int8: its
// tokens (one per sequence), not its prompt, whose long products the packed
// fp32 or bf16 kernels run faster.
const int8TokenRows = 8

// GeneratePath is the path generation runs for compute (as PathFor takes
// it), where "auto" is PathFor's choice with the products of at most
// int8TokenRows rows (each new token's) in int8 where this CPU has int8
// dot instructions: measured faster than fp32 one token at a time
// (go test -bench GemvModel ./kernels), the prompt's products as before;
// where the int8 kernel has a GEMM (measured faster than fp32's and bf16's
// over many rows: lowrank bench kernels; x86's, not yet arm64's), the
// prompt's in int8 too.
func GeneratePath(name, compute string) (*Path, error) {
	p, err := PathFor(name, compute)
	if err != nil || compute != "auto" || p.i8 != nil {
		return p, err
	}
	for _, t := range int8Twins() {
		if t.mk == p.mk && t.i8 != goInt8Kernel {
			q := *p
			q.i8, q.i8Rows = t.i8, int8TokenRows
			if t.i8.gemm != nil && t.i8.timed { // the prompt too: faster than fp32's and bf16's packed kernels
				q.i8Rows = 0
			}
			return &q, nil
		}
	}
	return p, nil
}
