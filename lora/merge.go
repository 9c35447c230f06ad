package lora

import (
	"math"

	"github.com/lowrank/lowrank/kernels"
)

// AddDelta computes w += sign·s·B·A on a dense (out × in) fp32 matrix: the
// merge (sign 1) or unmerge (sign −1) of this adapter into base values.
func (l *Linear) AddDelta(pool *kernels.Pool, w kernels.Mat, sign float32) {
	if pool == nil {
		pool = kernels.Default()
	}
	pool.Gemm(w, sign*l.Scale, l.B.Mat(), kernels.NoTrans, l.A.Mat(), kernels.NoTrans, 1)
}

// Merge folds every adapter into its base weight, in fp32 from the base's
// stored values, and stores the result back in the base's format; the adapter
// path is then skipped. With a quantized base the merged weight is quantized
// again, so merge is exact only for f32 (and rounds to the format otherwise).
func (a *Adapter) Merge(pool *kernels.Pool) {
	for _, l := range a.Layers {
		if l.merged {
			continue
		}
		l.restore(pool, 1)
		l.merged = true
	}
}

// Unmerge subtracts what Merge added and turns the adapter path back on.
func (a *Adapter) Unmerge(pool *kernels.Pool) {
	for _, l := range a.Layers {
		if !l.merged {
			continue
		}
		l.restore(pool, -1)
		l.merged = false
	}
}

func (l *Linear) restore(pool *kernels.Pool, sign float32) {
	if l.bias != nil && sign > 0 { // a trained bias becomes the base's
		copy(l.Base.Bias, l.bias.Data)
	}
	w := l.Base.W
	d := w.Dequantize()
	switch {
	case l.Magnitude != nil && sign > 0:
		l.AddDelta(pool, d, 1)
		l.mergeNorm = make([]float32, d.Rows)
		for i := 0; i < d.Rows; i++ {
			var ss float64
			for _, v := range d.Row(i) {
				ss += float64(v) * float64(v)
			}
			l.mergeNorm[i] = float32(math.Sqrt(ss))
			kernels.Scale(d.Row(i), l.Magnitude.Data[i]/l.mergeNorm[i])
		}
	case l.Magnitude != nil: // undo: rows back to W', then W = W' − s·B·A
		for i := 0; i < d.Rows; i++ {
			kernels.Scale(d.Row(i), l.mergeNorm[i]/l.Magnitude.Data[i])
		}
		l.AddDelta(pool, d, -1)
	default:
		l.AddDelta(pool, d, sign)
	}
	if w.Format == kernels.F32 {
		l.Base.W = kernels.WeightFromF32(d.Rows, d.Cols, d.Data)
		return
	}
	nw := kernels.Quantize(w.Format, d.Rows, d.Cols, d.Data)
	if w.DoubleQuantized() {
		nw.DoubleQuantize()
	}
	l.Base.W = nw
}
