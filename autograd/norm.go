package autograd

import (
	"math"

	"github.com/lowrank/lowrank/kernels"
)

// RMSNorm normalizes each row: y = x / √(mean(x²)+eps) ⊙ w. w is (1, C); it
// gets a gradient when it is trainable.
func (tp *Tape) RMSNorm(x, w *Tensor, eps float32) *Tensor {
	return tp.rmsNorm(x, w, eps, false)
}

func (tp *Tape) rmsNorm(x, w *Tensor, eps float32, transient bool) *Tensor {
	if w.Rows*w.Cols != x.Cols {
		panic("autograd: RMSNorm: weight length differs from the row length")
	}
	y, shared := tp.output(x.Rows, x.Cols, anyGrad(x, w), transient)
	rstd := tp.scratch(x.Rows)
	fwd := func() { // a refill runs the same kernel on the same rows: the same values
		tp.Pool.Parallel(x.Rows, 16, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				rstd[i] = kernels.RMSNorm(y.Row(i), x.Row(i), w.Data, eps)
			}
		})
	}
	fwd()
	if shared {
		y.refill = fwd
	}
	if y.Grad != nil {
		tp.record(func() {
			if w.Grad == nil { // rows are independent (x.Grad is then set)
				tp.Pool.Parallel(x.Rows, 16, func(_, lo, hi int) {
					for i := lo; i < hi; i++ {
						kernels.RMSNormBackward(x.Grad[i*x.Cols:(i+1)*x.Cols], nil, y.Grad[i*x.Cols:(i+1)*x.Cols], x.Row(i), w.Data, rstd[i])
					}
				})
				return
			}
			// w's gradient sums over the rows, in row order.
			dx := x.Grad
			if dx == nil {
				dx = tp.scratch(x.Cols) // the kernel always writes dx
			}
			for i := 0; i < x.Rows; i++ {
				dxi := dx[:x.Cols]
				if x.Grad != nil {
					dxi = x.Grad[i*x.Cols : (i+1)*x.Cols]
				}
				kernels.RMSNormBackward(dxi, w.Grad, y.Grad[i*x.Cols:(i+1)*x.Cols], x.Row(i), w.Data, rstd[i])
			}
		})
	}
	return y
}

// LayerNorm normalizes each row to zero mean and unit variance, then applies
// w (and b, when non-nil): y = (x − μ)/√(σ²+eps) ⊙ w + b.
func (tp *Tape) LayerNorm(x, w, b *Tensor, eps float32) *Tensor {
	C := x.Cols
	y := tp.out(x.Rows, C, anyGrad(x, w, b))
	stats := tp.scratch(2 * x.Rows) // mean, rstd per row
	for i := 0; i < x.Rows; i++ {
		row := x.Row(i)
		var s, ss float64
		for _, v := range row {
			s += float64(v)
		}
		mu := s / float64(C)
		for _, v := range row {
			d := float64(v) - mu
			ss += d * d
		}
		rs := 1 / math.Sqrt(ss/float64(C)+float64(eps))
		stats[2*i], stats[2*i+1] = float32(mu), float32(rs)
		out := y.Row(i)
		for j, v := range row {
			out[j] = (v-float32(mu))*float32(rs)*w.Data[j] + bias(b, j)
		}
	}
	if y.Grad != nil {
		tp.record(func() {
			for i := 0; i < x.Rows; i++ {
				row, dy := x.Row(i), y.Grad[i*C:(i+1)*C]
				mu, rs := stats[2*i], stats[2*i+1]
				// x̂ = (x−μ)·rstd; dx̂ = dy⊙w; dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂⊙x̂))
				var m1, m2 float64
				for j, v := range row {
					xh := float64((v - mu) * rs)
					g := float64(dy[j] * w.Data[j])
					m1 += g
					m2 += g * xh
					if w.Grad != nil {
						w.Grad[j] += dy[j] * float32(xh)
					}
					if b != nil && b.Grad != nil {
						b.Grad[j] += dy[j]
					}
				}
				m1 /= float64(C)
				m2 /= float64(C)
				if x.Grad != nil {
					dx := x.Grad[i*C : (i+1)*C]
					for j, v := range row {
						xh := float64((v - mu) * rs)
						g := float64(dy[j] * w.Data[j])
						dx[j] += float32(float64(rs) * (g - m1 - xh*m2))
					}
				}
			}
		})
	}
	return y
}

func bias(b *Tensor, j int) float32 {
	if b == nil {
		return 0
	}
	return b.Data[j]
}
