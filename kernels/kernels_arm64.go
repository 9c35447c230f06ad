//go:build arm64 && !noasm

package kernels

import (
	"math/bits"
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func gemmNEON(kc int, a, b, c *float32, ldc int, overwrite bool)

// 8×12: 24 accumulators, 3 for B, 2 for broadcasts, 1 vector of ones. Every
// arm64 CPU has Advanced SIMD.
var neonKernel = &microKernel{name: "neon", mr: 8, nr: 12, mc: 192, kc: 256, nc: 1536, fn: gemmNEON,
	dot: &dotKernel{rows3: dotNEONx3, rows1: dotNEONx1, f32: gemvF32NEON, f16: gemvF16NEON, bf16: gemvBF16NEON}}

// The NEON path: its microkernel with the dot-product and one-row forms,
// the f16/bf16 row conversions; the rest in Go.
var neonPath = &Path{mk: neonKernel, simd: "neon", blocks: blockDecoders{f16: decodeF16NEON, bf16: decodeBF16NEON}}

//go:noescape
func dotNEONx3k4(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)

//go:noescape
func dotNEONx1k4(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool)

//go:noescape
func gemvF32NEON(k int, x *float32, w *byte, ldw int, c *float32)

//go:noescape
func gemvF16NEON(k int, x *float32, w *byte, ldw int, c *float32)

//go:noescape
func gemvBF16NEON(k int, x *float32, w *byte, ldw int, c *float32)

//go:noescape
func decodeF16NEON(dst *float32, src *uint16, n int)

//go:noescape
func decodeBF16NEON(dst *float32, src *uint16, n int)

func dotNEONx3(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool) {
	dotNEONx3k4(k, a, lda, b, c, ldc, overwrite)
	dotTail(3, k, a, lda, b, c, ldc)
}

func dotNEONx1(k int, a *float32, lda int, b *float32, c *float32, ldc int, overwrite bool) {
	dotNEONx1k4(k, a, lda, b, c, ldc, overwrite)
	dotTail(1, k, a, lda, b, c, ldc)
}

// dotTail adds the products of the last k mod 4 values the NEON dot
// kernels leave, in order, to each of C's rows·8 outputs.
func dotTail(rows, k int, a *float32, lda int, b *float32, c *float32, ldc int) {
	k4 := k &^ 3
	if k4 == k {
		return
	}
	kp := (k + 15) &^ 15
	bs := unsafe.Slice(b, 8*kp)
	for i := 0; i < rows; i++ {
		ar := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(a), 4*i*lda)), k)
		cr := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(c), 4*i*ldc)), 8)
		for j := range cr {
			s := cr[j]
			for p := k4; p < k; p++ {
				s += ar[p] * bs[j*kp+p]
			}
			cr[j] = s
		}
	}
}

func paths() []*Path { return []*Path{neonPath, goPath} }

//go:noescape
func gemmBF16NEON(kp int, a, b *uint32, c *float32, ldc int, overwrite bool)

// neonBF16Path is the NEON path with GemmW's products in bf16 by BFDOT
// (FEAT_BF16: Apple M2 on, Neoverse V1/N2 on) on the fp32 kernel's 8×12
// tile and packing. BFDOT rounds its pair sums its own way (not
// VDPBF16PS's), within fp32 accumulation's error. Checked under
// qemu-aarch64, not timed: auto does not pick it.
var neonBF16Path = func() *Path {
	p := *neonPath
	p.bf16 = &bf16Kernel{name: "bfdot", suffix: "bf16", fn: gemmBF16NEON, ownRounding: true}
	return &p
}()

// bf16Twins are the bf16 paths this CPU can run, best first.
func bf16Twins() []*Path {
	if hasBF16() {
		return []*Path{neonBF16Path, goBF16Path}
	}
	return []*Path{goBF16Path}
}

//go:noescape
func dotQ8_0SDOT(x *int8Unit, w *byte, units, rows, ldw int, out *float32)

