package main

import "fmt"

// dotAVX2 emits the AVX2 path's dot-product kernels (dotKernel in gemm.go):
// C[0:R, 0:8] (+)= A[0:R, 0:k]·Bpᵀ for R = 3 or 1, A's rows as stored (lda
// floats apart), Bp 8 packed rows of kp = k rounded up to 16 values, zero
// past k. Each (row, column) pair has one 8-lane accumulator fed in order
// along K; the last k mod 8 values of A come through VMASKMOVPS, so nothing
// past a row is read. 16 registers hold 3 rows against 4 B rows at a time
// (12 accumulators, 3 for A, 1 for B), so the 3-row kernel walks A twice,
// once for each half of the 8 columns; the 1-row kernel takes all 8
// columns in one pass. Either way an output is its accumulator's lanes
// summed by one fixed tree (reduce4AVX2), so a row comes out with the same
// bits in both.
//
//	func dotAVX2xR(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)
func dotAVX2() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	// 8 lanes of all ones, then 8 of zeros: the mask of the first n lanes
	// starts 4·(8−n) bytes in.
	for l := 0; l < 16; l++ {
		v := uint32(0)
		if l < 8 {
			v = 0xffffffff
		}
		a.l("DATA ·dotAVX2Mask<>+%d(SB)/4, $0x%08x", 4*l, v)
	}
	a.l("GLOBL ·dotAVX2Mask<>(SB), RODATA|NOPTR, $64")
	aptr := []string{"R11", "R12", "R13"}
	crow := []string{"(DX)", "(DX)(R9*1)", "(DX)(R9*2)"}
	for _, rows := range []int{3, 1} {
		name := fmt.Sprintf("dotAVX2x%d", rows)
		fmt.Fprintf(&a, "\n// func %s(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)\n", name)
		fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-49\n", name)
		a.l("MOVQ k+0(FP), CX")
		a.l("MOVQ a+8(FP), SI")
		a.l("MOVQ lda+16(FP), R8")
		a.l("SHLQ $2, R8")
		a.l("MOVQ b+24(FP), DI")
		a.l("MOVQ c+32(FP), DX")
		a.l("MOVQ ldc+40(FP), R9")
		a.l("SHLQ $2, R9")
		a.l("MOVQ CX, R10") // kp in bytes: the stride between packed B rows
		a.l("ADDQ $15, R10")
		a.l("ANDQ $-16, R10")
		a.l("SHLQ $2, R10")
		a.l("LEAQ (R10)(R10*2), R14") // 3·kp
		// Columns per pass, the registers: accumulator (i, j) is Y(i·cols+j),
		// A row i in Y(ya+i), B in Y(yb), the tail mask in Y(yb) first.
		cols, passes := 4, 2
		if rows == 1 {
			cols, passes = 8, 1
		}
		ya, yb := rows*cols, rows*cols+rows
		acc := func(i, j int) int { return i*cols + j }
		for pass := 0; pass < passes; pass++ {
			lbl := func(s string) string { return fmt.Sprintf("%s%d_%d", s, rows, pass) }
			// BX: this pass's first B row; R15 = BX + 4·kp (B rows 4..7).
			if pass == 0 {
				a.l("MOVQ DI, BX")
			} else {
				a.l("LEAQ (DI)(R10*4), BX")
			}
			a.l("LEAQ (BX)(R10*4), R15")
			brow := func(j int) string {
				return [...]string{"(BX)", "(BX)(R10*1)", "(BX)(R10*2)", "(BX)(R14*1)", "(R15)", "(R15)(R10*1)", "(R15)(R10*2)", "(R15)(R14*1)"}[j]
			}
			a.l("MOVQ k+0(FP), CX")
			a.l("MOVQ SI, R11")
			if rows > 1 {
				a.l("LEAQ (SI)(R8*1), R12")
				a.l("LEAQ (R12)(R8*1), R13")
			}
			for i := 0; i < rows*cols; i++ {
				a.l("VXORPS Y%d, Y%d, Y%d", i, i, i)
			}
			body := func(masked bool) {
				if masked { // the first CX lanes: 4·(8−CX) bytes into the table (CX is done with)
					a.l("LEAQ ·dotAVX2Mask<>+32(SB), AX")
					a.l("NEGQ CX")
					a.l("VMOVDQU (AX)(CX*4), Y%d", yb)
				}
				for i := 0; i < rows; i++ {
					if masked {
						a.l("VMASKMOVPS (%s), Y%d, Y%d", aptr[i], yb, ya+i)
					} else {
						a.l("VMOVUPS (%s), Y%d", aptr[i], ya+i)
					}
				}
				for j := 0; j < cols; j++ {
					a.l("VMOVUPS %s, Y%d", brow(j), yb)
					for i := 0; i < rows; i++ {
						a.l("VFMADD231PS Y%d, Y%d, Y%d", yb, ya+i, acc(i, j))
					}
				}
			}
			a.l("CMPQ CX, $8")
			a.l("JLT %s", lbl("tail"))
			a.label(lbl("loop"))
			body(false)
			for i := 0; i < rows; i++ {
				a.l("ADDQ $32, %s", aptr[i])
			}
			a.l("ADDQ $32, BX")
			a.l("ADDQ $32, R15")
			a.l("SUBQ $8, CX")
			a.l("CMPQ CX, $8")
			a.l("JGE %s", lbl("loop"))
			a.label(lbl("tail"))
			a.l("TESTQ CX, CX")
			a.l("JEQ %s", lbl("reduce"))
			body(true)
			a.label(lbl("reduce"))
			a.l("MOVBQZX overwrite+48(FP), AX")
			for i := 0; i < rows; i++ {
				for q := 0; q < cols/4; q++ { // 4 accumulators → 4 outputs in X(r0)
					r0 := acc(i, 4*q)
					reduce4AVX2(&a, r0)
					mem := fmt.Sprintf("%d%s", 16*(pass+q), crow[i])
					over := lbl(fmt.Sprintf("over%d_%d_", i, q))
					a.l("TESTQ AX, AX")
					a.l("JNE %s", over)
					a.l("VADDPS %s, X%d, X%d", mem, r0, r0)
					a.label(over)
					a.l("VMOVUPS X%d, %s", r0, mem)
				}
			}
		}
		a.l("VZEROUPPER")
		a.l("RET")
	}
	return a.Bytes()
}

