package main

import "fmt"

// int8AVX512 writes the int8 dot kernels (see kernels/int8.go): one
// quantized X row against rows of a Q8_0, Q4_0 or NF4 weight, int8RowsPer
// rows at a time and then one (each row one fp32 chain per lane, in unit
// order), with VPDPBUSD on ymm (AVX512_VNNI + AVX512VL). Constants: Y15
// 0x80 bytes, Y14 0x0f bytes, Y13 the nibble table (NF4) or the nibbles'
// shifts (Q4_0), Y12 1/127.
func int8AVX512() []byte { return int8Kernels("VNNI") }

// int8AVX2 writes the same kernels for AVX2 CPUs without VNNI: the
// integer dot of signed bytes as llama.cpp's AVX2 code takes it, |w| (as
// unsigned) times x·sign(w) by VPMADDUBSW (no pair reaches its
// saturation: |w| ≤ 128, |x| ≤ 127) and pairs of those summed by
// VPMADDWD: each lane the same integer as VPDPBUSD's, so the same bits.
// The tables then hold the nibbles' signed values. Y15 holds 16-bit ones.
// Q8_0's and Q4_0's fp16 block scales come from a table of all 65536
// conversions (the last argument, R14), a load rather than VPBROADCASTW
// and VCVTPH2PS: the block's arithmetic on Zen 3's four vector pipes is
// the bound, not the loads. Four rows at a time; Q4_0's nibbles by
// VBROADCASTI128 and VPSRLVQ (as VNNI's now are).
func int8AVX2() []byte { return int8Kernels("AVX2") }

// int8AVXVNNI writes the VNNI kernels for AVX-VNNI (VPDPBUSD's VEX form:
// see avxvnni.go), int8AVXVNNIEmu the same with it emulated by AVX2 (the
// tests' stand-in; names ending in Emu).
func int8AVXVNNI() []byte    { return int8Kernels("AVXVNNI") }
func int8AVXVNNIEmu() []byte { return int8Kernels("AVXVNNIEmu") }

