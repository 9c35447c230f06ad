package kernels

import (
	"fmt"
	"unsafe"
)

// microKernel computes the register tile C[0:mr, 0:nr] += Ap·Bp (or = Ap·Bp when
// overwrite, so beta = 0 needs no pass over C), where Ap is a
// packed mr×kc sliver (column p at Ap[p*mr:]) and Bp a packed kc×nr sliver (row p
// at Bp[p*nr:]); C has row stride ldc (in elements). It must not allocate.
type microKernel struct {
	name       string
	mr, nr     int
	mc, kc, nc int // cache blocks: multiples of mr, of 64 (the widest quant block), of nr
	fn         func(kc int, a, b, c *float32, ldc int, overwrite bool)
	dot        *dotKernel // narrow-N kernels in dot-product form, if this CPU has them
	outer      outerFn    // the narrow-M outer-product kernel, if this CPU has it
	outerRows  int        // the most output rows it takes (8 or 16: LoRA ranks)
}

// outerFn computes C[0:8, 0:n] (+)= Σ_{p<k} G[p, 0:8] ⊗ X[p, 0:n]: G packed as k
// rows of 8, X and C row-major with strides ldx and ldc (in elements).
type outerFn func(k int, g *float32, x *float32, ldx int, c *float32, ldc int, n int, overwrite bool)

// dotKernel computes C[0:R, 0:8] (+)= A[0:R, 0:k]·Bpᵀ for R = 3 or 1, reading
// A's rows as stored and Bp as 8 packed rows of kp = k rounded up to 16.
type dotKernel struct {
	rows3, rows1 func(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)
	// f32, f16, bf16, where set, are the one-row form straight from a
	// weight's stored rows of that format: c[0:8] = x[0:k]·W[0:8, 0:k]ᵀ,
	// the 8 rows ldw bytes apart, k a multiple of 8.
	f32, f16, bf16 func(k int, x *float32, w *byte, ldw int, c *float32)
}

// stored returns dk's one-row kernel for format f and the weight's bytes
// per value, or nil.
func (dk *dotKernel) stored(f Format) (func(k int, x *float32, w *byte, ldw int, c *float32), int) {
	switch f {
	case F32:
		return dk.f32, 4
	case F16:
		return dk.f16, 2
	case BF16:
		return dk.bf16, 2
	}
	return nil, 0
}

// dotMaxN is the widest N the dot-product path takes (LoRA ranks up to 16).
const dotMaxN = 16

// bSource is the right-hand operand: an fp32 matrix or a stored weight.
type bSource struct {
	mat Mat
	w   *Weight
	op  Op
}

// gemmArgs is one call: C = alpha·op(A)·op(B) + beta·C, C is m×n, reduction over k.
type gemmArgs struct {
	m, n, k     int
	alpha, beta float32
	a           Mat
	ta          Op
	b           bSource
	c           Mat
	// transC: the problem was swapped to Cᵀ = op(B)ᵀ·op(A)ᵀ because N is too
	// narrow for a register tile; m, n, a and b describe the swapped problem
	// and tiles are written to C transposed.
	transC bool
	// dot: the product runs in dot-product form (see dotKernel) against dotB,
	// op(B)ᵀ·alpha packed as ceil(N/8)·8 rows of kp values.
	dot  bool
	dotB []float32
	kp   int
	// gemv: one row of A against a stored weight's rows (X·Wᵀ at M = 1, as
	// generation runs), in dot-product form over W rows decoded in place.
	gemv bool
	// outer: the product runs in outer-product form (see outerFn) with
	// outerG holding alpha·op(A)ᵀ as ceil(M/8) groups of k rows of 8.
	outer  bool
	outerG []float32
	// bf16: a GemmW product on a bf16 path: the packed form only, with the
	// packed panels rounded to bf16 pairs (see bf16.go).
	bf16 bool
	// int8: a forward GemmW product on an int8 path (see int8.go): X's
	// rows i8r0 to i8r0+i8m quantized into i8x (by workers when i8quant),
	// then dotted.
	int8, i8quant bool
	i8x           []int8Unit
	i8r0, i8m     int
	// i8gemm: the int8 product runs on the path's int8 GEMM, X's rows
	// quantized into the regions i8q (see int8gemm.go).
	i8gemm bool
	i8q    []byte
}

// useOuter reports whether the call suits the outer-product kernel: at most
// mk.outerRows output rows (after swapNarrow), a reduction long enough to pay
// for packing, op(A) stored K×M (so its packing is a copy), an fp32 B stored
// K×N (read in place), and the packed A fits the buffer.
func (g *gemmArgs) useOuter(mk *microKernel, bufLen int) bool {
	if mk.outer == nil || g.m > mk.outerRows || g.k < 32 || g.alpha == 0 || g.ta != Trans {
		return false
	}
	if g.b.w != nil || g.b.op != NoTrans {
		return false
	}
	return (g.m+7)/8*8*g.k <= bufLen
}

