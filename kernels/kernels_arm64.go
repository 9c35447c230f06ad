//go:build arm64 && !noasm

package kernels

//go:noescape
func gemmNEON(kc int, a, b, c *float32, ldc int, overwrite bool)

// 8×12: 24 accumulators, 3 for B, 2 for broadcasts, 1 vector of ones. Every
// arm64 CPU has Advanced SIMD.
var neonKernel = &microKernel{name: "neon", mr: 8, nr: 12, mc: 192, kc: 256, nc: 1536, fn: gemmNEON}

// The NEON path: its microkernel, the rest in Go.
var neonPath = &Path{mk: neonKernel, simd: "neon"}

func paths() []*Path { return []*Path{neonPath, goPath} }

// bf16Twins are the bf16 paths (none vectorized on arm64 yet).
func bf16Twins() []*Path { return []*Path{goBF16Path} }

// int8Twins are the int8 paths (none vectorized on arm64 yet).
func int8Twins() []*Path { return []*Path{goInt8Path} }
