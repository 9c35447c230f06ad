// Package lora holds low-rank adapters over a model's frozen projections:
//
//	y = x·Wᵀ (+ b) + s · (dropout(x)·Aᵀ)·Bᵀ        A: (R, in), B: (out, R)
//
// with W frozen in its storage format (possibly 4-bit) and A, B trainable
// fp32. s is α/R, or α/√R with rsLoRA. The adapter path runs through the same
// GEMM kernels as the base. Adapters wrap model.Frozen layers through the
// model.Linear interface; the model does not know about them.
//
// This package knows nothing of files or the command line: PEFT's on-disk
// format lives in package checkpoints.
package lora