// packOuter fills dst with outerG: group q, row p holds alpha·op(A)[8q+r][p]
// for r < 8, zero past M.
func (g *gemmArgs) packOuter(dst []float32) {
	groups := (g.m + 7) / 8
	g.outerG = dst[:groups*g.k*8]
	a := g.a
	for p := 0; p < g.k; p++ {
		src := a.Data[p*a.Stride:][:g.m]
		for q := 0; q < groups; q++ {
			row := g.outerG[(q*g.k+p)*8:][:8]
			clear(row)
			for r := 0; r < 8 && q*8+r < g.m; r++ {
				row[r] = g.alpha * src[q*8+r]
			}
		}
	}
}

// runOuter computes columns [j0, j1) of op(A)·op(B) (rows of C, or columns
// when transC) in outer-product form.
func (ws *workspace) runOuter(fn outerFn, g *gemmArgs, j0, j1 int) {
	ci0, ci1, cj0, cj1 := 0, g.m, j0, j1
	if g.transC {
		ci0, ci1, cj0, cj1 = j0, j1, 0, g.m
	}
	if g.beta != 0 {
		scaleBlock(g.c, ci0, ci1, cj0, cj1, g.beta)
	}
	over := g.beta == 0
	x, c := g.b.mat, g.c
	_ = x.Data[(g.k-1)*x.Stride+j1-1] // the kernel reads rows 0..k-1 of columns [j0, j1)
	chunk := len(ws.tmp) / 8 &^ 15
	for q := 0; q*8 < g.m; q++ {
		rows := min(8, g.m-q*8)
		gp := &g.outerG[q*g.k*8]
		if rows == 8 && !g.transC { // straight into C's rows 8q..8q+7
			fn(g.k, gp, &x.Data[j0], x.Stride, &c.Data[q*8*c.Stride+j0], c.Stride, j1-j0, over)
			continue
		}
		for jb := j0; jb < j1; jb += chunk { // through tmp: rows × w of it are valid
			w := min(chunk, j1-jb)
			fn(g.k, gp, &x.Data[jb], x.Stride, &ws.tmp[0], w, w, true)
			if g.transC {
				storeTileT(c, ws.tmp, w, q*8, jb, rows, w, over)
			} else {
				storeTile(c, ws.tmp, w, q*8, jb, rows, w, over)
			}
		}
	}
}

// useGemv reports whether the call is one row of A against a stored
// weight's rows (the forward product of generation, one token at a time) on
// a kernel with dot-product form: each W row is then decoded once, in place,
// instead of being packed and transposed into slivers for a one-row tile.
//
// An fp32 B stored N×K (a LoRA factor: generation's x·Aᵀ and h·Bᵀ) takes
// the same form where the kernel reads fp32 rows in place: packing it for
// a one-row tile cost more than the product (an adapter on the
// smollm2-135m shape, F16 base: 43 → 35 tokens/s on one thread).
func (g *gemmArgs) useGemv(mk *microKernel) bool {
	if mk.dot == nil || g.m != 1 || g.ta != NoTrans || g.b.op != Trans || g.k == 0 || g.alpha == 0 {
		return false
	}
	return g.b.w != nil || mk.dot.f32 != nil
}

// runGemv computes C[0, j0:j1] in dot-product form: f32, f16 and bf16 rows
// (and an fp32 B's) read in place where the kernel can (runGemvRows); the
// others, 8 W rows at a time, decoded into tmp as the dot kernel's packed
// rows, in K chunks that fit it, each output summing its chunks in order.
func (ws *workspace) runGemv(dk *dotKernel, g *gemmArgs, j0, j1 int) {
	if g.b.w == nil {
		ws.runGemvMat(dk.f32, g, j0, j1)
		return
	}
	w, x := g.b.w, g.a.Data
	if fn, size := dk.stored(w.Format); fn != nil && g.k >= 8 {
		base := unsafe.Pointer(unsafe.SliceData(w.u16))
		if w.Format == F32 {
			base = unsafe.Pointer(unsafe.SliceData(w.f32))
		}
		j0 = ws.runGemvRows(fn, g, base, w.Cols*size, w.storedAt, j0, j1)
	}
	// Rows of kp floats, the last one's decoding running up to a block past kp.
	chunk := ((len(ws.tmp) - maxBlock) / 8) &^ 63
	acc := ws.tile[:8]
	for jb := j0; jb < j1; jb += 8 {
		rows := min(8, j1-jb)
		for p0 := 0; p0 < g.k; p0 += chunk {
			kc := min(chunk, g.k-p0)
			kp := (kc + 15) &^ 15
			for r := 0; r < 8; r++ {
				dst := ws.tmp[r*kp:]
				if r >= rows {
					clear(dst[:kp])
					continue
				}
				if row := w.decodeRange(&ws.path.blocks, dst, jb+r, p0, p0+kc); &row[0] != &dst[0] {
					copy(dst, row) // F32 rows are viewed, not decoded
				}
				clear(dst[kc:kp])
			}
			dk.rows1(kc, &x[p0], g.a.Stride, &ws.tmp[0], &acc[0], 8, p0 == 0)
		}
		g.storeRow(jb, acc[:rows])
	}
}

