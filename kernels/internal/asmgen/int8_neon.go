package main

import (
	"fmt"
	"math"
)

// The NEON instructions Go's arm64 assembler lacks, encoded (each checked
// against GNU as 2.40 in TestA64).

// sdot is SDOT Vd.4S, Vn.16B, Vm.16B (FEAT_DotProd).
func sdot(d, n, m int) string {
	return a64(0x4e809400|m<<16|n<<5|d, "sdot v%d.4s, v%d.16b, v%d.16b", d, n, m)
}

// scvtf4s is SCVTF Vd.4S, Vn.4S.
func scvtf4s(d, n int) string { return a64(0x4e21d800|n<<5|d, "scvtf v%d.4s, v%d.4s", d, n) }

// fadd4s is FADD Vd.4S, Vn.4S, Vm.4S.
func fadd4s(d, n, m int) string {
	return a64(0x4e20d400|m<<16|n<<5|d, "fadd v%d.4s, v%d.4s, v%d.4s", d, n, m)
}

// fmla4s is FMLA Vd.4S, Vn.4S, Vm.4S (Vd += Vn·Vm, rounded once).
func fmla4s(d, n, m int) string {
	return a64(0x4e20cc00|m<<16|n<<5|d, "fmla v%d.4s, v%d.4s, v%d.4s", d, n, m)
}

// bfdotElem is BFDOT Vd.4S, Vn.8H, Vm.2H[idx] (FEAT_BF16).
func bfdotElem(d, n, m, idx int) string {
	return a64(0x4f40f000|(idx&1)<<21|(m&31)<<16|(idx>>1)<<11|n<<5|d, "bfdot v%d.4s, v%d.8h, v%d.2h[%d]", d, n, m, idx)
}

// neonBF16 writes the 8×12 bf16 kernel of arm64 (see kernels/bf16.go): per
// pair of K, B's three 4-column vectors of pairs (V24..V26) against each
// row's pair, an element of A's two vectors (V27, V28), BFDOT into the 24
// accumulators V0..V23; then C (+)= acc as the fp32 kernel stores. The
// packing is the fp32 kernel's slivers in bf16 pairs (VDPBF16PS's).
func neonBF16(name string) []byte {
	const mr, nv = 8, 3
	var a asm
	fileHeader(&a, "arm64 && !noasm")
	fmt.Fprintf(&a, "\n// func %s(kp int, a, b *uint32, c *float32, ldc int, overwrite bool)\n", name)
	fmt.Fprintf(&a, "// C[0:%d, 0:%d] += A·B (or = A·B when overwrite) over kp packed pairs; ldc in elements.\n", mr, 4*nv)
	fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-41\n", name)
	neonPrologue(&a, "kp", mr*nv)
	a.l("VLD1.P 48(R1), [V24.S4, V25.S4, V26.S4]")
	a.l("VLD1.P 32(R0), [V27.S4, V28.S4]")
	for i := 0; i < mr; i++ {
		for v := 0; v < nv; v++ {
			a.l("%s", bfdotElem(i*nv+v, 24+v, 27+i/4, i%4))
		}
	}
	a.l("SUB $1, R3, R3")
	a.l("CBNZ R3, loop")
	neonStore(&a, mr, nv, 29)
	return a.Bytes()
}

func a64(word int, format string, args ...any) string {
	return fmt.Sprintf("WORD $0x%08x // %s", word, fmt.Sprintf(format, args...))
}

