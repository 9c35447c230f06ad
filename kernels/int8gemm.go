package kernels

import (
	"encoding/binary"
	"math"
	"math/bits"
	"unsafe"
)

// The int8 GEMM: the products of many rows (eval, a prompt) on a path
// whose int8 kernel has a gemm (AVX512_VNNI's VPDPBUSD on zmm, AVX-VNNI's
// on ymm with W in groups of 8 rows (int8GemmG8Block), arm64's SDOT on the
// same groups of W's own signed bytes, AVX2's VPMADDWD on int16 X: see
// int8GemmX16Block). The
// quantization is the row kernels' (X per block of 32 to int8 with
// max|x|/127, W's own integers, see int8.go); the arithmetic after the
// integer dots is its own: for each element of C and each block b of K in
// order,
//
//	S   = Σ_t x[32b+t]·w[32b+t]         (int32, exact)
//	acc = fma(float32(S), sw·sx, acc)   (sw·sx rounded to fp32, the fma rounded once)
//
// then C = alpha·acc, or alpha·acc + C (each rounded). A block is one
// integer dot where the row kernels split it into eight lanes, so the bits
// differ from theirs; they do not depend on where an element sits in its
// tile, on M or on the worker count. gemmInt8Go is the reference.
//
// Operands are cut into regions, held as kb blocks each: an X region is
// int8GemmXRows rows, a block of it their 32 values in turn, then their
// scales, then their corrections −128·Σq (VPDPBUSD takes W unsigned: the
// sum starts from the correction); a W region is 32 rows of W, a block of
// it 8 steps of 4 values of K, each step the 32 rows' 4 bytes (+128) in
// turn (two zmm of 16 rows), then the 32 rows' scales. Rows past M or N
// are zero.

const (
	int8GemmXRows  = 6                  // rows of X per region: the kernel's register tile
	int8GemmXBlock = int8GemmXRows * 40 // bytes per block of an X region: values, scales, corrections
	// int8GemmX16Block is an X region's block where the kernel takes the
	// values as int16 (AVX2's): each row's 32 values as int16, then the
	// scales; no corrections (that kernel's W is signed).
	int8GemmX16Block = int8GemmXRows * 68
	// int8GemmW16Block is a W region's block there: for each group of 8
	// rows, 16 steps of 2 values of K, each step the 8 rows' pair as int16
	// (W's own signed values: no correction); then the 32 rows' scales.
	int8GemmW16Block = 4*512 + 128
	// int8GemmW16Panel is int8GemmPanel there: its blocks are twice the
	// size, and the panel is to stay in L2.
	int8GemmW16Panel = 2
	int8GemmBlock    = 1152 // bytes per block of a W region: 32×32 bytes, 32 fp32 scales
	// int8GemmG8Block is a W region's block where the kernel's tile is 8
	// rows wide (AVX-VNNI's, arm64's): for each group of 8 rows, 8 steps of
	// 4 values of K, each step the 8 rows' 4 bytes (+128, or as they are for
	// a signed kernel: SDOT's); then the 32 rows' scales.
	int8GemmG8Block = int8GemmBlock
	int8GemmRegion  = 32      // rows of W per region
	int8GemmPanel   = 4       // W regions packed at a time
	int8GemmMinRows = 16      // fewer rows of X run the row kernels
	int8GemmChunk   = 8 << 20 // the most bytes of quantized X at a time
)

// int8GemmFn computes C[0:rows, 0:32·nsl] from one X region (x) and nsl
// consecutive W regions (w) over kb blocks, storing the columns of the last
// region mask selects (bit j: column j) and every column of the others;
// accumulate adds to C (C = alpha·acc + C) where otherwise C = alpha·acc.
type int8GemmFn func(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool)

// int8PackFn lays out a W region (kb blocks at dst) from its 32 rows
// decoded in turn at rows (32·kb bytes each) and their block scales at sc
// (kb each): idx holds each row's offset in rows, then in sc (bytes).
type int8PackFn func(dst, rows *byte, sc *float32, kb int, idx *[64]int32)

