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
// column in Z24, Z25 against the row's 4 signed bytes, broadcast once a
// step into Z26..Z31 for both: VPDPBUSD's own embedded broadcast loaded
// them twice, and the loads were the bound on an AMD EPYC (Zen 5): go test
// -bench Int8Gemm/avx512-int8 ./kernels, benchstat over 6 alternating
// runs, +6–9% on the three training shapes; the sx broadcast likewise in
// a register, and the corrections broadcast twice rather than copied,
// were no faster there or slower); then
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
			a.l("VPBROADCASTD %d(AX), Z%d", 32*i+4*r, 26+i)
		}
		for i := 0; i < xr; i++ {
			a.l("VPDPBUSD Z%d, Z24, Z%d", 26+i, 2*i)
			a.l("VPDPBUSD Z%d, Z25, Z%d", 26+i, 2*i+1)
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

	// The quantizer: quantBlock's rule and bits. Sixteen blocks at a time
	// (a row's whole groups of 16): their max|x| as the integer max of the
	// |x| bits (the float order for non-negative floats; Inf and NaN above
	// every finite value), the 16 partial-max vectors reduced to one by a
	// transpose network (quantReduce: two shuffles and one max a vector),
	// d and 1/d by one division each for all 16, then each block's values
	// quantized and its partial sums kept, the 16 reduced the same way to
	// the corrections; the next group's lines are prefetched meanwhile. One
	// block at a time (below) took 23 GB/s of X on a Zen 5 core whether X
	// was in L2 or not: each block's two reduction trees and two divisions
	// made a long chain. This takes 44–45 GB/s from L2 and L3 and as much as
	// memory gives from DRAM (20–23 GB/s; go test -bench Int8GemmQuant
	// ./kernels, its 256 and 4096 rows; without the prefetch less: the
	// GEMM on smollm2's down shape was 11% slower); in the GEMM's benchmark
	// (X from memory) the down shape gains 2.8%, an int8 eval at one thread
	// 1.5%. A group holding an Inf or a NaN, and a row's last nb mod 16
	// blocks, take the one-block loop.
	fmt.Fprintln(&a)
	fmt.Fprintln(&a, "// func quantInt8AVX512(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)")
	fmt.Fprintln(&a, "// Block b of src: d = max|x|/127, q = x·(1/d) rounded to even, −128·Σq, to q, sc and corr + b·stride;")
	fmt.Fprintln(&a, "// zeros where 1/d overflows (an all-zero block), zeros and a NaN scale where the block holds an Inf or a NaN.")
	fmt.Fprintln(&a, "// The frame: a group's 16 scales (0), their 1/d (64), their corrections (128).")
	fmt.Fprintln(&a, "TEXT ·quantInt8AVX512(SB), NOSPLIT, $192-48")
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
	a.l("VMOVDQU32 ·quantInt8Perm16<>(SB), Z26")
	a.label("qgroup")
	a.l("CMPQ CX, $16")
	a.l("JLT qtail")
	for i := 0; i < 16; i++ {
		a.l("VPANDD %d(SI), Z31, Z16", 128*i)
		a.l("VPANDD %d(SI), Z31, Z17", 128*i+64)
		a.l("VPMAXUD Z17, Z16, Z%d", i)
	}
	quantReduce(&a, "VPMAXUD")
	a.l("VPCMPUD $5, Z27, Z0, K1") // max|x| bits ≥ +Inf's: an Inf or a NaN
	a.l("KORTESTW K1, K1")
	a.l("JNE qslow")
	a.l("VDIVPS Z30, Z0, Z1") // d
	a.l("VDIVPS Z1, Z29, Z2") // 1/d
	a.l("VCMPPS $1, Z27, Z2, K2")
	a.l("VMOVAPS.Z Z1, K2, Z1") // 0 where 1/d overflows: its values x·0
	a.l("VMOVAPS.Z Z2, K2, Z2")
	a.l("VMOVUPS Z1, (SP)")
	a.l("VMOVUPS Z2, 64(SP)")
	for i := 0; i < 16; i++ {
		a.l("PREFETCHT0 %d(SI)", 2048+128*i) // the next group's lines, while this one computes
		a.l("PREFETCHT0 %d(SI)", 2048+128*i+64)
		a.l("VBROADCASTSS %d(SP), Z16", 64+4*i)
		a.l("VMULPS %d(SI), Z16, Z17", 128*i)
		a.l("VMULPS %d(SI), Z16, Z18", 128*i+64)
		a.l("VCVTPS2DQ Z17, Z17")
		a.l("VCVTPS2DQ Z18, Z18")
		a.l("VPADDD Z18, Z17, Z%d", i)
		a.l("VPMOVSDB Z17, X17")
		a.l("VPMOVSDB Z18, X18")
		a.l("VMOVDQU32 X17, (DI)")
		a.l("VMOVDQU32 X18, 16(DI)")
		a.l("MOVL %d(SP), AX", 4*i)
		a.l("MOVL AX, (R8)")
		a.l("ADDQ DX, DI")
		a.l("ADDQ DX, R8")
	}
	quantReduce(&a, "VPADDD")
	a.l("VPSLLD $7, Z0, Z0")
	a.l("VPSUBD Z0, Z28, Z0") // −128·Σq
	a.l("VMOVDQU32 Z0, 128(SP)")
	for i := 0; i < 16; i++ {
		a.l("MOVL %d(SP), AX", 128+4*i)
		a.l("MOVL AX, (R9)")
		a.l("ADDQ DX, R9")
	}
	a.l("ADDQ $2048, SI")
	a.l("SUBQ $16, CX")
	a.l("JMP qgroup")
	a.label("qslow") // a group holding an Inf or a NaN: one block at a time
	a.l("MOVQ $16, R10")
	a.l("MOVQ $1, R11")
	a.l("SUBQ $16, CX")
	a.l("JMP qloop")
	a.label("qtail")
	a.l("TESTQ CX, CX")
	a.l("JEQ qdone")
	a.l("MOVQ CX, R10")
	a.l("XORQ R11, R11")
	a.l("XORQ CX, CX")
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
	a.l("DECQ R10")
	a.l("JNE qloop")
	a.l("TESTQ R11, R11")
	a.l("JNE qgroup")
	a.label("qdone")
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
	fmt.Fprintln(&a)
	for i, e := range quantReducePerm() {
		a.l("DATA ·quantInt8Perm16<>+%d(SB)/4, $%d", 4*i, e)
	}
	a.l("GLOBL ·quantInt8Perm16<>(SB), RODATA|NOPTR, $64")
	return a.Bytes()
}

