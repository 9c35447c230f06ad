package main

import "fmt"

// faddp4s is FADDP Vd.4S, Vn.4S, Vm.4S: the pairwise sums of n, then of m.
func faddp4s(d, n, m int) string {
	return a64(0x6e20d400|m<<16|n<<5|d, "faddp v%d.4s, v%d.4s, v%d.4s", d, n, m)
}

// fcvtl4s is FCVTL Vd.4S, Vn.4H (the lower four halves to fp32); fcvtl24s
// FCVTL2 Vd.4S, Vn.8H (the upper four).
func fcvtl4s(d, n int) string  { return a64(0x0e217800|n<<5|d, "fcvtl v%d.4s, v%d.4h", d, n) }
func fcvtl24s(d, n int) string { return a64(0x4e217800|n<<5|d, "fcvtl2 v%d.4s, v%d.8h", d, n) }

// shll4s is SHLL Vd.4S, Vn.4H, #16 (bf16 to fp32: the lower four halves
// into the upper half of each lane); shll24s SHLL2, the upper four.
func shll4s(d, n int) string  { return a64(0x2e613800|n<<5|d, "shll v%d.4s, v%d.4h, #16", d, n) }
func shll24s(d, n int) string { return a64(0x6e613800|n<<5|d, "shll2 v%d.4s, v%d.8h, #16", d, n) }

// neonReduce8 sums each of the 8 accumulators V(first)..V(first+7) over its
// 4 lanes by one fixed tree (FADDP twice: (l0+l1)+(l2+l3)) into the lanes
// of V(d) (accumulators 0..3) and V(d+1) (4..7); the accumulators are
// clobbered.
func neonReduce8(a *asm, first, d int) {
	for q := 0; q < 2; q++ {
		r := first + 4*q
		a.l("%s", faddp4s(r, r, r+1))
		a.l("%s", faddp4s(r+2, r+2, r+3))
		a.l("%s", faddp4s(d+q, r, r+2))
	}
}

// dotNEON emits the NEON path's dot-product kernels, dotAVX2's on 4-lane
// registers: C[0:R, 0:8] (+)= A[0:R, 0:k4]·Bpᵀ for R = 3 or 1 over the
// first k4 = 4·⌊k/4⌋ values (the Go wrapper adds the rest), Bp 8 packed
// rows kp = k rounded up to 16 apart. 32 registers hold all 8 columns of 3 rows (24
// accumulators, 3 for A, 2 for B), each (row, column) accumulator fed in
// order along K and summed by neonReduce8's tree, so a row has the same
// bits from either kernel.
//
//	func dotNEONx3k4(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)
//	func dotNEONx1k4(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)
func dotNEON() []byte {
	var a asm
	fileHeader(&a, "arm64 && !noasm")
	for _, rows := range []int{3, 1} {
		name := fmt.Sprintf("dotNEONx%dk4", rows)
		fmt.Fprintf(&a, "\n// func %s(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)\n", name)
		fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-49\n", name)
		// R0..R2 A's rows, R3 k, R5..R12 B's rows, R13 C, R14 ldc and R15
		// lda in bytes, R16 kp in bytes.
		a.l("MOVD k+0(FP), R3")
		a.l("MOVD a+8(FP), R0")
		a.l("MOVD lda+16(FP), R15")
		a.l("LSL $2, R15, R15")
		a.l("MOVD b+24(FP), R5")
		a.l("MOVD c+32(FP), R13")
		a.l("MOVD ldc+40(FP), R14")
		a.l("LSL $2, R14, R14")
		a.l("ADD $15, R3, R16")
		a.l("AND $-16, R16, R16")
		a.l("LSL $2, R16, R16")
		a.l("AND $-4, R3, R3")
		for i := 1; i < rows; i++ {
			a.l("ADD R15, R%d, R%d", i-1, i)
		}
		for j := 1; j < 8; j++ {
			a.l("ADD R16, R%d, R%d", 4+j, 5+j)
		}
		for i := 0; i < rows*8; i++ {
			a.l("VEOR V%d.B16, V%d.B16, V%d.B16", i, i, i)
		}
		loop, red := fmt.Sprintf("loop%d", rows), fmt.Sprintf("reduce%d", rows)
		a.l("CBZ R3, %s", red)
		a.label(loop)
		for i := 0; i < rows; i++ {
			a.l("VLD1.P 16(R%d), [V%d.S4]", i, 24+i)
		}
		for j := 0; j < 8; j++ {
			b := 27 + j%2
			a.l("VLD1.P 16(R%d), [V%d.S4]", 5+j, b)
			for i := 0; i < rows; i++ {
				a.l("VFMLA V%d.S4, V%d.S4, V%d.S4", b, 24+i, 8*i+j)
			}
		}
		a.l("SUB $4, R3, R3")
		a.l("CBNZ R3, %s", loop)
		a.label(red)
		a.l("MOVBU overwrite+48(FP), R4")
		for i := 0; i < rows; i++ {
			neonReduce8(&a, 8*i, 28)
			over := fmt.Sprintf("over%d_%d", rows, i)
			a.l("CBNZ R4, %s", over)
			a.l("VLD1 (R13), [V30.S4, V31.S4]")
			a.l("%s", fadd4s(28, 28, 30))
			a.l("%s", fadd4s(29, 29, 31))
			a.label(over)
			a.l("VST1 [V28.S4, V29.S4], (R13)")
			if i < rows-1 {
				a.l("ADD R14, R13, R13")
			}
		}
		a.l("RET")
	}
	return a.Bytes()
}

