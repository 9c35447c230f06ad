package lora

import (
	"math"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/kernels"
)

// DoRA (weight-decomposed low-rank adaptation), as PEFT defines it:
//
//	W' = W + s·B·A,  n = ‖W'‖ per output row (no gradient through n)
//	y  = x·Wᵀ + b + (m/n − 1) ⊙ (x·Wᵀ) + (m/n) ⊙ s·(x·Aᵀ)·Bᵀ
//
// with a trainable magnitude m (one value per output row, initialized to ‖W‖).
// With dropout on, the DoRA terms use dropout(x), as PEFT's do.

// weightNorm returns ‖W + s·B·A‖ for every output row, decoding W on path
// pa (nil: pure Go).
func (l *Linear) weightNorm(pa *kernels.Path, tmp []float32) []float32 {
	if l.fixedNorm != nil {
		return l.fixedNorm
	}
	w := l.Base.W
	out := make([]float32, w.Rows)
	row := tmp[:w.Cols]
	for i := 0; i < w.Rows; i++ {
		if pa != nil {
			pa.DecodeRow(w, row, i)
		} else {
			w.DecodeRow(row, i)
		}
		// row += s·B[i,:]·A
		for k := 0; k < l.Rank; k++ {
			kernels.Axpy(row, l.Scale*l.B.Data[i*l.Rank+k], l.A.Row(k))
		}
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		out[i] = float32(math.Sqrt(ss))
	}
	return out
}

func (l *Linear) initDoRA() {
	l.Magnitude = autograd.NewParam(1, l.Base.W.Rows)
	copy(l.Magnitude.Data, l.weightNorm(nil, make([]float32, l.Base.W.Cols)))
}

func (l *Linear) forwardDoRA(tp *autograd.Tape, x, xd *autograd.Tensor, dropped bool) *autograd.Tensor {
	n := l.weightNorm(tp.Pool.Path(), tp.Scratch(l.Base.W.Cols))
	inv := tp.Buffer(1, len(n))
	for i, v := range n {
		inv.Data[i] = 1 / v
	}
	scale := tp.Mul(l.Magnitude, inv)     // m/n, gradient to m only
	base0 := tp.Linear(xd, l.Base.W, nil) // xd·Wᵀ
	lora := tp.MatMulT(tp.MatMulT(xd, l.A), l.B)
	y := tp.MulRow(tp.AddScaled(base0, l.Scale, lora), scale) // (m/n)⊙(xd·Wᵀ + s·lora)
	if dropped {                                              // y = base(x) + b + that − xd·Wᵀ
		y = tp.Add(l.baseWithBias(tp, x), tp.AddScaled(y, -1, base0))
	} else if b := l.biasTensor(); b != nil {
		y = tp.AddRow(y, b)
	}
	return y
}

func (l *Linear) baseWithBias(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor {
	if l.bias != nil {
		return tp.AddRow(tp.Linear(x, l.Base.W, nil), l.bias)
	}
	return l.Base.Forward(tp, x)
}

func (l *Linear) biasTensor() *autograd.Tensor {
	if l.bias != nil {
		return l.bias
	}
	if l.Base.Bias != nil {
		return autograd.Const(l.Base.Bias, 1, len(l.Base.Bias))
	}
	return nil
}

// MergeInto turns dense base values w (out × in) into the merged weight:
// w + s·B·A, and for DoRA its rows scaled by m/‖w + s·B·A‖.
func (l *Linear) MergeInto(w kernels.Mat) {
	l.AddDelta(nil, w, 1)
	if l.Magnitude == nil {
		return
	}
	for i := 0; i < w.Rows; i++ {
		row := w.Row(i)
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		kernels.Scale(row, l.Magnitude.Data[i]/float32(math.Sqrt(ss)))
	}
}
