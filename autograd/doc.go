// Package autograd is lowrank's minimal reverse-mode automatic differentiation:
// a define-by-run tape of ops over row-major float32 matrices.
//
// Each op computes its output and, next to it, registers its backward: a
// closure that accumulates (+=) into the gradients of those inputs that need
// one. Tape.Backward walks the recorded closures in reverse. Frozen tensors (the
// quantized base weights, held as *kernels.Weight) never get a gradient buffer;
// only trainable parameters and the activations between them do.
//
// Activations and gradients are carved from an arena that Tape.Reset recycles,
// so a training loop with fixed batch shapes allocates its buffers once.
//
// Names: B batch, T time (sequence), C channels (hidden), V vocabulary,
// H query heads, Hkv key/value heads, D head dimension, N = B·T rows.
// Ops panic on shape-contract violations (programmer errors), never on data.
package autograd
