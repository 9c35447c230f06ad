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
	y := tp.out(x.Rows, w.Rows, x.Grad != nil)
	tp.Pool.GemmW(y.Mat(), 1, x.Mat(), kernels.NoTrans, w, kernels.Trans, 0)
	if bias != nil {
		for i := 0; i < y.Rows; i++ {
			kernels.Add(y.Row(i), y.Row(i), bias)
		}
	}
	if y.Grad != nil {
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
