package kernels

import (
	"fmt"
	"math"
	"unsafe"
)

// bf16 compute: the products with a frozen base weight (GemmW: X·Wᵀ forward,
// dY·W backward) on a path with a bf16Kernel round both operands to bfloat16
// (round to nearest even) while packing and accumulate their products in
// fp32, as QLoRA's bnb_4bit_compute_dtype=torch.bfloat16 does on a GPU and as
// AVX512_BF16's VDPBF16PS does in hardware. Everything else (fp32 GEMMs,
// LoRA's factors and their gradients, row kernels) stays fp32.
//
// Packed layout: K is taken in pairs. A sliver holds, for each pair q and
// row i, one uint32 whose low half is bf16(A[i, 2q]) and high half
// bf16(A[i, 2q+1]); a B sliver likewise holds, for each pair q and column j,
// bf16(B[2q, j]) | bf16(B[2q+1, j])<<16. An odd kc pads the last pair's
// high halves with zeros. AMX keeps B's layout (its VNNI tile rows) and
// holds A's rows as runs of 16 pairs (see rowsA).

// bf16Kernel computes C[0:mr, 0:nr] (+)= Ap·Bp over kp packed pairs of K,
// the accumulators starting at zero, C then stored or added as every
// kernel stores. For the VDPBF16PS kernels each element is one chain over
// the pairs in order; within a pair the odd product is added first, then
// the even one, each add rounded to fp32 with denormal inputs and results
// taken as zero: VDPBF16PS's definition, which the pure-Go kernel
// reproduces bit for bit. AMX accumulates a tile step in an order of its
// own (no simple sequence reproduces it: measured), within fp32's error.
type bf16Kernel struct {
	name   string // avx512bf16, amx, go
	suffix string // of the path's name: "bf16" (avx512-bf16), "amx" (avx512-amx)
	fn     func(kp int, a, b *uint32, c *float32, ldc int, overwrite bool)
	// run, when set, computes one A sliver against nsl whole B slivers (C
	// advancing nr columns each) in one call: kernels with a set-up cost.
	run func(kp int, a, b *uint32, c *float32, ldc int, overwrite bool, nsl int)
	// The register tile and cache blocks (0: the path's fp32 microkernel's,
	// whose packing then is shared).
	mr, nr, mc, kc, nc int
	// rowsA: A slivers hold, per step of 16 pairs, each row's 16 pairs in
	// a run ([step][row][16]: AMX's tile rows) instead of [pair][row].
	rowsA bool
	// kAlign pads kp with zero pairs to a multiple of it (AMX: 16).
	kAlign int
	// faster: measured faster than its path's fp32 kernel, so auto picks it.
	faster bool
	// ownRounding: the sums round in an order or a manner of their own
	// (AMX's tiles, BFDOT's pair sums), not VDPBF16PS's: within fp32
	// accumulation's error of the exact product, not the go kernel's bits.
	ownRounding bool
}

// geom is the kernel's tile and blocks, the fp32 microkernel's where unset.
func (k *bf16Kernel) geom(mk *microKernel) (mr, nr, mc, kc, nc int) {
	mr, nr, mc, kc, nc = k.mr, k.nr, k.mc, k.kc, k.nc
	if mr == 0 {
		mr, nr, mc, kc, nc = mk.mr, mk.nr, mk.mc, mk.kc, mk.nc
	}
	return
}

// pairs is the packed pair count for kc values of K.
func (k *bf16Kernel) pairs(kc int) int {
	kp := (kc + 1) / 2
	if a := max(k.kAlign, 1); kp%a != 0 {
		kp += a - kp%a
	}
	return kp
}

