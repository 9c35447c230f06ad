package main

import "fmt"

// attnRowsAVX512 emits generation's attention kernels over a key/value
// cache read in place (rows of nvec·16 floats, strideBytes apart; nvec ≤ 8):
//
//	dotRowsAVX512(dst, x, m *float32, rows, strideBytes, nvec int, alpha float32)
//	    dst[j] = alpha · Σ_d x[d]·m[j][d]: x in Z16..; four rows at a time,
//	    each a chain of nvec FMAs then a horizontal sum
//	axpyRowsAVX512(dst, a, m *float32, rows, strideBytes, nvec int)
//	    dst[d] = Σ_j a[j]·m[j][d]: two sets of nvec accumulators (even and
//	    odd rows: two FMA chains), added at the end
func attnRowsAVX512() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	// hsum reduces Z(z) to its lane sum in X(z) (uses Z(t)).
	hsum := func(z, t int) {
		a.l("VEXTRACTF64X4 $1, Z%d, Y%d", z, t)
		a.l("VADDPS Y%d, Y%d, Y%d", t, z, z)
		a.l("VEXTRACTF128 $1, Y%d, X%d", z, t)
		a.l("VADDPS X%d, X%d, X%d", t, z, z)
		a.l("VMOVHLPS X%d, X%d, X%d", z, z, t)
		a.l("VADDPS X%d, X%d, X%d", t, z, z)
		a.l("VPSHUFD $1, X%d, X%d", z, t)
		a.l("VADDSS X%d, X%d, X%d", t, z, z)
	}
	// Both kernels branch to a copy of their loop for each nvec 1..8, so
	// the registers are named at generation time.
	fmt.Fprintf(&a, "\n// func dotRowsAVX512(dst, x, m *float32, rows, strideBytes, nvec int, alpha float32)\n")
	fmt.Fprintf(&a, "TEXT ·dotRowsAVX512(SB), NOSPLIT, $0-52\n")
	a.l("MOVQ dst+0(FP), DI")
	a.l("MOVQ x+8(FP), SI")
	a.l("MOVQ m+16(FP), R8")
	a.l("MOVQ rows+24(FP), CX")
	a.l("MOVQ strideBytes+32(FP), DX")
	a.l("MOVQ nvec+40(FP), R9")
	a.l("VBROADCASTSS alpha+48(FP), Z31")
	for nv := 1; nv <= 8; nv++ {
		a.l("CMPQ R9, $%d", nv)
		a.l("JEQ dr%d", nv)
	}
	a.l("JMP drdone")
	for nv := 1; nv <= 8; nv++ {
		a.label(fmt.Sprintf("dr%d", nv))
		for v := 0; v < nv; v++ {
			a.l("VMOVUPS %d(SI), Z%d", 64*v, 16+v)
		}
		// Four rows: R8, R8+DX, R8+2DX, R8+3DX (R10 = 3·DX).
		a.l("LEAQ (DX)(DX*2), R10")
		a.label(fmt.Sprintf("dr%dquad", nv))
		a.l("CMPQ CX, $4")
		a.l("JLT dr%done", nv)
		addr := []string{"(R8)", "(R8)(DX*1)", "(R8)(DX*2)", "(R8)(R10*1)"}
		for v := 0; v < nv; v++ {
			for k := 0; k < 4; k++ {
				if v == 0 {
					a.l("VMULPS %s, Z16, Z%d", addr[k], k)
				} else {
					a.l("VFMADD231PS %d%s, Z%d, Z%d", 64*v, addr[k], 16+v, k)
				}
			}
		}
		for k := 0; k < 4; k++ {
			hsum(k, 4+k)
		}
		a.l("VINSERTPS $0x10, X1, X0, X0")
		a.l("VINSERTPS $0x20, X2, X0, X0")
		a.l("VINSERTPS $0x30, X3, X0, X0")
		a.l("VMULPS X31, X0, X0")
		a.l("VMOVUPS X0, (DI)")
		a.l("ADDQ $16, DI")
		a.l("LEAQ (R8)(DX*4), R8")
		a.l("SUBQ $4, CX")
		a.l("JMP dr%dquad", nv)
		a.label(fmt.Sprintf("dr%done", nv))
		a.l("TESTQ CX, CX")
		a.l("JEQ drdone")
		for v := 0; v < nv; v++ {
			if v == 0 {
				a.l("VMULPS (R8), Z16, Z0")
			} else {
				a.l("VFMADD231PS %d(R8), Z%d, Z0", 64*v, 16+v)
			}
		}
		hsum(0, 4)
		a.l("VMULSS X31, X0, X0")
		a.l("VMOVSS X0, (DI)")
		a.l("ADDQ $4, DI")
		a.l("ADDQ DX, R8")
		a.l("DECQ CX")
		a.l("JMP dr%done", nv)
	}
	a.label("drdone")
	a.l("VZEROUPPER")
	a.l("RET")

	axpyRowsX86(&a, "axpyRowsAVX512", "Z", 16, 8, 8, 30)
	return a.Bytes()
}

