package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unsafe"

	"github.com/x448/float16"
)

// Format is how a frozen weight is stored.
type Format uint8

const (
	F32  Format = iota // 4 bytes per value
	F16                // IEEE half
	BF16               // bfloat16 (upper half of an fp32)
	Q8_0               // GGUF Q8_0: blocks of 32 = fp16 scale + 32 int8 (34 bytes)
	Q4_0               // GGUF Q4_0: blocks of 32 = fp16 scale + 16 bytes of nibbles (18 bytes)
	NF4                // QLoRA NormalFloat4: blocks of 64 = 32 bytes of nibbles + a scale
)

// maxBlock is the widest block of any format (NF4).
const maxBlock = 64

var formatNames = [...]string{F32: "f32", F16: "f16", BF16: "bf16", Q8_0: "q8_0", Q4_0: "q4_0", NF4: "nf4"}

func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", f)
}

// ParseFormat accepts the names used by --quant: f32 f16 bf16 q8_0 q4_0 nf4.
func ParseFormat(s string) (Format, error) {
	for i, n := range formatNames {
		if strings.EqualFold(s, n) {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("unknown weight format %q (want one of %s)", s, strings.Join(formatNames[:], ", "))
}

// BlockSize is the number of values that share one scale (1 for plain floats).
func (f Format) BlockSize() int {
	switch f {
	case Q8_0, Q4_0:
		return 32
	case NF4:
		return 64
	}
	return 1
}

// blockBytes is the size of one block's quants (and, for Q8_0/Q4_0, its scale).
func (f Format) blockBytes() int {
	switch f {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case Q8_0:
		return 34
	case Q4_0:
		return 18
	case NF4:
		return 32 // scales are held apart
	}
	panic("kernels: bad format")
}

// Weight is a frozen matrix W (Rows = out features × Cols = in features) in one
// storage format. Each row holds ceil(Cols/BlockSize) whole blocks; when Cols is
// not a multiple of the block size the last block of every row is zero-padded
// in memory (Padded reports it) and such a weight has no GGUF byte layout.
// A Weight is read-only after construction and safe for concurrent readers.
type Weight struct {
	Format     Format
	Rows, Cols int

	blocksPerRow int
	f32          []float32 // F32: Rows×Cols
	u16          []uint16  // F16, BF16: Rows×Cols
	q            []byte    // Q8_0, Q4_0: Rows×blocksPerRow blocks (GGUF layout); NF4: nibbles
	absmax       []float32 // NF4 per-block scale (nil once double-quantized)
	dq           *nf4Double
}

// nf4Double holds NF4 block scales quantized again (QLoRA's double quantization):
// absmax[b] ≈ offset + code[b]·scale[b/256], int8 codes, one fp32 scale per 256 blocks.
type nf4Double struct {
	offset float32
	code   []int8
	scale  []float32
}

const dqGroup = 256

// Padded reports whether rows carry zero padding to a whole block.
func (w *Weight) Padded() bool { return w.Cols%w.Format.BlockSize() != 0 }

// DoubleQuantized reports whether NF4 scales are themselves quantized.
func (w *Weight) DoubleQuantized() bool { return w.dq != nil }

// Bytes is the memory the stored values and scales take.
func (w *Weight) Bytes() int64 {
	n := int64(len(w.f32))*4 + int64(len(w.u16))*2 + int64(len(w.q)) + int64(len(w.absmax))*4
	if w.dq != nil {
		n += int64(len(w.dq.code)) + int64(len(w.dq.scale))*4 + 4
	}
	return n
}

// RawBytes returns the GGUF-layout bytes of an F32, F16, BF16, Q8_0 or Q4_0
// weight whose rows are not padded (what a GGUF writer stores). It does not copy.
func (w *Weight) RawBytes() ([]byte, error) {
	if w.Padded() {
		return nil, fmt.Errorf("kernels: %s weight %d×%d has padded rows: no GGUF layout", w.Format, w.Rows, w.Cols)
	}
	switch w.Format {
	case F32:
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w.f32))), len(w.f32)*4), nil
	case F16, BF16:
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w.u16))), len(w.u16)*2), nil
	case Q8_0, Q4_0:
		return w.q, nil
	}
	return nil, fmt.Errorf("kernels: %s has no GGUF layout", w.Format)
}