// runGemvRows computes C[0, j0:j1] 8 rows of op(B)ᵀ at a time by fn
// reading them in place (row j at base + j·ld bytes; the first 8·⌊k/8⌋
// columns, the rest added after, in order, through at) and returns where
// it stopped: the last j1−j0 mod 8 rows are left to the caller.
func (ws *workspace) runGemvRows(fn func(k int, x *float32, w *byte, ldw int, c *float32), g *gemmArgs, base unsafe.Pointer, ld int, at func(j, p int) float32, j0, j1 int) int {
	x := g.a.Data[:g.k]
	k8 := g.k &^ 7
	acc := ws.tile[:8]
	_ = x[k8-1]
	for ; j0+8 <= j1; j0 += 8 {
		fn(k8, &x[0], (*byte)(unsafe.Add(base, j0*ld)), ld, &acc[0])
		for r := range acc {
			for p := k8; p < g.k; p++ {
				acc[r] += x[p] * at(j0+r, p)
			}
		}
		g.storeRow(j0, acc)
	}
	return j0
}

// runGemvMat is runGemv for an fp32 B stored N×K: runGemvRows, then the
// last N mod 8 rows (every row when k < 8) summed in order in Go.
func (ws *workspace) runGemvMat(fn func(k int, x *float32, w *byte, ldw int, c *float32), g *gemmArgs, j0, j1 int) {
	b, x := g.b.mat, g.a.Data[:g.k]
	if g.k >= 8 && j1-j0 >= 8 {
		_ = b.Data[(j1-1)*b.Stride+g.k-1]
		at := func(j, p int) float32 { return b.Data[j*b.Stride+p] }
		j0 = ws.runGemvRows(fn, g, unsafe.Pointer(unsafe.SliceData(b.Data)), 4*b.Stride, at, j0, j1)
	}
	acc := ws.tile[:1]
	for ; j0 < j1; j0++ {
		acc[0] = 0
		for p, v := range b.Data[j0*b.Stride:][:g.k] {
			acc[0] += x[p] * v
		}
		g.storeRow(j0, acc)
	}
}

// storeRow writes C[0, j0:j0+len(acc)] = alpha·acc + beta·C (C's old value
// unread at beta = 0).
func (g *gemmArgs) storeRow(j0 int, acc []float32) {
	c := g.c.Data[j0 : j0+len(acc)]
	for r := range c {
		if g.beta == 0 {
			c[r] = g.alpha * acc[r]
		} else {
			c[r] = g.alpha*acc[r] + g.beta*c[r]
		}
	}
}

// useDot reports whether the call suits the dot-product kernels: N a LoRA
// rank, A's rows contiguous along K, B fp32, and the packed B fits the buffer.
func (g *gemmArgs) useDot(mk *microKernel, bufLen int) bool {
	if mk.dot == nil || g.n > dotMaxN || g.m < 3 || g.k == 0 || g.alpha == 0 || g.ta != NoTrans {
		return false
	}
	if g.b.w != nil && g.b.w.Format != F32 {
		return false
	}
	kp := (g.k + 15) &^ 15
	return 2*8*kp <= bufLen
}

// packDot fills dst with alpha·op(B)ᵀ: row j (j < N) holds column j of op(B),
// kp values, zero-padded; rows N..ceil(N/8)·8 are zero.
func (g *gemmArgs) packDot(dst []float32) {
	g.kp = (g.k + 15) &^ 15
	rows := (g.n + 7) &^ 7
	g.dotB = dst[:rows*g.kp]
	clear(g.dotB)
	b := g.b.mat
	op := g.b.op
	if w := g.b.w; w != nil {
		b = MatOf(w.f32, w.Rows, w.Cols)
	}
	for j := 0; j < g.n; j++ {
		row := g.dotB[j*g.kp : j*g.kp+g.k]
		if op == Trans { // B stored N×K: row j is contiguous
			src := b.Data[j*b.Stride:][:g.k]
			for p, v := range src {
				row[p] = g.alpha * v
			}
			continue
		}
		for p := range row { // B stored K×N: gather column j
			row[p] = g.alpha * b.Data[p*b.Stride+j]
		}
	}
}