// quantReduce emits the quantizer's transpose network: Z0..Z15 (block i's
// 16 partial results in Z i) reduced by op (VPMAXUD, VPADDD) to Z0, lane i
// block i's whole result (quantReducePerm's order fixed by VPERMD), through
// Z16, Z17: 16 to 8 vectors by 256-bit halves, to 4 by 128-bit lanes, to 2
// and 1 within lanes.
func quantReduce(a *asm, op string) {
	for _, lv := range quantReduceLevels {
		for k := 0; k < lv.n; k++ {
			a.l("%s $0x%02x, Z%d, Z%d, Z16", lv.shuf, lv.imm[0], 2*k+1, 2*k)
			a.l("%s $0x%02x, Z%d, Z%d, Z17", lv.shuf, lv.imm[1], 2*k+1, 2*k)
			a.l("%s Z17, Z16, Z%d", op, k)
		}
	}
	a.l("VPERMD Z0, Z26, Z0")
}

// quantReduceLevels are quantReduce's levels: n pairs of vectors, each
// pair's two shuffles.
var quantReduceLevels = []struct {
	shuf string
	n    int
	imm  [2]int
}{{"VSHUFI32X4", 8, [2]int{0x44, 0xee}}, {"VSHUFI32X4", 4, [2]int{0x88, 0xdd}}, {"VSHUFPS", 2, [2]int{0x44, 0xee}}, {"VSHUFPS", 1, [2]int{0x88, 0xdd}}}