func newWeight(f Format, rows, cols int) *Weight {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("kernels: weight shape %d×%d", rows, cols))
	}
	bs := f.BlockSize()
	return &Weight{Format: f, Rows: rows, Cols: cols, blocksPerRow: (cols + bs - 1) / bs}
}

// WeightFromF32 wraps data (rows×cols, row-major) as an F32 weight without copying.
func WeightFromF32(rows, cols int, data []float32) *Weight {
	if len(data) != rows*cols {
		panic(fmt.Sprintf("kernels: WeightFromF32 %d×%d with %d values", rows, cols, len(data)))
	}
	w := newWeight(F32, rows, cols)
	w.f32 = data
	return w
}

// WeightFromBytes views data in GGUF layout (little-endian) as a weight of
// format f without copying when it is suitably aligned. F32, F16, BF16, Q8_0
// and Q4_0 only; cols must be a multiple of the block size.
func WeightFromBytes(f Format, rows, cols int, data []byte) (*Weight, error) {
	if f == NF4 {
		return nil, fmt.Errorf("kernels: NF4 has no GGUF layout")
	}
	if cols%f.BlockSize() != 0 {
		return nil, fmt.Errorf("kernels: %s row length %d is not a multiple of %d", f, cols, f.BlockSize())
	}
	w := newWeight(f, rows, cols)
	need := rows * w.blocksPerRow * f.blockBytes()
	if len(data) != need {
		return nil, fmt.Errorf("kernels: %s %d×%d needs %d bytes, have %d", f, rows, cols, need, len(data))
	}
	switch f {
	case F32:
		w.f32 = bytesAs[float32](data)
	case F16, BF16:
		w.u16 = bytesAs[uint16](data)
	default:
		w.q = data
	}
	return w, nil
}

// bytesAs reinterprets little-endian bytes as a slice of T, copying only when
// the bytes are not aligned for T. lowrank runs on little-endian CPUs only.
func bytesAs[T float32 | uint16](b []byte) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	n := len(b) / size
	if n == 0 {
		return []T{}
	}
	if uintptr(unsafe.Pointer(&b[0]))%uintptr(size) == 0 {
		return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n)
	}
	out := make([]T, n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), n*size), b)
	return out
}

// Quantize stores src (rows×cols fp32, row-major) in format f.
func Quantize(f Format, rows, cols int, src []float32) *Weight {
	if len(src) != rows*cols {
		panic(fmt.Sprintf("kernels: Quantize %d×%d with %d values", rows, cols, len(src)))
	}
	return QuantizeRows(f, rows, cols, func(i int, dst []float32) { copy(dst, src[i*cols:(i+1)*cols]) })
}

// QuantizeRows stores a rows×cols matrix in format f, asking row(i, dst) for
// one fp32 row at a time (dst has cols elements), so a loader converting a
// tensor never holds more than one fp32 row of it.
func QuantizeRows(f Format, rows, cols int, row func(i int, dst []float32)) *Weight {
	w := newWeight(f, rows, cols)
	bs := f.BlockSize()
	buf := make([]float32, w.blocksPerRow*bs) // one padded row
	switch f {
	case F32:
		w.f32 = make([]float32, rows*cols)
	case F16, BF16:
		w.u16 = make([]uint16, rows*cols)
	case Q8_0, Q4_0:
		w.q = make([]byte, rows*w.blocksPerRow*f.blockBytes())
	case NF4:
		w.q = make([]byte, rows*w.blocksPerRow*32)
		w.absmax = make([]float32, rows*w.blocksPerRow)
	}
	for i := 0; i < rows; i++ {
		clear(buf)
		row(i, buf[:cols])
		switch f {
		case F32:
			copy(w.f32[i*cols:], buf[:cols])
		case F16:
			for j, v := range buf[:cols] {
				w.u16[i*cols+j] = float16.Fromfloat32(v).Bits()
			}
		case BF16:
			for j, v := range buf[:cols] {
				w.u16[i*cols+j] = F32ToBF16(v)
			}
		case Q8_0:
			rb := w.blocksPerRow * 34
			for b := 0; b < w.blocksPerRow; b++ {
				quantQ8_0(w.q[i*rb+b*34:][:34], buf[b*32:][:32])
			}
		case Q4_0:
			rb := w.blocksPerRow * 18
			for b := 0; b < w.blocksPerRow; b++ {
				quantQ4_0(w.q[i*rb+b*18:][:18], buf[b*32:][:32])
			}
		case NF4:
			for b := 0; b < w.blocksPerRow; b++ {
				blk := i*w.blocksPerRow + b
				w.absmax[blk] = quantNF4(w.q[blk*32:][:32], buf[b*64:][:64])
			}
		}
	}
	return w
}