// runDot computes rows [i0, i1) of C in dot-product form.
func (ws *workspace) runDot(dk *dotKernel, g *gemmArgs, i0, i1 int) {
	if g.beta != 0 {
		scaleBlock(g.c, i0, i1, 0, g.n, g.beta)
	}
	over := g.beta == 0
	a, c := g.a, g.c
	for i := i0; i < i1; {
		rows := 3
		if i1-i < 3 {
			rows = 1
		}
		fn := dk.rows3
		if rows == 1 {
			fn = dk.rows1
		}
		for jb := 0; jb < g.n; jb += 8 {
			bp := &g.dotB[jb*g.kp]
			ap := &a.Data[i*a.Stride]
			if g.n-jb >= 8 {
				fn(g.k, ap, a.Stride, bp, &c.Data[i*c.Stride+jb], c.Stride, over)
				continue
			}
			fn(g.k, ap, a.Stride, bp, &ws.tile[0], 8, true)
			storeTile(c, ws.tile, 8, i, jb, rows, g.n-jb, over)
		}
		i += rows
	}
}

// swapNarrow rewrites C = op(A)·op(B) with a narrow fp32 op(B) (N well below
// the tile width, as LoRA's rank-r products are) as Cᵀ = op(B)ᵀ·op(A)ᵀ, so that
// the wide dimension M fills the register tile's columns.
func (g *gemmArgs) swapNarrow(nr int) {
	if g.n*2 > nr || g.m < nr {
		return
	}
	if w := g.b.w; w != nil { // only an F32 weight is an fp32 matrix to pack as A
		if w.Format != F32 {
			return
		}
		g.b = bSource{mat: MatOf(w.f32, w.Rows, w.Cols), op: g.b.op}
	}
	a, ta := g.a, g.ta
	g.a, g.ta = g.b.mat, !g.b.op
	g.b = bSource{mat: a, op: !ta}
	g.m, g.n = g.n, g.m
	g.transC = true
}

// workspace holds one worker's packing buffers, sized once for its path's
// microkernel.
type workspace struct {
	path  *Path
	apack []float32   // mc×kc, sliver-major
	bpack []float32   // kc×nc, sliver-major
	tmp   []float32   // dequantized rows: nr rows of kc+2 blocks, or one row of nc+2 blocks
	rows  [][]float32 // nr source rows of one transposed sliver
	arows [][]float32 // mr source rows of one packed A sliver
	tile  []float32   // mr×nr edge tile
	// bf16 paths: apack and bpack as bf16 pairs.
	apack16, bpack16 []uint32
	// int8 paths: double-quantized NF4 scales of the rows in hand; with
	// an int8 GEMM, a panel of packed W regions and one region's 32 rows
	// of integers and scales, decoded.
	i8scales []float32
	i8w      []byte
	i8row    []byte
	i8rowSc  []float32
}

func newWorkspace(p *Path) *workspace {
	k := p.mk
	mr, nr, mc, kc, nc := k.mr, k.nr, k.mc, k.kc, k.nc
	if p.bf16 != nil { // room for both geometries
		bmr, bnr, bmc, bkc, bnc := p.bf16.geom(k)
		mr, nr, mc, kc, nc = max(mr, bmr), max(nr, bnr), max(mc, bmc), max(kc, bkc), max(nc, bnc)
	}
	ws := &workspace{
		path:  p,
		apack: make([]float32, mc*kc),
		bpack: make([]float32, kc*nc),
		tmp:   make([]float32, max(nr*(kc+2*maxBlock), nc+2*maxBlock)),
		rows:  make([][]float32, nr),
		arows: make([][]float32, mr),
		tile:  make([]float32, max(mr*nr, int8Rows)),
	}
	if p.bf16 != nil {
		_, _, bmc, bkc, bnc := p.bf16.geom(k)
		kp := p.bf16.pairs(bkc)
		ws.apack16 = make([]uint32, bmc*kp)
		ws.bpack16 = make([]uint32, kp*bnc)
	}
	return ws
}

