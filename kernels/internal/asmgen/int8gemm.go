package main

import (
	"fmt"
	"math"
)

// int8GemmAVX512 emits the int8 GEMM kernel of the AVX-512 VNNI path and
// its quantizer (see kernels/int8gemm.go).
//
// gemmInt8VNNI: for each of nsl W regions a 6×32 register tile of C: per
// block of K, the int32 sums Z0..Z11 (row i: Z2i, Z2i+1) start from the
// row's correction and take 8 steps of VPDPBUSD (W's 4 unsigned bytes per
// column in Z24, Z25 against the row's 4 signed bytes broadcast); then
// each is converted and added to the fp32 accumulators Z12..Z23 as
// acc = fma(float32(S), sw·sx, acc), sw the region's column scales (Z26,
// Z27) and sx the row's. Then C = alpha·acc or C += alpha·acc for the
// valid rows, the last region's columns masked (K1, K2).
func int8GemmAVX512() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	const xr = 6 // rows per X region
	xs, xc, xb := 32*xr, 36*xr, 40*xr
	fmt.Fprintln(&a)
	int8GemmEntry(&a, "gemmInt8VNNI")
	a.l("MOVL $-1, AX")
	a.l("KMOVW AX, K1")
	a.l("KMOVW AX, K2")
	a.label("region")
	for r := 12; r < 24; r++ {
		a.l("VPXORD Z%d, Z%d, Z%d", r, r, r)
	}
	a.l("MOVQ SI, AX")
	a.l("MOVQ R13, CX")
	a.label("block")
	for i := 0; i < xr; i++ {
		a.l("VPBROADCASTD %d(AX), Z%d", xc+4*i, 2*i)
		a.l("VMOVDQA32 Z%d, Z%d", 2*i, 2*i+1)
	}
	for r := 0; r < 8; r++ {
		a.l("VMOVDQU32 %d(DI), Z24", 128*r)
		a.l("VMOVDQU32 %d(DI), Z25", 128*r+64)
		for i := 0; i < xr; i++ {
			a.l("VPDPBUSD.BCST %d(AX), Z24, Z%d", 32*i+4*r, 2*i)
			a.l("VPDPBUSD.BCST %d(AX), Z25, Z%d", 32*i+4*r, 2*i+1)
		}
	}
	a.l("VMOVUPS 1024(DI), Z26")
	a.l("VMOVUPS 1088(DI), Z27")
	for i := 0; i < xr; i++ {
		for v := 0; v < 2; v++ {
			s := 2*i + v
			a.l("VCVTDQ2PS Z%d, Z%d", s, s)
			a.l("VMULPS.BCST %d(AX), Z%d, Z%d", xs+4*i, 26+v, 28+v)
			a.l("VFMADD231PS Z%d, Z%d, Z%d", 28+v, s, 12+s)
		}
	}
	a.l("ADDQ $%d, AX", xb)
	a.l("ADDQ $1152, DI")
	a.l("DECQ CX")
	a.l("JNE block")
	// The last region's columns: mask's low 16 bits, then its high 16.
	a.l("CMPQ BX, $1")
	a.l("JNE store")
	a.l("MOVL mask+60(FP), AX")
	a.l("KMOVW AX, K1")
	a.l("SHRL $16, AX")
	a.l("KMOVW AX, K2")
	a.label("store")
	a.l("MOVQ DX, R12")
	for i := 0; i < xr; i++ {
		z0, z1 := 12+2*i, 13+2*i
		if i > 0 {
			a.l("CMPQ R10, $%d", i)
			a.l("JLE next")
		}
		a.l("VMULPS.BCST alpha+56(FP), Z%d, Z%d", z0, z0)
		a.l("VMULPS.BCST alpha+56(FP), Z%d, Z%d", z1, z1)
		a.l("TESTQ R11, R11")
		a.l("JEQ set%d", i)
		a.l("VMOVUPS.Z (R12), K1, Z28")
		a.l("VMOVUPS.Z 64(R12), K2, Z29")
		a.l("VADDPS Z28, Z%d, Z%d", z0, z0)
		a.l("VADDPS Z29, Z%d, Z%d", z1, z1)
		a.label(fmt.Sprintf("set%d", i))
		a.l("VMOVUPS Z%d, K1, (R12)", z0)
		a.l("VMOVUPS Z%d, K2, 64(R12)", z1)
		a.l("ADDQ R8, R12")
	}
	a.label("next")
	a.l("ADDQ $128, DX")
	a.l("DECQ BX")
	a.l("JNE region")
	a.l("VZEROUPPER")
	a.l("RET")

	// The packer: each step's 32 rows' 4 bytes gathered (+128), then the
	// rows' scales.
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func packInt8WAVX512(dst, rows *byte, sc *float32, kb int, idx *[64]int32)")
	fmt.Fprintln(&a, "TEXT ·packInt8WAVX512(SB), NOSPLIT, $0-40")
	a.l("MOVQ dst+0(FP), DI")
	a.l("MOVQ rows+8(FP), SI")
	a.l("MOVQ sc+16(FP), R8")
	a.l("MOVQ kb+24(FP), CX")
	a.l("MOVQ idx+32(FP), AX")
	a.l("VMOVDQU32 (AX), Z31")    // rows 0..15's offsets
	a.l("VMOVDQU32 64(AX), Z30")  // rows 16..31's
	a.l("VMOVDQU32 128(AX), Z28") // their scales'
	a.l("VMOVDQU32 192(AX), Z27")
	a.l("MOVL $0x80808080, AX")
	a.l("VPBROADCASTD AX, Z29")
	a.label("pblock")
	for r := 0; r < 8; r++ {
		for h, ix := range []int{31, 30} {
			a.l("KXNORW K1, K1, K1")
			a.l("VPGATHERDD %d(SI)(Z%d*1), K1, Z%d", 4*r, ix, h)
		}
		a.l("VPXORD Z29, Z0, Z0")
		a.l("VPXORD Z29, Z1, Z1")
		a.l("VMOVDQU32 Z0, %d(DI)", 128*r)
		a.l("VMOVDQU32 Z1, %d(DI)", 128*r+64)
	}
	for h, ix := range []int{28, 27} {
		a.l("KXNORW K1, K1, K1")
		a.l("VGATHERDPS (R8)(Z%d*1), K1, Z%d", ix, h)
		a.l("VMOVUPS Z%d, %d(DI)", h, 1024+64*h)
	}
	a.l("ADDQ $32, SI")
	a.l("ADDQ $4, R8")
	a.l("ADDQ $1152, DI")
	a.l("DECQ CX")
	a.l("JNE pblock")
	a.l("VZEROUPPER")
	a.l("RET")

	// The nibble decoders: 16 bytes of nibbles a step, split into the
	// low and high nibbles (X0, X1) and looked up in the table (X15).
	nibbles := func(name, count, doc string, srcOff, srcStep int, out func()) {
		fmt.Fprintln(&a)
		fmt.Fprintf(&a, "// func %s(dst, src *byte, %s int, tab *byte)\n// %s\n", name, count, doc)
		fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
		a.l("MOVQ dst+0(FP), DI")
		a.l("MOVQ src+8(FP), SI")
		a.l("MOVQ %s+16(FP), CX", count)
		a.l("MOVQ tab+24(FP), AX")
		a.l("VMOVDQU (AX), X15")
		a.l("MOVL $0x0f0f0f0f, AX")
		a.l("VPBROADCASTD AX, X14")
		a.l("TESTQ CX, CX")
		a.l("JEQ %sdone", name)
		a.label(name + "loop")
		a.l("VMOVDQU %d(SI), X0", srcOff)
		a.l("VPSRLW $4, X0, X1")
		a.l("VPAND X14, X1, X1")
		a.l("VPAND X14, X0, X0")
		out()
		a.l("ADDQ $%d, SI", srcStep)
		a.l("ADDQ $32, DI")
		a.l("DECQ CX")
		a.l("JNE %sloop", name)
		a.label(name + "done")
		a.l("VZEROUPPER")
		a.l("RET")
	}
	// NF4's codes in natural order: the high nibbles (even values) and
	// the low ones (odd), interleaved.
	nibbles("nf4Int8AVX512", "n", "dst[2t] = tab[src[t]>>4], dst[2t+1] = tab[src[t]&15] for t < 16·n.", 0, 16, func() {
		a.l("VPSHUFB X1, X15, X2")
		a.l("VPSHUFB X0, X15, X3")
		a.l("VPUNPCKLBW X3, X2, X4")
		a.l("VPUNPCKHBW X3, X2, X5")
		a.l("VMOVDQU X4, (DI)")
		a.l("VMOVDQU X5, 16(DI)")
	})
	// Q4_0's blocks (18 bytes: the scale, then 16 bytes of nibbles) to
	// their 32 values − 8: the low nibbles, then the high ones.
	nibbles("q4Int8AVX512", "nb", "Block b: dst[32b+t] = tab[src[18b+2+t]&15], dst[32b+16+t] = tab[src[18b+2+t]>>4] for t < 16.", 2, 18, func() {
		a.l("VPSHUFB X0, X15, X2")
		a.l("VPSHUFB X1, X15, X3")
		a.l("VMOVDQU X2, (DI)")
		a.l("VMOVDQU X3, 16(DI)")
	})

	// The quantizer: quantBlock's rule and bits, 32 values a step.
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func quantInt8AVX512(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)")
	fmt.Fprintln(&a, "// Block b of src: d = max|x|/127, q = x·(1/d) rounded to even, −128·Σq, to q, sc and corr + b·stride;")
	fmt.Fprintln(&a, "// zeros where 1/d overflows (an all-zero block), zeros and a NaN scale where the block holds an Inf or a NaN.")
	fmt.Fprintln(&a, "TEXT ·quantInt8AVX512(SB), NOSPLIT, $0-48")
	a.l("MOVQ q+0(FP), DI")
	a.l("MOVQ sc+8(FP), R8")
	a.l("MOVQ corr+16(FP), R9")
	a.l("MOVQ src+24(FP), SI")
	a.l("MOVQ nb+32(FP), CX")
	a.l("MOVQ stride+40(FP), DX")
	for _, c := range []struct {
		reg  int
		bits uint32
	}{{31, 0x7fffffff}, {30, 0x42fe0000}, {29, 0x3f800000}, {27, 0x7f800000}} {
		a.l("MOVL $0x%08x, AX", c.bits)
		a.l("VPBROADCASTD AX, Z%d", c.reg)
	}
	a.l("VPXORD Z28, Z28, Z28")
	a.label("qloop")
	a.l("VMOVUPS (SI), Z0")
	a.l("VMOVUPS 64(SI), Z1")
	a.l("VFPCLASSPSZ $0x99, Z0, K1") // QNaN, SNaN, +Inf, −Inf
	a.l("VFPCLASSPSZ $0x99, Z1, K2")
	a.l("KORTESTW K1, K2")
	a.l("JNE qbad")
	a.l("VANDPS Z31, Z0, Z2")
	a.l("VANDPS Z31, Z1, Z3")
	a.l("VMAXPS Z3, Z2, Z2")
	a.l("VEXTRACTF32X8 $1, Z2, Y3")
	a.l("VMAXPS Y3, Y2, Y2")
	a.l("VEXTRACTF128 $1, Y2, X3")
	a.l("VMAXPS X3, X2, X2")
	a.l("VPERMILPS $0x4e, X2, X3")
	a.l("VMAXPS X3, X2, X2")
	a.l("VPERMILPS $0xb1, X2, X3")
	a.l("VMAXPS X3, X2, X2")
	a.l("VBROADCASTSS X2, Z2")
	a.l("VDIVPS Z30, Z2, Z4") // d
	a.l("VDIVPS Z4, Z29, Z5") // 1/d
	a.l("VCMPPS $1, Z27, Z5, K3")
	a.l("VMULPS.Z Z5, Z0, K3, Z6")
	a.l("VMULPS.Z Z5, Z1, K3, Z7")
	a.l("VMOVAPS.Z Z4, K3, Z4")
	a.l("VCVTPS2DQ Z6, Z6")
	a.l("VCVTPS2DQ Z7, Z7")
	a.l("VPADDD Z7, Z6, Z8") // −128·Σq
	a.l("VEXTRACTI32X8 $1, Z8, Y9")
	a.l("VPADDD Y9, Y8, Y8")
	a.l("VEXTRACTI128 $1, Y8, X9")
	a.l("VPADDD X9, X8, X8")
	a.l("VPSHUFD $0x4e, X8, X9")
	a.l("VPADDD X9, X8, X8")
	a.l("VPSHUFD $0xb1, X8, X9")
	a.l("VPADDD X9, X8, X8")
	a.l("VPSLLD $7, X8, X8")
	a.l("VPSUBD X8, X28, X8")
	a.l("VPMOVSDB Z6, X6")
	a.l("VPMOVSDB Z7, X7")
	a.l("VMOVDQU X6, (DI)")
	a.l("VMOVDQU X7, 16(DI)")
	a.l("VMOVSS X4, (R8)")
	a.l("VMOVD X8, (R9)")
	a.label("qnext")
	a.l("ADDQ $128, SI")
	a.l("ADDQ DX, DI")
	a.l("ADDQ DX, R8")
	a.l("ADDQ DX, R9")
	a.l("DECQ CX")
	a.l("JNE qloop")
	a.l("VZEROUPPER")
	a.l("RET")
	a.label("qbad")
	a.l("VPXORD X6, X6, X6")
	a.l("VMOVDQU X6, (DI)")
	a.l("VMOVDQU X6, 16(DI)")
	a.l("MOVL $0x7fc00000, AX")
	a.l("MOVL AX, (R8)")
	a.l("MOVL $0, (R9)")
	a.l("JMP qnext")
	return a.Bytes()
}