// int8QuantFn quantizes nb whole blocks of 32 values from src as
// quantBlock does: block b's values to q + b·stride, its scale to
// sc + b·stride bytes, its correction −128·Σq to corr + b·stride bytes
// (x16 paths: none, corr nil).
type int8QuantFn func(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)

// fma32 is a·b + c rounded once to fp32 (as VFMADD231PS computes it): the
// product is exact in float64 and the sum's rounding error is recovered,
// so the one case where rounding twice differs, a float64 sum on the
// midpoint of two fp32 values, is rounded toward the exact value.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	s := p + float64(c)
	r := float32(s)
	if float64(r) == s || math.IsInf(s, 0) || math.IsNaN(s) {
		return r
	}
	bb := s - p
	e := (p - (s - bb)) + (float64(c) - bb) // s + e is the exact sum
	if e == 0 {
		return r
	}
	lo, hi := r, math.Nextafter32(r, float32(math.Inf(1)))
	if float64(r) > s {
		lo, hi = math.Nextafter32(r, float32(math.Inf(-1))), r
	}
	if s != (float64(lo)+float64(hi))/2 {
		return r
	}
	if e > 0 {
		return hi
	}
	return lo
}

// gemmInt8Go is the int8 GEMM kernel in Go: the reference (see the top of
// this file).
func gemmInt8Go(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool) {
	xs := unsafe.Slice(x, kb*int8GemmXBlock)
	wa := unsafe.Slice(w, nsl*kb*int8GemmBlock)
	// C ends at the last sliver's last column in mask (the asm kernels
	// store no further).
	cs := unsafe.Slice(c, (rows-1)*ldc+32*(nsl-1)+bits.Len32(mask))
	u32 := binary.LittleEndian.Uint32
	for s := 0; s < nsl; s++ {
		wr := wa[s*kb*int8GemmBlock:]
		for i := 0; i < rows; i++ {
			for j := 0; j < 32; j++ {
				if s == nsl-1 && mask>>j&1 == 0 {
					continue
				}
				var acc float32
				for b := 0; b < kb; b++ {
					xb, wb := xs[b*int8GemmXBlock:], wr[b*int8GemmBlock:]
					sum := int32(u32(xb[int8GemmXRows*36+4*i:]))
					for t := 0; t < 32; t++ {
						sum += int32(int8(xb[32*i+t])) * int32(wb[t/4*128+j*4+t%4])
					}
					sc := math.Float32frombits(u32(wb[1024+4*j:])) * math.Float32frombits(u32(xb[int8GemmXRows*32+4*i:]))
					acc = fma32(float32(sum), sc, acc)
				}
				v := float32(alpha * acc)
				d := &cs[i*ldc+32*s+j]
				if accumulate {
					v += *d
				}
				*d = v
			}
		}
	}
}

// goInt8GemmKernel is the pure-Go int8 kernel with the GEMM: the reference
// of an int8 path with a gemm (the tests run it; no CPU runs it as a path).
var goInt8GemmKernel = &int8Kernel{name: "go-gemm", suffix: "int8gemm", q8_0: dotQ8_0Go, q4_0: dotQ4_0Go, nf4: dotNF4Go, gemm: gemmInt8Go}

// xBlock is the bytes per block of k's X regions.
func (k *int8Kernel) xBlock() int {
	if k.x16 {
		return int8GemmX16Block
	}
	return int8GemmXBlock
}

// wBlock is the bytes per block of k's W regions.
func (k *int8Kernel) wBlock() int {
	if k.x16 {
		return int8GemmW16Block
	}
	return int8GemmBlock
}

// xAt is where row r of an X region's block has its values, its scale and
// its correction (−1 for x16: none), and the bytes per value (1, or 2 for
// x16).
func (k *int8Kernel) xAt(r int) (q, sc, corr, size int) {
	if k.x16 {
		return 64 * r, int8GemmXRows*64 + 4*r, -1, 2
	}
	return 32 * r, int8GemmXRows*32 + 4*r, int8GemmXRows*36 + 4*r, 1
}