// gemvNEON emits generation's one-row product from a weight's stored rows
// on NEON, gemvAVX2's contract: c[0:8] = Σ_p x[p]·W[j, p] over 8 rows ldw
// bytes apart, k a multiple of 8. 8 values of a row a step, as two 4-lane
// halves into the row's one accumulator; f16 widened by FCVTL/FCVTL2, bf16
// by SHLL/SHLL2 #16.
//
//	func gemvF32NEON(k int, x *float32, w *byte, ldw int, c *float32)
//	func gemvF16NEON(k int, x *float32, w *byte, ldw int, c *float32)
//	func gemvBF16NEON(k int, x *float32, w *byte, ldw int, c *float32)
//
// and the block decoders' conversions of f16 and bf16 rows:
//
//	func decodeF16NEON(dst *float32, src *uint16, n int)
//	func decodeBF16NEON(dst *float32, src *uint16, n int)
func gemvNEON() []byte {
	var a asm
	fileHeader(&a, "arm64 && !noasm")
	for _, f := range []struct {
		name string
		// load the next 8 values of the row at R(r) as fp32 into V(t), V(t+1)
		load func(r, t int)
	}{
		{"gemvF32NEON", func(r, t int) { a.l("VLD1.P 32(R%d), [V%d.S4, V%d.S4]", r, t, t+1) }},
		{"gemvF16NEON", func(r, t int) {
			a.l("VLD1.P 16(R%d), [V%d.H8]", r, t+1)
			a.l("%s", fcvtl4s(t, t+1))
			a.l("%s", fcvtl24s(t+1, t+1))
		}},
		{"gemvBF16NEON", func(r, t int) {
			a.l("VLD1.P 16(R%d), [V%d.H8]", r, t+1)
			a.l("%s", shll4s(t, t+1))
			a.l("%s", shll24s(t+1, t+1))
		}},
	} {
		fmt.Fprintf(&a, "\n// func %s(k int, x *float32, w *byte, ldw int, c *float32)\n", f.name)
		fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-40\n", f.name)
		// R0 x, R3 k, R4 ldw, R5..R12 W's rows, R13 c.
		a.l("MOVD k+0(FP), R3")
		a.l("MOVD x+8(FP), R0")
		a.l("MOVD w+16(FP), R5")
		a.l("MOVD ldw+24(FP), R4")
		a.l("MOVD c+32(FP), R13")
		for j := 1; j < 8; j++ {
			a.l("ADD R4, R%d, R%d", 4+j, 5+j)
		}
		for i := 0; i < 8; i++ {
			a.l("VEOR V%d.B16, V%d.B16, V%d.B16", i, i, i)
		}
		loop, red := "loop"+f.name, "reduce"+f.name
		a.l("CBZ R3, %s", red)
		a.label(loop)
		a.l("VLD1.P 32(R0), [V24.S4, V25.S4]")
		for j := 0; j < 8; j++ {
			t := 26 + 2*(j%3) // three pairs of temporaries: loads run ahead
			f.load(5+j, t)
			a.l("VFMLA V%d.S4, V24.S4, V%d.S4", t, j)
			a.l("VFMLA V%d.S4, V25.S4, V%d.S4", t+1, j)
		}
		a.l("SUB $8, R3, R3")
		a.l("CBNZ R3, %s", loop)
		a.label(red)
		neonReduce8(&a, 0, 8)
		a.l("VST1 [V8.S4, V9.S4], (R13)")
		a.l("RET")
	}
	// The block decoders' f16 and bf16 rows (n a multiple of 8), 8 a step.
	for _, f := range []struct {
		name   string
		lo, hi func(d, n int) string
	}{{"decodeF16NEON", fcvtl4s, fcvtl24s}, {"decodeBF16NEON", shll4s, shll24s}} {
		fmt.Fprintf(&a, "\n// func %s(dst *float32, src *uint16, n int)\n", f.name)
		fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-24\n", f.name)
		a.l("MOVD dst+0(FP), R0")
		a.l("MOVD src+8(FP), R1")
		a.l("MOVD n+16(FP), R3")
		a.l("CBZ R3, done%s", f.name)
		a.label("loop" + f.name)
		a.l("VLD1.P 16(R1), [V2.H8]")
		a.l("%s", f.lo(0, 2))
		a.l("%s", f.hi(1, 2))
		a.l("VST1.P [V0.S4, V1.S4], 32(R0)")
		a.l("SUB $8, R3, R3")
		a.l("CBNZ R3, loop%s", f.name)
		a.label("done" + f.name)
		a.l("RET")
	}
	return a.Bytes()
}
