package autograd

import (
	"math"

	"github.com/lowrank/lowrank/kernels"
)

// Add computes a + b.
func (tp *Tape) Add(a, b *Tensor) *Tensor {
	same("Add", a, b)
	y := tp.out(a.Rows, a.Cols, anyGrad(a, b))
	kernels.Add(y.Data, a.Data, b.Data)
	if y.Grad != nil {
		tp.record(func() {
			if a.Grad != nil {
				kernels.Axpy(a.Grad, 1, y.Grad)
			}
			if b.Grad != nil {
				kernels.Axpy(b.Grad, 1, y.Grad)
			}
		})
	}
	return y
}

// AddScaled computes a + s·b (LoRA's y = base + s·delta in one op).
func (tp *Tape) AddScaled(a *Tensor, s float32, b *Tensor) *Tensor {
	same("AddScaled", a, b)
	y := tp.out(a.Rows, a.Cols, anyGrad(a, b))
	copy(y.Data, a.Data)
	kernels.Axpy(y.Data, s, b.Data)
	if y.Grad != nil {
		tp.record(func() {
			if a.Grad != nil {
				kernels.Axpy(a.Grad, 1, y.Grad)
			}
			if b.Grad != nil {
				kernels.Axpy(b.Grad, s, y.Grad)
			}
		})
	}
	return y
}

// Mul computes a ⊙ b.
func (tp *Tape) Mul(a, b *Tensor) *Tensor {
	same("Mul", a, b)
	y := tp.out(a.Rows, a.Cols, anyGrad(a, b))
	kernels.Mul(y.Data, a.Data, b.Data)
	if y.Grad != nil {
		tp.record(func() {
			for i, g := range y.Grad {
				if a.Grad != nil {
					a.Grad[i] += g * b.Data[i]
				}
				if b.Grad != nil {
					b.Grad[i] += g * a.Data[i]
				}
			}
		})
	}
	return y
}

// Scale computes s·a.
func (tp *Tape) Scale(a *Tensor, s float32) *Tensor {
	y := tp.out(a.Rows, a.Cols, a.Grad != nil)
	for i, v := range a.Data {
		y.Data[i] = s * v
	}
	if y.Grad != nil {
		tp.record(func() { kernels.Axpy(a.Grad, s, y.Grad) })
	}
	return y
}

// SiLU computes x·σ(x).
func (tp *Tape) SiLU(x *Tensor) *Tensor {
	y := tp.out(x.Rows, x.Cols, x.Grad != nil)
	kernels.SiLU(y.Data, x.Data)
	if y.Grad != nil {
		tp.record(func() {
			for i, v := range x.Data {
				s := 1 / (1 + kernels.Exp(-v))
				x.Grad[i] += y.Grad[i] * s * (1 + v*(1-s))
			}
		})
	}
	return y
}

// SwiGLU computes silu(gate) ⊙ up, the Llama MLP's activation.
func (tp *Tape) SwiGLU(gate, up *Tensor) *Tensor {
	return tp.swiGLU(gate, up, false)
}

func (tp *Tape) swiGLU(gate, up *Tensor, transient bool) *Tensor {
	same("SwiGLU", gate, up)
	y, shared := tp.output(gate.Rows, gate.Cols, anyGrad(gate, up), transient)
	C := gate.Cols
	fwd := func() {
		tp.Pool.Parallel(gate.Rows, 4, func(_, lo, hi int) {
			tp.Pool.Path().SwiGLU(y.Data[lo*C:hi*C], gate.Data[lo*C:hi*C], up.Data[lo*C:hi*C])
		})
	}
	fwd()
	if shared {
		y.refill = fwd
	}
	if y.Grad != nil {
		tp.record(func() {
			dg, du := gate.Grad, up.Grad
			if dg == nil || du == nil { // the kernel writes both; give it somewhere to write
				tmp := tp.scratch(2 * len(y.Grad))
				clear(tmp)
				if dg == nil {
					dg = tmp[:len(y.Grad)]
				}
				if du == nil {
					du = tmp[len(y.Grad):]
				}
			}
			tp.Pool.Parallel(gate.Rows, 4, func(_, lo, hi int) {
				a, b := lo*C, hi*C
				tp.Pool.Path().SwiGLUBackward(dg[a:b], du[a:b], y.Grad[a:b], gate.Data[a:b], up.Data[a:b])
			})
		})
	}
	return y
}

// GELUTanh is GELU with the tanh approximation (GPT-2, Gemma's gelu_pytorch_tanh).
const (
	GELUTanh = iota
	GELUErf
)

// GELU computes x·Φ(x), exactly (erf) or with the tanh approximation.
func (tp *Tape) GELU(x *Tensor, kind int) *Tensor {
	y := tp.out(x.Rows, x.Cols, x.Grad != nil)
	for i, v := range x.Data {
		f, _ := gelu(float64(v), kind)
		y.Data[i] = float32(f)
	}
	if y.Grad != nil {
		tp.record(func() {
			for i, v := range x.Data {
				_, d := gelu(float64(v), kind)
				x.Grad[i] += y.Grad[i] * float32(d)
			}
		})
	}
	return y
}

// gelu returns GELU(x) and its derivative.
func gelu(x float64, kind int) (f, d float64) {
	if kind == GELUErf {
		cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		pdf := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
		return x * cdf, cdf + x*pdf
	}
	const c = 0.7978845608028654 // √(2/π)
	u := c * (x + 0.044715*x*x*x)
	t := math.Tanh(u)
	du := c * (1 + 3*0.044715*x*x)
	return 0.5 * x * (1 + t), 0.5*(1+t) + 0.5*x*(1-t*t)*du
}

// AddRow adds the (1, C) row b to every row of x (a bias); db accumulates the
// column sums of dy.
func (tp *Tape) AddRow(x, b *Tensor) *Tensor {
	if b.Rows*b.Cols != x.Cols {
		panic("autograd: AddRow: row length differs")
	}
	y := tp.out(x.Rows, x.Cols, anyGrad(x, b))
	for i := 0; i < x.Rows; i++ {
		kernels.Add(y.Row(i), x.Row(i), b.Data)
	}
	if y.Grad != nil {
		tp.record(func() {
			if x.Grad != nil {
				kernels.Axpy(x.Grad, 1, y.Grad)
			}
			if b.Grad != nil {
				for i := 0; i < x.Rows; i++ {
					kernels.Axpy(b.Grad, 1, y.Grad[i*x.Cols:(i+1)*x.Cols])
				}
			}
		})
	}
	return y
}

// MulRow multiplies every row of x element-wise by the (1, C) row v (DoRA's
// per-output magnitude); dv accumulates the column sums of dy ⊙ x.
func (tp *Tape) MulRow(x, v *Tensor) *Tensor {
	if v.Rows*v.Cols != x.Cols {
		panic("autograd: MulRow: row length differs")
	}
	y := tp.out(x.Rows, x.Cols, anyGrad(x, v))
	for i := 0; i < x.Rows; i++ {
		kernels.Mul(y.Row(i), x.Row(i), v.Data)
	}
	if y.Grad != nil {
		tp.record(func() {
			C := x.Cols
			for i := 0; i < x.Rows; i++ {
				dy := y.Grad[i*C : (i+1)*C]
				if x.Grad != nil {
					dx := x.Grad[i*C : (i+1)*C]
					for j, g := range dy {
						dx[j] += g * v.Data[j]
					}
				}
				if v.Grad != nil {
					xr := x.Row(i)
					for j, g := range dy {
						v.Grad[j] += g * xr[j]
					}
				}
			}
		})
	}
	return y
}