// run computes the block C[i0:i1, j0:j1] of g sequentially. Every element of C
// is owned by exactly one call, and the K loop is blocked from 0 in steps of kc
// whatever the region, so results do not depend on how work was split.
func (ws *workspace) run(g *gemmArgs, i0, i1, j0, j1 int) {
	mk := ws.path.mk
	ci0, ci1, cj0, cj1 := i0, i1, j0, j1 // the block in C's own coordinates
	if g.transC {
		ci0, ci1, cj0, cj1 = j0, j1, i0, i1
	}
	if g.k == 0 || g.alpha == 0 {
		scaleBlock(g.c, ci0, ci1, cj0, cj1, g.beta)
		return
	}
	if g.beta != 0 {
		scaleBlock(g.c, ci0, ci1, cj0, cj1, g.beta)
	}
	mr, nr, mcMax, kcMax, ncMax := mk.mr, mk.nr, mk.mc, mk.kc, mk.nc
	if g.bf16 {
		mr, nr, mcMax, kcMax, ncMax = ws.path.bf16.geom(mk)
	}
	ldc := g.c.Stride
	kcb := balancedKC(kcMax, g.k)
	mcb := balancedMC(mcMax, mr, i1-i0)
	ncb := balancedNC(ncMax, nr, j1-j0)
	for jc := j0; jc < j1; jc += ncb {
		nc := min(ncb, j1-jc)
		for pc := 0; pc < g.k; pc += kcb {
			kc := min(kcb, g.k-pc)
			over := pc == 0 && g.beta == 0
			switch {
			case g.bf16 && g.b.op == Trans && ws.path.conv.pairT != nil:
				ws.packBPairsT(g, nr, pc, kc, jc, nc)
			case g.bf16:
				ws.packB(g, nr, pc, kc, jc, nc)
				packPairs(&ws.path.conv, ws.bpack16, ws.bpack, nr, kc, ws.path.bf16.pairs(kc), (nc+nr-1)/nr)
			default:
				ws.packB(g, nr, pc, kc, jc, nc)
			}
			for ic := i0; ic < i1; ic += mcb {
				mc := min(mcb, i1-ic)
				if g.bf16 {
					ws.tilesBF16(g, ic, mc, jc, nc, pc, kc, over)
					continue
				}
				ws.packA(g.a, g.ta, g.alpha, mr, ic, mc, pc, kc)
				// Each A micro-panel (mr×kc) stays in L1 while the B panel streams
				// from L2 past it, and C is written a row of tiles at a time,
				// along its rows: measured faster on every benchmark shape than
				// keeping a B sliver in L1 and walking C down its columns.
				for ir := 0; ir < mc; ir += mr {
					mrr := min(mr, mc-ir)
					ap := ws.apack[(ir/mr)*kc*mr:]
					for jr := 0; jr < nc; jr += nr {
						nrr := min(nr, nc-jr)
						bp := ws.bpack[(jr/nr)*kc*nr:]
						if mrr == mr && nrr == nr && !g.transC {
							mk.fn(kc, &ap[0], &bp[0], &g.c.Data[(ic+ir)*ldc+jc+jr], ldc, over)
							continue
						}
						// Edge tile: the kernel writes its accumulator to a full tile and
						// the valid part is stored or added exactly as the direct path
						// would, so results do not depend on where tiles fall.
						mk.fn(kc, &ap[0], &bp[0], &ws.tile[0], nr, true)
						if g.transC {
							storeTileT(g.c, ws.tile, nr, ic+ir, jc+jr, mrr, nrr, over)
							continue
						}
						storeTile(g.c, ws.tile, nr, ic+ir, jc+jr, mrr, nrr, over)
					}
				}
			}
		}
	}
}

// tilesBF16 is run's inner loops for a bf16 product: the packed A block
// (mc rows from ic) against the packed B panel (nc columns from jc), both
// as bf16 pairs.
func (ws *workspace) tilesBF16(g *gemmArgs, ic, mc, jc, nc, pc, kc int, over bool) {
	bk := ws.path.bf16
	mr, nr, _, _, _ := bk.geom(ws.path.mk)
	kp := bk.pairs(kc)
	switch {
	case bk.rowsA && g.ta == NoTrans: // A's rows are already runs along K
		ws.packRowsAMXFrom(g.a, g.alpha, mr, ic, mc, pc, kc, kp)
	case bk.rowsA:
		ws.packA(g.a, g.ta, g.alpha, mr, ic, mc, pc, kc)
		packRowsAMX(ws.apack16, ws.apack, mr, kc, kp, (mc+mr-1)/mr)
	case g.ta == NoTrans && ws.path.conv.pairT != nil:
		ws.packPairsA(g.a, g.alpha, mr, ic, mc, pc, kc, kp)
	default:
		ws.packA(g.a, g.ta, g.alpha, mr, ic, mc, pc, kc)
		packPairs(&ws.path.conv, ws.apack16, ws.apack, mr, kc, kp, (mc+mr-1)/mr)
	}
	ldc := g.c.Stride
	for ir := 0; ir < mc; ir += mr {
		mrr := min(mr, mc-ir)
		ap := ws.apack16[(ir/mr)*kp*mr:]
		jr := 0
		if bk.run != nil && mrr == mr && !g.transC && nc >= nr {
			// The whole slivers in one call; the last, partial one below.
			n := nc / nr
			bk.run(kp, &ap[0], &ws.bpack16[0], &g.c.Data[(ic+ir)*ldc+jc], ldc, over, n)
			jr = n * nr
		}
		for ; jr < nc; jr += nr {
			nrr := min(nr, nc-jr)
			bp := ws.bpack16[(jr/nr)*kp*nr:]
			if mrr == mr && nrr == nr && !g.transC {
				bk.fn(kp, &ap[0], &bp[0], &g.c.Data[(ic+ir)*ldc+jc+jr], ldc, over)
				continue
			}
			bk.fn(kp, &ap[0], &bp[0], &ws.tile[0], nr, true)
			if g.transC {
				storeTileT(g.c, ws.tile, nr, ic+ir, jc+jr, mrr, nrr, over)
				continue
			}
			storeTile(g.c, ws.tile, nr, ic+ir, jc+jr, mrr, nrr, over)
		}
	}
}