// quantQ8_0 follows ggml's quantize_row_q8_0_ref: d = amax/127 stored as fp16,
// q = round-half-away(x/d) computed with the fp32 reciprocal of the fp32 d.
func quantQ8_0(dst []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, float16.Fromfloat32(d).Bits())
	for j, v := range x {
		dst[2+j] = byte(int8(roundHalfAway(float32(v * id))))
	}
}

// quantQ4_0 follows ggml's quantize_row_q4_0_ref: d = max/-8 where max is the
// signed value of largest magnitude; q = min(15, trunc(x/d + 8.5)); element j
// goes to the low nibble of byte j, element j+16 to its high nibble.
func quantQ4_0(dst []byte, x []float32) {
	var amax, mx float32
	for _, v := range x {
		if amax < abs32(v) {
			amax, mx = abs32(v), v
		}
	}
	d := mx / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, float16.Fromfloat32(d).Bits())
	for j := 0; j < 16; j++ {
		x0 := float32(x[j]*id) + 8.5
		x1 := float32(x[16+j]*id) + 8.5
		dst[2+j] = byte(min(15, int8(x0))) | byte(min(15, int8(x1)))<<4
	}
}

// nf4Code is QLoRA's NormalFloat4 codebook (bitsandbytes' values): quantiles
// of N(0,1) scaled to [-1, 1], with an exact zero.
var nf4Code = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// NF4Codebook returns the 16 NF4 values.
func NF4Codebook() [16]float32 { return nf4Code }

// nf4Mid are the decision thresholds: midpoints between neighbouring codes.
var nf4Mid = func() (m [15]float32) {
	for i := range m {
		m[i] = (nf4Code[i] + nf4Code[i+1]) / 2
	}
	return
}()

// nf4Bucket maps v ∈ [-1, 1] on a grid of 512 buckets to the code at the
// bucket's lower edge; buckets (width 1/256) are narrower than the closest pair
// of thresholds (0.08 apart), so at most one threshold lies inside a bucket.
var nf4Bucket = func() (t [513]byte) {
	for b := range t {
		v, c := float32(b)/256-1, byte(0)
		for c < 15 && v > nf4Mid[c] {
			c++
		}
		t[b] = c
	}
	return
}()

// nf4Index returns the code nearest to v (v outside [-1, 1] clamps).
func nf4Index(v float32) byte {
	if !(v > -1) { // NaN too
		return 0
	}
	v = min(1, v)
	c := nf4Bucket[int((v+1)*256)]
	if c < 15 && v > nf4Mid[c] {
		c++
	}
	return c
}

// quantNF4Absmax quantizes 64 values as bitsandbytes does (scale = absmax,
// value = nearest code of x/absmax; element 2i in the high nibble of byte i)
// and returns the scale.
func quantNF4Absmax(dst []byte, x []float32) float32 {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	var inv float32
	if amax != 0 {
		inv = 1 / amax
	}
	for i := 0; i < 32; i++ {
		dst[i] = nf4Index(x[2*i]*inv)<<4 | nf4Index(x[2*i+1]*inv)
	}
	return amax
}

// quantNF4 writes an NF4 block like quantNF4Absmax, but with the scale that
// gives the block the smallest squared error among: absmax, three smaller
// candidates (down to 0.82·absmax, clipping the largest values to ±1), and the
// least-squares scale for the best candidate's codes (kept only when it lowers
// the error and is at least 0.75·absmax). The block is read exactly as
// bitsandbytes reads one (code × scale), so the format is unchanged; on
// stories260K it lowers NF4's cost from +7.0% to +4.5% next-token loss
// (TestQuantizationCost), at the same quantization speed.
func quantNF4(dst []byte, x []float32) float32 {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	if amax == 0 || len(x) != 64 {
		return quantNF4Absmax(dst, x)
	}
	return nf4Search(dst, x, nf4Ones[:], amax, 4, 0.06, 1, 0.75)
}