// quantReducePerm is VPERMD's index putting block i's result in lane i:
// the network run on each lane's block (both shuffled operands of every
// op must come from one block: checked).
func quantReducePerm() [16]int {
	var v [16][16]int // v[r][lane]: the block whose partial result lane holds
	for r := range v {
		for l := range v[r] {
			v[r][l] = r
		}
	}
	// shuf is the instruction's lane selection (Intel: dst from src1 =
	// Z2k's elements, then src2 = Z2k+1's).
	shuf := func(name string, imm int, s1, s2 [16]int) (d [16]int) {
		for l := 0; l < 16; l++ {
			if name == "VSHUFI32X4" { // 128-bit lanes: 0, 1 from src1, 2, 3 from src2
				q := l / 4
				src := s1
				if q >= 2 {
					src = s2
				}
				d[l] = src[4*(imm>>(2*q)&3)+l%4]
			} else { // VSHUFPS: within each 128-bit lane
				e := l % 4
				src := s1
				if e >= 2 {
					src = s2
				}
				d[l] = src[l/4*4+imm>>(2*e)&3]
			}
		}
		return d
	}
	for _, lv := range quantReduceLevels {
		for k := 0; k < lv.n; k++ {
			x := shuf(lv.shuf, lv.imm[0], v[2*k], v[2*k+1])
			y := shuf(lv.shuf, lv.imm[1], v[2*k], v[2*k+1])
			if x != y {
				panic("quantReduce: an op combines two blocks' partial results")
			}
			v[k] = x
		}
	}
	var perm [16]int
	for l, b := range v[0] {
		perm[b] = l
	}
	return perm
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
// gemmInt8AVX2 is int8Gemm16's x16 kind: 6×16 tiles (two groups of 8
// rows), the fp32 accumulators in the frame. On a Zen 3 core (a product
// of 2048 rows at one thread, benchstat over 10 alternating runs) it is
// 1.10–1.12× the 6×8 tile it replaced, whose six sums and six fp32
// accumulators filled the registers and whose every store was
// VMASKMOVPS: the plain stores give 0–10% of that (10% at K = 576, none
// at 1536), the wider tile the rest.
func int8GemmAVX2() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	fmt.Fprintln(&a)
	int8LaneBits(&a)
	fmt.Fprintln(&a)
	int8Gemm16(&a, "gemmInt8AVX2", "x16")
	int8QuantAVX2(&a, "quantInt8X16AVX2", "x16")
	int8PackAVX2(&a, "packInt8W16AVX2", true)
	q8RowAVX2(&a)
	int8NibblesAVX2(&a)
	return a.Bytes()
}