// quantRowsGemm quantizes X rows i0..i1 (of the chunk starting at row
// g.i8r0) into g.i8q's regions.
func (ws *workspace) quantRowsGemm(g *gemmArgs, i0, i1 int) {
	kb := int8Units(g.b.w)
	k := ws.path.i8
	qf, xbl := k.quant, k.xBlock()
	nb := g.k / 32
	for i := i0; i < i1; i++ {
		rg := g.i8q[i/int8GemmXRows*kb*xbl:][:kb*xbl]
		q, sc, corr, size := k.xAt(i % int8GemmXRows)
		x := g.a.Data[(g.i8r0+i)*g.a.Stride:][:g.k]
		b := 0
		if qf != nil && nb > 0 {
			var cp *int32
			if corr >= 0 {
				cp = (*int32)(unsafe.Pointer(&rg[corr]))
			}
			qf(&rg[q], (*float32)(unsafe.Pointer(&rg[sc])), cp, &x[0], nb, xbl)
			b = nb
		}
		var qv [32]int8
		for ; b < kb; b++ {
			lo := min(32*b, g.k)
			d := quantBlock(&qv, x[lo:min(lo+32, g.k)])
			blk := rg[b*xbl:]
			var sum int32
			for t, v := range qv {
				if size == 2 {
					binary.LittleEndian.PutUint16(blk[q+2*t:], uint16(int16(v)))
				} else {
					blk[q+t] = byte(v)
				}
				sum += int32(v)
			}
			binary.LittleEndian.PutUint32(blk[sc:], math.Float32bits(d))
			if corr >= 0 {
				binary.LittleEndian.PutUint32(blk[corr:], uint32(-128*sum))
			}
		}
	}
}

// packInt8W packs W rows j0.. (32, those past W's end zero) into the
// region dst (kb blocks): the rows decoded in turn (int8Row), then laid out
// by the path's packer (nil: packInt8WGo).
func (ws *workspace) packInt8W(dst []byte, w *Weight, j0, kb int) {
	if cap(ws.i8row) < 32*32*kb {
		ws.i8row = make([]byte, 32*32*kb)
		ws.i8rowSc = make([]float32, 32*kb)
	}
	rows, sc := ws.i8row[:32*32*kb], ws.i8rowSc[:32*kb]
	for j := 0; j < int8GemmRegion; j++ {
		row, s := rows[j*32*kb:(j+1)*32*kb], sc[j*kb:(j+1)*kb]
		if n := j0 + j; n < w.Rows {
			int8Row(row, s, w, n, ws.path.i8)
		} else {
			clear(row)
			clear(s)
		}
	}
	if pk := ws.path.i8.pack; pk != nil {
		var idx [64]int32
		for j := 0; j < 32; j++ {
			idx[j], idx[32+j] = int32(j*32*kb), int32(4*j*kb)
		}
		pk(&dst[0], &rows[0], &sc[0], kb, &idx)
		return
	}
	packInt8WGo(ws.path.i8, dst, rows, sc, kb)
}