// int8NEON writes the int8 dot kernels for arm64 with SDOT (see
// kernels/int8.go and int8AVX512): signed weights (the nibble tables'
// signed values) times signed X; each SDOT lane sums the same four bytes
// as VPDPBUSD's, so the lanes hold the same integers and the results are
// the pure-Go kernel's bits. Two rows at a time, then one.
//
// Registers: R0 X, R1 W's first row, R2 units (NF4: blocks), R3 rows
// left, R4 ldw, R5 out, R6/R7 NF4's scales and their row stride in bytes,
// R9 X's unit, R10/R11 the rows' blocks, R13/R14 their NF4 scales, R12
// the step count, R15 scratch. V0–V3 the rows' accumulators (lanes 0–3,
// 4–7), V6–V9 X's unit (values, scales), V20–V23 NF4's second unit, V15
// 0x0f bytes, V16 the nibble table, V17 1/127.
func int8NEON() []byte {
	var a asm
	fileHeader(&a, "arm64 && !noasm")
	type format struct {
		name, args string
		nf4        bool
		tab        bool
	}
	// xunit loads X's unit at (R9) into values q0, q1 and scales s0, s1.
	xunit := func(q0, s0 int) {
		a.l("VLD1.P 32(R9), [V%d.B16, V%d.B16]", q0, q0+1)
		a.l("ADD $32, R9, R9") // the corrections: VPDPBUSD's, unused here
		a.l("VLD1.P 32(R9), [V%d.S4, V%d.S4]", s0, s0+1)
	}
	// unit adds the unit with weights in w, w+1 (signed bytes), X values
	// q, q+1 and scales s, s+1, weight scale in V14.S[0], to acc, acc+1.
	unit := func(acc, w, q, s int) {
		a.l("VEOR V10.B16, V10.B16, V10.B16")
		a.l("VEOR V11.B16, V11.B16, V11.B16")
		a.l(sdot(10, w, q))
		a.l(sdot(11, w+1, q+1))
		a.l(scvtf4s(10, 10))
		a.l(scvtf4s(11, 11))
		a.l(fmulElem(12, s, 14, 0))
		a.l(fmulElem(13, s+1, 14, 0))
		a.l(fmla4s(acc, 10, 12))
		a.l(fmla4s(acc+1, 11, 13))
	}
	f16 := func(w string) { // the block's fp16 scale into V14.S[0]
		a.l("MOVHU.P 2(%s), R15", w)
		a.l("FMOVS R15, F14")
		a.l("FCVTHS F14, F14")
	}
	// hsum stores ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)) of acc, acc+1.
	hsum := func(acc, off int) {
		a.l(fadd4s(acc, acc, acc+1))
		a.l("VEXT $8, V%d.B16, V%d.B16, V%d.B16", acc, acc, acc+1)
		a.l(fadd4s(acc, acc, acc+1))
		a.l("VDUP V%d.S[1], V%d.S4", acc, acc+1)
		a.l("FADDS F%d, F%d, F%d", acc+1, acc, acc)
		a.l("FMOVS F%d, %d(R5)", acc, off)
	}
	for _, f := range []format{
		{"dotQ8_0SDOT", "x *int8Unit, w *byte, units, rows, ldw int, out *float32", false, false},
		{"dotQ4_0SDOT", "x *int8Unit, w *byte, units, rows, ldw int, out *float32, tab *byte", false, true},
		{"dotNF4SDOT", "x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte", true, true},
	} {
		frame := 48
		if f.tab {
			frame = 56
		}
		if f.nf4 {
			frame = 72
		}
		fmt.Fprintf(&a, "\n// func %s(%s)\nTEXT ·%s(SB), NOSPLIT, $0-%d\n", f.name, f.args, f.name, frame)
		a.l("MOVD x+0(FP), R0")
		a.l("MOVD w+8(FP), R1")
		o := 16
		if f.nf4 {
			a.l("MOVD sc+16(FP), R6")
			o = 24
		}
		a.l("MOVD units+%d(FP), R2", o)
		a.l("MOVD rows+%d(FP), R3", o+8)
		a.l("MOVD ldw+%d(FP), R4", o+16)
		switch {
		case f.nf4:
			a.l("MOVD lds+48(FP), R7")
			a.l("LSL $2, R7, R7")
			a.l("LSR $1, R2, R2") // blocks
			a.l("MOVD out+56(FP), R5")
			a.l("MOVD tab+64(FP), R8")
		case f.tab:
			a.l("MOVD out+40(FP), R5")
			a.l("MOVD tab+48(FP), R8")
		default:
			a.l("MOVD out+40(FP), R5")
		}
		if f.tab {
			a.l("VLD1 (R8), [V16.B16]")
			a.l("MOVW $0x0f0f0f0f, R15")
			a.l("VDUP R15, V15.S4")
		}
		if f.nf4 {
			a.l("MOVW $0x3c010204, R15") // float32(1.0/127)
			a.l("FMOVS R15, F17")
		}
		for _, n := range []int{2, 1} {
			a.label(fmt.Sprintf("rows%d", n))
			a.l("CMP $%d, R3", n)
			if n == 2 {
				a.l("BLT rows1")
			} else {
				a.l("BLT done")
			}
			a.l("MOVD R0, R9")
			a.l("MOVD R1, R10")
			a.l("ADD R4, R1, R11")
			if f.nf4 {
				a.l("MOVD R6, R13")
				a.l("ADD R7, R6, R14")
			}
			a.l("MOVD R2, R12")
			for r := 0; r < n; r++ {
				a.l("VEOR V%d.B16, V%d.B16, V%d.B16", 2*r, 2*r, 2*r)
				a.l("VEOR V%d.B16, V%d.B16, V%d.B16", 2*r+1, 2*r+1, 2*r+1)
			}
			loop := fmt.Sprintf("loop%d", n)
			a.label(loop)
			xunit(6, 8)
			if f.nf4 {
				xunit(20, 22)
			}
			for r := 0; r < n; r++ {
				w, sc := []string{"R10", "R11"}[r], []string{"R13", "R14"}[r]
				switch {
				case f.nf4:
					a.l("FMOVS.P 4(%s), F14", sc)
					a.l("FMULS F17, F14, F14")
					a.l("VLD1.P 32(%s), [V4.B16, V5.B16]", w)
					a.l("VUSHR $4, V4.B16, V18.B16") // high nibbles: even values
					a.l("VUSHR $4, V5.B16, V19.B16")
					a.l("VAND V15.B16, V4.B16, V4.B16") // low nibbles: odd values
					a.l("VAND V15.B16, V5.B16, V5.B16")
					a.l("VTBL V18.B16, [V16.B16], V18.B16")
					a.l("VTBL V19.B16, [V16.B16], V19.B16")
					a.l("VTBL V4.B16, [V16.B16], V4.B16")
					a.l("VTBL V5.B16, [V16.B16], V5.B16")
					unit(2*r, 18, 6, 8)
					unit(2*r, 4, 20, 22)
				case f.tab: // Q4_0
					f16(w)
					a.l("VLD1.P 16(%s), [V4.B16]", w)
					a.l("VUSHR $4, V4.B16, V5.B16") // high nibbles: values 16..31
					a.l("VAND V15.B16, V4.B16, V4.B16")
					a.l("VTBL V4.B16, [V16.B16], V4.B16")
					a.l("VTBL V5.B16, [V16.B16], V5.B16")
					unit(2*r, 4, 6, 8)
				default: // Q8_0
					f16(w)
					a.l("VLD1.P 32(%s), [V4.B16, V5.B16]", w)
					unit(2*r, 4, 6, 8)
				}
			}
			a.l("SUB $1, R12, R12")
			a.l("CBNZ R12, %s", loop)
			for r := 0; r < n; r++ {
				hsum(2*r, 4*r)
			}
			a.l("ADD $%d, R5, R5", 4*n)
			a.l("ADD R4<<%d, R1, R1", n-1)
			if f.nf4 {
				a.l("ADD R7<<%d, R6, R6", n-1)
			}
			a.l("SUB $%d, R3, R3", n)
			a.l("B rows%d", n)
		}
		a.label("done")
		a.l("RET")
	}
	return a.Bytes()
}