// balancedNC is the N panel for a worker's n columns. Up to ncMax they are
// one panel, so A is packed once. Wider, they are cut into equal panels (in
// whole slivers) of at most 3/4 of ncMax, so that the B panel every A
// micro-panel streams past stays in L2: 5632 columns become 4 × 1408, not
// 2048 + 2048 + 1536.
func balancedNC(ncMax, nr, n int) int {
	if n <= ncMax {
		return ncMax
	}
	lim := ncMax * 3 / 4
	p := (n + lim - 1) / lim
	sl := (n + nr - 1) / nr
	return (sl + p - 1) / p * nr
}

// balancedMC is the M block for a worker's m rows. When blocks of mcMax would
// leave a last block under a quarter of mcMax, the rows are cut into as many
// blocks of near-equal height in whole register tiles instead (264 rows become
// 132 + 132, not 240 + 24), so no block packs A for a couple of micro-panels.
// (It was worth 8% at 512³ on 2 threads when each B sliver sat in L1 for the
// micro-panels of one block; with A micro-panels in L1 it matters less.)
// Otherwise mcMax is kept.
func balancedMC(mcMax, mr, m int) int {
	if m <= mcMax || m%mcMax == 0 || m%mcMax >= mcMax/4 {
		return mcMax
	}
	n := (m + mcMax - 1) / mcMax
	tiles := (m + mr - 1) / mr
	return min(mcMax, (tiles+n-1)/n*mr)
}

// balancedKC is the K block for a product of depth k: as many blocks as
// kcMax needs, of near-equal depth rounded up to a multiple of 64 (the widest
// quantization block), so that no block is a sliver (K = 288 becomes 192 + 96,
// not 256 + 32: each block pays for loading and storing the C tiles). It
// depends on k alone, so results do not depend on how the work is split.
func balancedKC(kcMax, k int) int {
	if k <= kcMax {
		return kcMax
	}
	n := (k + kcMax - 1) / kcMax
	kc := (k + n - 1) / n
	return min(kcMax, (kc+63)/64*64)
}

// storeTileT writes (or adds) tile[0:mrr, 0:nrr] to C transposed: tile element
// (i, j) of the swapped problem at (i0+i, j0+j) is C[j0+j, i0+i].
func storeTileT(c Mat, tile []float32, nr, i0, j0, mrr, nrr int, over bool) {
	for j := 0; j < nrr; j++ {
		crow := c.Data[(j0+j)*c.Stride+i0:][:mrr]
		for i := range crow {
			if over {
				crow[i] = tile[i*nr+j]
			} else {
				crow[i] += tile[i*nr+j]
			}
		}
	}
}

// storeTile stores (over) or adds the mrr×nrr valid part of a tile (row
// stride nr) to C at (i0, j0).
func storeTile(c Mat, tile []float32, nr, i0, j0, mrr, nrr int, over bool) {
	for i := 0; i < mrr; i++ {
		crow := c.Data[(i0+i)*c.Stride+j0:][:nrr]
		trow := tile[i*nr:][:nrr]
		if over {
			copy(crow, trow)
			continue
		}
		for j := range crow {
			crow[j] += trow[j]
		}
	}
}