// nf4Ones weights every value of a block alike.
var nf4Ones = [64]float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

// nf4Search writes the NF4 block of x (64 values, largest magnitude amax > 0)
// with the scale of least squared error, value j's error weighted by wt[j],
// among: cands scales amax·(1 − step·t) for t = 0…cands−1,
// then up to refits least-squares scales for the best codes so far, each
// kept only when at least floor·amax and lower in error. It returns the scale.
func nf4Search(dst []byte, x, wt []float32, amax float32, cands int, step float32, refits int, floor float32) float32 {
	wt = wt[:len(x)]
	var q, bq [64]byte
	assign := func(s float32) (e float64) {
		inv := 1 / s
		for j, v := range x {
			q[j] = nf4Index(v * inv)
			r := float64(v) - float64(s)*float64(nf4Code[q[j]])
			e += float64(float64(wt[j]) * r * r) // float64(·): no fused multiply-add (arm64), the same choice on every CPU
		}
		return e
	}
	best, bestE := float32(0), math.Inf(1)
	try := func(s float32) {
		if e := assign(s); e < bestE {
			best, bestE, bq = s, e, q
		}
	}
	for t := 0; t < cands; t++ {
		try(amax * (1 - float32(step*float32(t))))
	}
	for range refits {
		var num, den float64 // least-squares scale for the chosen codes
		for j, v := range x {
			c := float64(nf4Code[bq[j]])
			num += float64(float64(wt[j]) * float64(v) * c)
			den += float64(float64(wt[j]) * c * c)
		}
		if den == 0 {
			break
		}
		if s := float32(num / den); s >= floor*amax && s != best {
			try(s)
		}
	}
	for i := 0; i < 32; i++ {
		dst[i] = bq[2*i]<<4 | bq[2*i+1]
	}
	return best
}

// DoubleQuantize replaces an NF4 weight's fp32 block scales by int8 codes
// around their mean with one fp32 scale per 256 blocks (QLoRA's double
// quantization: 0.127 instead of 0.5 bits of scale per weight).
func (w *Weight) DoubleQuantize() {
	if w.Format != NF4 || w.dq != nil || len(w.absmax) == 0 {
		return
	}
	var sum float64
	for _, a := range w.absmax {
		sum += float64(a)
	}
	dq := &nf4Double{offset: float32(sum / float64(len(w.absmax)))}
	n := len(w.absmax)
	dq.code = make([]int8, n)
	dq.scale = make([]float32, (n+dqGroup-1)/dqGroup)
	for g := range dq.scale {
		grp := w.absmax[g*dqGroup : min(n, (g+1)*dqGroup)]
		var m float32
		for _, a := range grp {
			m = max(m, abs32(a-dq.offset))
		}
		s := m / 127
		dq.scale[g] = s
		for i, a := range grp {
			if s != 0 {
				dq.code[g*dqGroup+i] = int8(roundHalfAway((a - dq.offset) / s))
			}
		}
	}
	w.dq = dq
	w.absmax = nil
}

func (w *Weight) nf4Scale(blk int) float32 {
	if w.dq != nil {
		// The product rounded, then the sum: the same bits on every CPU
		// (Go may fuse the two on arm64).
		return w.dq.offset + float32(float32(w.dq.code[blk])*w.dq.scale[blk/dqGroup])
	}
	return w.absmax[blk]
}

// DecodeRow writes row i of W as fp32 into dst (len ≥ Cols), in pure Go
// (Path.DecodeRow gives the same bits with a path's vectorized decoders).
func (w *Weight) DecodeRow(dst []float32, i int) { w.decodeRow(&goPath.blocks, dst, i) }

func (w *Weight) decodeRow(bd *blockDecoders, dst []float32, i int) {
	bs := w.Format.BlockSize()
	if bs == 1 {
		w.decodeBlocks(bd, dst[:w.Cols], i, 0, w.Cols)
		return
	}
	var buf [maxBlock]float32
	full := w.Cols / bs
	w.decodeBlocks(bd, dst[:full*bs], i, 0, full)
	if full < w.blocksPerRow {
		w.decodeBlocks(bd, buf[:bs], i, full, full+1)
		copy(dst[full*bs:w.Cols], buf[:])
	}
}