// int8NibblesAVX2 emits int8Row's nibble decoders (NF4's codes, Q4_0's
// values) for every x86 int8 path: AVX2 (VEX) instructions on xmm alone.
func int8NibblesAVX2(a *asm) {
	// The nibble decoders: 16 bytes of nibbles a step, split into the
	// low and high nibbles (X0, X1) and looked up in the table (X15).
	nibbles := func(name, count, doc string, srcOff, srcStep int, out func()) {
		fmt.Fprintln(a)
		fmt.Fprintf(a, "// func %s(dst, src *byte, %s int, tab *byte)\n// %s\n", name, count, doc)
		fmt.Fprintf(a, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
		a.l("MOVQ dst+0(FP), DI")
		a.l("MOVQ src+8(FP), SI")
		a.l("MOVQ %s+16(FP), CX", count)
		a.l("MOVQ tab+24(FP), AX")
		a.l("VMOVDQU (AX), X15")
		a.l("MOVL $0x0f0f0f0f, AX")
		a.l("VMOVD AX, X14")
		a.l("VPBROADCASTD X14, X14") // AVX2's form: from a register it is AVX-512's
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
	nibbles("nf4Int8AVX2", "n", "dst[2t] = tab[src[t]>>4], dst[2t+1] = tab[src[t]&15] for t < 16·n.", 0, 16, func() {
		a.l("VPSHUFB X1, X15, X2")
		a.l("VPSHUFB X0, X15, X3")
		a.l("VPUNPCKLBW X3, X2, X4")
		a.l("VPUNPCKHBW X3, X2, X5")
		a.l("VMOVDQU X4, (DI)")
		a.l("VMOVDQU X5, 16(DI)")
	})
	// Q4_0's blocks (18 bytes: the scale, then 16 bytes of nibbles) to
	// their 32 values − 8: the low nibbles, then the high ones.
	nibbles("q4Int8AVX2", "nb", "Block b: dst[32b+t] = tab[src[18b+2+t]&15], dst[32b+16+t] = tab[src[18b+2+t]>>4] for t < 16.", 2, 18, func() {
		a.l("VPSHUFB X0, X15, X2")
		a.l("VPSHUFB X1, X15, X3")
		a.l("VMOVDQU X2, (DI)")
		a.l("VMOVDQU X3, 16(DI)")
	})
}

// q8RowAVX2 emits q8Int8AVX2, int8Row's Q8_0 case for every x86 int8 path
// with a GEMM: each block's 32 values copied and its fp16 scale converted
// (VCVTPH2PS), where Go's copy, a call a block, took 7.7% of an int8 eval
// at one thread (lowrank eval, WikiSQL's validation split, Zen 5). Gathering
// the packed layout straight from the rows' blocks instead (skipping this
// copy) was slower: 7.2–8.0 s against 6.3–7.0, the 32 rows' cold lines
// read by gathers where this reads each row in turn.
func q8RowAVX2(a *asm) {
	fmt.Fprintln(a)
	fmt.Fprintln(a, "// func q8Int8AVX2(dst *byte, sc *float32, src *byte, nb int)")
	fmt.Fprintln(a, "// Block b of src (34 bytes): its values to dst[32b:32b+32], its scale as fp32 to sc[b].")
	fmt.Fprintln(a, "TEXT ·q8Int8AVX2(SB), NOSPLIT, $0-32")
	a.l("MOVQ dst+0(FP), DI")
	a.l("MOVQ sc+8(FP), R8")
	a.l("MOVQ src+16(FP), SI")
	a.l("MOVQ nb+24(FP), CX")
	a.l("TESTQ CX, CX")
	a.l("JEQ q8done")
	a.label("q8loop")
	a.l("VMOVDQU 2(SI), Y0")
	a.l("MOVWLZX (SI), AX")
	a.l("VMOVD AX, X1")
	a.l("VCVTPH2PS X1, X1")
	a.l("VMOVDQU Y0, (DI)")
	a.l("VMOVSS X1, (R8)")
	a.l("ADDQ $34, SI")
	a.l("ADDQ $32, DI")
	a.l("ADDQ $4, R8")
	a.l("DECQ CX")
	a.l("JNE q8loop")
	a.l("VZEROUPPER")
	a.label("q8done")
	a.l("RET")
}

// int8GemmAVXVNNI emits the AVX-VNNI path's GEMM (gemmInt8AVXVNNI, and
// gemmInt8AVXVNNIEmu with VPDPBUSD emulated: see avxvnni.go) and its
// quantizer for the VNNI X layout (quantInt8AVX2).
func int8GemmAVXVNNI() []byte {
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	fmt.Fprintln(&a)
	int8LaneBits(&a)
	a.l("DATA ·int8QuantPerm<>+0(SB)/4, $0")
	for l, v := range []int{4, 1, 5, 2, 6, 3, 7} {
		a.l("DATA ·int8QuantPerm<>+%d(SB)/4, $%d", 4*(l+1), v)
	}
	a.l("GLOBL ·int8QuantPerm<>(SB), RODATA|NOPTR, $32")
	for l := 0; l < 4; l++ {
		a.l("DATA ·int8Bias<>+%d(SB)/8, $0x8080808080808080", 8*l)
	}
	a.l("GLOBL ·int8Bias<>(SB), RODATA|NOPTR, $32")
	fmt.Fprintln(&a)
	int8Gemm16(&a, "gemmInt8AVXVNNI", "vnni")
	fmt.Fprintln(&a)
	int8Gemm16(&a, "gemmInt8AVXVNNIEmu", "vnniemu")
	int8QuantAVX2(&a, "quantInt8AVX2", "bytes")
	int8QuantAVX2(&a, "quantUnitsAVX2", "unit")
	int8PackAVX2(&a, "packInt8G8AVX2", false)
	return a.Bytes()
}

// int8LaneBits is the table of lane l's bit 1<<l (the last region's
// column mask as lanes).
func int8LaneBits(a *asm) {
	for l := 0; l < 8; l++ {
		a.l("DATA ·int8LaneBits<>+%d(SB)/4, $%d", 4*l, 1<<l)
	}
	a.l("GLOBL ·int8LaneBits<>(SB), RODATA|NOPTR, $32")
}

// int8Gemm16 emits a 6×16-tile int8 GEMM kernel on ymm: kind "vnni"
// AVX-VNNI's, "vnniemu" the same with VPDPBUSD emulated, "x16" AVX2's.
// For each of nsl W regions (per block 4 groups of 8 rows' steps, then 32
// scales: int8GemmG8Block's 8 steps of 4 bytes, or int8GemmW16Block's 16
// of int16 pairs) and each pair of its groups, a 6×16 tile: per block, the
// int32 sums Y0..Y11 (row i, group h: Y2i+h) over the steps, each the
// groups' step (Y12, Y13) against the row's broadcast (Y14): VPDPBUSD
// from the rows' corrections, or VPMADDWD (into Y15) and VPADDD. Twelve
// independent sums: VPDPBUSD's latency (5 cycles on Intel's cores) at two
// a cycle asks for ten, and two W loads serve twelve products where a 6×8
// tile's one serves six. The fp32 accumulators live in the frame
// (acc = fma(float32(S), sw·sx, acc) by VFMADD213PS from memory, once a
// block); then C = alpha·acc or C += alpha·acc for the valid rows, the last
// region's columns masked.
func int8Gemm16(a *asm, name, kind string) {
	const xr = 6
	x16 := kind == "x16"
	// W: a block holds 4 groups of gw bytes, then the 32 scales; X: a row's
	// values at xvr·i, its scale at xs + 4i, its correction at xc + 4i, a
	// block xb bytes.
	steps, gw, xvr, xs, xc, xb := 8, 256, 32, 32*xr, 36*xr, 40*xr
	if x16 {
		steps, gw, xvr, xs, xc, xb = 16, 512, 64, 64*xr, -1, 68*xr
	}
	wb := 4*gw + 128
	const spill = 64 * xr // the emulation's 32 bytes, after the accumulators
	acc := func(i, h int) int { return 64*i + 32*h }
	int8GemmEntryFrame(a, name, spill+32)
	a.l("MOVQ R13, R9")
	a.l("IMULQ $%d, R9", wb) // bytes of a W region
	a.label("region")
	a.l("MOVL $-1, R14")
	a.l("CMPQ BX, $1")
	a.l("JNE regionmask")
	a.l("MOVL mask+60(FP), R14")
	a.label("regionmask")
	for p := 0; p < 2; p++ {
		tile := fmt.Sprintf("p%d", p)
		a.l("VXORPS Y15, Y15, Y15")
		for i := 0; i < xr; i++ {
			for h := 0; h < 2; h++ {
				a.l("VMOVUPS Y15, %d(SP)", acc(i, h))
			}
		}
		a.l("MOVQ SI, AX")
		a.l("LEAQ %d(DI), R12", 2*gw*p)
		a.l("MOVQ R13, CX")
		a.label("block" + tile)
		for i := 0; i < xr && !x16; i++ { // the sums start from the rows' corrections
			a.l("VPBROADCASTD %d(AX), Y%d", xc+4*i, 2*i)
			a.l("VMOVDQA Y%d, Y%d", 2*i, 2*i+1)
		}
		for t := 0; t < steps; t++ {
			a.l("VMOVDQU %d(R12), Y12", 32*t)
			a.l("VMOVDQU %d(R12), Y13", gw+32*t)
			for i := 0; i < xr; i++ {
				a.l("VPBROADCASTD %d(AX), Y14", xvr*i+4*t)
				for h := 0; h < 2; h++ {
					s := 2*i + h
					switch {
					case !x16:
						dpbusd(a, kind == "vnniemu", s, 12+h, 14, 15, fmt.Sprintf("%d(SP)", spill))
					case t == 0:
						a.l("VPMADDWD Y%d, Y14, Y%d", 12+h, s)
					default:
						a.l("VPMADDWD Y%d, Y14, Y15", 12+h)
						a.l("VPADDD Y15, Y%d, Y%d", s, s)
					}
				}
			}
		}
		for i := 0; i < xr; i++ {
			a.l("VBROADCASTSS %d(AX), Y14", xs+4*i)
			for h := 0; h < 2; h++ {
				s := 2*i + h
				a.l("VCVTDQ2PS Y%d, Y%d", s, s)
				a.l("VMULPS %d(R12), Y14, Y15", 4*gw+32*(2*p+h)-2*gw*p) // group 2p+h's 8 scales (R12 is 2·gw·p into the block)
				a.l("VFMADD213PS %d(SP), Y15, Y%d", acc(i, h), s)
				a.l("VMOVUPS Y%d, %d(SP)", s, acc(i, h))
			}
		}
		a.l("ADDQ $%d, AX", xb)
		a.l("ADDQ $%d, R12", wb)
		a.l("DECQ CX")
		a.l("JNE block" + tile)
		// Store: every column (plain moves), or the last region's masked
		// (VMASKMOVPS to memory is slow on AMD's cores: on Zen 3 9% of the
		// kernel's samples when every store took it).
		a.l("VBROADCASTSS alpha+56(FP), Y14")
		a.l("LEAQ %d(DX), R15", 64*p)
		a.l("CMPL R14, $-1")
		a.l("JNE masked" + tile)
		store := func(masked bool) {
			v := "f"
			if masked {
				v = "m"
			}
			for i := 0; i < xr; i++ {
				if i > 0 {
					a.l("CMPQ R10, $%d", i)
					a.l("JLE done" + tile)
				}
				for h := 0; h < 2; h++ {
					a.l("VMULPS %d(SP), Y14, Y%d", acc(i, h), h)
				}
				a.l("TESTQ R11, R11")
				a.l("JEQ set%s%s%d", v, tile, i)
				for h := 0; h < 2; h++ {
					if masked {
						a.l("VMASKMOVPS %d(R15), Y%d, Y15", 32*h, 12+h)
						a.l("VADDPS Y15, Y%d, Y%d", h, h)
					} else {
						a.l("VADDPS %d(R15), Y%d, Y%d", 32*h, h, h)
					}
				}
				a.label(fmt.Sprintf("set%s%s%d", v, tile, i))
				for h := 0; h < 2; h++ {
					if masked {
						a.l("VMASKMOVPS Y%d, Y%d, %d(R15)", h, 12+h, 32*h)
					} else {
						a.l("VMOVUPS Y%d, %d(R15)", h, 32*h)
					}
				}
				a.l("ADDQ R8, R15")
			}
		}
		store(false)
		a.l("JMP done" + tile)
		a.label("masked" + tile)
		// The groups' lane masks from their 8 bits each of the region's mask.
		a.l("MOVL R14, CX")
		if p > 0 {
			a.l("SHRL $16, CX")
		}
		for h := 0; h < 2; h++ {
			m := 12 + h
			if h > 0 {
				a.l("SHRL $8, CX")
			}
			a.l("VMOVD CX, X%d", m)
			a.l("VPBROADCASTD X%d, Y%d", m, m)
			a.l("VPAND ·int8LaneBits<>(SB), Y%d, Y%d", m, m)
			a.l("VPCMPEQD ·int8LaneBits<>(SB), Y%d, Y%d", m, m)
		}
		store(true)
		a.label("done" + tile)
	}
	a.l("ADDQ R9, DI")
	a.l("ADDQ $128, DX")
	a.l("DECQ BX")
	a.l("JNE region")
	a.l("VZEROUPPER")
	a.l("RET")
}

// int8PackAVX2 emits a W packer (int8PackFn) for the 8-row groups of
// int8Gemm16's layouts: x16 (int8GemmW16Block: each row's block sign-
// extended to int16 by VPMOVSXBW, its pairs one dword each) or g8
// (int8GemmG8Block: each row's block of 8 dwords, +128). Per block and
// group the 8 rows' dwords are transposed, 8×8 at a time (unpack 32-bit,
// unpack 64-bit, VPERM2I128), so that each step holds the 8 rows' dword;
// then the 32 rows' scales. Row j's values start at rows + idx[j], its
// scales at sc + idx[32+j] (bytes).
func int8PackAVX2(a *asm, name string, x16 bool) {
	gw, wb := 256, 1152
	if x16 {
		gw, wb = 512, 2176
	}
	fmt.Fprintln(a)
	fmt.Fprintf(a, "// func %s(dst, rows *byte, sc *float32, kb int, idx *[64]int32)\n", name)
	fmt.Fprintf(a, "TEXT ·%s(SB), NOSPLIT, $0-40\n", name)
	a.l("MOVQ dst+0(FP), DI")
	a.l("MOVQ rows+8(FP), SI")
	a.l("MOVQ sc+16(FP), DX")
	a.l("MOVQ kb+24(FP), CX")
	a.l("MOVQ idx+32(FP), AX")
	// The transpose of Y0..Y7 (row j's dwords in Yj), each of the 8
	// results stored at off + 32·t as it is made.
	transpose := func(off int) {
		for k := 0; k < 4; k++ {
			a.l("VPUNPCKLDQ Y%d, Y%d, Y%d", 2*k+1, 2*k, 8+2*k)
			a.l("VPUNPCKHDQ Y%d, Y%d, Y%d", 2*k+1, 2*k, 9+2*k)
		}
		for k := 0; k < 2; k++ { // rows 4k..4k+3: elements 0,4 / 1,5 / 2,6 / 3,7 per lane
			lo, hi := 8+4*k, 10+4*k
			a.l("VPUNPCKLQDQ Y%d, Y%d, Y%d", hi, lo, 4*k)
			a.l("VPUNPCKHQDQ Y%d, Y%d, Y%d", hi, lo, 4*k+1)
			a.l("VPUNPCKLQDQ Y%d, Y%d, Y%d", hi+1, lo+1, 4*k+2)
			a.l("VPUNPCKHQDQ Y%d, Y%d, Y%d", hi+1, lo+1, 4*k+3)
		}
		for t := 0; t < 4; t++ {
			a.l("VPERM2I128 $0x20, Y%d, Y%d, Y8", t+4, t)
			a.l("VMOVDQU Y8, %d(DI)", off+32*t)
			a.l("VPERM2I128 $0x31, Y%d, Y%d, Y9", t+4, t)
			a.l("VMOVDQU Y9, %d(DI)", off+32*(t+4))
		}
	}
	a.label("pblock")
	for g := 0; g < 4; g++ {
		halves := 1
		if x16 {
			halves = 2
		}
		for h := 0; h < halves; h++ {
			for j := 0; j < 8; j++ {
				a.l("MOVL %d(AX), R9", 4*(8*g+j))
				if x16 {
					a.l("VPMOVSXBW %d(SI)(R9*1), Y%d", 16*h, j)
				} else {
					a.l("VMOVDQU (SI)(R9*1), Y%d", j)
					a.l("VPXOR ·int8Bias<>(SB), Y%d, Y%d", j, j)
				}
			}
			transpose(gw*g + 256*h)
		}
	}
	for j := 0; j < 32; j++ {
		a.l("MOVL %d(AX), R9", 128+4*j)
		a.l("MOVL (DX)(R9*1), R10")
		a.l("MOVL R10, %d(DI)", 4*gw+4*j)
	}
	a.l("ADDQ $32, SI")
	a.l("ADDQ $4, DX")
	a.l("ADDQ $%d, DI", wb)
	a.l("DECQ CX")
	a.l("JNE pblock")
	a.l("VZEROUPPER")
	a.l("RET")
}

// int8QuantAVX2 emits an AVX2 quantizer (int8QuantFn) named name: kind
// "x16" writes each block's values as int16 and no correction (corr is
// nil), "bytes" as bytes with the correction −128·Σq, "unit" an int8Unit
// (stride 96): the bytes, each lane's correction −128·Σ of its 4 values
// (8 int32 at corr) and the scale 8 times (at sc).
func int8QuantAVX2(a *asm, name, kind string) {
	x16, unit := kind == "x16", kind == "unit"
	// quantBlock's arithmetic (the same roundings): a block holding an
	// Inf or a NaN (x−x is NaN) gets zeros and a NaN scale, one whose 1/d
	// overflows (max|x| zero or subnormal) zeros and a zero scale.
	fmt.Fprintln(a)
	fmt.Fprintf(a, "// func %s(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)\n", name)
	fmt.Fprintf(a, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
	a.l("MOVQ q+0(FP), DI")
	a.l("MOVQ sc+8(FP), R8")
	if !x16 {
		a.l("MOVQ corr+16(FP), R9")
		a.l("VMOVDQU ·int8QuantPerm<>(SB), Y13")
	}
	a.l("MOVQ src+24(FP), SI")
	a.l("MOVQ nb+32(FP), CX")
	a.l("MOVQ stride+40(FP), DX")
	for _, c := range []struct {
		v uint32
		y int
	}{{0x7fffffff, 15}} { // |x| mask
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
	// x·(1/d), rounded, then to the nearest integer, ties to even
	// (VCVTPS2DQ under Go's MXCSR): quantBlock's 1.5·2²³ sum, and within
	// ±127 (|x·(1/d)| ≤ 127.00002), so its clamp changes nothing. (It once
	// ran here as that sum and a clamp: four instructions where this is one;
	// go test -bench Int8GemmQuant ./kernels: avx2-vnni 14.2 → 20 GB/s.)
	for k := 0; k < 4; k++ {
		a.l("VMULPS Y7, Y%d, Y%d", k, k)
		a.l("VCVTPS2DQ Y%d, Y%d", k, k)
	}
	if unit { // the lanes' corrections: −128·Σ of each 4, in lane order
		a.l("VPHADDD Y1, Y0, Y4")
		a.l("VPHADDD Y3, Y2, Y5")
		a.l("VPHADDD Y5, Y4, Y4") // lanes 0 2 4 6 | 1 3 5 7
		a.l("VPERMD Y4, Y13, Y4")
		a.l("VPSLLD $7, Y4, Y4")
		a.l("VPXOR Y5, Y5, Y5")
		a.l("VPSUBD Y4, Y5, Y4")
		a.l("VMOVDQU Y4, (R9)")
	}
	if kind == "bytes" { // the correction: −128·Σq
		a.l("VPADDD Y1, Y0, Y4")
		a.l("VPADDD Y3, Y2, Y5")
		a.l("VPADDD Y5, Y4, Y4")
		a.l("VEXTRACTI128 $1, Y4, X5")
		a.l("VPADDD X5, X4, X4")
		a.l("VPSHUFD $0x4e, X4, X5")
		a.l("VPADDD X5, X4, X4")
		a.l("VPSHUFD $0xb1, X4, X5")
		a.l("VPADDD X5, X4, X4")
		a.l("VPSLLD $7, X4, X4")
		a.l("VPXOR X5, X5, X5")
		a.l("VPSUBD X4, X5, X4")
		a.l("VMOVD X4, (R9)")
	}
	a.l("VPACKSSDW Y1, Y0, Y0")
	a.l("VPACKSSDW Y3, Y2, Y2")
	if x16 {
		a.l("VPERMQ $0xd8, Y0, Y0")
		a.l("VPERMQ $0xd8, Y2, Y2")
		a.l("VMOVDQU Y0, (DI)")
		a.l("VMOVDQU Y2, 32(DI)")
	} else { // bytes, each lane's dwords back in order: 0 4 1 5 2 6 3 7
		a.l("VPACKSSWB Y2, Y0, Y0")
		a.l("VPERMD Y0, Y13, Y0")
		a.l("VMOVDQU Y0, (DI)")
	}
	if unit {
		a.l("VBROADCASTSS X6, Y4")
		a.l("VMOVUPS Y4, (R8)")
	} else {
		a.l("VMOVSS X6, (R8)")
	}
	a.label("qnext")
	a.l("ADDQ $128, SI")
	a.l("ADDQ DX, DI")
	a.l("ADDQ DX, R8")
	if !x16 {
		a.l("ADDQ DX, R9")
	}
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
		switch kind {
		case "x16":
			a.l("VMOVDQU Y0, 32(DI)")
			a.l("MOVL $0x%08x, (R8)", c.sc)
		case "bytes":
			a.l("MOVL $0, (R9)")
			a.l("MOVL $0x%08x, (R8)", c.sc)
		case "unit":
			a.l("VMOVDQU Y0, (R9)")
			a.l("MOVL $0x%08x, AX", c.sc)
			a.l("VMOVD AX, X1")
			a.l("VPBROADCASTD X1, Y1")
			a.l("VMOVDQU Y1, (R8)")
		}
		a.l("JMP qnext")
	}
}

// int8GemmEntry starts an int8 GEMM kernel (int8GemmFn): kb in R13, x in
// SI, w in DI, c in DX, ldc in bytes in R8, nsl in BX, rows in R10,
// accumulate in R11.
func int8GemmEntry(a *asm, name string) { int8GemmEntryFrame(a, name, 0) }

// int8GemmEntryFrame is int8GemmEntry with a local frame of the given
// bytes (at 0(SP)).
func int8GemmEntryFrame(a *asm, name string, frame int) {
	fmt.Fprintf(a, "// func %s(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool)\n", name)
	fmt.Fprintf(a, "TEXT ·%s(SB), NOSPLIT, $%d-65\n", name, frame)
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
