// Package kernels owns every matrix product and row kernel in lowrank.
//
// One packed GEMM driver (Goto/BLIS style: cache-blocked panels, register-blocked
// microkernels) serves all three products a linear layer needs:
//
//	forward            Y  = X·Wᵀ      (Gemm / GemmW with tB = Trans)
//	input gradient     dX = dY·W      (Gemm / GemmW with tB = NoTrans)
//	weight gradient    dW = dYᵀ·X     (Gemm with tA = Trans; LoRA's A and B only)
//
// A frozen base weight W (out × in) is held in a [Weight] in one of the storage
// formats F32, F16, BF16, Q8_0, Q4_0 (GGUF's byte layout) or NF4 (QLoRA). The
// driver dequantizes W while it packs a panel, so the inner loop is always the
// fastest fp32 FMA microkernel the CPU has and no full fp32 copy of W exists.
//
// Microkernels are chosen at start-up from the CPU's features: amd64 AVX-512
// (12×32), amd64 AVX2+FMA (6×16), arm64 NEON (8×12) and a pure-Go kernel (4×4)
// that is always compiled. The build tag noasm or LOWRANK_KERNEL=go forces the
// pure-Go path; LOWRANK_KERNEL=avx2 etc. pick another available one.
//
// Determinism: work is split so that every element of C has one owner and the
// reduction over K is blocked identically whatever the worker count, so results
// are bitwise identical for 1, 2, 3 or 7 workers.
//
// Names: M, N, K are the GEMM dimensions (C is M×N, the reduction is over K);
// MR×NR is a microkernel's register tile; MC, KC, NC are the cache blocks.
// Kernels never allocate in hot paths; they panic on shape-contract violations,
// which are programmer errors, never on user input.
package kernels