// cpuidAMD64 emits cpuidVendor: CPUID leaf 0's vendor string, as
// EBX, EDX, ECX ("Auth", "enti", "cAMD").
func cpuidAMD64() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func cpuidVendor() (ebx, edx, ecx uint32)")
	fmt.Fprintln(&a, "TEXT ·cpuidVendor(SB), NOSPLIT, $0-12")
	a.l("XORL AX, AX")
	a.l("XORL CX, CX")
	a.l("CPUID")
	a.l("MOVL BX, ebx+0(FP)")
	a.l("MOVL DX, edx+4(FP)")
	a.l("MOVL CX, ecx+8(FP)")
	a.l("RET")
	return a.Bytes()
}

// int8GemmAVX2 emits the int8 GEMM kernel of the AVX2 path (see
// kernels/int8gemm.go). AVX2 has no VPDPBUSD, and VPMADDUBSW's pair sums
// saturate on full-range operands; VPMADDWD on 16-bit values is exact, and
// takes 16 products an instruction. So this path's regions hold int16: X's
// values (int8GemmX16Block), broadcast two at a time (one step of K) by
// VPBROADCASTD, and W's own signed values in pairs along K
// (int8GemmW16Block: no correction), 8 rows a ymm, each lane one row, a
// group of 8 rows' 16 steps contiguous. (A
// register-only loop on a Zen 3 core: VPMADDWD+VPADDD 86 GMAC/s against
// VFMADD231PS's 51. A 3×8 tile on the VNNI W layout, its unsigned bytes
// widened as read and the pair lanes joined by VPHADDD each block: 1.07–
// 1.10× the fp32 GEMM; this one: see the README.)
//
// gemmInt8AVX2: for each of nsl W regions and each group of 8 of its 32
// columns, a 6×8 tile: per block of K, the int32 sums Y0..Y5 (one a row)
// over 16 steps, each VPMADDWD of the step's W (Y12) and the row's pair
// (Y13); then acc = fma(float32(S), sw·sx, acc) in Y6..Y11. Then
// C = alpha·acc or C += alpha·acc for the valid rows, the last region's
// columns masked (VMASKMOVPS).
func int8GemmAVX2() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	const xr = 6
	const wb = 4*512 + 128 // a W block: 4 groups of 8 rows' pairs for 16 steps, then 32 scales
	xv, xs, xb := 0, 64*xr, 68*xr
	fmt.Fprintln(&a)
	for l := 0; l < 8; l++ {
		a.l("DATA ·int8LaneBits<>+%d(SB)/4, $%d", 4*l, 1<<l)
	}
	a.l("GLOBL ·int8LaneBits<>(SB), RODATA|NOPTR, $32")
	fmt.Fprintln(&a)
	int8GemmEntry(&a, "gemmInt8AVX2")
	a.l("MOVQ R13, R9")
	a.l("IMULQ $%d, R9", wb) // bytes of a W region
	a.label("region")
	a.l("MOVL $-1, R14")
	a.l("CMPQ BX, $1")
	a.l("JNE regionmask")
	a.l("MOVL mask+60(FP), R14")
	a.label("regionmask")
	for g := 0; g < 4; g++ {
		tile := fmt.Sprintf("g%d", g)
		for i := 6; i < 12; i++ {
			a.l("VXORPS Y%d, Y%d, Y%d", i, i, i)
		}
		a.l("MOVQ SI, AX")
		a.l("LEAQ %d(DI), R12", 512*g)
		a.l("MOVQ R13, CX")
		a.label("block" + tile)
		for t := 0; t < 16; t++ {
			a.l("VMOVDQU %d(R12), Y12", 32*t)
			for i := 0; i < xr; i++ {
				a.l("VPBROADCASTD %d(AX), Y13", xv+64*i+4*t)
				if t == 0 {
					a.l("VPMADDWD Y12, Y13, Y%d", i)
				} else {
					a.l("VPMADDWD Y12, Y13, Y14")
					a.l("VPADDD Y14, Y%d, Y%d", i, i)
				}
			}
		}
		a.l("VMOVUPS %d(R12), Y12", 2048+32*g-512*g) // the group's 8 scales (R12 is 512·g into the block)
		for i := 0; i < xr; i++ {
			a.l("VCVTDQ2PS Y%d, Y%d", i, i)
			a.l("VBROADCASTSS %d(AX), Y13", xs+4*i)
			a.l("VMULPS Y12, Y13, Y13")
			a.l("VFMADD231PS Y13, Y%d, Y%d", i, 6+i)
		}
		a.l("ADDQ $%d, AX", xb)
		a.l("ADDQ $%d, R12", wb)
		a.l("DECQ CX")
		a.l("JNE block" + tile)
		// The group's lane mask from its 8 bits of the region's mask.
		a.l("MOVL R14, CX")
		a.l("SHRL $%d, CX", 8*g)
		a.l("VMOVD CX, X12")
		a.l("VPBROADCASTD X12, Y12")
		a.l("VPAND ·int8LaneBits<>(SB), Y12, Y12")
		a.l("VPCMPEQD ·int8LaneBits<>(SB), Y12, Y12")
		a.l("VBROADCASTSS alpha+56(FP), Y13")
		a.l("LEAQ %d(DX), R15", 32*g)
		for i := 0; i < xr; i++ {
			if i > 0 {
				a.l("CMPQ R10, $%d", i)
				a.l("JLE done" + tile)
			}
			f := 6 + i
			a.l("VMULPS Y13, Y%d, Y%d", f, f)
			a.l("TESTQ R11, R11")
			a.l("JEQ set%s%d", tile, i)
			a.l("VMASKMOVPS (R15), Y12, Y14")
			a.l("VADDPS Y14, Y%d, Y%d", f, f)
			a.label(fmt.Sprintf("set%s%d", tile, i))
			a.l("VMASKMOVPS Y%d, Y12, (R15)", f)
			a.l("ADDQ R8, R15")
		}
		a.label("done" + tile)
	}
	a.l("ADDQ R9, DI")
	a.l("ADDQ $128, DX")
	a.l("DECQ BX")
	a.l("JNE region")
	a.l("VZEROUPPER")
	a.l("RET")

	// The quantizer, as quantBlock computes it (the same roundings), each
	// block's 32 values stored as int16 and no correction (corr is nil:
	// the kernel's W is signed): a block holding an Inf or a NaN
	// (x−x is NaN) gets zeros and a NaN scale, one whose 1/d overflows
	// (max|x| zero or subnormal) zeros and a zero scale.
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func quantInt8X16AVX2(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)")
	fmt.Fprintln(&a, "TEXT ·quantInt8X16AVX2(SB), NOSPLIT, $0-48")
	a.l("MOVQ q+0(FP), DI")
	a.l("MOVQ sc+8(FP), R8")
	a.l("MOVQ src+24(FP), SI")
	a.l("MOVQ nb+32(FP), CX")
	a.l("MOVQ stride+40(FP), DX")
	for _, c := range []struct {
		v uint32
		y int
	}{{0x7fffffff, 15}, {0x4b400000, 14}, {127, 12}, {0xffffff81, 11}} { // |x| mask, 1.5·2²³ (as float and as bits), ±127
		a.l("MOVL $0x%08x, AX", c.v)
		a.l("VMOVD AX, X%d", c.y)
		a.l("VPBROADCASTD X%d, Y%d", c.y, c.y)
	}
	a.l("MOVL $0x%08x, AX", math.Float32bits(127))
	a.l("VMOVD AX, X10")
	a.l("MOVL $0x%08x, AX", math.Float32bits(1))
	a.l("VMOVD AX, X9")
	a.label("qblock")
	for k := 0; k < 4; k++ {
		a.l("VMOVUPS %d(SI), Y%d", 32*k, k)
		a.l("VSUBPS Y%d, Y%d, Y%d", k, k, 4+k)
	}
	a.l("VORPS Y5, Y4, Y4")
	a.l("VORPS Y7, Y6, Y6")
	a.l("VORPS Y6, Y4, Y4")
	a.l("VCMPPS $3, Y4, Y4, Y4") // unordered: NaN lanes
	a.l("VMOVMSKPS Y4, AX")
	a.l("TESTL AX, AX")
	a.l("JNE qnonfinite")
	for k := 0; k < 4; k++ {
		a.l("VANDPS Y15, Y%d, Y%d", k, 4+k)
	}
	a.l("VMAXPS Y5, Y4, Y4")
	a.l("VMAXPS Y7, Y6, Y6")
	a.l("VMAXPS Y6, Y4, Y4")
	a.l("VEXTRACTF128 $1, Y4, X5")
	a.l("VMAXPS X5, X4, X4")
	a.l("VPERMILPS $0x4e, X4, X5")
	a.l("VMAXPS X5, X4, X4")
	a.l("VPERMILPS $0xb1, X4, X5")
	a.l("VMAXPS X5, X4, X4")  // amax
	a.l("VDIVSS X10, X4, X6") // d = amax/127
	a.l("VDIVSS X6, X9, X7")  // id = 1/d
	a.l("VMOVD X7, AX")
	a.l("CMPL AX, $0x7f800000") // id ≥ +Inf
	a.l("JAE qzero")
	a.l("VBROADCASTSS X7, Y7")
	for k := 0; k < 4; k++ {
		a.l("VMULPS Y7, Y%d, Y%d", k, k)
		a.l("VADDPS Y14, Y%d, Y%d", k, k)
		a.l("VPSUBD Y14, Y%d, Y%d", k, k)
		a.l("VPMINSD Y12, Y%d, Y%d", k, k)
		a.l("VPMAXSD Y11, Y%d, Y%d", k, k)
	}
	a.l("VPACKSSDW Y1, Y0, Y0")
	a.l("VPACKSSDW Y3, Y2, Y2")
	a.l("VPERMQ $0xd8, Y0, Y0")
	a.l("VPERMQ $0xd8, Y2, Y2")
	a.l("VMOVDQU Y0, (DI)")
	a.l("VMOVDQU Y2, 32(DI)")
	a.l("VMOVSS X6, (R8)")
	a.label("qnext")
	a.l("ADDQ $128, SI")
	a.l("ADDQ DX, DI")
	a.l("ADDQ DX, R8")
	a.l("DECQ CX")
	a.l("JNE qblock")
	a.l("VZEROUPPER")
	a.l("RET")
	for _, c := range []struct {
		name string
		sc   uint32
	}{{"qnonfinite", 0x7fc00000}, {"qzero", 0}} {
		a.label(c.name)
		a.l("VPXOR Y0, Y0, Y0")
		a.l("VMOVDQU Y0, (DI)")
		a.l("VMOVDQU Y0, 32(DI)")
		a.l("MOVL $0x%08x, (R8)", c.sc)
		a.l("JMP qnext")
	}
	return a.Bytes()
}

// int8GemmEntry starts an int8 GEMM kernel (int8GemmFn): kb in R13, x in
// SI, w in DI, c in DX, ldc in bytes in R8, nsl in BX, rows in R10,
// accumulate in R11.
func int8GemmEntry(a *asm, name string) {
	fmt.Fprintf(a, "// func %s(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool)\n", name)
	fmt.Fprintf(a, "TEXT ·%s(SB), NOSPLIT, $0-65\n", name)
	a.l("MOVQ kb+0(FP), R13")
	a.l("MOVQ x+8(FP), SI")
	a.l("MOVQ w+16(FP), DI")
	a.l("MOVQ c+24(FP), DX")
	a.l("MOVQ ldc+32(FP), R8")
	a.l("SHLQ $2, R8")
	a.l("MOVQ nsl+40(FP), BX")
	a.l("MOVQ rows+48(FP), R10")
	a.l("MOVBQZX accumulate+64(FP), R11")
}