// packInt8WGo lays out a W region from its 32 rows decoded in turn (rows:
// 32·kb bytes each; sc: kb scales each) in k's layout: the packers' reference.
func packInt8WGo(k *int8Kernel, dst, rows []byte, sc []float32, kb int) {
	for j := 0; j < int8GemmRegion; j++ {
		row, s := rows[j*32*kb:(j+1)*32*kb], sc[j*kb:(j+1)*kb]
		for b := 0; b < kb; b++ {
			src := row[32*b : 32*b+32]
			switch {
			case k.x16:
				blk := dst[b*int8GemmW16Block : (b+1)*int8GemmW16Block]
				at := blk[512*(j/8)+4*(j%8):]
				for p := 0; p < 16; p++ { // the pair as two int16 in one store
					v := uint32(uint16(int16(int8(src[2*p])))) | uint32(uint16(int16(int8(src[2*p+1]))))<<16
					binary.LittleEndian.PutUint32(at[32*p:], v)
				}
				binary.LittleEndian.PutUint32(blk[2048+4*j:], math.Float32bits(s[b]))
			case k.g8:
				blk := dst[b*int8GemmG8Block : (b+1)*int8GemmG8Block]
				at := blk[256*(j/8)+4*(j%8):]
				off := uint32(0x80808080) // +128: VPDPBUSD's unsigned W
				if k.signed {
					off = 0 // SDOT's: W's own bytes
				}
				for r := 0; r < 8; r++ {
					binary.LittleEndian.PutUint32(at[32*r:], binary.LittleEndian.Uint32(src[4*r:])^off)
				}
				binary.LittleEndian.PutUint32(blk[1024+4*j:], math.Float32bits(s[b]))
			default:
				blk := dst[b*int8GemmBlock : (b+1)*int8GemmBlock]
				for r := 0; r < 8; r++ {
					binary.LittleEndian.PutUint32(blk[128*r+4*j:], binary.LittleEndian.Uint32(src[4*r:])^0x80808080)
				}
				binary.LittleEndian.PutUint32(blk[1024+4*j:], math.Float32bits(s[b]))
			}
		}
	}
}

// int8Row writes W row n's integers in natural order (32 per block of K)
// and each block's scale: Q8_0's bytes, Q4_0's nibbles − 8, NF4's codes as
// round(127·code) with the block scale / 127 (the nibbles through k's
// decoders where it has them).
func int8Row(dst []byte, sc []float32, w *Weight, n int, k *int8Kernel) {
	switch w.Format {
	case Q8_0:
		src := w.q[n*w.blocksPerRow*34:][:w.blocksPerRow*34]
		if k.q8Row != nil && len(sc) > 0 {
			k.q8Row(&dst[0], &sc[0], &src[0], len(sc))
			return
		}
		for b := range sc {
			blk := src[34*b : 34*b+34]
			sc[b] = F16ToF32(binary.LittleEndian.Uint16(blk))
			copy(dst[32*b:32*b+32], blk[2:])
		}
	case Q4_0:
		src := w.q[n*w.blocksPerRow*18:][:w.blocksPerRow*18]
		if k.q4Row != nil {
			for b := range sc {
				sc[b] = F16ToF32(binary.LittleEndian.Uint16(src[18*b:]))
			}
			k.q4Row(&dst[0], &src[0], len(sc), &q4TabS[0])
			return
		}
		const lo4, ones = 0x0f0f0f0f0f0f0f0f, 0x0101010101010101
		// A nibble v becomes the byte v − 8: v^8, with the high bits set
		// where v < 8.
		signed := func(v uint64) uint64 { return v ^ 8*ones | (^v>>3&ones)*0xf0 }
		for b := range sc {
			blk := src[18*b : 18*b+18]
			sc[b] = F16ToF32(binary.LittleEndian.Uint16(blk))
			for h := 0; h < 2; h++ {
				v := binary.LittleEndian.Uint64(blk[2+8*h:])
				binary.LittleEndian.PutUint64(dst[32*b+8*h:], signed(v&lo4))
				binary.LittleEndian.PutUint64(dst[32*b+16+8*h:], signed(v>>4&lo4))
			}
		}
	case NF4:
		bpr := w.blocksPerRow
		src := w.q[n*bpr*32:][:bpr*32]
		for b := 0; b < bpr; b++ {
			s := w.nf4Scale(n*bpr+b) * nf4Int8Scale
			sc[2*b], sc[2*b+1] = s, s
		}
		if k.nf4Row != nil {
			k.nf4Row(&dst[0], &src[0], 2*bpr, &nf4TabS[0])
			return
		}
		for t, v := range src {
			dst[2*t], dst[2*t+1] = nf4TabS[v>>4], nf4TabS[v&15]
		}
	}
}

