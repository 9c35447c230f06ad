//go:build amd64 && !noasm

package kernels

import (
	"encoding/binary"
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate go run ./internal/asmgen

//go:noescape
func gemmAVX512(kc int, a, b, c *float32, ldc int, overwrite bool)

//go:noescape
func gemmAVX2(kc int, a, b, c *float32, ldc int, overwrite bool)

var (
	// 12×32: 24 zmm accumulators, 2 for B, 2 for broadcasts. A micro-panel kc·12·4 = 12 KiB
	// (L1), B panel kc·nc·4 ≤ 2 MiB (L2; wider products are cut into panels of ≤ 1536).
	avx512Kernel = &microKernel{name: "avx512", mr: 12, nr: 32, mc: 240, kc: 256, nc: 2048, fn: gemmAVX512,
		dot: &dotKernel{rows3: dotAVX512x3, rows1: dotAVX512x1, f32: gemvF32AVX2, f16: gemvF16AVX2, bf16: gemvBF16AVX2}, outer: outerAVX512, outerRows: 16}
	// 6×16: 12 ymm accumulators, 2 for B, 2 for broadcasts. The outer-product
	// form takes rank 8 only: at 16 rows (X read twice) it measured no faster
	// than the packed path (go test -bench LoRAGrad ./kernels).
	avx2Kernel = &microKernel{name: "avx2", mr: 6, nr: 16, mc: 144, kc: 256, nc: 2048, fn: gemmAVX2,
		dot:   &dotKernel{rows3: dotAVX2x3, rows1: dotAVX2x1, f32: gemvF32AVX2, f16: gemvF16AVX2, bf16: gemvBF16AVX2},
		outer: outerAVX2Full, outerRows: 8}

	// The AVX-512 path: everything vectorized. The AVX2 path is what a CPU
	// without AVX-512 runs: its microkernel, the row kernels (the same
	// arithmetic as AVX-512's on 8 lanes), generation's attention rows, the
	// block decoders and the packing transpose.
	avx512Path = &Path{mk: avx512Kernel, simd: "avx512",
		rows: rowKernels{max: maxAVX512, expShiftSum: expShiftSumAVX512, swiglu: swigluAVX512, swigluBack: swigluBackAVX512,
			dotRows: dotRowsAVX512, axpyRows: axpyRowsAVX512},
		blocks: blockDecoders{q8_0: decodeQ8_0AVX512, q4_0: decodeQ4_0AVX512, nf4: decodeNF4AVX512, prefetch: prefetchRowsAVX512,
			f16: decodeF16AVX2, bf16: decodeBF16AVX2},
		transpose: transposeBlocksAVX512, packT: packTransAVX512}
	avx2Path = &Path{mk: avx2Kernel, simd: "avx2",
		rows: rowKernels{max: maxAVX2, expShiftSum: expShiftSumAVX2, swiglu: swigluAVX2, swigluBack: swigluBackAVX2,
			dotRows: dotRowsAVX2, axpyRows: axpyRowsAVX2Split},
		blocks:    blockDecoders{q8_0: decodeQ8_0AVX2, q4_0: decodeQ4_0AVX2, nf4: decodeNF4AVX2, f16: decodeF16AVX2, bf16: decodeBF16AVX2},
		transpose: transposeBlocksAVX2}
)

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func expShiftSumAVX2(x *float32, n int, shift float32) float32

//go:noescape
func swigluAVX2(dst, gate, up *float32, n int)

//go:noescape
func swigluBackAVX2(dg, du, dy, gate, up *float32, n int)

//go:noescape
func decodeQ8_0AVX2(dst *float32, src *byte, nb, step int)

//go:noescape
func decodeQ4_0AVX2(dst *float32, src *byte, nb, step int)

//go:noescape
func decodeNF4AVX2(dst *float32, src *byte, scale *float32, code *float32, nb, step int)

//go:noescape
func decodeF16AVX2(dst *float32, src *uint16, n int)

//go:noescape
func decodeBF16AVX2(dst *float32, src *uint16, n int)

//go:noescape
func gemvF32AVX2(k int, x *float32, w *byte, ldw int, c *float32)

//go:noescape
func gemvF16AVX2(k int, x *float32, w *byte, ldw int, c *float32)

//go:noescape
func gemvBF16AVX2(k int, x *float32, w *byte, ldw int, c *float32)

//go:noescape
func dotAVX2x3(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)

//go:noescape
func dotAVX2x1(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)

//go:noescape
func dotRowsAVX2(dst, x, m *float32, rows, strideBytes, nvec int, alpha float32)

//go:noescape
func axpyRowsAVX2(dst, a, m *float32, rows, strideBytes, nvec int)

// axpyRowsAVX2Split runs axpyRowsAVX2 on column ranges of at most 2 units
// (32 floats): its two sets of accumulators then fit in 16 registers.
func axpyRowsAVX2Split(dst, a, m *float32, rows, strideBytes, nvec int) {
	for u := 0; u < nvec; u += 2 {
		axpyRowsAVX2((*float32)(unsafe.Add(unsafe.Pointer(dst), 64*u)), a, (*float32)(unsafe.Add(unsafe.Pointer(m), 64*u)), rows, strideBytes, min(2, nvec-u))
	}
}

//go:noescape
func transpose8AVX2(dst *float32, ptrs *[8]*float32, nblocks, wbytes int, alpha float32)

//go:noescape
func transpose6AVX2(dst *float32, ptrs *[8]*float32, nblocks, wbytes int, alpha float32)

// transposeBlocksAVX2 transposes at most 16 rows as transposeRowsGo does
// and returns how many columns it did (the caller does the rest): each
// whole group of 8 rows, and a last group of 6 (the AVX2 microkernel's
// A sliver), by transpose8AVX2 and transpose6AVX2, their first 8·⌊kc/8⌋
// columns; the rows of any other partial group wholly in Go.
func transposeBlocksAVX2(dst []float32, rows [][]float32, w int, alpha float32) int {
	kc := len(rows[0])
	nb := kc / 8
	if nb == 0 || len(rows) > 16 || len(dst) < (nb*8-1)*w+len(rows) {
		return 0
	}
	for _, r := range rows {
		if len(r) < nb*8 {
			return 0
		}
	}
	var ptrs [8]*float32
	r0 := 0
	for ; r0+8 <= len(rows); r0 += 8 {
		for i := range ptrs {
			ptrs[i] = &rows[r0+i][0]
		}
		transpose8AVX2(&dst[r0], &ptrs, nb, 4*w, alpha)
	}
	switch rest := len(rows) - r0; {
	case rest == 6:
		for i := range ptrs {
			ptrs[i] = &rows[r0+min(i, 5)][0] // rows 6, 7: any readable row
		}
		transpose6AVX2(&dst[r0], &ptrs, nb, 4*w, alpha)
	case rest > 0:
		transposeRowsGo(dst[r0:], rows[r0:], w, alpha)
	}
	return nb * 8
}

//go:noescape
func gemmBF16AVX512(kp int, a, b *uint32, c *float32, ldc int, overwrite bool)

func cpuidVendor() (ebx, edx, ecx uint32)

// vdpbf16psFullRate reports whether VDPBF16PS runs at the fp32 FMA's
// instruction rate here, twice its flops: on AMD's (Zen 4 on, every AMD
// CPU with AVX512_BF16: 226 against 111 GFLOPS, one core, go test -bench
// Microkernel ./kernels; 1.8× the fp32 GEMM on the benchmark shapes), not
// on Intel's (Sapphire Rapids: half the FMA's rate, 123 against 236).
func vdpbf16psFullRate() bool { return cpuVendor() == "AuthenticAMD" }

// cpuVendor is CPUID's vendor string ("AuthenticAMD", "GenuineIntel").
func cpuVendor() string {
	b, d, c := cpuidVendor()
	var v [12]byte
	binary.LittleEndian.PutUint32(v[0:], b)
	binary.LittleEndian.PutUint32(v[4:], d)
	binary.LittleEndian.PutUint32(v[8:], c)
	return string(v[:])
}

// avx512BF16Path is the AVX-512 path with GemmW's products in bf16
// (VDPBF16PS, AVX512_BF16); auto picks it where it runs at full rate.
var avx512BF16Path = func() *Path {
	p := *avx512Path
	p.bf16 = &bf16Kernel{name: "avx512bf16", suffix: "bf16", fn: gemmBF16AVX512, faster: vdpbf16psFullRate()}
	p.conv = avx512Conv
	return &p
}()

//go:noescape
func bf16RowAVX512(dst *uint16, src *float32, n int, alpha float32)

//go:noescape
func bf16ChunksAVX512(dst *uint16, src *float32, nchunk int, alpha float32, stride int)

//go:noescape
func bf16PairRowsAVX512(dst *uint32, src *float32, w, npairs int, mask uint16)

//go:noescape
func bf16PairTAVX512(dst *uint32, ptrs *[16]*float32, nblocks, wbytes int, mask uint16, alpha float32)

// bf16PairTBlocksAVX512 is avx512Conv's pairT: whole blocks of 32 columns,
// 16 rows a call.
func bf16PairTBlocksAVX512(dst []uint32, rows [][]float32, w int, alpha float32) int {
	kc := len(rows[0])
	nb := kc / 32
	if nb == 0 || len(rows) > w || len(dst) < (16*nb-1)*w+len(rows) {
		return 0
	}
	var ptrs [16]*float32
	for r0 := 0; r0 < len(rows); r0 += 16 {
		rs := rows[r0:min(len(rows), r0+16)]
		for i := range ptrs {
			r := rs[min(i, len(rs)-1)] // lanes past the mask: any readable row
			if len(r) < nb*32 {
				return 0
			}
			ptrs[i] = &r[0]
		}
		bf16PairTAVX512(&dst[r0], &ptrs, nb, 4*w, uint16(1)<<len(rs)-1, alpha)
	}
	return nb * 32
}

// avx512Conv are the bf16 paths' packing conversions, by VCVTNE2PS2BF16
// (AVX512_BF16, which every bf16 path here requires).
var avx512Conv = bf16Conv{row: bf16RowAVX512, chunks: bf16ChunksAVX512, pairRows: bf16PairRowsAVX512, pairT: bf16PairTBlocksAVX512}

//go:noescape
func gemmBF16AMX(kp int, a, b *uint32, c *float32, ldc int, overwrite bool, nsl int)

// avx512AMXPath is the AVX-512 path with GemmW's products on the AMX tiles
// (TDPBF16PS): 32×32 blocks of C from four 16×16 tiles, one A sliver
// against a whole B panel per call (the tile configuration costs about
// 50 ns each time).
var avx512AMXPath = func() *Path {
	p := *avx512Path
	p.bf16 = &bf16Kernel{name: "amx", suffix: "amx", mr: 32, nr: 32, mc: 256, kc: 256, nc: 2048, rowsA: true, kAlign: 16, faster: true, ownRounding: true,
		run: gemmBF16AMX,
		fn: func(kp int, a, b *uint32, c *float32, ldc int, overwrite bool) {
			gemmBF16AMX(kp, a, b, c, ldc, overwrite, 1)
		}}
	p.conv = avx512Conv
	return &p
}()

var (
	amxOnce sync.Once
	amxOK   bool
)

// amxTiles reports whether this CPU has AMX tiles with AVX-512 and Linux
// grants their state to this process (asked once).
func amxTiles() bool {
	amxOnce.Do(func() { amxOK = cpu.X86.HasAVX512F && cpu.X86.HasAMXTile && amxPermit() })
	return amxOK
}

// bf16Twins are the bf16 paths this CPU can run, best first.
func bf16Twins() []*Path {
	var ps []*Path
	if amxTiles() && cpu.X86.HasAMXBF16 && cpu.X86.HasAVX512BF16 { // (every AMX CPU has AVX512_BF16: the packing's conversions)
		ps = append(ps, avx512AMXPath)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16 {
		ps = append(ps, avx512BF16Path)
	}
	return append(ps, goBF16Path)
}

func paths() []*Path {
	var ps []*Path
	if cpu.X86.HasAVX512F {
		ps = append(ps, avx512Path)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ps = append(ps, avx2Path)
	}
	return append(ps, goPath)
}

//go:noescape
func dotAVX512x3(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)

//go:noescape
func dotAVX512x1(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)

//go:noescape
func outerAVX512(k int, gp *float32, x *float32, ldx int, c *float32, ldc int, n int, overwrite bool)

//go:noescape
func outerAVX2(k int, gp *float32, x *float32, ldx int, c *float32, ldc int, n int, overwrite bool)

// outerAVX2Full runs outerAVX2 on the whole strips of 8 columns and the last
// n mod 8 columns in Go, summing over p in the same order (unfused there, so
// those columns round differently from the FMA strips; which columns they are
// depends on n alone, not on how the work is split).
func outerAVX2Full(k int, gp *float32, x *float32, ldx int, c *float32, ldc int, n int, overwrite bool) {
	n8 := n &^ 7
	if n8 > 0 {
		outerAVX2(k, gp, x, ldx, c, ldc, n8, overwrite)
	}
	if n8 == n {
		return
	}
	g := unsafe.Slice(gp, k*8)
	xs := unsafe.Slice(x, (k-1)*ldx+n)
	cs := unsafe.Slice(c, 7*ldc+n)
	for r := 0; r < 8; r++ {
		for j := n8; j < n; j++ {
			var acc float32
			for p := 0; p < k; p++ {
				acc += g[p*8+r] * xs[p*ldx+j]
			}
			if overwrite {
				cs[r*ldc+j] = acc
			} else {
				cs[r*ldc+j] += acc
			}
		}
	}
}

//go:noescape
func dotRowsAVX512(dst, x, m *float32, rows, strideBytes, nvec int, alpha float32)

//go:noescape
func axpyRowsAVX512(dst, a, m *float32, rows, strideBytes, nvec int)

//go:noescape
func maxAVX512(x *float32, n int) float32

//go:noescape
func expShiftSumAVX512(x *float32, n int, shift float32) float32

//go:noescape
func swigluAVX512(dst, gate, up *float32, n int)

//go:noescape
func swigluBackAVX512(dg, du, dy, gate, up *float32, n int)

//go:noescape
func decodeQ8_0AVX512(dst *float32, src *byte, nb, step int)

//go:noescape
func decodeQ4_0AVX512(dst *float32, src *byte, nb, step int)

//go:noescape
func decodeNF4AVX512(dst *float32, src *byte, scale *float32, code *float32, nb, step int)

//go:noescape
func prefetchRowsAVX512(p *byte, n, stride, span int)

//go:noescape
func packTransAVX512(dst, src *float32, kc, srcBytes, dstBytes int, nmask, wmask uint16, alpha float32)

//go:noescape
func transpose16AVX512(dst *float32, ptrs *[16]*float32, nblocks, wbytes int, mask uint16, alpha float32)

// transposeBlocksAVX512 transposes the first 16·⌊kc/16⌋ columns of at most
// 16 rows as transposeRowsGo does, with AVX-512, and returns how many columns
// it did (0: none; the caller does the rest).
func transposeBlocksAVX512(dst []float32, rows [][]float32, w int, alpha float32) int {
	kc := len(rows[0])
	nb := kc / 16
	if nb == 0 || len(rows) > 16 || len(dst) < (nb*16-1)*w+len(rows) {
		return 0
	}
	var ptrs [16]*float32
	for i := range ptrs {
		r := rows[min(i, len(rows)-1)] // rows past the mask: any readable row
		if len(r) < nb*16 {
			return 0
		}
		ptrs[i] = &r[0]
	}
	transpose16AVX512(&dst[0], &ptrs, nb, 4*w, uint16(1)<<len(rows)-1, alpha)
	return nb * 16
}

//go:noescape
func dotQ8_0VNNI(x *int8Unit, w *byte, units, rows, ldw int, out *float32)

//go:noescape
func dotQ4_0VNNI(x *int8Unit, w *byte, units, rows, ldw int, out *float32, tab *byte)

//go:noescape
func dotNF4VNNI(x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte)

// avx512Int8Path is the AVX-512 path with the forward products of
// quantized bases in int8: VPDPBUSD on ymm one row at a time (AVX512_VNNI,
// AVX512VL), on zmm as a packed GEMM for 16 rows or more (its quantizer
// AVX512DQ's too).
var avx512Int8Path = func() *Path {
	p := *avx512Path
	p.i8 = &int8Kernel{name: "vnni", suffix: "int8", q8_0: dotQ8_0VNNI, q4_0: dotQ4_0VNNI, nf4: dotNF4VNNI,
		gemm: gemmInt8VNNI, timed: true, quant: quantInt8AVX512, pack: packInt8WAVX512,
		nf4Row: nf4Int8AVX2, q4Row: q4Int8AVX2, q8Row: q8Int8AVX2, unitQuant: quantUnitsAVX2}
	return &p
}()

//go:noescape
func q8Int8AVX2(dst *byte, sc *float32, src *byte, nb int)

//go:noescape
func dotQ8_0AVX2(x *int8Unit, w *byte, units, rows, ldw int, out *float32)

//go:noescape
func dotQ4_0AVX2(x *int8Unit, w *byte, units, rows, ldw int, out *float32, f16 *[65536]float32)

//go:noescape
func dotNF4AVX2(x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte)

//go:noescape
func quantInt8X16AVX2(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)

//go:noescape
func packInt8W16AVX2(dst, rows *byte, sc *float32, kb int, idx *[64]int32)

//go:noescape
func gemmInt8AVX2(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool)

// avx2Int8Kernel is int8 on AVX2 (VPMADDUBSW, VPMADDWD): the same bits as
// VNNI's. Its Q4_0 kernel looks the blocks' fp16 scales up in f16Table
// (built on the first call) and takes the nibbles as they are. Its GEMM
// takes X as int16 (VPMADDWD; see int8GemmAVX2 in asmgen).
var avx2Int8Kernel = &int8Kernel{name: "avx2", suffix: "int8", signed: true,
	gemm: gemmInt8AVX2, timed: true, quant: quantInt8X16AVX2, pack: packInt8W16AVX2, x16: true, unitQuant: quantUnitsAVX2, q8Row: q8Int8AVX2, q4Row: q4Int8AVX2, nf4Row: nf4Int8AVX2,
	q8_0: dotQ8_0AVX2,
	q4_0: func(x *int8Unit, w *byte, units, rows, ldw int, out *float32, _ *byte) {
		dotQ4_0AVX2(x, w, units, rows, ldw, out, f16Table())
	},
	nf4: dotNF4AVX2}

// avx2Int8Path is the AVX2 path with int8 forward products.
var avx2Int8Path = func() *Path {
	p := *avx2Path
	p.i8 = avx2Int8Kernel
	return &p
}()

//go:noescape
func gemmInt8VNNI(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool)

//go:noescape
func q4Int8AVX2(dst, src *byte, nb int, tab *byte)

//go:noescape
func nf4Int8AVX2(dst, src *byte, n int, tab *byte)

//go:noescape
func packInt8WAVX512(dst, rows *byte, sc *float32, kb int, idx *[64]int32)

//go:noescape
func quantInt8AVX512(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)

//go:noescape
func dotQ8_0AVXVNNI(x *int8Unit, w *byte, units, rows, ldw int, out *float32)

//go:noescape
func dotQ4_0AVXVNNI(x *int8Unit, w *byte, units, rows, ldw int, out *float32, tab *byte)

//go:noescape
func dotNF4AVXVNNI(x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte)

//go:noescape
func gemmInt8AVXVNNI(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool)

//go:noescape
func dotQ8_0AVXVNNIEmu(x *int8Unit, w *byte, units, rows, ldw int, out *float32)

//go:noescape
func dotQ4_0AVXVNNIEmu(x *int8Unit, w *byte, units, rows, ldw int, out *float32, tab *byte)

//go:noescape
func dotNF4AVXVNNIEmu(x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte)

//go:noescape
func gemmInt8AVXVNNIEmu(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool)

//go:noescape
func quantInt8AVX2(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)

//go:noescape
func quantUnitsAVX2(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)

//go:noescape
func packInt8G8AVX2(dst, rows *byte, sc *float32, kb int, idx *[64]int32)

// avxvnniInt8Kernel is int8 on AVX-VNNI (VPDPBUSD's VEX form, ymm): the
// VNNI kernels one row at a time, and a GEMM of 6×16 tiles with W in
// groups of 8 rows (int8GemmG8Block; see int8Gemm16 in asmgen). Where the
// CPU lacks AVX-VNNI its kernels run in the tests as avxvnniEmuInt8Kernel,
// the same code with VPDPBUSD emulated by AVX2 (see asmgen's avxvnni.go);
// on an AMD EPYC (Zen 5) they ran as themselves, bit for bit.
var avxvnniInt8Kernel = &int8Kernel{name: "avxvnni", suffix: "vnni",
	q8_0: dotQ8_0AVXVNNI, q4_0: dotQ4_0AVXVNNI, nf4: dotNF4AVXVNNI,
	gemm: gemmInt8AVXVNNI, timed: true, quant: quantInt8AVX2, pack: packInt8G8AVX2, g8: true, unitQuant: quantUnitsAVX2, q8Row: q8Int8AVX2, q4Row: q4Int8AVX2, nf4Row: nf4Int8AVX2}

// avxvnniEmuInt8Kernel is avxvnniInt8Kernel with VPDPBUSD emulated: the
// tests' stand-in on AVX2 CPUs (slower than avx2Int8Kernel; no path
// offers it).
var avxvnniEmuInt8Kernel = &int8Kernel{name: "avxvnni-emu", suffix: "vnniemu",
	q8_0: dotQ8_0AVXVNNIEmu, q4_0: dotQ4_0AVXVNNIEmu, nf4: dotNF4AVXVNNIEmu,
	gemm: gemmInt8AVXVNNIEmu, timed: true, quant: quantInt8AVX2, pack: packInt8G8AVX2, g8: true, unitQuant: quantUnitsAVX2, q8Row: q8Int8AVX2, q4Row: q4Int8AVX2, nf4Row: nf4Int8AVX2}

// avxvnniInt8Path is the AVX2 path with int8 forward products on AVX-VNNI
// ("avx2-vnni").
var avxvnniInt8Path = func() *Path {
	p := *avx2Path
	p.i8 = avxvnniInt8Kernel
	return &p
}()

// int8Twins are the int8 paths this CPU can run, best first.
func int8Twins() []*Path {
	var ps []*Path
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VNNI {
		ps = append(ps, avx512Int8Path)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasAVXVNNI {
		ps = append(ps, avxvnniInt8Path)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ps = append(ps, avx2Int8Path)
	}
	return append(ps, goInt8Path)
}

// int8EmuTwins are the tests' int8 paths with emulated instructions this
// CPU can run: AVX-VNNI's on AVX2.
func int8EmuTwins() []*Path {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return nil
	}
	p := *avx2Path
	p.i8 = avxvnniEmuInt8Kernel
	return []*Path{&p}
}
