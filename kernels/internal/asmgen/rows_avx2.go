package main

import (
	"fmt"
	"math"
)

// rowsAVX2 emits the AVX2 path's row kernels, the AVX-512 ones (rowsAVX512)
// on 8-lane registers with the same arithmetic, so the two paths give the
// same bits lane for lane (sums reduce over 8 lanes instead of 16):
//
//	maxAVX2(x *float32, n int) float32                                 (n ≥ 1)
//	expShiftSumAVX2(x *float32, n int, shift float32) float32          x = exp(x − shift), returns Σx
//	swigluAVX2(dst, gate, up *float32, n int)                          dst = g·u/(1+exp(−g))
//	swigluBackAVX2(dg, du, dy, gate, up *float32, n int)               du += dy·g·s; dg += dy·u·s·(1 + g·(1−s))
//
// AVX2 has 16 vector registers and no mask registers: the constants are
// read from memory (·rowsAVX2C<>, each repeated over 8 lanes), the last
// n mod 8 lanes go through VMASKMOVPS under a mask from the same table, and
// 2^n (VSCALEFPS on AVX-512) is built in the exponent bits in two factors
// 2^⌊n/2⌋·2^(n−⌊n/2⌋), each a normal float for every n the clamp allows
// (−150..128), so the product rounds once as VSCALEFPS does.
func rowsAVX2() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	consts := []uint32{
		math.Float32bits(-104), math.Float32bits(88.72283), math.Float32bits(1.44269504088896341),
		math.Float32bits(0.693359375), math.Float32bits(-2.12194440e-4),
		math.Float32bits(1.0 / 720), math.Float32bits(1.0 / 120), math.Float32bits(1.0 / 24),
		math.Float32bits(1.0 / 6), math.Float32bits(0.5), math.Float32bits(1), 127,
	}
	c := func(i int) string { return fmt.Sprintf("·rowsAVX2C<>+%d(SB)", 32*i) }
	const (
		cLo, cHi, cLog2e, cLn2hi, cLn2lo, cP6, cP5, cP4, cP3, cHalf, cOne, cBias = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
	)
	maskOff := 32 * len(consts) // 8 lanes of all ones, then 8 of zeros
	for i, v := range consts {
		for l := 0; l < 8; l++ {
			a.l("DATA ·rowsAVX2C<>+%d(SB)/4, $0x%08x", 32*i+4*l, v)
		}
	}
	for l := 0; l < 16; l++ {
		v := uint32(0)
		if l < 8 {
			v = 0xffffffff
		}
		a.l("DATA ·rowsAVX2C<>+%d(SB)/4, $0x%08x", maskOff+4*l, v)
	}
	a.l("GLOBL ·rowsAVX2C<>(SB), RODATA|NOPTR, $%d", maskOff+64)

	// exp of in into out (in, t, t2 clobbered), as rowsAVX512's exp.
	exp := func(in, out, t, t2 string) {
		a.l("VMAXPS %s, %s, %s", c(cLo), in, in)
		a.l("VMINPS %s, %s, %s", c(cHi), in, in)
		a.l("VMULPS %s, %s, %s", c(cLog2e), in, t)
		a.l("VROUNDPS $0, %s, %s", t, t)                 // n = round to nearest even
		a.l("VFNMADD231PS %s, %s, %s", c(cLn2hi), t, in) // r = x − n·ln2hi
		a.l("VFNMADD231PS %s, %s, %s", c(cLn2lo), t, in) // r −= n·ln2lo
		a.l("VMOVUPS %s, %s", c(cP6), out)
		for _, k := range []int{cP5, cP4, cP3, cHalf, cOne, cOne} {
			a.l("VFMADD213PS %s, %s, %s", c(k), in, out) // p = p·r + c
		}
		a.l("VCVTPS2DQ %s, %s", t, t)      // n as int32 (exact)
		a.l("VPSRAD $1, %s, %s", t, t2)    // n1 = ⌊n/2⌋
		a.l("VPSUBD %s, %s, %s", t2, t, t) // n2 = n − n1
		a.l("VPADDD %s, %s, %s", c(cBias), t2, t2)
		a.l("VPSLLD $23, %s, %s", t2, t2) // 2^n1
		a.l("VPADDD %s, %s, %s", c(cBias), t, t)
		a.l("VPSLLD $23, %s, %s", t, t) // 2^n2
		a.l("VMULPS %s, %s, %s", t2, out, out)
		a.l("VMULPS %s, %s, %s", t, out, out)
	}
	header := func(name, sig string, frame int) {
		fmt.Fprintf(&a, "\n// func %s%s\nTEXT ·%s(SB), NOSPLIT, $0-%d\n", name, sig, name, frame)
	}
	// Y15 = lanes 0..CX−1 set (0 < CX < 8); clobbers AX, BX.
	tailMask := func() {
		a.l("LEAQ ·rowsAVX2C<>+%d(SB), AX", maskOff)
		a.l("MOVQ $8, BX")
		a.l("SUBQ CX, BX")
		a.l("VMOVDQU (AX)(BX*4), Y15")
	}
	// horizontal reduction of Y0 by op into X0
	reduce := func(op string) {
		a.l("VEXTRACTF128 $1, Y0, X1")
		a.l("%s X1, X0, X0", op)
		a.l("VPERMILPS $0x4e, X0, X1")
		a.l("%s X1, X0, X0", op)
		a.l("VPERMILPS $0xb1, X0, X1")
		a.l("%s X1, X0, X0", op)
	}

	header("maxAVX2", "(x *float32, n int) float32", 20)
	a.l("MOVQ x+0(FP), SI")
	a.l("MOVQ n+8(FP), CX")
	a.l("VBROADCASTSS (SI), Y0")
	a.l("CMPQ CX, $8")
	a.l("JLT maxtail")
	a.label("maxloop")
	a.l("VMAXPS (SI), Y0, Y0")
	a.l("ADDQ $32, SI")
	a.l("SUBQ $8, CX")
	a.l("CMPQ CX, $8")
	a.l("JGE maxloop")
	a.label("maxtail")
	a.l("TESTQ CX, CX")
	a.l("JEQ maxreduce")
	tailMask()
	a.l("VMASKMOVPS (SI), Y15, Y1")
	a.l("VMAXPS Y1, Y0, Y1")
	a.l("VBLENDVPS Y15, Y1, Y0, Y0") // lanes past the end keep their max
	a.label("maxreduce")
	reduce("VMAXPS")
	a.l("VZEROUPPER")
	a.l("MOVSS X0, ret+16(FP)")
	a.l("RET")

	header("expShiftSumAVX2", "(x *float32, n int, shift float32) float32", 28)
	a.l("MOVQ x+0(FP), SI")
	a.l("MOVQ n+8(FP), CX")
	a.l("VBROADCASTSS shift+16(FP), Y14")
	a.l("VXORPS Y13, Y13, Y13") // sum
	a.l("CMPQ CX, $8")
	a.l("JLT esstail")
	a.label("essloop")
	a.l("VMOVUPS (SI), Y0")
	a.l("VSUBPS Y14, Y0, Y0")
	exp("Y0", "Y1", "Y2", "Y3")
	a.l("VMOVUPS Y1, (SI)")
	a.l("VADDPS Y1, Y13, Y13")
	a.l("ADDQ $32, SI")
	a.l("SUBQ $8, CX")
	a.l("CMPQ CX, $8")
	a.l("JGE essloop")
	a.label("esstail")
	a.l("TESTQ CX, CX")
	a.l("JEQ essreduce")
	tailMask()
	a.l("VMASKMOVPS (SI), Y15, Y0")
	a.l("VSUBPS Y14, Y0, Y0")
	exp("Y0", "Y1", "Y2", "Y3")
	a.l("VANDPS Y15, Y1, Y1") // lanes past the end add nothing
	a.l("VMASKMOVPS Y1, Y15, (SI)")
	a.l("VADDPS Y1, Y13, Y13")
	a.label("essreduce")
	a.l("VMOVAPS Y13, Y0")
	reduce("VADDPS")
	a.l("VZEROUPPER")
	a.l("MOVSS X0, ret+24(FP)")
	a.l("RET")

	// load (masked under Y15 in the tail) of (reg) into y
	load := func(masked bool, mem, y string) {
		if masked {
			a.l("VMASKMOVPS %s, Y15, %s", mem, y)
		} else {
			a.l("VMOVUPS %s, %s", mem, y)
		}
	}
	store := func(masked bool, y, mem string) {
		if masked {
			a.l("VMASKMOVPS %s, Y15, %s", y, mem)
		} else {
			a.l("VMOVUPS %s, %s", y, mem)
		}
	}
	loop := func(name string, body func(masked bool), regs ...string) {
		a.l("CMPQ CX, $8")
		a.l("JLT %stail", name)
		a.label(name + "loop")
		body(false)
		for _, r := range regs {
			a.l("ADDQ $32, %s", r)
		}
		a.l("SUBQ $8, CX")
		a.l("CMPQ CX, $8")
		a.l("JGE %sloop", name)
		a.label(name + "tail")
		a.l("TESTQ CX, CX")
		a.l("JEQ %sdone", name)
		tailMask()
		body(true)
		a.label(name + "done")
		a.l("VZEROUPPER")
		a.l("RET")
	}

	header("swigluAVX2", "(dst, gate, up *float32, n int)", 32)
	a.l("MOVQ dst+0(FP), DI")
	a.l("MOVQ gate+8(FP), SI")
	a.l("MOVQ up+16(FP), DX")
	a.l("MOVQ n+24(FP), CX")
	loop("sw", func(masked bool) {
		load(masked, "(SI)", "Y3") // g
		load(masked, "(DX)", "Y4") // u
		a.l("VXORPS Y0, Y0, Y0")
		a.l("VSUBPS Y3, Y0, Y0") // −g
		exp("Y0", "Y1", "Y2", "Y6")
		a.l("VADDPS %s, Y1, Y1", c(cOne)) // 1 + e^−g
		a.l("VMULPS Y4, Y3, Y5")          // g·u
		a.l("VDIVPS Y1, Y5, Y5")          // g·u / (1 + e^−g)
		store(masked, "Y5", "(DI)")
	}, "SI", "DX", "DI")

	header("swigluBackAVX2", "(dg, du, dy, gate, up *float32, n int)", 48)
	a.l("MOVQ dg+0(FP), DI")
	a.l("MOVQ du+8(FP), R8")
	a.l("MOVQ dy+16(FP), R9")
	a.l("MOVQ gate+24(FP), SI")
	a.l("MOVQ up+32(FP), DX")
	a.l("MOVQ n+40(FP), CX")
	loop("sb", func(masked bool) {
		load(masked, "(SI)", "Y3") // g
		load(masked, "(DX)", "Y4") // u
		load(masked, "(R9)", "Y6") // dy
		load(masked, "(R8)", "Y7") // du
		load(masked, "(DI)", "Y8") // dg
		a.l("VXORPS Y0, Y0, Y0")
		a.l("VSUBPS Y3, Y0, Y0")
		exp("Y0", "Y1", "Y2", "Y5")
		a.l("VMOVUPS %s, Y10", c(cOne))
		a.l("VADDPS Y10, Y1, Y1")
		a.l("VDIVPS Y1, Y10, Y1")      // s
		a.l("VMULPS Y3, Y6, Y5")       // dy·g
		a.l("VFMADD231PS Y1, Y5, Y7")  // du += dy·g·s
		a.l("VSUBPS Y1, Y10, Y9")      // 1 − s
		a.l("VFMADD213PS Y10, Y3, Y9") // g·(1−s) + 1
		a.l("VMULPS Y1, Y9, Y9")       // s·(1 + g·(1−s))
		a.l("VMULPS Y4, Y6, Y10")      // dy·u
		a.l("VFMADD231PS Y9, Y10, Y8") // dg += dy·u·s·(…)
		store(masked, "Y7", "(R8)")
		store(masked, "Y8", "(DI)")
	}, "SI", "DX", "R9", "R8", "DI")
	return a.Bytes()
}