// sdotElem is SDOT Vd.4S, Vn.16B, Vm.4B[idx] (FEAT_DotProd): lane l of Vd
// adds the dot of Vn's bytes 4l..4l+3 and Vm's 4idx..4idx+3.
func sdotElem(d, n, m, idx int) string {
	return a64(0x4f80e000|(idx&1)<<21|(m&31)<<16|(idx>>1)<<11|n<<5|d, "sdot v%d.4s, v%d.16b, v%d.4b[%d]", d, n, m, idx)
}

// fmulElem is FMUL Vd.4S, Vn.4S, Vm.S[idx].
func fmulElem(d, n, m, idx int) string {
	return a64(0x4f809000|(idx&1)<<21|(m&31)<<16|(idx>>1)<<11|n<<5|d, "fmul v%d.4s, v%d.4s, v%d.s[%d]", d, n, m, idx)
}

// int8GemmNEON writes the int8 GEMM kernel of arm64 (see
// kernels/int8gemm.go): gemmInt8SDOT computes ng groups of 8 columns of C,
// from group g0 of the region at w on, for one X region (the VNNI layout's; its corrections unused: SDOT takes
// signed × signed) against W regions in the g8 layout with W's own signed
// bytes (int8GemmG8Block: per block, each group of 8 rows' 8 steps of 4
// bytes, then the region's 32 scales), group q being group q%4 of region
// q/4. Each 6×8 tile: per block of K, the int32 sums V0..V11 (row i:
// V2i, V2i+1) take 8 steps of SDOT by element (the step's 8 columns in
// V24, V25 against row i's 4 bytes, an element of V26+i: each row's half
// block, 16 bytes, loaded once for 4 steps); then each is converted and
// added to the fp32 accumulators V12..V23 as acc = fma(float32(S), sw·sx,
// acc), the sum's rounding the x86 kernels' (FMLA is fused, FMUL rounds
// the scales' product). C = alpha·acc or alpha·acc + C for the valid
// rows; every column of each group is stored (the Go wrapper runs a
// partial group into a scratch tile).
func int8GemmNEON() []byte {
	var a asm
	fileHeader(&a, "arm64 && !noasm")
	const xr = 6
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func gemmInt8SDOT(kb int, x, w *byte, c *float32, ldc, g0, ng, rows int, alpha float32, accumulate bool)")
	fmt.Fprintln(&a, "TEXT ·gemmInt8SDOT(SB), NOSPLIT, $0-69")
	a.l("MOVD kb+0(FP), R15")
	a.l("MOVD x+8(FP), R0")
	a.l("MOVD w+16(FP), R14") // the region's base
	a.l("MOVD c+24(FP), R2")
	a.l("MOVD ldc+32(FP), R3")
	a.l("LSL $2, R3, R3")
	a.l("MOVD g0+40(FP), R12") // the group within its region
	a.l("MOVD ng+48(FP), R4")
	a.l("MOVD rows+56(FP), R5")
	a.l("MOVBU accumulate+68(FP), R11")
	a.l("MOVD $1152, R7")
	a.l("MUL R15, R7, R13") // a region's bytes
	a.l("LSL $8, R12, R8")
	a.l("ADD R14, R8, R8") // the group's steps in its first block
	a.l("LSL $5, R12, R9")
	a.l("ADD R14, R9, R9")
	a.l("ADD $1024, R9, R9") // its scales
	a.label("group")
	for r := 12; r < 24; r++ {
		a.l("VEOR V%d.B16, V%d.B16, V%d.B16", r, r, r)
	}
	a.l("MOVD R0, R6")
	a.l("MOVD R8, R1")
	a.l("MOVD R9, R7")
	a.l("MOVD R15, R10")
	a.label("block")
	for r := 0; r < 2*xr; r++ {
		a.l("VEOR V%d.B16, V%d.B16, V%d.B16", r, r, r)
	}
	for h := 0; h < 2; h++ {
		for i := 0; i < xr; i++ {
			a.l("FMOVQ %d(R6), F%d", 32*i+16*h, 26+i)
		}
		for s := 0; s < 4; s++ {
			a.l("VLD1.P 32(R1), [V24.B16, V25.B16]")
			for i := 0; i < xr; i++ {
				a.l(sdotElem(2*i, 24, 26+i, s))
				a.l(sdotElem(2*i+1, 25, 26+i, s))
			}
		}
	}
	a.l("VLD1 (R7), [V24.S4, V25.S4]") // the 8 columns' scales
	a.l("FMOVQ %d(R6), F26", 32*xr)    // the rows' scales: 0..3
	a.l("FMOVQ %d(R6), F27", 32*xr+16) // 4, 5 (and two corrections)
	for i := 0; i < xr; i++ {
		a.l(fmulElem(28, 24, 26+i/4, i%4))
		a.l(fmulElem(29, 25, 26+i/4, i%4))
		a.l(scvtf4s(2*i, 2*i))
		a.l(scvtf4s(2*i+1, 2*i+1))
		a.l(fmla4s(12+2*i, 2*i, 28))
		a.l(fmla4s(13+2*i, 2*i+1, 29))
	}
	a.l("ADD $%d, R6, R6", 40*xr)
	a.l("ADD $896, R1, R1") // past the other groups' steps and the scales
	a.l("ADD $1152, R7, R7")
	a.l("SUB $1, R10, R10")
	a.l("CBNZ R10, block")
	a.l("FMOVS alpha+64(FP), F24")
	a.l("MOVD R2, R10")
	for i := 0; i < xr; i++ {
		if i > 0 {
			a.l("CMP $%d, R5", i)
			a.l("BLE next")
		}
		a.l(fmulElem(12+2*i, 12+2*i, 24, 0))
		a.l(fmulElem(13+2*i, 13+2*i, 24, 0))
		a.l("CBZ R11, set%d", i)
		a.l("VLD1 (R10), [V26.S4, V27.S4]")
		a.l(fadd4s(12+2*i, 12+2*i, 26))
		a.l(fadd4s(13+2*i, 13+2*i, 27))
		a.label(fmt.Sprintf("set%d", i))
		a.l("VST1 [V%d.S4, V%d.S4], (R10)", 12+2*i, 13+2*i)
		a.l("ADD R3, R10, R10")
	}
	a.label("next")
	a.l("ADD $32, R2, R2")
	a.l("ADD $1, R12, R12")
	a.l("CMP $4, R12")
	a.l("BEQ region")
	a.l("ADD $256, R8, R8")
	a.l("ADD $32, R9, R9")
	a.l("B more")
	a.label("region")
	a.l("ADD R13, R14, R14")
	a.l("MOVD R14, R8")
	a.l("ADD $1024, R14, R9")
	a.l("MOVD $0, R12")
	a.label("more")
	a.l("SUB $1, R4, R4")
	a.l("CBNZ R4, group")
	a.l("RET")

	// int8Row's Q8_0 case (as q8Int8AVX2 on x86): each block's 32 values
	// copied, its fp16 scale converted.
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func q8Int8NEON(dst *byte, sc *float32, src *byte, nb int)")
	fmt.Fprintln(&a, "TEXT ·q8Int8NEON(SB), NOSPLIT, $0-32")
	a.l("MOVD dst+0(FP), R0")
	a.l("MOVD sc+8(FP), R1")
	a.l("MOVD src+16(FP), R2")
	a.l("MOVD nb+24(FP), R3")
	a.l("CBZ R3, q8done")
	a.label("q8loop")
	a.l("MOVHU.P 2(R2), R4")
	a.l("VLD1.P 32(R2), [V0.B16, V1.B16]")
	a.l("FMOVS R4, F2")
	a.l("FCVTHS F2, F2")
	a.l("VST1.P [V0.B16, V1.B16], 32(R0)")
	a.l("FMOVS.P F2, 4(R1)")
	a.l("SUB $1, R3, R3")
	a.l("CBNZ R3, q8loop")
	a.label("q8done")
	a.l("RET")

	// The packer (int8PackFn) of the g8 layout with W's own bytes: per group
	// of 8 rows and block, an 8×8 transpose of dwords (the rows' 8 steps of
	// 4 bytes to the steps' 8 rows) by TRN1/TRN2 on 4×4 quarters; then the
	// 32 rows' scales.
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func packInt8WG8NEON(dst, rows *byte, sc *float32, kb int, idx *[64]int32)")
	fmt.Fprintln(&a, "TEXT ·packInt8WG8NEON(SB), NOSPLIT, $0-40")
	a.l("MOVD dst+0(FP), R0")
	a.l("MOVD rows+8(FP), R1")
	a.l("MOVD sc+16(FP), R2")
	a.l("MOVD kb+24(FP), R3")
	a.l("MOVD idx+32(FP), R12")
	a.l("CBZ R3, pdone")
	a.l("MOVD $0, R13") // the group
	a.label("pgroup")
	for r := 0; r < 8; r++ { // the group's rows
		a.l("MOVW.P 4(R12), R%d", 4+r)
		a.l("ADD R1, R%d, R%d", 4+r, 4+r)
	}
	a.l("LSL $8, R13, R14")
	a.l("ADD R0, R14, R14") // the group's steps in block 0
	a.l("MOVD R3, R15")
	a.label("pblock")
	for r := 0; r < 8; r++ {
		a.l("VLD1.P 32(R%d), [V%d.S4, V%d.S4]", 4+r, 2*r, 2*r+1)
	}
	slot := func(st, q int) int { return 16 + 2*st + q }
	for q := 0; q < 2; q++ { // rows 4q..4q+3
		for h := 0; h < 2; h++ { // dwords 4h..4h+3
			x := func(i int) int { return 2*(4*q+i) + h }
			s0, s1, s2, s3 := slot(4*h, q), slot(4*h+1, q), slot(4*h+2, q), slot(4*h+3, q)
			a.l("VTRN1 V%d.S4, V%d.S4, V%d.S4", x(1), x(0), s1) // t0 = rows' dwords 0, 2 pairwise
			a.l("VTRN2 V%d.S4, V%d.S4, V%d.S4", x(1), x(0), s3) // t1: dwords 1, 3
			a.l("VTRN1 V%d.S4, V%d.S4, V%d.S4", x(3), x(2), x(0))
			a.l("VTRN2 V%d.S4, V%d.S4, V%d.S4", x(3), x(2), x(1))
			a.l("VTRN1 V%d.D2, V%d.D2, V%d.D2", x(0), s1, s0)
			a.l("VTRN2 V%d.D2, V%d.D2, V%d.D2", x(0), s1, s2)
			a.l("VTRN1 V%d.D2, V%d.D2, V%d.D2", x(1), s3, s1)
			a.l("VTRN2 V%d.D2, V%d.D2, V%d.D2", x(1), s3, s3)
		}
	}
	a.l("MOVD R14, R19")
	for st := 0; st < 8; st++ {
		a.l("VST1.P [V%d.S4, V%d.S4], 32(R19)", slot(st, 0), slot(st, 1))
	}
	a.l("ADD $1152, R14, R14")
	a.l("SUB $1, R15, R15")
	a.l("CBNZ R15, pblock")
	a.l("ADD $1, R13, R13")
	a.l("CMP $4, R13")
	a.l("BNE pgroup")
	// The scales: row j's kb of them (at sc + idx[32+j]) to each block's
	// 1024 + 4j.
	a.l("ADD $1024, R0, R14")
	a.l("MOVD $32, R13")
	a.label("pscale")
	a.l("MOVW.P 4(R12), R4")
	a.l("ADD R2, R4, R4")
	a.l("MOVD R14, R5")
	a.l("MOVD R3, R15")
	a.label("pscb")
	a.l("MOVWU.P 4(R4), R6")
	a.l("MOVW R6, (R5)")
	a.l("ADD $1152, R5, R5")
	a.l("SUB $1, R15, R15")
	a.l("CBNZ R15, pscb")
	a.l("ADD $4, R14, R14")
	a.l("SUB $1, R13, R13")
	a.l("CBNZ R13, pscale")
	a.label("pdone")
	a.l("RET")

	// int8Row's nibble decoders (as q4Int8AVX2 and nf4Int8AVX2): 16 bytes of
	// nibbles a step, low (V0) and high (V1) looked up in the table (V16).
	nibbles := func(name, count string, srcOff, srcStep int, out func()) {
		fmt.Fprintf(&a, "\n// func %s(dst, src *byte, %s int, tab *byte)\n", name, count)
		fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
		a.l("MOVD dst+0(FP), R0")
		a.l("MOVD src+8(FP), R1")
		a.l("MOVD %s+16(FP), R2", count)
		a.l("MOVD tab+24(FP), R3")
		a.l("CBZ R2, %sdone", name)
		a.l("VLD1 (R3), [V16.B16]")
		a.l("MOVW $0x0f0f0f0f, R4")
		a.l("VDUP R4, V15.S4")
		if srcOff != 0 {
			a.l("ADD $%d, R1, R1", srcOff)
		}
		a.label(name + "loop")
		a.l("VLD1 (R1), [V0.B16]")
		a.l("ADD $%d, R1, R1", srcStep)
		a.l("VUSHR $4, V0.B16, V1.B16")
		a.l("VAND V15.B16, V0.B16, V0.B16")
		a.l("VTBL V0.B16, [V16.B16], V0.B16")
		a.l("VTBL V1.B16, [V16.B16], V1.B16")
		out()
		a.l("SUB $1, R2, R2")
		a.l("CBNZ R2, %sloop", name)
		a.label(name + "done")
		a.l("RET")
	}
	// NF4's codes in natural order: the high nibbles (even values) and the
	// low ones (odd), interleaved.
	nibbles("nf4Int8NEON", "n", 0, 16, func() {
		a.l("VZIP1 V0.B16, V1.B16, V2.B16")
		a.l("VZIP2 V0.B16, V1.B16, V3.B16")
		a.l("VST1.P [V2.B16, V3.B16], 32(R0)")
	})
	// Q4_0's blocks (18 bytes: the scale, then 16 bytes of nibbles) to
	// their 32 values − 8: the low nibbles, then the high ones.
	nibbles("q4Int8NEON", "nb", 2, 18, func() {
		a.l("VST1.P [V0.B16, V1.B16], 32(R0)")
	})

	// The quantizer (int8QuantFn): quantBlock's rule and bits, 32 values
	// a step. FMAX and FMAXV carry a NaN through, so one compare of max|x|
	// with the largest float finds a block holding an Inf or a NaN;
	// FCVTNS rounds x·(1/d) (rounded first, as on x86) to even; the
	// narrowing saturates at ±127 and −128 (SMAX then takes −128 to −127,
	// as the clamp does; |x·(1/d)| ≤ 127.00002 leaves neither).
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func quantInt8NEON(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)")
	fmt.Fprintln(&a, "TEXT ·quantInt8NEON(SB), NOSPLIT, $0-48")
	a.l("MOVD q+0(FP), R0")
	a.l("MOVD sc+8(FP), R1")
	a.l("MOVD corr+16(FP), R2")
	a.l("MOVD src+24(FP), R3")
	a.l("MOVD nb+32(FP), R4")
	a.l("MOVD stride+40(FP), R5")
	a.l("CBZ R4, qdone")
	a.l("MOVW $0x%08x, R6", math.Float32bits(127))
	a.l("FMOVS R6, F30")
	a.l("MOVW $0x7f7fffff, R6") // the largest float
	a.l("FMOVS R6, F29")
	a.l("FMOVS $1.0, F28")
	a.l("MOVW $0x81818181, R6") // −127 in each byte
	a.l("VDUP R6, V31.S4")
	a.label("qloop")
	a.l("VLD1.P 64(R3), [V0.S4, V1.S4, V2.S4, V3.S4]")
	a.l("VLD1.P 64(R3), [V4.S4, V5.S4, V6.S4, V7.S4]")
	for v := 0; v < 8; v++ {
		a.l(fabs4s(8+v, v))
	}
	for _, p := range [][3]int{{8, 8, 9}, {10, 10, 11}, {12, 12, 13}, {14, 14, 15}, {8, 8, 10}, {12, 12, 14}, {8, 8, 12}} {
		a.l(fmax4s(p[0], p[1], p[2]))
	}
	a.l(fmaxv4s(8, 8))
	a.l("FCMPS F29, F8") // above the largest float, or unordered (a NaN): HI
	a.l("BHI qbad")
	a.l("FDIVS F30, F8, F9")  // d
	a.l("FDIVS F9, F28, F10") // 1/d
	a.l("FCMPS F29, F10")
	a.l("BHI qzero") // 1/d overflows: max|x| zero or subnormal
	for v := 0; v < 8; v++ {
		a.l(fmulElem(16+v, v, 10, 0))
		a.l(fcvtns4s(16+v, 16+v))
	}
	for _, p := range [][3]int{{24, 16, 17}, {25, 18, 19}, {26, 20, 21}, {27, 22, 23}, {24, 24, 25}, {26, 26, 27}, {24, 24, 26}} {
		a.l(add4s(p[0], p[1], p[2]))
	}
	a.l(addv4s(24, 24))
	for h := 0; h < 4; h++ {
		a.l(sqxtn4h(16+h, 16+2*h))
		a.l(sqxtn28h(16+h, 17+2*h))
	}
	a.l(sqxtn8b(16, 16))
	a.l(sqxtn216b(16, 17))
	a.l(sqxtn8b(17, 18))
	a.l(sqxtn216b(17, 19))
	a.l(smax16b(16, 16, 31))
	a.l(smax16b(17, 17, 31))
	a.l("VST1 [V16.B16, V17.B16], (R0)")
	a.l("FMOVS F9, (R1)")
	a.l("FMOVS F24, R7")
	a.l("NEG R7<<7, R7") // −128·Σq
	a.l("MOVW R7, (R2)")
	a.label("qnext")
	a.l("ADD R5, R0, R0")
	a.l("ADD R5, R1, R1")
	a.l("ADD R5, R2, R2")
	a.l("SUB $1, R4, R4")
	a.l("CBNZ R4, qloop")
	a.label("qdone")
	a.l("RET")
	for _, c := range []struct {
		label string
		scale uint32
	}{{"qbad", 0x7fc00000}, {"qzero", 0}} {
		a.label(c.label)
		a.l("VEOR V16.B16, V16.B16, V16.B16")
		a.l("VEOR V17.B16, V17.B16, V17.B16")
		a.l("VST1 [V16.B16, V17.B16], (R0)")
		a.l("MOVW $0x%08x, R7", c.scale)
		a.l("MOVW R7, (R1)")
		a.l("MOVW ZR, (R2)")
		a.l("B qnext")
	}
	return a.Bytes()
}

