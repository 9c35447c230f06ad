//go:build arm64 && !noasm

package kernels

import (
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

// neonInt8Path is the NEON path with int8 forward products by SDOT
// (FEAT_DotProd: Apple M1 on, Cortex-A76 on; not a Raspberry Pi 4's A72).
var neonInt8Path = func() *Path {
	p := *neonPath
	p.i8 = &int8Kernel{name: "sdot", suffix: "int8", signed: true, q8_0: dotQ8_0SDOT, q4_0: dotQ4_0SDOT, nf4: dotNF4SDOT}
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