// Dequantize returns W as a new fp32 matrix (tests, export and merge only: the
// training path never materializes it).
func (w *Weight) Dequantize() Mat {
	m := NewMat(w.Rows, w.Cols)
	for i := 0; i < w.Rows; i++ {
		w.DecodeRow(m.Row(i), i)
	}
	return m
}

// decodeRange returns columns [c0, c1) of row i as fp32, decoding whole blocks
// into tmp (len ≥ c1-c0 + 2 blocks). F32 rows are returned without copying.
func (w *Weight) decodeRange(bd *blockDecoders, tmp []float32, i, c0, c1 int) []float32 {
	if w.Format == F32 {
		return w.f32[i*w.Cols+c0 : i*w.Cols+c1]
	}
	bs := w.Format.BlockSize()
	b0, b1 := c0/bs, (c1+bs-1)/bs
	w.decodeBlocks(bd, tmp[:(b1-b0)*bs], i, b0, b1)
	off := c0 - b0*bs
	return tmp[off : off+c1-c0]
}

// prefetchRows asks for the quantized blocks of rows j0..j0+n over
// columns [c0, c1) to be brought into cache, where bd can (Q8_0, Q4_0,
// NF4; see sliverRows, which asks for the next sliver's while this one's
// are decoded).
func (w *Weight) prefetchRows(bd *blockDecoders, j0, n, c0, c1 int) {
	if bd.prefetch == nil || n <= 0 || c1 <= c0 {
		return
	}
	var bb int // bytes of one block in w.q
	switch w.Format {
	case Q8_0:
		bb = 34
	case Q4_0:
		bb = 18
	case NF4:
		bb = 32
	default:
		return
	}
	bs := w.Format.BlockSize()
	b0, b1 := c0/bs, (c1+bs-1)/bs
	_ = w.q[((j0+n-1)*w.blocksPerRow+b1)*bb-1]
	bd.prefetch(&w.q[(j0*w.blocksPerRow+b0)*bb], n, w.blocksPerRow*bb, (b1-b0)*bb)
}

// storedAt is W[i, p] of an F32, F16 or BF16 weight.
func (w *Weight) storedAt(i, p int) float32 {
	switch w.Format {
	case F32:
		return w.f32[i*w.Cols+p]
	case F16:
		return F16ToF32(w.u16[i*w.Cols+p])
	}
	return fromBF16(w.u16[i*w.Cols+p])
}

// decodeBlocks decodes blocks [b0, b1) of row i into dst (len (b1-b0)·BlockSize).
func (w *Weight) decodeBlocks(bd *blockDecoders, dst []float32, i, b0, b1 int) {
	switch w.Format {
	case F32:
		copy(dst, w.f32[i*w.Cols+b0:i*w.Cols+b1])
	case F16:
		decodeHalves(bd.f16, dst, w.u16[i*w.Cols+b0:i*w.Cols+b1], F16ToF32)
	case BF16:
		decodeHalves(bd.bf16, dst, w.u16[i*w.Cols+b0:i*w.Cols+b1], fromBF16)
	case Q8_0:
		q := w.q[(i*w.blocksPerRow+b0)*34 : (i*w.blocksPerRow+b1)*34]
		decodeQ8_0(bd, dst, q)
	case Q4_0:
		q := w.q[(i*w.blocksPerRow+b0)*18 : (i*w.blocksPerRow+b1)*18]
		decodeQ4_0(bd, dst, q)
	case NF4:
		if bd.nf4 != nil && w.dq == nil && b1 > b0 {
			blk := i*w.blocksPerRow + b0
			_ = dst[(b1-b0)*64-1]
			_ = w.q[(blk+b1-b0)*32-1]
			bd.nf4(&dst[0], &w.q[blk*32], &w.absmax[blk], &nf4Code[0], b1-b0, 128)
			return
		}
		for b := b0; b < b1; b++ {
			blk := i*w.blocksPerRow + b
			decodeNF4(dst[(b-b0)*64:][:64], w.q[blk*32:][:32], w.nf4Scale(blk))
		}
	}
}

