package lora

import (
	"fmt"
	"math"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/kernels"
	"gonum.org/v1/gonum/mat"
)

// Delta returns s·B·A (out × in) in fp32.
func (l *Linear) Delta() kernels.Mat {
	d := kernels.NewMat(l.B.Rows, l.A.Cols)
	l.AddDelta(nil, d, 1)
	return d
}

// Combine sets this adapter's layer l to Σ wᵢ·ΔWᵢ of the same layer of other
// adapters: with method "cat" exactly, by stacking the factors along the rank
// (rank = Σ ranks); with "svd" by the best rank-r approximation of the sum
// (truncated SVD). The combined layer gets scale 1 (α = rank).
func CombineLayer(dst *Linear, srcs []*Linear, weights []float64, method string, rank int) error {
	if len(srcs) == 0 || len(srcs) != len(weights) {
		return fmt.Errorf("lora: combine needs one weight per adapter")
	}
	out, in := dst.Base.W.Rows, dst.Base.W.Cols
	for _, s := range srcs {
		if s.B.Rows != out || s.A.Cols != in {
			return fmt.Errorf("lora: combine: %s has shape %d×%d, want %d×%d", s.Base.Name, s.B.Rows, s.A.Cols, out, in)
		}
	}
	switch method {
	case "cat":
		total := 0
		for _, s := range srcs {
			total += s.Rank
		}
		A, B := autograd.NewParam(total, in), autograd.NewParam(out, total)
		off := 0
		for k, s := range srcs {
			// wᵢ·sᵢ·Bᵢ·Aᵢ: the factor goes on B; A is copied.
			f := float32(weights[k]) * s.Scale
			for r := 0; r < s.Rank; r++ {
				copy(A.Row(off+r), s.A.Row(r))
				for i := 0; i < out; i++ {
					B.Data[i*total+off+r] = f * s.B.Data[i*s.Rank+r]
				}
			}
			off += s.Rank
		}
		dst.A, dst.B, dst.Rank, dst.Alpha, dst.Scale = A, B, total, float64(total), 1
	case "svd":
		if rank <= 0 || rank > min(out, in) {
			return fmt.Errorf("lora: combine: rank %d must be in [1, %d]", rank, min(out, in))
		}
		sum := mat.NewDense(out, in, nil)
		for k, s := range srcs {
			d := s.Delta()
			for i := 0; i < out; i++ {
				for j := 0; j < in; j++ {
					sum.Set(i, j, sum.At(i, j)+weights[k]*float64(d.At(i, j)))
				}
			}
		}
		A, B, err := factor(sum, rank)
		if err != nil {
			return fmt.Errorf("lora: combine %s: %v", dst.Base.Name, err)
		}
		dst.A, dst.B, dst.Rank, dst.Alpha, dst.Scale = A, B, rank, float64(rank), 1
	default:
		return fmt.Errorf("lora: combine method %q (want cat or svd)", method)
	}
	if dst.ad != nil {
		dst.ad.pack() // new factors: lay the slabs out again
	}
	return nil
}

// factor returns B (out×r) and A (r×in) with B·A the best rank-r approximation
// of w: B = U_r·√Σ_r, A = √Σ_r·V_rᵀ.
func factor(w *mat.Dense, r int) (A, B *autograd.Tensor, err error) {
	var svd mat.SVD
	if !svd.Factorize(w, mat.SVDThin) {
		return nil, nil, fmt.Errorf("SVD did not converge")
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	sv := svd.Values(nil)
	out, in := w.Dims()
	A, B = autograd.NewParam(r, in), autograd.NewParam(out, r)
	for k := 0; k < r; k++ {
		s := math.Sqrt(sv[k])
		for i := 0; i < out; i++ {
			B.Data[i*r+k] = float32(u.At(i, k) * s)
		}
		for j := 0; j < in; j++ {
			A.Data[k*in+j] = float32(v.At(j, k) * s)
		}
	}
	return A, B, nil
}

// initPiSSA sets A and B from the top-r singular triplets of W (PiSSA) and
// replaces the base by the residual W − s·B·A, stored in the base's format:
// the model's output is unchanged at step 0, and training starts on the
// principal subspace. A = √(Σ_r/s)·V_rᵀ, B = U_r·√(Σ_r/s), as PEFT does.
func (l *Linear) initPiSSA() error {
	w := l.Base.W.Dequantize()
	d := mat.NewDense(w.Rows, w.Cols, nil)
	for i := 0; i < w.Rows; i++ {
		for j := 0; j < w.Cols; j++ {
			d.Set(i, j, float64(w.At(i, j))/float64(l.Scale))
		}
	}
	A, B, err := factor(d, l.Rank)
	if err != nil {
		return fmt.Errorf("lora: PiSSA init of %s: %v", l.Base.Name, err)
	}
	copy(l.A.Data, A.Data)
	copy(l.B.Data, B.Data)
	l.AddDelta(nil, w, -1) // residual
	if l.Base.W.Format == kernels.F32 {
		l.Base.W = kernels.WeightFromF32(w.Rows, w.Cols, w.Data)
	} else {
		l.Base.W = kernels.Quantize(l.Base.W.Format, w.Rows, w.Cols, w.Data)
	}
	return nil
}
