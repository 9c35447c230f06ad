package autograd

import (
	"fmt"

	"github.com/lowrank/lowrank/kernels"
)

// Linear computes Y = X·Wᵀ (+ bias) for a frozen weight W (out × in, any
// storage format). X is (N, in), Y is (N, out). There is no dW: W is frozen.
func (tp *Tape) Linear(x *Tensor, w *kernels.Weight, bias []float32) *Tensor {
	if x.Cols != w.Cols {
		panic(fmt.Sprintf("autograd: Linear: X has %d columns, W is %d×%d", x.Cols, w.Rows, w.Cols))
	}
	return tp.linear(x, w, bias, x.Grad != nil)
}

// linear is Linear whose output carries a gradient when grad is set (an op
// built on it reads that gradient too), recording dX += dY·W when X has one.
func (tp *Tape) linear(x *Tensor, w *kernels.Weight, bias []float32, grad bool) *Tensor {
	y := tp.out(x.Rows, w.Rows, grad)
	tp.Pool.GemmW(y.Mat(), 1, x.Mat(), kernels.NoTrans, w, kernels.Trans, 0)
	if bias != nil {
		for i := 0; i < y.Rows; i++ {
			kernels.Add(y.Row(i), y.Row(i), bias)
		}
	}
	if y.Grad != nil && x.Grad != nil {
		tp.record(func() {
			// dX += dY·W
			tp.Pool.GemmW(x.GradMat(), 1, y.GradMat(), kernels.NoTrans, w, kernels.NoTrans, 1)
		})
	}
	return y
}

// MatMulT computes Y = X·Aᵀ for a tensor A (out × in) that may be trainable:
// LoRA's two products are x·Aᵀ and h·Bᵀ. Backward: dX += dY·A, dA += dYᵀ·X.
func (tp *Tape) MatMulT(x, a *Tensor) *Tensor {
	if x.Cols != a.Cols {
		panic(fmt.Sprintf("autograd: MatMulT: X is %d×%d, A is %d×%d", x.Rows, x.Cols, a.Rows, a.Cols))
	}
	y := tp.out(x.Rows, a.Rows, anyGrad(x, a))
	tp.Pool.Gemm(y.Mat(), 1, x.Mat(), kernels.NoTrans, a.Mat(), kernels.Trans, 0)
	if y.Grad != nil {
		tp.record(func() {
			if x.Grad != nil {
				tp.Pool.Gemm(x.GradMat(), 1, y.GradMat(), kernels.NoTrans, a.Mat(), kernels.NoTrans, 1)
			}
			if a.Grad != nil {
				tp.Pool.Gemm(a.GradMat(), 1, y.GradMat(), kernels.Trans, x.Mat(), kernels.NoTrans, 1)
			}
		})
	}
	return y
}

// LoRA computes Y = X·Wᵀ (+ bias) + s·(Xd·Aᵀ)·Bᵀ in one op: a frozen weight
// W (out × in, any storage format) with a low-rank adapter A (r × in), B
// (out × r). Xd is the adapter's input: X itself, or X after dropout. Only Y
// and the (N, r) product H = Xd·Aᵀ are kept, not the three (N, out) tensors
// and gradients the composition Linear + MatMulT + MatMulT + AddScaled keeps.
// Backward: dX += dY·W; dH = s·dY·B; dB += s·dYᵀ·H; dA += dHᵀ·Xd; dXd += dH·A.
func (tp *Tape) LoRA(x, xd *Tensor, w *kernels.Weight, bias []float32, a, b *Tensor, s float32) *Tensor {
	if x.Cols != w.Cols || xd.Rows != x.Rows || xd.Cols != x.Cols || a.Cols != x.Cols || b.Rows != w.Rows || b.Cols != a.Rows {
		panic(fmt.Sprintf("autograd: LoRA: X %d×%d, Xd %d×%d, W %d×%d, A %d×%d, B %d×%d", x.Rows, x.Cols, xd.Rows, xd.Cols, w.Rows, w.Cols, a.Rows, a.Cols, b.Rows, b.Cols))
	}
	n, r := x.Rows, a.Rows
	y := tp.out(n, w.Rows, anyGrad(x, xd, a, b))
	tp.Pool.GemmW(y.Mat(), 1, x.Mat(), kernels.NoTrans, w, kernels.Trans, 0)
	if bias != nil {
		for i := 0; i < n; i++ {
			kernels.Add(y.Row(i), y.Row(i), bias)
		}
	}
	h := tp.out(n, r, false)
	tp.Pool.Gemm(h.Mat(), 1, xd.Mat(), kernels.NoTrans, a.Mat(), kernels.Trans, 0)
	tp.Pool.Gemm(y.Mat(), s, h.Mat(), kernels.NoTrans, b.Mat(), kernels.Trans, 1)
	if y.Grad != nil {
		tp.record(func() {
			dy := y.GradMat()
			if x.Grad != nil {
				tp.Pool.GemmW(x.GradMat(), 1, dy, kernels.NoTrans, w, kernels.NoTrans, 1)
			}
			if b.Grad != nil {
				tp.Pool.Gemm(b.GradMat(), s, dy, kernels.Trans, h.Mat(), kernels.NoTrans, 1)
			}
			if a.Grad == nil && xd.Grad == nil {
				return
			}
			dh := kernels.MatOf(tp.scratch(n*r), n, r)
			tp.Pool.Gemm(dh, s, dy, kernels.NoTrans, b.Mat(), kernels.NoTrans, 0)
			if a.Grad != nil {
				tp.Pool.Gemm(a.GradMat(), 1, dh, kernels.Trans, xd.Mat(), kernels.NoTrans, 1)
			}
			if xd.Grad != nil {
				tp.Pool.Gemm(xd.GradMat(), 1, dh, kernels.NoTrans, a.Mat(), kernels.NoTrans, 1)
			}
		})
	}
	return y
}

// LinearScales is Linear for a weight whose block scales are being tuned
// (kernels.Weight.SetBlockScales) with its codes fixed: the forward is
// Linear's; backward also adds the gradient of the block scales into
// scales.Grad (Rows × BlocksPerRow of W, the layout of BlockScales) through
// dW = dYᵀ·X, which is formed one call at a time and not kept.
func (tp *Tape) LinearScales(x *Tensor, w *kernels.Weight, bias []float32, scales *Tensor) *Tensor {
	if x.Cols != w.Cols || !w.ScaledBlocks() || scales.Rows != w.Rows || scales.Cols != w.BlocksPerRow() {
		panic(fmt.Sprintf("autograd: LinearScales: X %d×%d, %s W %d×%d, scales %d×%d", x.Rows, x.Cols, w.Format, w.Rows, w.Cols, scales.Rows, scales.Cols))
	}
	y := tp.linear(x, w, bias, x.Grad != nil || scales.Grad != nil)
	if y.Grad == nil || scales.Grad == nil {
		return y
	}
	tp.record(func() {
		dw := kernels.MatOf(tp.scratch(w.Rows*w.Cols), w.Rows, w.Cols)
		tp.Pool.Gemm(dw, 1, y.GradMat(), kernels.Trans, x.Mat(), kernels.NoTrans, 0)
		w.AddScaleGrad(scales.Grad, dw)
	})
	return y
}