// scaleBlock applies C = beta·C on a block; beta == 0 overwrites (NaN in C is ignored).
func scaleBlock(c Mat, i0, i1, j0, j1 int, beta float32) {
	if beta == 1 {
		return
	}
	for i := i0; i < i1; i++ {
		row := c.Data[i*c.Stride+j0 : i*c.Stride+j1]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// packA packs alpha·op(A)[ic:ic+mc, pc:pc+kc] into the mr-row slivers of apack: sliver s holds
// rows ic+s·mr.., column p at dst[(s·kc+p)·mr:]. Rows past the end are zero.
func (ws *workspace) packA(a Mat, ta Op, alpha float32, mr, ic, mc, pc, kc int) {
	dst := ws.apack
	for s := 0; s*mr < mc; s++ {
		sl := dst[s*kc*mr : (s+1)*kc*mr]
		rows := min(mr, mc-s*mr)
		if ta == NoTrans {
			rs := ws.arows[:rows]
			for ii := range rs {
				rs[ii] = a.Data[(ic+s*mr+ii)*a.Stride+pc:][:kc]
			}
			transposeRows(ws.path.transpose, sl, rs, mr, alpha)
		} else if ws.path.packT != nil && mr <= 16 && kc > 0 {
			ws.path.packT(&sl[0], &a.Data[pc*a.Stride+ic+s*mr], kc, 4*a.Stride, 4*mr, uint16(1)<<rows-1, uint16(1)<<mr-1, alpha)
			continue // the sliver's lanes past rows are zero
		} else {
			for p := 0; p < kc; p++ {
				src := a.Data[(pc+p)*a.Stride+ic+s*mr:][:rows]
				d := sl[p*mr : p*mr+rows]
				for ii, v := range src {
					d[ii] = alpha * v
				}
			}
		}
		if rows < mr {
			for p := 0; p < kc; p++ {
				clear(sl[p*mr+rows : (p+1)*mr])
			}
		}
	}
}

// packPairsA packs alpha·A[ic:ic+mc, pc:pc+kc] (A stored M×K) into bf16
// pair slivers of mr rows straight from A's rows (packA then packPairs in
// one pass).
func (ws *workspace) packPairsA(a Mat, alpha float32, mr, ic, mc, pc, kc, kp int) {
	for s := 0; s*mr < mc; s++ {
		rows := ws.arows[:min(mr, mc-s*mr)]
		for ii := range rows {
			rows[ii] = a.Data[(ic+s*mr+ii)*a.Stride+pc:][:kc]
		}
		packPairsT(&ws.path.conv, ws.apack16[s*kp*mr:], rows, mr, kp, alpha)
	}
}

// packBPairsT packs op(B)[pc:pc+kc, jc:jc+nc] of a transposed B (the
// forward X·Wᵀ) into bf16 pair slivers of nr columns straight from B's (or
// W's decoded) rows: packB then packPairs in one pass.
func (ws *workspace) packBPairsT(g *gemmArgs, nr, pc, kc, jc, nc int) {
	kp := ws.path.bf16.pairs(kc)
	for s := 0; s*nr < nc; s++ {
		packPairsT(&ws.path.conv, ws.bpack16[s*kp*nr:], ws.sliverRows(g.b, nr, s, pc, kc, jc, nc), nr, kp, 1)
	}
}

// sliverRows returns the rows of a transposed B (or W, decoded into tmp)
// that make sliver s of the panel [pc, pc+kc) × [jc, jc+nc): B's rows
// jc+s·nr.., K range [pc, pc+kc). A weight's next sliver is prefetched
// meanwhile: each row's few blocks of a K block lie a row apart, too far
// for the hardware's prefetcher.
func (ws *workspace) sliverRows(b bSource, nr, s, pc, kc, jc, nc int) [][]float32 {
	rows := ws.rows[:min(nr, nc-s*nr)]
	if b.w != nil && (s+1)*nr < nc {
		b.w.prefetchRows(&ws.path.blocks, jc+(s+1)*nr, min(nr, nc-(s+1)*nr), pc, pc+kc)
	}
	stride := kc + 2*maxBlock
	for jj := range rows {
		j := jc + s*nr + jj
		if b.w == nil {
			rows[jj] = b.mat.Data[j*b.mat.Stride+pc:][:kc]
		} else {
			rows[jj] = b.w.decodeRange(&ws.path.blocks, ws.tmp[jj*stride:], j, pc, pc+kc)
		}
	}
	return rows
}

// packB packs op(B)[pc:pc+kc, jc:jc+nc] into nr-column slivers: sliver s holds
// columns jc+s·nr.., row p at bpack[(s·kc+p)·nr:]. Columns past the end are zero.
func (ws *workspace) packB(g *gemmArgs, nr, pc, kc, jc, nc int) {
	dst := ws.bpack
	b := g.b
	nsl := (nc + nr - 1) / nr
	if nc%nr != 0 { // zero the padding columns of the last sliver
		s := nsl - 1
		cols := nc - s*nr
		for p := 0; p < kc; p++ {
			clear(dst[(s*kc+p)*nr+cols : (s*kc+p+1)*nr])
		}
	}
	switch {
	case b.w == nil && b.op == NoTrans: // B is k×n: rows are contiguous along j
		for p := 0; p < kc; p++ {
			row := b.mat.Data[(pc+p)*b.mat.Stride+jc:][:nc]
			scatterRow(dst, row, nr, kc, p)
		}
	case b.op == Trans: // op(B)[p][j] = B[j][p] (or W[j][p]: forward X·Wᵀ)
		for s := 0; s < nsl; s++ {
			transposeRows(ws.path.transpose, dst[s*kc*nr:(s+1)*kc*nr], ws.sliverRows(b, nr, s, pc, kc, jc, nc), nr, 1)
		}
	default: // backward dY·W: op(B)[p][j] = W[p][j]; decode row p over [jc, jc+nc)
		for p := 0; p < kc; p++ {
			// Where a run of 32 values is a sliver's row, whole blocks are decoded
			// straight into the slivers; the rest goes through tmp.
			done := 0
			if nr == 32 {
				n := nc / 32
				if b.w.Format.BlockSize() == 64 {
					n &^= 1
				}
				if b.w.decodeRuns(&ws.path.blocks, dst[p*nr:], pc+p, jc, n, kc*nr) {
					done = n * 32
				}
			}
			if done < nc {
				row := b.w.decodeRange(&ws.path.blocks, ws.tmp, pc+p, jc+done, jc+nc)
				scatterRow(dst[(done/nr)*kc*nr:], row, nr, kc, p)
			}
		}
	}
}

// scatterRow writes row p (nc values along j) into the slivers.
func scatterRow(dst, row []float32, nr, kc, p int) {
	for s := 0; s*nr < len(row); s++ {
		src := row[s*nr : min(len(row), (s+1)*nr)]
		copy(dst[(s*kc+p)*nr:], src)
	}
}

// transposeRows writes alpha·rows (each kc long, at most w of them) as the
// columns of one sliver of width w: dst[p·w + jj] = alpha·rows[jj][p], with
// the path's transpose tf where it has one. Four rows at a time keep the
// writes sequential and the reads on four streams.
func transposeRows(tf transposeFn, dst []float32, rows [][]float32, w int, alpha float32) {
	if tf == nil || len(rows) == 0 || len(rows[0]) < 16 {
		transposeRowsGo(dst, rows, w, alpha)
		return
	}
	// A SIMD kernel transposes 16 rows × 16 columns at a time; the last
	// kc mod 16 columns are done here.
	for r0 := 0; r0 < len(rows); r0 += 16 {
		rs := rows[r0:min(len(rows), r0+16)]
		done := tf(dst[r0:], rs, w, alpha)
		for jj, r := range rs {
			for p := done; p < len(r); p++ {
				dst[p*w+r0+jj] = alpha * r[p]
			}
		}
	}
}

func transposeRowsGo(dst []float32, rows [][]float32, w int, alpha float32) {
	jj := 0
	for ; jj+4 <= len(rows); jj += 4 {
		r0, r1, r2, r3 := rows[jj], rows[jj+1], rows[jj+2], rows[jj+3]
		r1, r2, r3 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)]
		if alpha == 1 {
			for p, v := range r0 {
				d := dst[p*w+jj : p*w+jj+4 : p*w+jj+4]
				d[0], d[1], d[2], d[3] = v, r1[p], r2[p], r3[p]
			}
			continue
		}
		for p, v := range r0 {
			d := dst[p*w+jj : p*w+jj+4 : p*w+jj+4]
			d[0], d[1], d[2], d[3] = alpha*v, alpha*r1[p], alpha*r2[p], alpha*r3[p]
		}
	}
	for ; jj < len(rows); jj++ {
		for p, v := range rows[jj] {
			dst[p*w+jj] = alpha * v
		}
	}
}

