//go:build arm64 && !noasm

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func gemmNEON(kc int, a, b, c *float32, ldc int, overwrite bool)

// 8×12: 24 accumulators, 3 for B, 2 for broadcasts, 1 vector of ones. Every
// arm64 CPU has Advanced SIMD.
var neonKernel = &microKernel{name: "neon", mr: 8, nr: 12, mc: 192, kc: 256, nc: 1536, fn: gemmNEON}

// The NEON path: its microkernel, the rest in Go.
var neonPath = &Path{mk: neonKernel, simd: "neon"}

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
