package autograd

import (
	"fmt"

	"github.com/lowrank/lowrank/kernels"
)

// Ops that save activation memory inside a transformer block (see Block):
//
// In-place ops (AddInto, RoPEInPlace) overwrite an intermediate that has no
// other reader and whose producer's backward does not read its own output (a
// projection's output: Linear, LoRA): the result shares its values and its
// gradient buffer, so the intermediate costs nothing extra.
//
// Transient outputs (RMSNormTransient, SwiGLUTransient, DropoutTransient) are
// large, cheap to recompute, and read by the projections that follow. On a
// block tape their values go to a region every block of the stack reuses;
// Release(y), called by y's creator once the last op that reads y is
// recorded, records y's recomputation, so backward rebuilds the values just
// before those ops' backward reads them. Block and Checkpoint panic if a
// transient output was not released. Off a block tape (inference) they are
// ordinary outputs.

// AddInto computes y + x into y's buffer and returns it as a new tensor
// sharing y's values and gradient. y must be an intermediate nothing else
// reads, whose producer's backward does not read its values. Backward: dx +=
// dy; y's gradient is dy already.
func (tp *Tape) AddInto(y, x *Tensor) *Tensor {
	same("AddInto", y, x)
	if x.Grad != nil && y.Grad == nil {
		return tp.Add(y, x) // y has nowhere to hold the sum's gradient
	}
	// Elementwise, split over the threads by rows.
	C := y.Cols
	tp.Pool.Parallel(y.Rows, 16, func(_, lo, hi int) {
		kernels.Add(y.Data[lo*C:hi*C], y.Data[lo*C:hi*C], x.Data[lo*C:hi*C])
	})
	out := &Tensor{Data: y.Data, Grad: y.Grad, Rows: y.Rows, Cols: y.Cols}
	if out.Grad != nil && x.Grad != nil {
		tp.record(func() {
			tp.Pool.Parallel(y.Rows, 16, func(_, lo, hi int) {
				kernels.Axpy(x.Grad[lo*C:hi*C], 1, out.Grad[lo*C:hi*C])
			})
		})
	}
	return out
}

// RoPEInPlace is RoPE overwriting x (an intermediate nothing else reads, as
// for AddInto). Backward rotates the shared gradient back in place.
func (tp *Tape) RoPEInPlace(x *Tensor, r *Rope, pos []int32) *Tensor {
	D := r.HeadDim
	if x.Cols%D != 0 || len(pos) != x.Rows {
		panic(fmt.Sprintf("autograd: RoPE: x is %d×%d, head dim %d, %d positions", x.Rows, x.Cols, D, len(pos)))
	}
	r.checkPos(pos)
	rotateAll := func(t []float32, sign float32) {
		tmps := tp.scratch(D * tp.Pool.Threads())
		tp.Pool.Parallel(x.Rows, 16, func(w, lo, hi int) {
			tmp := tmps[w*D : (w+1)*D]
			for n := lo; n < hi; n++ {
				for h := 0; h < x.Cols; h += D {
					seg := t[n*x.Cols+h:][:D]
					r.rotate(tmp, seg, int(pos[n]), sign)
					copy(seg, tmp)
				}
			}
		})
	}
	rotateAll(x.Data, 1)
	y := &Tensor{Data: x.Data, Grad: x.Grad, Rows: x.Rows, Cols: x.Cols}
	if y.Grad != nil {
		tp.record(func() { rotateAll(y.Grad, -1) })
	}
	return y
}

// output is out, or for a transient output on a recording block tape a
// tensor whose values come from the region the blocks share; shared says
// which, and then the op must set the tensor's refill.
func (tp *Tape) output(rows, cols int, grad, transient bool) (t *Tensor, shared bool) {
	if !transient || tp.trans == nil || tp.noGrad {
		return tp.out(rows, cols, grad), false
	}
	t = &Tensor{Data: tp.trans.get(rows * cols), Rows: rows, Cols: cols}
	if grad {
		t.Grad = tp.grads.get(rows * cols)
	}
	tp.pending++
	return t, true
}

// Release records the recomputation of a transient output's values (see
// above); for any other tensor it does nothing.
func (tp *Tape) Release(t *Tensor) {
	if t.refill == nil {
		return
	}
	tp.record(t.refill)
	t.refill = nil
	tp.pending--
}

// RMSNormTransient is RMSNorm with a transient output (see above).
func (tp *Tape) RMSNormTransient(x, w *Tensor, eps float32) *Tensor {
	return tp.rmsNorm(x, w, eps, true)
}

// SwiGLUTransient is SwiGLU with a transient output (see above).
func (tp *Tape) SwiGLUTransient(gate, up *Tensor) *Tensor {
	return tp.swiGLU(gate, up, true)
}

// DropoutTransient is Dropout with a transient output (see above): the mask
// is a function of key, so the rebuilt values are the forward's.
func (tp *Tape) DropoutTransient(x *Tensor, p float64, key uint64) *Tensor {
	if p <= 0 {
		return x
	}
	return tp.dropout(x, p, key, true)
}