// The quantizer's NEON instructions (encoded, as the others).
func fabs4s(d, n int) string { return a64(0x4ea0f800|n<<5|d, "fabs v%d.4s, v%d.4s", d, n) }
func fmax4s(d, n, m int) string {
	return a64(0x4e20f400|m<<16|n<<5|d, "fmax v%d.4s, v%d.4s, v%d.4s", d, n, m)
}
func fmaxv4s(d, n int) string   { return a64(0x6e30f800|n<<5|d, "fmaxv s%d, v%d.4s", d, n) }
func fcvtns4s(d, n int) string  { return a64(0x4e21a800|n<<5|d, "fcvtns v%d.4s, v%d.4s", d, n) }
func sqxtn4h(d, n int) string   { return a64(0x0e614800|n<<5|d, "sqxtn v%d.4h, v%d.4s", d, n) }
func sqxtn28h(d, n int) string  { return a64(0x4e614800|n<<5|d, "sqxtn2 v%d.8h, v%d.4s", d, n) }
func sqxtn8b(d, n int) string   { return a64(0x0e214800|n<<5|d, "sqxtn v%d.8b, v%d.8h", d, n) }
func sqxtn216b(d, n int) string { return a64(0x4e214800|n<<5|d, "sqxtn2 v%d.16b, v%d.8h", d, n) }
func smax16b(d, n, m int) string {
	return a64(0x4e206400|m<<16|n<<5|d, "smax v%d.16b, v%d.16b, v%d.16b", d, n, m)
}
func addv4s(d, n int) string { return a64(0x4eb1b800|n<<5|d, "addv s%d, v%d.4s", d, n) }
func add4s(d, n, m int) string {
	return a64(0x4ea08400|m<<16|n<<5|d, "add v%d.4s, v%d.4s, v%d.4s", d, n, m)
}