// attnRowsAVX2 emits attnRowsAVX512's kernels on 8-lane registers (the
// same signatures; nvec counts units of 16 floats, two registers each):
//
//	dotRowsAVX2(dst, x, m *float32, rows, strideBytes, nvec int, alpha float32)
//	    four rows at a time, x read from memory one register at a time
//	    (16 registers would not hold it and the four accumulators)
//	axpyRowsAVX2(dst, a, m *float32, rows, strideBytes, nvec int)
//	    nvec ≤ 2 (the caller splits wider rows into such column ranges):
//	    even and odd rows in two sets of 2·nvec accumulators, as on AVX-512
func attnRowsAVX2() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	// hsum reduces Y(z) to its lane sum in X(z) (uses Y(t)).
	hsum := func(z, t int) {
		a.l("VEXTRACTF128 $1, Y%d, X%d", z, t)
		a.l("VADDPS X%d, X%d, X%d", t, z, z)
		a.l("VMOVHLPS X%d, X%d, X%d", z, z, t)
		a.l("VADDPS X%d, X%d, X%d", t, z, z)
		a.l("VPSHUFD $1, X%d, X%d", z, t)
		a.l("VADDSS X%d, X%d, X%d", t, z, z)
	}
	fmt.Fprintf(&a, "\n// func dotRowsAVX2(dst, x, m *float32, rows, strideBytes, nvec int, alpha float32)\n")
	fmt.Fprintf(&a, "TEXT ·dotRowsAVX2(SB), NOSPLIT, $0-52\n")
	a.l("MOVQ dst+0(FP), DI")
	a.l("MOVQ x+8(FP), SI")
	a.l("MOVQ m+16(FP), R8")
	a.l("MOVQ rows+24(FP), CX")
	a.l("MOVQ strideBytes+32(FP), DX")
	a.l("MOVQ nvec+40(FP), R9")
	a.l("VBROADCASTSS alpha+48(FP), Y15")
	for nv := 1; nv <= 8; nv++ {
		a.l("CMPQ R9, $%d", nv)
		a.l("JEQ dr%d", nv)
	}
	a.l("JMP drdone")
	for nv := 1; nv <= 8; nv++ {
		nc := 2 * nv
		a.label(fmt.Sprintf("dr%d", nv))
		a.l("LEAQ (DX)(DX*2), R10") // rows R8, R8+DX, R8+2DX, R8+3DX
		a.label(fmt.Sprintf("dr%dquad", nv))
		a.l("CMPQ CX, $4")
		a.l("JLT dr%done", nv)
		addr := []string{"(R8)", "(R8)(DX*1)", "(R8)(DX*2)", "(R8)(R10*1)"}
		for c := 0; c < nc; c++ {
			a.l("VMOVUPS %d(SI), Y8", 32*c)
			for k := 0; k < 4; k++ {
				if c == 0 {
					a.l("VMULPS %s, Y8, Y%d", addr[k], k)
				} else {
					a.l("VFMADD231PS %d%s, Y8, Y%d", 32*c, addr[k], k)
				}
			}
		}
		for k := 0; k < 4; k++ {
			hsum(k, 4+k)
		}
		a.l("VINSERTPS $0x10, X1, X0, X0")
		a.l("VINSERTPS $0x20, X2, X0, X0")
		a.l("VINSERTPS $0x30, X3, X0, X0")
		a.l("VMULPS X15, X0, X0")
		a.l("VMOVUPS X0, (DI)")
		a.l("ADDQ $16, DI")
		a.l("LEAQ (R8)(DX*4), R8")
		a.l("SUBQ $4, CX")
		a.l("JMP dr%dquad", nv)
		a.label(fmt.Sprintf("dr%done", nv))
		a.l("TESTQ CX, CX")
		a.l("JEQ drdone")
		for c := 0; c < nc; c++ {
			a.l("VMOVUPS %d(SI), Y8", 32*c)
			if c == 0 {
				a.l("VMULPS (R8), Y8, Y0")
			} else {
				a.l("VFMADD231PS %d(R8), Y8, Y0", 32*c)
			}
		}
		hsum(0, 4)
		a.l("VMULSS X15, X0, X0")
		a.l("VMOVSS X0, (DI)")
		a.l("ADDQ $4, DI")
		a.l("ADDQ DX, R8")
		a.l("DECQ CX")
		a.l("JMP dr%done", nv)
	}
	a.label("drdone")
	a.l("VZEROUPPER")
	a.l("RET")

	axpyRowsX86(&a, "axpyRowsAVX2", "Y", 8, 2, 4, 14)
	return a.Bytes()
}