// decodeRuns decodes n·32 columns of row i from column c0 (a block boundary)
// as n runs of 32 values, run r at dst[r·step:], with the vectorized block
// decoders bd. It reports false, writing nothing, where they do not apply
// (other formats, a path without them, double-quantized NF4, c0 or n not
// whole blocks).
func (w *Weight) decodeRuns(bd *blockDecoders, dst []float32, i, c0, n, step int) bool {
	if n <= 0 {
		return false
	}
	bs := w.Format.BlockSize()
	if (bs != 32 && bs != 64) || c0%bs != 0 || (n*32)%bs != 0 || c0+n*32 > w.blocksPerRow*bs {
		return false
	}
	blk, nb := i*w.blocksPerRow+c0/bs, n*32/bs
	switch {
	case w.Format == Q8_0 && bd.q8_0 != nil:
		_ = dst[(n-1)*step+31]
		_ = w.q[(blk+nb)*34-1]
		bd.q8_0(&dst[0], &w.q[blk*34], nb, step*4)
	case w.Format == Q4_0 && bd.q4_0 != nil:
		_ = dst[(n-1)*step+31]
		_ = w.q[(blk+nb)*18-1]
		bd.q4_0(&dst[0], &w.q[blk*18], nb, step*4)
	case w.Format == NF4 && bd.nf4 != nil && w.dq == nil:
		_ = dst[(n-1)*step+31]
		_ = w.q[(blk+nb)*32-1]
		bd.nf4(&dst[0], &w.q[blk*32], &w.absmax[blk], &nf4Code[0], nb, step*4)
	default:
		return false
	}
	return true
}

// decodeHalves converts src to fp32 in dst: by fn (a path's vector form)
// up to a multiple of 8, the rest (all of it without fn) by one.
func decodeHalves(fn func(dst *float32, src *uint16, n int), dst []float32, src []uint16, one func(uint16) float32) {
	dst = dst[:len(src)]
	j := 0
	if n := len(src) &^ 7; fn != nil && n > 0 {
		fn(&dst[0], &src[0], n)
		j = n
	}
	for ; j < len(src); j++ {
		dst[j] = one(src[j])
	}
}

func decodeQ8_0(bd *blockDecoders, dst []float32, q []byte) {
	if nb := len(q) / 34; bd.q8_0 != nil && nb > 0 {
		_ = dst[nb*32-1]
		bd.q8_0(&dst[0], &q[0], nb, 128)
		return
	}
	for b := 0; len(q) >= 34; b++ {
		d := F16ToF32(binary.LittleEndian.Uint16(q))
		o := dst[b*32 : b*32+32 : b*32+32]
		qs := q[2:34:34]
		for j := range o {
			o[j] = float32(int8(qs[j])) * d
		}
		q = q[34:]
	}
}

func decodeQ4_0(bd *blockDecoders, dst []float32, q []byte) {
	if nb := len(q) / 18; bd.q4_0 != nil && nb > 0 {
		_ = dst[nb*32-1]
		bd.q4_0(&dst[0], &q[0], nb, 128)
		return
	}
	for b := 0; len(q) >= 18; b++ {
		d := F16ToF32(binary.LittleEndian.Uint16(q))
		o := dst[b*32 : b*32+32 : b*32+32]
		qs := q[2:18:18]
		for j, v := range qs {
			o[j] = float32(int(v&15)-8) * d
			o[j+16] = float32(int(v>>4)-8) * d
		}
		q = q[18:]
	}
}

func decodeNF4(dst []float32, q []byte, s float32) {
	dst = dst[:64:64]
	var lut [16]float32 // the codebook pre-scaled: one multiply per 16 values instead of per value
	for k, c := range nf4Code {
		lut[k] = c * s
	}
	for i, v := range q[:32:32] {
		dst[2*i] = lut[v>>4]
		dst[2*i+1] = lut[v&15]
	}
}

// F16ToF32 converts an IEEE half (as bits) to float32 exactly.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch exp {
	case 0: // zero or subnormal: man·2⁻²⁴
		f := float32(man) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 31: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// F32ToBF16 rounds to the nearest bfloat16 (ties to even), keeping NaN a NaN.
func F32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// roundHalfAway is C's roundf.
func roundHalfAway(v float32) float32 { return float32(math.Round(float64(v))) }