// decodeAVX2 emits the AVX2 path's block decoders, decodeAVX512's on
// 8-lane registers (same signatures, same bits as the Go decoders):
//
//	decodeQ8_0AVX2(dst *float32, src *byte, nb, step int)
//	decodeQ4_0AVX2(dst *float32, src *byte, nb, step int)
//	decodeNF4AVX2(dst *float32, src *byte, scale *float32, code *float32, nb, step int)
//	decodeF16AVX2(dst *float32, src *uint16, n int)    n a multiple of 8
//	decodeBF16AVX2(dst *float32, src *uint16, n int)
//
// NF4's 16-entry codebook is two 8-entry VPERMPS tables, the entry picked by
// the index's bit 3 (VBLENDVPS on the index shifted to the sign bit).
func decodeAVX2() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	scale := func() { // fp16 scale at (SI) broadcast to Y2
		a.l("MOVWLZX (SI), AX")
		a.l("VMOVD AX, X2")
		a.l("VCVTPH2PS X2, X2")
		a.l("VBROADCASTSS X2, Y2")
	}
	args := func(name string) {
		fmt.Fprintf(&a, "\n// func %s(dst *float32, src *byte, nb, step int)\nTEXT ·%s(SB), NOSPLIT, $0-32\n", name, name)
		a.l("MOVQ dst+0(FP), DI")
		a.l("MOVQ src+8(FP), SI")
		a.l("MOVQ nb+16(FP), CX")
		a.l("MOVQ step+24(FP), R8")
	}
	args("decodeQ8_0AVX2")
	a.l("TESTQ CX, CX")
	a.l("JEQ q8done")
	a.label("q8loop")
	scale()
	for i := 0; i < 4; i++ {
		a.l("VPMOVSXBD %d(SI), Y%d", 2+8*i, 4+i)
		a.l("VCVTDQ2PS Y%d, Y%d", 4+i, 4+i)
		a.l("VMULPS Y2, Y%d, Y%d", 4+i, 4+i)
		a.l("VMOVUPS Y%d, %d(DI)", 4+i, 32*i)
	}
	a.l("ADDQ $34, SI")
	a.l("ADDQ R8, DI")
	a.l("DECQ CX")
	a.l("JNE q8loop")
	a.label("q8done")
	a.l("VZEROUPPER")
	a.l("RET")

	args("decodeQ4_0AVX2")
	a.l("MOVL $15, AX")
	a.l("VMOVD AX, X5")
	a.l("VPBROADCASTD X5, Y5")
	a.l("MOVL $8, AX")
	a.l("VMOVD AX, X6")
	a.l("VPBROADCASTD X6, Y6")
	a.l("TESTQ CX, CX")
	a.l("JEQ q4done")
	a.label("q4loop")
	scale()
	for h := 0; h < 2; h++ { // bytes 8h..8h+7: elements 8h.. (low nibbles) and 16+8h.. (high)
		a.l("VPMOVZXBD %d(SI), Y0", 2+8*h)
		a.l("VPSRLD $4, Y0, Y1")
		a.l("VPAND Y5, Y0, Y0")
		for k, y := range []string{"Y0", "Y1"} {
			a.l("VPSUBD Y6, %s, %s", y, y)
			a.l("VCVTDQ2PS %s, %s", y, y)
			a.l("VMULPS Y2, %s, %s", y, y)
			a.l("VMOVUPS %s, %d(DI)", y, 4*(8*h+16*k))
		}
	}
	a.l("ADDQ $18, SI")
	a.l("ADDQ R8, DI")
	a.l("DECQ CX")
	a.l("JNE q4loop")
	a.label("q4done")
	a.l("VZEROUPPER")
	a.l("RET")

	// NF4: byte i holds element 2i (high nibble) and 2i+1 (low nibble).
	fmt.Fprintf(&a, "\n// func decodeNF4AVX2(dst *float32, src *byte, scale *float32, code *float32, nb, step int)\nTEXT ·decodeNF4AVX2(SB), NOSPLIT, $0-48\n")
	a.l("MOVQ dst+0(FP), DI")
	a.l("MOVQ src+8(FP), SI")
	a.l("MOVQ scale+16(FP), DX")
	a.l("MOVQ code+24(FP), BX")
	a.l("MOVQ nb+32(FP), CX")
	a.l("MOVQ step+40(FP), R8")
	a.l("VMOVUPS (BX), Y7")   // codebook 0..7
	a.l("VMOVUPS 32(BX), Y8") // codebook 8..15
	a.l("MOVL $15, AX")
	a.l("VMOVD AX, X5")
	a.l("VPBROADCASTD X5, Y5")
	a.l("TESTQ CX, CX")
	a.l("JEQ nfdone")
	a.label("nfloop")
	a.l("VBROADCASTSS (DX), Y2")
	a.l("VMULPS Y2, Y7, Y9")  // codebook·scale, entries 0..7
	a.l("VMULPS Y2, Y8, Y10") // entries 8..15
	// look up the 8 indexes in idx into out (t clobbered)
	look := func(idx, out, t string) {
		a.l("VPERMPS Y9, %s, %s", idx, out)
		a.l("VPERMPS Y10, %s, %s", idx, t)
		a.l("VPSLLD $28, %s, %s", idx, idx) // bit 3 → sign
		a.l("VBLENDVPS %s, %s, %s, %s", idx, t, out, out)
	}
	for g := 0; g < 4; g++ { // 8 bytes → 16 values; two groups a run of 32
		a.l("VPMOVZXBD %d(SI), Y0", 8*g)
		a.l("VPSRLD $4, Y0, Y1") // high nibbles: even elements
		a.l("VPAND Y5, Y0, Y0")  // low nibbles: odd elements
		look("Y1", "Y3", "Y11")
		look("Y0", "Y4", "Y12")
		a.l("VUNPCKLPS Y4, Y3, Y11") // e0 o0 e1 o1 | e4 o4 e5 o5
		a.l("VUNPCKHPS Y4, Y3, Y12") // e2 o2 e3 o3 | e6 o6 e7 o7
		a.l("VPERM2F128 $0x20, Y12, Y11, Y13")
		a.l("VPERM2F128 $0x31, Y12, Y11, Y14")
		a.l("VMOVUPS Y13, %d(DI)", 64*(g%2))
		a.l("VMOVUPS Y14, %d(DI)", 64*(g%2)+32)
		if g%2 == 1 {
			a.l("ADDQ R8, DI") // the next run of 32
		}
	}
	a.l("ADDQ $32, SI")
	a.l("ADDQ $4, DX")
	a.l("DECQ CX")
	a.l("JNE nfloop")
	a.label("nfdone")
	a.l("VZEROUPPER")
	a.l("RET")

	// F16 (VCVTPH2PS, F16C: every AVX2 CPU has it) and BF16 (the upper half
	// of an fp32) rows, n a multiple of 8: 32 values a loop, then 8.
	halves := func(name, tag string, conv func(off, y int)) {
		fmt.Fprintf(&a, "\n// func %s(dst *float32, src *uint16, n int)\nTEXT ·%s(SB), NOSPLIT, $0-24\n", name, name)
		a.l("MOVQ dst+0(FP), DI")
		a.l("MOVQ src+8(FP), SI")
		a.l("MOVQ n+16(FP), CX")
		a.l("CMPQ CX, $32")
		a.l("JLT %s8", tag)
		a.label(tag + "32")
		for i := 0; i < 4; i++ {
			conv(16*i, i)
		}
		for i := 0; i < 4; i++ {
			a.l("VMOVUPS Y%d, %d(DI)", i, 32*i)
		}
		a.l("ADDQ $64, SI")
		a.l("ADDQ $128, DI")
		a.l("SUBQ $32, CX")
		a.l("CMPQ CX, $32")
		a.l("JGE %s32", tag)
		a.label(tag + "8")
		a.l("TESTQ CX, CX")
		a.l("JEQ %sdone", tag)
		conv(0, 0)
		a.l("VMOVUPS Y0, (DI)")
		a.l("ADDQ $16, SI")
		a.l("ADDQ $32, DI")
		a.l("SUBQ $8, CX")
		a.l("JMP %s8", tag)
		a.label(tag + "done")
		a.l("VZEROUPPER")
		a.l("RET")
	}
	halves("decodeF16AVX2", "f16", func(off, y int) { a.l("VCVTPH2PS %d(SI), Y%d", off, y) })
	halves("decodeBF16AVX2", "bf16", func(off, y int) {
		a.l("VPMOVZXWD %d(SI), Y%d", off, y)
		a.l("VPSLLD $16, Y%d, Y%d", y, y)
	})
	return a.Bytes()
}