//go:noescape
func dotQ4_0SDOT(x *int8Unit, w *byte, units, rows, ldw int, out *float32, tab *byte)

//go:noescape
func dotNF4SDOT(x *int8Unit, w *byte, sc *float32, units, rows, ldw, lds int, out *float32, tab *byte)

//go:noescape
func q8Int8NEON(dst *byte, sc *float32, src *byte, nb int)

//go:noescape
func q4Int8NEON(dst, src *byte, nb int, tab *byte)

//go:noescape
func nf4Int8NEON(dst, src *byte, n int, tab *byte)

//go:noescape
func packInt8WG8NEON(dst, rows *byte, sc *float32, kb int, idx *[64]int32)

//go:noescape
func quantInt8NEON(q *byte, sc *float32, corr *int32, src *float32, nb, stride int)

//go:noescape
func gemmInt8SDOT(kb int, x, w *byte, c *float32, ldc, g0, ng, rows int, alpha float32, accumulate bool)

// gemmInt8NEON is the arm64 int8 GEMM kernel (int8GemmFn): gemmInt8SDOT's
// groups of 8 columns where every column is stored, and the last region's
// partial group through a scratch tile, stored here as the kernels store
// (alpha·acc, then + C: each rounded).
func gemmInt8NEON(kb int, x, w *byte, c *float32, ldc, nsl, rows int, alpha float32, mask uint32, accumulate bool) {
	last := bits.Len32(mask) // the last region's columns
	full := 4*(nsl-1) + last/8
	if full > 0 {
		gemmInt8SDOT(kb, x, w, c, ldc, 0, full, rows, alpha, accumulate)
	}
	if n := last % 8; n != 0 {
		var tile [int8GemmXRows * 8]float32
		gemmInt8SDOT(kb, x, (*byte)(unsafe.Add(unsafe.Pointer(w), (nsl-1)*kb*int8GemmG8Block)), &tile[0], 8, full%4, 1, rows, 1, false)
		cs := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(c), 4*8*full)), (rows-1)*ldc+n)
		for i := 0; i < rows; i++ {
			for j := 0; j < n; j++ {
				v := float32(alpha * tile[8*i+j])
				if accumulate {
					v += cs[i*ldc+j]
				}
				cs[i*ldc+j] = v
			}
		}
	}
}

// neonInt8Path is the NEON path with int8 forward products by SDOT
// (FEAT_DotProd: Apple M1 on, Cortex-A76 on; not a Raspberry Pi 4's A72):
// one row at a time, and for 16 rows or more as a packed GEMM (6×8
// register tiles, W's regions in the g8 layout with its own signed bytes,
// X's quantized by quantInt8NEON, W's rows decoded by q8Int8NEON,
// q4Int8NEON and nf4Int8NEON and packed by packInt8WG8NEON).
var neonInt8Path = func() *Path {
	p := *neonPath
	p.i8 = &int8Kernel{name: "sdot", suffix: "int8", signed: true, q8_0: dotQ8_0SDOT, q4_0: dotQ4_0SDOT, nf4: dotNF4SDOT,
		gemm: gemmInt8NEON, quant: quantInt8NEON, pack: packInt8WG8NEON, g8: true, q8Row: q8Int8NEON, q4Row: q4Int8NEON, nf4Row: nf4Int8NEON}
	return &p
}()

// int8Twins are the int8 paths this CPU can run, best first. DotProd is
// read from HWCAP on Linux and sysctl hw.optional.arm.FEAT_DotProd on macOS
// (golang.org/x/sys/cpu).
func int8Twins() []*Path {
	if cpu.ARM64.HasASIMDDP {
		return []*Path{neonInt8Path, goInt8Path}
	}
	return []*Path{goInt8Path}
}

// int8EmuTwins are the tests' int8 paths with emulated instructions: none here.
func int8EmuTwins() []*Path { return nil }