// axpyRowsX86 emits the axpyRows kernel name on registers r ("Z": 16
// lanes, "Y": 8) for nvec 1..maxNv units of 16 floats: even rows into
// accumulators r0.., odd rows into r(odd).., each row's weight broadcast
// into r(bc) (even) and r(bc+1) (odd); the two sets added at the end.
func axpyRowsX86(a *asm, name, r string, lanes, maxNv, odd, bc int) {
	vb := 4 * lanes // bytes per register
	fmt.Fprintf(a, "\n// func %s(dst, a, m *float32, rows, strideBytes, nvec int)\n", name)
	fmt.Fprintf(a, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
	a.l("MOVQ dst+0(FP), DI")
	a.l("MOVQ a+8(FP), SI")
	a.l("MOVQ m+16(FP), R8")
	a.l("MOVQ rows+24(FP), CX")
	a.l("MOVQ strideBytes+32(FP), DX")
	a.l("MOVQ nvec+40(FP), R9")
	for nv := 1; nv <= maxNv; nv++ {
		a.l("CMPQ R9, $%d", nv)
		a.l("JEQ ar%d", nv)
	}
	a.l("JMP ardone")
	for nv := 1; nv <= maxNv; nv++ {
		nc := nv * 16 / lanes // registers per row
		a.label(fmt.Sprintf("ar%d", nv))
		for v := 0; v < 2*nc; v++ { // even rows' accumulators, then odd rows'
			x := v%nc + odd*(v/nc)
			a.l("VXORPS %s%d, %s%d, %s%d", r, x, r, x, r, x)
		}
		a.label(fmt.Sprintf("ar%dpair", nv))
		a.l("CMPQ CX, $2")
		a.l("JLT ar%dlast", nv)
		a.l("VBROADCASTSS (SI), %s%d", r, bc)
		a.l("VBROADCASTSS 4(SI), %s%d", r, bc+1)
		for v := 0; v < nc; v++ {
			a.l("VFMADD231PS %d(R8), %s%d, %s%d", vb*v, r, bc, r, v)
			a.l("VFMADD231PS %d(R8)(DX*1), %s%d, %s%d", vb*v, r, bc+1, r, odd+v)
		}
		a.l("ADDQ $8, SI")
		a.l("LEAQ (R8)(DX*2), R8")
		a.l("SUBQ $2, CX")
		a.l("JMP ar%dpair", nv)
		a.label(fmt.Sprintf("ar%dlast", nv))
		a.l("TESTQ CX, CX")
		a.l("JEQ ar%dstore", nv)
		a.l("VBROADCASTSS (SI), %s%d", r, bc)
		for v := 0; v < nc; v++ {
			a.l("VFMADD231PS %d(R8), %s%d, %s%d", vb*v, r, bc, r, v)
		}
		a.label(fmt.Sprintf("ar%dstore", nv))
		for v := 0; v < nc; v++ {
			a.l("VADDPS %s%d, %s%d, %s%d", r, odd+v, r, v, r, v)
			a.l("VMOVUPS %s%d, %d(DI)", r, v, vb*v)
		}
		a.l("JMP ardone")
	}
	a.label("ardone")
	a.l("VZEROUPPER")
	a.l("RET")
}