// runInt8Gemm computes C[:, j0:j1] (j0, j1 whole regions but for N's end)
// for the rows of the chunk in g.i8q, int8GemmPanel W regions at a time
// (measured no slower than panels sized to fill L2 and cut evenly;
// int8GemmW16Panel on x16 paths).
func (ws *workspace) runInt8Gemm(g *gemmArgs, j0, j1 int) {
	kb := int8Units(g.b.w)
	wbl, panel := ws.path.i8.wBlock(), int8GemmPanel
	if ws.path.i8.x16 {
		panel = int8GemmW16Panel
	}
	size := panel * kb * wbl
	if cap(ws.i8w) < size {
		ws.i8w = make([]byte, size)
	}
	k, xbl := ws.path.i8.gemm, ws.path.i8.xBlock()
	mregs := (g.i8m + int8GemmXRows - 1) / int8GemmXRows
	for jp := j0; jp < j1; jp += panel * int8GemmRegion {
		nsl := min(panel, (j1-jp+int8GemmRegion-1)/int8GemmRegion)
		for s := 0; s < nsl; s++ {
			ws.packInt8W(ws.i8w[s*kb*wbl:(s+1)*kb*wbl], g.b.w, jp+int8GemmRegion*s, kb)
		}
		mask := ^uint32(0)
		if last := j1 - (jp + int8GemmRegion*(nsl-1)); last < 32 {
			mask = 1<<last - 1
		}
		for mi := 0; mi < mregs; mi++ {
			i := mi * int8GemmXRows
			rows := min(int8GemmXRows, g.i8m-i)
			c := &g.c.Data[(g.i8r0+i)*g.c.Stride+jp]
			k(kb, &g.i8q[mi*kb*xbl], &ws.i8w[0], c, g.c.Stride, nsl, rows, g.alpha, mask, g.beta != 0)
		}
	}
}

// runInt8Gemm runs an int8 product on the path's gemm in chunks of X rows
// (their quantized regions at most int8GemmChunk bytes): each chunk's rows
// quantized (split by rows), then the products (split by W regions).
func (p *Pool) runInt8Gemm(g *gemmArgs) {
	kb := int8Units(g.b.w)
	xbl := p.path.i8.xBlock()
	regBytes := kb * xbl
	chunk := max(1, int8GemmChunk/regBytes) * int8GemmXRows
	if need := min(chunk, (g.m+int8GemmXRows-1)/int8GemmXRows*int8GemmXRows) / int8GemmXRows * regBytes; cap(p.i8q) < need {
		p.i8q = make([]byte, need)
	}
	if g.beta != 0 && g.beta != 1 {
		for i := 0; i < g.m; i++ {
			Scale(g.c.Data[i*g.c.Stride:][:g.n], g.beta)
		}
	}
	workers := p.threads
	if float64(g.m)*float64(g.n)*float64(g.k) < minParallelFlops {
		workers = 1
	}
	for r0 := 0; r0 < g.m; r0 += chunk {
		g.i8r0, g.i8m = r0, min(chunk, g.m-r0)
		mregs := (g.i8m + int8GemmXRows - 1) / int8GemmXRows
		g.i8q = p.i8q[:mregs*regBytes]
		if pad := g.i8m % int8GemmXRows; pad != 0 { // the last region's rows past M: zero
			last := g.i8q[(mregs-1)*regBytes:]
			q, sc, corr, _ := p.path.i8.xAt(pad)
			_, scEnd, corrEnd, _ := p.path.i8.xAt(0) // the values end where row 0's scale starts, the scales at its correction
			if corr < 0 {
				corrEnd = xbl
			}
			for b := 0; b < kb; b++ {
				blk := last[b*xbl:]
				clear(blk[q:scEnd])
				clear(blk[sc:corrEnd])
				if corr >= 0 {
					clear(blk[corr:xbl])
				}
			}
		}
		qw := workers
		if g.i8m*g.k < 1<<14 {
			qw = 1
		}
		g.i8quant = true
		p.fanOut(g, qw, g.i8m, 1, true)
		g.i8quant = false
		p.fanOut(g, workers, (g.n+int8GemmRegion-1)/int8GemmRegion, int8GemmRegion, false)
	}
}