func int8Kernels(isa string) []byte {
	vnni := isa != "AVX2" // VNNI's form: VPDPBUSD (EVEX, VEX or emulated)
	// VNNI: two rows at a time, at first each fetched 16 KiB ahead of itself
	// into L2 (PREFETCHT1; now the rows' block as one stream, below),
	// measured on the smollm2-135m shape's 210 Q8_0 weights in turn (go
	// test -bench GemvModel ./kernels, one thread). On a Xeon (Sapphire
	// Rapids), with PREFETCHT0: 6.7 GMAC/s unfetched, 10 at 2 rows and
	// 4 KiB, 9.3–9.7 at 4 rows. On an AMD EPYC (Zen 4), PREFETCHT0 gave
	// 8.2–8.9 GB/s of weights at any distance (4–16 KiB) and 2 or 4 rows
	// (NTA the same); PREFETCHT1 gave 14.3–15.3 at 4 KiB, 18.3–19.4 at
	// 8, 19.5–20.1 at 16, 18.9–20.2 at 32, 18.6–20.5 with 4 rows: the L1's
	// few miss buffers held the prefetches, the L2's do not.
	// AVX2 takes four rows at a time. On an AMD EPYC (Zen 3), one thread,
	// go test -bench 'Gemv/.*/q4_0/avx2-int8' ./kernels, GMAC/s from
	// cache (576x1536) and from memory (49152x576): 17.4–17.5 and 18.4 at
	// 2 rows with VPBROADCASTW+VCVTPH2PS and VPSRLW+VINSERTI128; 17.9–18.1
	// and 19.5–19.6 at 4 rows; 19.1–19.3 and 21.4–21.5 with the scale
	// table; 21.7 and 23.7 with VBROADCASTI128+VPSRLVQ (benchstat, 6 runs
	// against the 2-row form: +26% and +29%; Q8_0 +7% and +16%, NF4 +3%
	// and +8%). Q8_0's generation did not follow (−0–5% on one thread,
	// smollm2-135m), so Q8_0 converts its scales again (VCVTPH2PS at 4
	// rows against the table, 6 paired rounds of lowrank generate: 66.9
	// → 69.4 tokens/s, medians). The prefetch distance on Zen 3
	// (GemvModel, Q8_0, one thread, GMAC/s): 6.5 without, 9.9–10.3 at
	// any of 2, 4, 8, 16 and 32 KiB; T0, T2 and NTA the same as T1.
	// Those prefetches, one per row a step, ask for each line of W about
	// twice, out of order; AVX2 now asks for the four rows' block (n
	// contiguous rows) as one stream, each line once or twice, pfSeq bytes
	// ahead: benchstat over 6 alternating runs, GB/s of weights from
	// memory, one thread: GemvModel 11.3 → 14.6 at 2 KiB, 17.4 at 4, 17.5
	// at 8 (+54%; two threads 19.0 → 25.7 at 4 KiB), 49152x576 Q8_0 +54%;
	// Q4_0 and NF4 unchanged (their arithmetic is the bound there, 13–14
	// GB/s from cache as from memory). The VNNI kernels (two rows a step)
	// took the stream too, 16 KiB ahead (the per-row distance Zen 4 wanted
	// above; on Zen 5 4 and 16 KiB measure the same): on an AMD EPYC (Zen
	// 5), benchstat over 6 alternating runs, GB/s of weights from memory,
	// Q8_0 +5% (AVX-512) and +10% (AVX-VNNI) at 49152x576, GemvModel on
	// two threads +21%, Q4_0 +0–5%, NF4 unchanged; lowrank generate on
	// the smollm2-135m shape, 4 alternating rounds, medians, tokens/s: Q8_0
	// 198 → 215 on one thread and 228 → 254 on two, Q4_0 249 → 255 and
	// 300 → 348. A row left alone (n = 1) is fetched pfDist ahead of
	// itself.
	const pfDist = 16384
	pfSeq := 4096
	if vnni {
		pfSeq = 16384
	}
	int8RowsPer := 2
	if !vnni {
		int8RowsPer = 4
	}
	var a asm
	fileHeader(&a, "amd64 && !noasm")
	// Registers: SI X, DI W's first row, CX units (NF4: blocks), DX rows
	// left, R8 ldw, R9 out, R13 the step count; in the loop R10 X's unit.
	// NF4: BX the first row's scales (AVX2: kept in sc's argument slot, BX
	// then the prefetch stream's pointer, as R15 is Q4_0's), R14 their row
	// stride in bytes.
	type row struct {
		w, s, acc string // W's and NF4's scales' addresses of the row's step, its accumulator
	}
	// Up to four rows: W at (R11), (R11)(R8*1), (R12), (R12)(R8*1) with
	// R12 = R11 + 2·ldw; NF4's scales likewise from R15 and AX.
	// The temporaries are shared: renaming keeps the rows apart.
	rows := []row{
		{"(R11)", "(R15)", "Y0"}, {"(R11)(R8*1)", "(R15)(R14*1)", "Y1"},
		{"(R12)", "(AX)", "Y2"}, {"(R12)(R8*1)", "(AX)(R14*1)", "Y3"},
	}
	tmp := [5]string{"Y4", "Y5", "Y6", "Y7", "Y8"}
	x := func(y string) string { return "X" + y[1:] }
	// scaled adds unit u's integer dot (weights in wu, X unit at off(R10))
	// times sx·dw (dw in ymm dw) to acc, by one VFMADD231PS (as llama.cpp's
	// AVX2 code does): against VMULPS+VADDPS, on an AMD EPYC (Zen 3), one
	// thread, benchstat over 12 alternating runs, GB/s of weights from
	// cache (576x1536) and from memory (49152x576): Q4_0 +9% and +8%, NF4
	// +3% and +7%, Q8_0 +2% and +1% (within noise); generation from Q4_0
	// (smollm2-135m, 128 tokens) 131 → 139 tokens/s, medians of 4.
	// corr, where set, is the register holding the lanes' corrections
	// (VNNI's Q4_0: computed once a step for both rows).
	scaled := func(r row, wu, dw string, off int, corr string) {
		s, t := tmp[3], tmp[4]
		if vnni { // wu unsigned: the lanes start from the corrections
			if corr != "" {
				a.l("VMOVDQA %s, %s", corr, s)
			} else {
				a.l("VMOVDQU %d(R10), %s", off+32, s)
			}
			if isa == "VNNI" {
				a.l("VPDPBUSD %d(R10), %s, %s", off, wu, s)
			} else { // Y9..Y11 are free
				dpbusdMem(&a, isa == "AVXVNNIEmu", yn(s), yn(wu), off, 9, 10, 11)
			}
		} else { // wu signed
			a.l("VMOVDQU %d(R10), %s", off, s)
			a.l("VPSIGNB %s, %s, %s", wu, s, s)
			a.l("VPABSB %s, %s", wu, wu)
			a.l("VPMADDUBSW %s, %s, %s", s, wu, s)
			a.l("VPMADDWD Y15, %s, %s", s, s)
		}
		a.l("VCVTDQ2PS %s, %s", s, s)
		a.l("VMULPS %d(R10), %s, %s", off+64, dw, t)
		a.l("VFMADD231PS %s, %s, %s", t, s, r.acc)
	}
	// f16 puts the block's fp16 scale at (w) into tmp[2]: converted, or
	// (AVX2's Q4_0) looked up in the table at R14. The lookup's two loads
	// beat VPBROADCASTW+VCVTPH2PS for Q4_0's 18-byte blocks; for Q8_0's
	// 34-byte blocks the table's lines cost more in the weight stream than
	// the conversion does (generation A/B on Zen 3).
	f16 := func(r row, table bool) {
		if !table {
			a.l("VPBROADCASTW %s, %s", r.w, x(tmp[2]))
			a.l("VCVTPH2PS %s, %s", x(tmp[2]), tmp[2])
			return
		}
		a.l("MOVWLZX %s, BX", r.w)
		a.l("VBROADCASTSS (R14)(BX*4), %s", tmp[2])
	}
	type format struct {
		name, args string
		frame      int
		step       int  // bytes of W per step
		nf4        bool // a step is a block of two units
		body       func(r row)
	}
	q8args := "x *int8Unit, w *byte, units, rows, ldw int, out *float32"
	q4args := "x *int8Unit, w *byte, units, rows, ldw int, out *float32, tab *byte"
	if !vnni {
		q4args = "x *int8Unit, w *byte, units, rows, ldw int, out *float32, f16 *[65536]float32"
	}
	formats := []format{
		{"dotQ8_0" + isa, q8args, 48, 34, false, func(r row) {
			if vnni {
				a.l("VPXOR 2%s, Y15, %s", r.w, tmp[0])
			} else {
				a.l("VMOVDQU 2%s, %s", r.w, tmp[0])
			}
			f16(r, false)
			scaled(r, tmp[0], tmp[2], 0, "")
		}},
		{"dotQ4_0" + isa, q4args, 56, 18, false, func(r row) {
			// The 16 bytes in both halves, the upper half's shifted by 4 (Y13).
			a.l("VBROADCASTI128 2%s, %s", r.w, tmp[0])
			a.l("VPSRLVQ Y13, %s, %s", tmp[0], tmp[0])
			a.l("VPAND Y14, %s, %s", tmp[0], tmp[0])
			if vnni {
				// The nibbles n (0..15) as VPDPBUSD's unsigned operand,
				// the lanes starting from −8·Σx (Y3, q4pre): Σ x·(n−8)
				// exactly, as with the nibble table's n+120 from
				// −128·Σx, one VPSHUFB and one load a row fewer, and the
				// nibbles unpacked as AVX2's are (VBROADCASTI128 and
				// VPSRLVQ, where VMOVDQU, VPSRLW and VINSERTI128 were).
				// On an AMD EPYC (Zen 5), go test -bench
				// 'Gemv$/./q4_0/avx' ./kernels, benchstat over 8
				// alternating runs, GB/s of weights: +7.8% for the first,
				// +12.6% more for the second (22.4 → 27.7 from cache and
				// from memory); AVX2's fp16 scale table instead of
				// VCVTPH2PS −4.7%. The nibble table argument goes unused.
				f16(r, false)
				scaled(r, tmp[0], tmp[2], 0, "Y3")
				return
			}
			f16(r, true)
			// Σ x·(n−8) = Σ n·x − 8·Σx, lane by lane and exact: the
			// nibbles n (0..15) unsigned against X signed (pairs within
			// ±3810: no saturation), plus the unit's corrections −128·Σx
			// shifted to −8·Σx once per step (Y11, q4pre): the integers,
			// so the bits, of the VPSIGNB form, three instructions fewer.
			s, t := tmp[3], tmp[4]
			a.l("VPMADDUBSW (R10), %s, %s", tmp[0], s)
			a.l("VPMADDWD Y15, %s, %s", s, s)
			a.l("VPADDD Y11, %s, %s", s, s)
			a.l("VCVTDQ2PS %s, %s", s, s)
			a.l("VMULPS 64(R10), %s, %s", tmp[2], t)
			a.l("VFMADD231PS %s, %s, %s", t, s, r.acc)
		}},
		{"dotNF4" + isa, "x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte", 72, 32, true, func(r row) {
			a.l("VMOVDQU %s, %s", r.w, tmp[0])
			a.l("VPSRLW $4, %s, %s", tmp[0], tmp[1])
			a.l("VPAND Y14, %s, %s", tmp[1], tmp[1]) // high nibbles: even values
			a.l("VPAND Y14, %s, %s", tmp[0], tmp[0]) // low nibbles: odd values
			a.l("VPSHUFB %s, Y13, %s", tmp[1], tmp[1])
			a.l("VPSHUFB %s, Y13, %s", tmp[0], tmp[0])
			a.l("VBROADCASTSS %s, %s", r.s, tmp[2])
			a.l("VMULPS Y12, %s, %s", tmp[2], tmp[2])
			scaled(r, tmp[1], tmp[2], 0, "")
			scaled(r, tmp[0], tmp[2], 96, "")
		}},
	}
	hsum := func(r row, off int) {
		acc, t := x(r.acc), x(tmp[0])
		a.l("VEXTRACTF128 $1, %s, %s", r.acc, t)
		a.l("VADDPS %s, %s, %s", t, acc, acc)
		a.l("VMOVHLPS %s, %s, %s", acc, acc, t)
		a.l("VADDPS %s, %s, %s", t, acc, acc)
		a.l("VPSHUFD $1, %s, %s", acc, t)
		a.l("VADDSS %s, %s, %s", t, acc, acc)
		a.l("VMOVSS %s, %d(R9)", acc, off)
	}
	for _, f := range formats {
		fmt.Fprintf(&a, "\n// func %s(%s)\nTEXT ·%s(SB), NOSPLIT, $0-%d\n", f.name, f.args, f.name, f.frame)
		a.l("MOVQ x+0(FP), SI")
		a.l("MOVQ w+8(FP), DI")
		o := 16
		// NF4 keeps its scales' base in the argument's slot, BX being the
		// prefetch stream's (below).
		if f.nf4 {
			o = 24
		}
		a.l("MOVQ units+%d(FP), CX", o)
		a.l("MOVQ rows+%d(FP), DX", o+8)
		a.l("MOVQ ldw+%d(FP), R8", o+16)
		if f.nf4 {
			a.l("MOVQ lds+48(FP), R14")
			a.l("SHLQ $2, R14")
			a.l("SHRQ $1, CX") // blocks
			a.l("MOVQ out+56(FP), R9")
			a.l("MOVQ tab+64(FP), AX")
		} else {
			a.l("MOVQ out+40(FP), R9")
			if !vnni && f.step == 18 { // AVX2's Q4_0: the fp16 table (VNNI's convert the scales)
				a.l("MOVQ f16+48(FP), R14")
			}
		}
		switch {
		case f.nf4: // the nibble table
			a.l("VMOVDQU (AX), Y13")
		case f.step == 18: // Q4_0 (the nibbles as they are): shifts 0, 0, 4, 4 (quadwords)
			a.l("MOVL $4, AX")
			a.l("VMOVD AX, X13")
			a.l("VPBROADCASTQ X13, Y13")
			a.l("VPXOR X10, X10, X10")
			a.l("VPERM2I128 $0x20, Y13, Y10, Y13")
		}
		if vnni {
			a.l("MOVL $0x80808080, AX")
		} else {
			a.l("MOVL $0x00010001, AX")
		}
		a.l("VMOVD AX, X15")
		a.l("VPBROADCASTD X15, Y15")
		a.l("MOVL $0x0f0f0f0f, AX")
		a.l("VMOVD AX, X14")
		a.l("VPBROADCASTD X14, Y14")
		a.l("MOVL $0x%08x, AX", 0x3c010204) // float32(1.0/127)
		a.l("VMOVD AX, X12")
		a.l("VBROADCASTSS X12, Y12")
		xstep := 96
		if f.nf4 {
			xstep = 192
		}
		for _, n := range []int{int8RowsPer, 1} {
			top := fmt.Sprintf("rows%d", n)
			loop := fmt.Sprintf("loop%d", n)
			a.label(top)
			a.l("CMPQ DX, $%d", n)
			if n > 1 {
				a.l("JLT rows1")
			} else {
				a.l("JLT done")
			}
			a.l("MOVQ SI, R10")
			a.l("MOVQ DI, R11")
			a.l("LEAQ (DI)(R8*2), R12")
			if f.nf4 {
				a.l("MOVQ sc+16(FP), R15")
				a.l("LEAQ (R15)(R14*2), AX")
			}
			// n > 1: one prefetch stream pfSeq bytes ahead of the
			// rows' block (n contiguous rows, n·step bytes a step), each
			// line of it asked for once or twice; else each row pfDist
			// ahead of itself.
			pf := ""
			if n > 1 {
				pf = "BX"
				if !vnni && f.step == 18 { // AVX2's Q4_0's BX holds the table's index
					pf = "R15"
				}
				a.l("LEAQ %d(DI), %s", pfSeq, pf)
			}
			a.l("MOVQ CX, R13")
			for _, r := range rows[:n] {
				a.l("VXORPS %s, %s, %s", r.acc, r.acc, r.acc)
			}
			a.label(loop)
			// Rows stream from memory: fetch a few KiB ahead.
			if pf != "" {
				for l := 0; l < n*f.step; l += 64 {
					a.l("PREFETCHT1 %d(%s)", l, pf)
				}
				a.l("ADDQ $%d, %s", n*f.step, pf)
			} else {
				for _, r := range rows[:n] {
					a.l("PREFETCHT1 %d%s", pfDist, r.w)
				}
			}
			if f.step == 18 { // Q4_0: the unit's corrections, −8·Σx per lane (q4pre)
				c := "Y11"
				if vnni { // the emulation's temporaries are Y9..Y11; Y3 is no row's with two rows a step
					c = "Y3"
				}
				a.l("VMOVDQU 32(R10), %s", c)
				a.l("VPSRAD $4, %s, %s", c, c)
			}
			for _, r := range rows[:n] {
				f.body(r)
			}
			a.l("ADDQ $%d, R10", xstep)
			a.l("ADDQ $%d, R11", f.step)
			a.l("ADDQ $%d, R12", f.step)
			if f.nf4 {
				a.l("ADDQ $4, R15")
				a.l("ADDQ $4, AX")
			}
			a.l("DECQ R13")
			a.l("JNE %s", loop)
			for i, r := range rows[:n] {
				hsum(r, 4*i)
			}
			a.l("ADDQ $%d, R9", 4*n)
			a.l("LEAQ (DI)(R8*%d), DI", n)
			if f.nf4 {
				a.l("MOVQ sc+16(FP), R15")
				a.l("LEAQ (R15)(R14*%d), R15", n)
				a.l("MOVQ R15, sc+16(FP)")
			}
			a.l("SUBQ $%d, DX", n)
			a.l("JMP %s", top)
		}
		a.label("done")
		a.l("VZEROUPPER")
		a.l("RET")
	}
	return a.Bytes()
}

// yn is the number of the register "Yn".
func yn(r string) int {
	var n int
	if _, err := fmt.Sscanf(r, "Y%d", &n); err != nil {
		panic(r)
	}
	return n
}
