package autograd

import (
	"fmt"
	"math"

	"github.com/lowrank/lowrank/kernels"
)

// AttnShape describes a batch of B sequences of T tokens with H query heads
// and Hkv key/value heads (grouped-query attention: query head h reads
// key/value head h/(H/Hkv)) of dimension D.
type AttnShape struct{ B, T, H, Hkv, D int }

// Attention is causal scaled-dot-product attention, fused: scores, mask,
// softmax and the weighted sum. q is (B·T, H·D); k and v are (B·T, Hkv·D).
// seg, when non-nil, holds a segment id per row: a query attends only keys at
// or before it with the same id, so packed examples never see each other.
// The probabilities (B·H·T·T) are not kept: backward recomputes each head's
// from Q and K (one more T×T×D product per head, bitwise the same values)
// instead of holding H·T floats per token per layer.
func (tp *Tape) Attention(q, k, v *Tensor, s AttnShape, seg []int32) *Tensor {
	B, T, H, Hkv, D := s.B, s.T, s.H, s.Hkv, s.D
	if q.Rows != B*T || q.Cols != H*D || k.Rows != B*T || k.Cols != Hkv*D || v.Rows != k.Rows || v.Cols != k.Cols || H%Hkv != 0 {
		panic(fmt.Sprintf("autograd: Attention %+v: q %d×%d, k %d×%d, v %d×%d", s, q.Rows, q.Cols, k.Rows, k.Cols, v.Rows, v.Cols))
	}
	if seg != nil && len(seg) != B*T {
		panic("autograd: Attention: segment ids must have one entry per row")
	}
	scale := float32(1 / math.Sqrt(float64(D)))
	group := H / Hkv
	y := tp.out(B*T, H*D, anyGrad(q, k, v))
	view := func(t []float32, cols, b, h int) kernels.Mat {
		return kernels.Mat{Data: t[b*T*cols+h*D:], Rows: T, Cols: D, Stride: cols}
	}
	segOf := func(b int) []int32 {
		if seg == nil {
			return nil
		}
		return seg[b*T : (b+1)*T]
	}
	// probs computes head h's probabilities of sequence b into P: S = scale ·
	// Q_h · K_gᵀ, then the mask and a softmax per row, in place.
	probs := func(pool *kernels.Pool, P kernels.Mat, b, h int) {
		pool.Gemm(P, scale, view(q.Data, H*D, b, h), kernels.NoTrans, view(k.Data, Hkv*D, b, h/group), kernels.Trans, 0)
		maskSoftmax(P, segOf(b))
	}
	pools := tp.Pool.Workers()
	Ps := tp.scratch(len(pools) * T * T)
	tp.Pool.Parallel(B*H, 1, func(w, lo, hi int) {
		pool := pools[w]
		P := kernels.MatOf(Ps[w*T*T:(w+1)*T*T], T, T)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/H, bh%H
			probs(pool, P, b, h)
			// O_h = P · V_g
			pool.Gemm(view(y.Data, H*D, b, h), 1, P, kernels.NoTrans, view(v.Data, Hkv*D, b, h/group), kernels.NoTrans, 0)
		}
	})
	if y.Grad != nil {
		tp.record(func() {
			// Heads that share a key/value head accumulate into the same dK, dV
			// rows, so work is split by (b, g) and each worker runs that group's
			// query heads in order: one owner per gradient element.
			bufs := tp.scratch(2 * len(pools) * T * T)
			tp.Pool.Parallel(B*Hkv, 1, func(w, lo, hi int) {
				pool := pools[w]
				P := kernels.MatOf(bufs[2*w*T*T:(2*w+1)*T*T], T, T)
				dP := kernels.MatOf(bufs[(2*w+1)*T*T:(2*w+2)*T*T], T, T)
				for bg := lo; bg < hi; bg++ {
					b, g := bg/Hkv, bg%Hkv
					for h := g * group; h < (g+1)*group; h++ {
						probs(pool, P, b, h) // recomputed: the forward's values
						dO := view(y.Grad, H*D, b, h)
						// dP = dO · Vᵀ; dV += Pᵀ · dO
						pool.Gemm(dP, 1, dO, kernels.NoTrans, view(v.Data, Hkv*D, b, g), kernels.Trans, 0)
						if v.Grad != nil {
							pool.Gemm(view(v.Grad, Hkv*D, b, g), 1, P, kernels.Trans, dO, kernels.NoTrans, 1)
						}
						// dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place in dP
						for i := 0; i < T; i++ {
							pr, dr := P.Row(i), dP.Row(i)
							d := kernels.Dot(dr[:i+1], pr[:i+1])
							for j := range dr {
								dr[j] = pr[j] * (dr[j] - d)
							}
						}
						// dQ += scale · dS · K; dK += scale · dSᵀ · Q
						if q.Grad != nil {
							pool.Gemm(view(q.Grad, H*D, b, h), scale, dP, kernels.NoTrans, view(k.Data, Hkv*D, b, g), kernels.NoTrans, 1)
						}
						if k.Grad != nil {
							pool.Gemm(view(k.Grad, Hkv*D, b, g), scale, dP, kernels.Trans, view(q.Data, H*D, b, h), kernels.NoTrans, 1)
						}
					}
				}
			})
		})
	}
	return y
}

// maskSoftmax applies the causal (and segment) mask to the score rows of P and
// replaces each row by its softmax; masked entries become exactly 0.
func maskSoftmax(P kernels.Mat, seg []int32) {
	T := P.Rows
	for i := 0; i < T; i++ {
		row := P.Row(i)
		lo := 0
		if seg != nil { // keys of the same segment form a contiguous run ending at i
			for lo = i; lo > 0 && seg[lo-1] == seg[i]; lo-- {
			}
		}
		clear(row[:lo])
		clear(row[i+1:])
		kernels.Softmax(row[lo:i+1], row[lo:i+1])
	}
}

// AttentionStep is attention for generation: the rows of q (Tn new tokens of
// one sequence, (Tn, H·D)) at positions pos0.. attend to the first pos0+Tn rows
// of the key/value cache kc, vc ((maxT, Hkv·D) each), causally. No gradient.
func AttentionStep(pool *kernels.Pool, out, q *Tensor, kc, vc []float32, pos0 int, s AttnShape, scratch []float32) {
	H, Hkv, D := s.H, s.Hkv, s.D
	Tn := q.Rows
	L := pos0 + Tn
	scale := float32(1 / math.Sqrt(float64(D)))
	group := H / Hkv
	P := kernels.MatOf(scratch[:Tn*L], Tn, L)
	for h := 0; h < H; h++ {
		g := h / group
		Q := kernels.Mat{Data: q.Data[h*D:], Rows: Tn, Cols: D, Stride: H * D}
		K := kernels.Mat{Data: kc[g*D:], Rows: L, Cols: D, Stride: Hkv * D}
		V := kernels.Mat{Data: vc[g*D:], Rows: L, Cols: D, Stride: Hkv * D}
		pool.Gemm(P, scale, Q, kernels.NoTrans, K, kernels.Trans, 0)
		for i := 0; i < Tn; i++ {
			row := P.Row(i)
			clear(row[pos0+i+1:])
			kernels.Softmax(row[:pos0+i+1], row[:pos0+i+1])
		}
		pool.Gemm(kernels.Mat{Data: out.Data[h*D:], Rows: Tn, Cols: D, Stride: H * D}, 1, P, kernels.NoTrans, V, kernels.NoTrans, 0)
	}
}