func (p *Pool) checkGemm(c Mat, a Mat, ta Op, brows, bcols int) (m, n, k int) {
	c.check("Gemm C")
	a.check("Gemm A")
	m, k = a.dims(ta)
	if brows != k || c.Rows != m || c.Cols != bcols {
		panic(fmt.Sprintf("kernels: Gemm shapes: C %d×%d = op(A) %d×%d · op(B) %d×%d", c.Rows, c.Cols, m, k, brows, bcols))
	}
	return m, bcols, k
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C on fp32 matrices.
// C must not alias A or B. With beta == 0, C's previous contents are ignored.
func (p *Pool) Gemm(c Mat, alpha float32, a Mat, ta Op, b Mat, tb Op, beta float32) {
	b.check("Gemm B")
	br, bc := b.dims(tb)
	m, n, k := p.checkGemm(c, a, ta, br, bc)
	p.run(gemmArgs{m: m, n: n, k: k, alpha: alpha, beta: beta, a: a, ta: ta, b: bSource{mat: b, op: tb}, c: c})
}

// GemmW computes C = alpha·op(A)·op(W) + beta·C where W is a stored weight
// (out × in). tw = Trans is the forward product X·Wᵀ; tw = NoTrans is the input
// gradient dY·W. W is dequantized panel by panel while packing.
func (p *Pool) GemmW(c Mat, alpha float32, a Mat, ta Op, w *Weight, tw Op, beta float32) {
	br, bc := w.Rows, w.Cols
	if tw == Trans {
		br, bc = bc, br
	}
	m, n, k := p.checkGemm(c, a, ta, br, bc)
	g := gemmArgs{m: m, n: n, k: k, alpha: alpha, beta: beta, a: a, ta: ta, b: bSource{w: w, op: tw}, c: c, bf16: p.path.bf16 != nil}
	g.int8 = p.path.i8 != nil && g.useInt8() && (p.path.i8Rows == 0 || m <= p.path.i8Rows)
	p.run(g)
}