// transposeAVX2 emits transpose8AVX2 and transpose6AVX2, the AVX2 path's
// packing transpose: for each of nblocks blocks of 8 columns, rows
// ptrs[0..7] (8 floats each, at byte offset 32·block) are multiplied by
// alpha, transposed in registers, and column p of the block is stored to
// dst + (8·block + p)·wbytes: all 8 lanes, or with transpose6AVX2 the first
// 6 (an A sliver's rows; ptrs[6], ptrs[7] any readable rows), as a 16- and
// an 8-byte store. A masked store (VMASKMOVPS) made such slivers slower
// than Go's loop (Zen 3).
func transposeAVX2() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	for _, n := range []int{8, 6} {
		name := fmt.Sprintf("transpose%dAVX2", n)
		lbl := func(s string) string { return fmt.Sprintf("tr%d%s", n, s) }
		fmt.Fprintf(&a, "\n// func %s(dst *float32, ptrs *[8]*float32, nblocks, wbytes int, alpha float32)\n", name)
		fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-36\n", name)
		a.l("MOVQ dst+0(FP), DI")
		a.l("MOVQ ptrs+8(FP), SI")
		a.l("MOVQ nblocks+16(FP), CX")
		a.l("MOVQ wbytes+24(FP), DX")
		a.l("MOVL alpha+32(FP), R10")
		a.l("XORQ R9, R9") // byte offset of the block within each row
		a.l("TESTQ CX, CX")
		a.l("JEQ %s", lbl("done"))
		a.label(lbl("loop"))
		for i := 0; i < 8; i++ {
			a.l("MOVQ %d(SI), R8", 8*i)
			a.l("VMOVUPS (R8)(R9*1), Y%d", i)
		}
		a.l("CMPL R10, $0x3f800000") // alpha == 1: no scaling
		a.l("JEQ %s", lbl("noscale"))
		a.l("VBROADCASTSS alpha+32(FP), Y14")
		for i := 0; i < 8; i++ {
			a.l("VMULPS Y14, Y%d, Y%d", i, i)
		}
		a.label(lbl("noscale"))
		// t[2k], t[2k+1] = unpack lo, hi of rows 2k, 2k+1: Y8..Y14, then Y0.
		t := []int{8, 9, 10, 11, 12, 13, 14, 0}
		for k := 0; k < 4; k++ {
			a.l("VUNPCKLPS Y%d, Y%d, Y%d", 2*k+1, 2*k, t[2*k])
			a.l("VUNPCKHPS Y%d, Y%d, Y%d", 2*k+1, 2*k, t[2*k+1])
		}
		// s[4g+0..3]: rows 4g..4g+3 of columns (0|4), (1|5), (2|6), (3|7) in
		// the two 128-bit lanes: Y1..Y7, then Y8.
		s := []int{1, 2, 3, 4, 5, 6, 7, 8}
		for g := 0; g < 2; g++ {
			t0, t1, t2, t3 := t[4*g], t[4*g+1], t[4*g+2], t[4*g+3]
			a.l("VSHUFPS $0x44, Y%d, Y%d, Y%d", t2, t0, s[4*g])
			a.l("VSHUFPS $0xEE, Y%d, Y%d, Y%d", t2, t0, s[4*g+1])
			a.l("VSHUFPS $0x44, Y%d, Y%d, Y%d", t3, t1, s[4*g+2])
			a.l("VSHUFPS $0xEE, Y%d, Y%d, Y%d", t3, t1, s[4*g+3])
		}
		// column p: the low lanes of s[p], s[4+p] (p < 4) or their high lanes.
		a.l("MOVQ DI, AX")
		for p := 0; p < 8; p++ {
			imm := "0x20"
			if p >= 4 {
				imm = "0x31"
			}
			a.l("VPERM2F128 $%s, Y%d, Y%d, Y9", imm, s[4+p%4], s[p%4])
			if n == 8 {
				a.l("VMOVUPS Y9, (AX)")
			} else {
				a.l("VMOVUPS X9, (AX)")
				a.l("VEXTRACTF128 $1, Y9, X10")
				a.l("VMOVQ X10, 16(AX)")
			}
			if p < 7 {
				a.l("ADDQ DX, AX")
			}
		}
		a.l("ADDQ $32, R9")
		a.l("LEAQ (DI)(DX*8), DI") // the next block: 8 columns on
		a.l("DECQ CX")
		a.l("JNE %s", lbl("loop"))
		a.label(lbl("done"))
		a.l("VZEROUPPER")
		a.l("RET")
	}
	return a.Bytes()
}