// reduce4AVX2 sums each of the 4 accumulators Y(r)..Y(r+3) over its 8
// lanes by one fixed tree (two levels of VHADDPS, then the upper 128 bits
// added to the lower) into the 4 lanes of X(r); Y(r+1..r+3) are clobbered.
func reduce4AVX2(a *asm, r int) {
	a.l("VHADDPS Y%d, Y%d, Y%d", r+1, r, r)
	a.l("VHADDPS Y%d, Y%d, Y%d", r+3, r+2, r+2)
	a.l("VHADDPS Y%d, Y%d, Y%d", r+2, r, r)
	a.l("VEXTRACTF128 $1, Y%d, X%d", r, r+1)
	a.l("VADDPS X%d, X%d, X%d", r+1, r, r)
}

// gemvAVX2 emits generation's one-row product straight from a weight's
// stored rows (F32, F16 or BF16: no decoding into a buffer, so the weight
// is read once, at memory speed): c[0:8] = Σ_p x[p]·W[j, p] over 8 rows j
// ldw bytes apart, k a multiple of 8 (the caller adds the rest). Each
// output has one 8-lane accumulator fed in order along K and is summed by
// reduce4AVX2's tree, as dotAVX2's.
//
//	func gemvF32AVX2(k int, x *float32, w *byte, ldw int, c *float32)
//	func gemvF16AVX2(k int, x *float32, w *byte, ldw int, c *float32)
//	func gemvBF16AVX2(k int, x *float32, w *byte, ldw int, c *float32)
func gemvAVX2() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	for _, f := range []struct {
		name string
		size int                     // bytes per value
		load func(mem string, y int) // 8 values at mem as fp32 into Y(y)
	}{
		{"gemvF32AVX2", 4, func(mem string, y int) { a.l("VMOVUPS %s, Y%d", mem, y) }},
		{"gemvF16AVX2", 2, func(mem string, y int) { a.l("VCVTPH2PS %s, Y%d", mem, y) }},
		{"gemvBF16AVX2", 2, func(mem string, y int) {
			a.l("VPMOVZXWD %s, Y%d", mem, y)
			a.l("VPSLLD $16, Y%d, Y%d", y, y)
		}},
	} {
		fmt.Fprintf(&a, "\n// func %s(k int, x *float32, w *byte, ldw int, c *float32)\n", f.name)
		fmt.Fprintf(&a, "TEXT ·%s(SB), NOSPLIT, $0-40\n", f.name)
		a.l("MOVQ k+0(FP), CX")
		a.l("MOVQ x+8(FP), SI")
		a.l("MOVQ w+16(FP), DI")
		a.l("MOVQ ldw+24(FP), R10")
		a.l("MOVQ c+32(FP), DX")
		a.l("LEAQ (R10)(R10*2), R14") // 3·ldw
		a.l("LEAQ (DI)(R10*4), R15")  // W row 4
		a.l("LEAQ (R15)(R10*4), BX")  // the next 8 rows, prefetched
		row := [...]string{"(DI)", "(DI)(R10*1)", "(DI)(R10*2)", "(DI)(R14*1)", "(R15)", "(R15)(R10*1)", "(R15)(R10*2)", "(R15)(R14*1)"}
		for i := 0; i < 8; i++ {
			a.l("VXORPS Y%d, Y%d, Y%d", i, i, i)
		}
		lbl := func(s string) string { return s + f.name }
		// 16 values a row per loop (a half or a whole cache line), then 8.
		// Each loop also asks for as many bytes of the next 8 rows (BX, a
		// contiguous block) as it reads of these, into L2 (PREFETCHT1, as
		// the int8 kernels): a row of 576 f16 values is 18 lines, too short
		// a stream for the hardware prefetcher to pay for itself (go test
		// -bench 'Gemv/49152x576' ./kernels, Zen 3: f16 9–12.5 → 12–15
		// GB/s, bf16 9–10 → 12.7–15, f32 unchanged at 12–16, side by side
		// in rounds). Past the weight's end a prefetch is dropped, not a
		// fault.
		step := func(u int) {
			if u == 2 {
				for l := 0; l < 128*f.size; l += 64 {
					a.l("PREFETCHT1 %d(BX)", l)
				}
				a.l("ADDQ $%d, BX", 128*f.size)
			}
			for h := 0; h < u; h++ {
				a.l("VMOVUPS %d(SI), Y%d", 32*h, 8+h*4)
			}
			for j := 0; j < 8; j++ {
				for h := 0; h < u; h++ {
					y := 9 + j%3 + 4*h // temporaries: loads run ahead of the FMAs
					mem := fmt.Sprintf("%d%s", 8*f.size*h, row[j])
					f.load(mem, y)
					a.l("VFMADD231PS Y%d, Y%d, Y%d", y, 8+h*4, j)
				}
			}
			a.l("ADDQ $%d, SI", 32*u)
			a.l("ADDQ $%d, DI", 8*f.size*u)
			a.l("ADDQ $%d, R15", 8*f.size*u)
			a.l("SUBQ $%d, CX", 8*u)
		}
		a.l("CMPQ CX, $16")
		a.l("JLT %s", lbl("one"))
		a.label(lbl("loop"))
		step(2)
		a.l("CMPQ CX, $16")
		a.l("JGE %s", lbl("loop"))
		a.label(lbl("one"))
		a.l("TESTQ CX, CX")
		a.l("JEQ %s", lbl("reduce"))
		step(1)
		a.label(lbl("reduce"))
		for q := 0; q < 2; q++ {
			reduce4AVX2(&a, 4*q)
			a.l("VMOVUPS X%d, %d(DX)", 4*q, 16*q)
		}
		a.l("VZEROUPPER")
		a.l("RET")
	}
	return a.Bytes()
}