// toBF16DAZ rounds f to bfloat16, to nearest even, as VCVTNEPS2BF16 does: a
// NaN stays a (quiet) NaN, a denormal becomes a zero of its sign (F32ToBF16,
// for storage, keeps denormals).
func toBF16DAZ(f float32) uint16 {
	u := math.Float32bits(f)
	switch {
	case u&0x7f800000 == 0x7f800000 && u&0x007fffff != 0: // NaN
		return uint16(u>>16) | 0x40
	case u&0x7f800000 == 0: // zero or denormal
		return uint16(u>>16) & 0x8000
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// fromBF16 widens a bfloat16 to fp32 (exact).
func fromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// daz is f with a denormal taken as a zero of its sign.
func daz(f float32) float32 {
	if u := math.Float32bits(f); u&0x7f800000 == 0 {
		return math.Float32frombits(u & 0x80000000)
	}
	return f
}

// dotBF16Step is one VDPBF16PS lane: acc + a.hi·b.hi, then + a.lo·b.lo.
// The products of two bfloat16 values are exact in fp32, so each step rounds
// once whether or not the compiler fuses it.
func dotBF16Step(acc float32, a, b uint32) float32 {
	acc = daz(daz(acc) + fromBF16(uint16(a>>16))*fromBF16(uint16(b>>16)))
	return daz(acc + fromBF16(uint16(a))*fromBF16(uint16(b)))
}

// goBF16Kernel is the pure-Go bf16 kernel on the go path's 2×4 tile: the
// reference for every bf16 path, and what a CPU without bf16 instructions
// runs when bf16 is asked for (emulated, slower than its fp32 path).
var goBF16Kernel = &bf16Kernel{name: "go", suffix: "bf16", fn: func(kp int, a, b *uint32, c *float32, ldc int, overwrite bool) {
	gemmBF16Go(goKernel.mr, goKernel.nr, kp, a, b, c, ldc, overwrite)
}}

// gemmBF16Go is the pure-Go bf16 kernel for any tile (mr×nr): the go-bf16
// path's (on its 2×4 tile) and the reference of the vector kernels.
func gemmBF16Go(mr, nr, kp int, ap, bp *uint32, cp *float32, ldc int, overwrite bool) {
	a := unsafe.Slice(ap, kp*mr)
	b := unsafe.Slice(bp, kp*nr)
	c := unsafe.Slice(cp, (mr-1)*ldc+nr)
	for i := 0; i < mr; i++ {
		for j := 0; j < nr; j++ {
			var acc float32
			for q := 0; q < kp; q++ {
				acc = dotBF16Step(acc, a[q*mr+i], b[q*nr+j])
			}
			if overwrite {
				c[i*ldc+j] = acc
			} else {
				c[i*ldc+j] += acc
			}
		}
	}
}

// packPairs converts w-wide fp32 slivers (kc rows of w, as packA and packB
// leave them) into bf16 pair slivers (kp ≥ ceil(kc/2) rows of w uint32s,
// the rows past K zero), for ns slivers.
func packPairs(cv *bf16Conv, dst []uint32, src []float32, w, kc, kp, ns int) {
	for s := 0; s < ns; s++ {
		in := src[s*kc*w : (s+1)*kc*w]
		out := dst[s*kp*w : (s+1)*kp*w]
		q := 0
		if cv.pairRows != nil && kc >= 2 {
			q = kc / 2
			cv.pairRows(&out[0], &in[0], w, q, uint16(1)<<(w%16)-1)
		}
		for ; 2*q+1 < kc; q++ {
			pairsTo(out[q*w:(q+1)*w], in[2*q*w:(2*q+1)*w], in[(2*q+1)*w:(2*q+2)*w])
		}
		if 2*q < kc { // odd kc: the last pair's high halves are zero
			lo, o := in[2*q*w:(2*q+1)*w], out[q*w:(q+1)*w]
			for j, v := range lo {
				o[j] = uint32(toBF16DAZ(v))
			}
			q++
		}
		clear(out[q*w:])
	}
}

// bf16Conv are a path's vectorized packing conversions (nil: Go), with
// toBF16DAZ's bits (TestBF16Conv).
type bf16Conv struct {
	row func(dst *uint16, src *float32, n int, alpha float32) // n a multiple of 16
	// chunks converts nchunk runs of 32 values, run t to dst + t·stride bytes.
	chunks func(dst *uint16, src *float32, nchunk int, alpha float32, stride int)
	// pairRows converts the first npairs pairs of rows of a w-wide sliver
	// as pairsTo does, row 2q to the low halves and 2q+1 to the high ones
	// (mask: the low w mod 16 bits set).
	pairRows func(dst *uint32, src *float32, w, npairs int, mask uint16)
	// pairT packs the columns of rows (at most w, each kc long) in whole
	// blocks of 32 as packPairsT does, and returns how many it did.
	pairT func(dst []uint32, rows [][]float32, w int, alpha float32) (done int)
}

// packPairsT packs rows (at most w, each kc long) straight into one w-wide
// bf16 pair sliver of kp ≥ ceil(kc/2) pairs: dst[q·w+j] =
// bf16(alpha·rows[j][2q]) | bf16(alpha·rows[j][2q+1])<<16, zero past kc
// and in the lanes past the rows; what packA's (or packB's) transpose and
// packPairs give, in one pass.
func packPairsT(cv *bf16Conv, dst []uint32, rows [][]float32, w, kp int, alpha float32) {
	kc := len(rows[0])
	dst = dst[:kp*w]
	done := 0 // columns the vector kernel did
	if cv.pairT != nil {
		done = cv.pairT(dst, rows, w, alpha)
	}
	for j, r := range rows {
		r = r[:kc]
		q := done / 2
		for ; 2*q+1 < kc; q++ {
			dst[q*w+j] = uint32(toBF16DAZ(alpha*r[2*q])) | uint32(toBF16DAZ(alpha*r[2*q+1]))<<16
		}
		if 2*q < kc { // odd kc: the last pair's high half is zero
			dst[q*w+j] = uint32(toBF16DAZ(alpha * r[2*q]))
			q++
		}
		for ; q < kp; q++ {
			dst[q*w+j] = 0
		}
	}
	for j := len(rows); j < w; j++ {
		for q := 0; q < kp; q++ {
			dst[q*w+j] = 0
		}
	}
}

// rowTo writes dst[p] = bf16(alpha·src[p]).
func (cv *bf16Conv) rowTo(dst []uint16, src []float32, alpha float32) {
	n := 0
	if cv.row != nil && len(src) >= 16 {
		n = len(src) &^ 15
		cv.row(&dst[0], &src[0], n, alpha)
	}
	dst = dst[:len(src)]
	for p := n; p < len(src); p++ {
		dst[p] = toBF16DAZ(alpha * src[p])
	}
}

// pairsTo writes dst[j] = bf16(lo[j]) | bf16(hi[j])<<16 (in Go: a path's
// vectorized conversion does whole slivers, pairRows).
func pairsTo(dst []uint32, lo, hi []float32) {
	hi, dst = hi[:len(lo)], dst[:len(lo)]
	for j := range lo {
		dst[j] = uint32(toBF16DAZ(lo[j])) | uint32(toBF16DAZ(hi[j]))<<16
	}
}

// packRowsAMXFrom packs alpha·A[ic:ic+mc, pc:pc+kc] (A stored M×K) into
// AMX's A slivers (see packRowsAMX) straight from A's rows: each row's K
// run is already the tile row's order.
func (ws *workspace) packRowsAMXFrom(a Mat, alpha float32, mr, ic, mc, pc, kc, kp int) {
	cv := &ws.path.conv
	out := unsafe.Slice((*uint16)(unsafe.Pointer(&ws.apack16[0])), 2*len(ws.apack16))
	steps := kp / 16
	for s := 0; s*mr < mc; s++ {
		base := 2 * s * kp * mr
		for i := 0; i < mr; i++ {
			r := s*mr + i
			if r >= mc {
				for t := 0; t < steps; t++ {
					clear(out[base+(t*mr+i)*32 : base+(t*mr+i+1)*32])
				}
				continue
			}
			row := a.Data[(ic+r)*a.Stride+pc:][:kc]
			t := 0
			if cv.chunks != nil && kc >= 32 {
				t = kc / 32
				cv.chunks(&out[base+i*32], &row[0], t, alpha, mr*64)
			}
			for ; t < steps; t++ {
				o := out[base+(t*mr+i)*32 : base+(t*mr+i+1)*32]
				n := max(0, min(32, kc-32*t))
				cv.rowTo(o[:n], row[32*t:32*t+n], alpha)
				clear(o[n:])
			}
		}
	}
}

// packRowsAMX converts w-row fp32 A slivers (kc columns of w, as packA
// leaves them) into AMX's layout: per step of 16 pairs, each row's 16 pairs
// in a run (kp, a multiple of 16, pairs in all; past K zero).
func packRowsAMX(dst []uint32, src []float32, w, kc, kp, ns int) {
	for s := 0; s < ns; s++ {
		in := src[s*kc*w : (s+1)*kc*w]
		out := dst[s*kp*w : (s+1)*kp*w]
		for t := 0; t < kp/16; t++ {
			for i := 0; i < w; i++ {
				o := out[(t*w+i)*16 : (t*w+i+1)*16]
				for q := range o {
					p := 2 * (16*t + q)
					var lo, hi uint32
					if p < kc {
						lo = uint32(toBF16DAZ(in[p*w+i]))
					}
					if p+1 < kc {
						hi = uint32(toBF16DAZ(in[(p+1)*w+i]))
					}
					o[q] = lo | hi<<16
				}
			}
		}
	}
}

// BF16 returns the twin of p that computes GemmW's products in bf16: the
// same kernels otherwise. It fails where this CPU has no bf16 instructions
// for p (the go path's twin, an exact emulation, always exists).
func (p *Path) BF16() (*Path, error) {
	if p.bf16 != nil {
		return p, nil
	}
	for _, t := range bf16Twins() {
		if t.mk == p.mk {
			return t, nil
		}
	}
	return nil, fmt.Errorf("kernels: the %s path has no bf16 form on this CPU (it needs AMX-BF16 or AVX512_BF16, or BF16 on arm64; the go path's is an emulation)", p.Name())
}

// ComputeDType is the type GemmW's products are computed in: "f32",
// "bf16" or "int8" (the forward products with a quantized base), or
// "bf16+int8" (generation's auto: int8 for its tokens).
func (p *Path) ComputeDType() string {
	switch {
	case p.bf16 != nil && p.i8 != nil:
		return "bf16+int8"
	case p.bf16 != nil:
		return "bf16"
	case p.i8 != nil:
		return "int8"
	}
	return "f32"
}

// goBF16Path is the go path computing in bf16: the reference.
var goBF16Path = &Path{mk: goKernel, bf16: goBF16Kernel}

// CheckComputeDType reports whether d names a compute dtype ("" is f32).
func CheckComputeDType(d string) error {
	switch d {
	case "", "f32", "bf16", "int8", "auto":
		return nil
	}
	return fmt.Errorf("%q: want f32, bf16, int8 or auto", d)
}

// PathFor is the path named (as ChoosePath takes it) computing GemmW in
// compute: "" or "f32" as chosen; "bf16" its bf16 twin, an error where the
// CPU has no bf16 instructions for it (the emulation runs only where the go
// path is asked for); "auto" the fastest path this CPU has that meets the
// bf16 quality gates: the bf16 twin where it is measured faster than fp32
// (AMX; VDPBF16PS on AMD, at the FMA's instruction rate), else the f32 path
// (VDPBF16PS on Intel measured at half the fp32 FMA's rate: go test -bench
// Microkernel ./kernels).
func PathFor(name, compute string) (*Path, error) {
	if err := CheckComputeDType(compute); err != nil {
		return nil, fmt.Errorf("kernels: compute dtype %v", err)
	}
	p, err := ChoosePath(name)
	switch {
	case err != nil || compute == "" || compute == "f32" || p.bf16 != nil || p.i8 != nil:
		return p, err
	case compute == "int8":
		return p.Int8()
	case compute == "auto":
		if t, err := p.BF16(); err == nil && t.bf16.faster {
			return t, nil
		}
		return p, nil
	}
	return p.BF16()
}

// BF16Paths lists the bf16 paths this CPU and build can run, best first
// (go-bf16, the emulation, last).
func BF16Paths() []*Path { return bf16Twins() }
