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

// attnBlock is the number of query rows attention handles at a time: a block
// of rows i0..i1 only meets keys before i1 (and, with segment ids, from the
// start of row i0's segment), so the products skip most of the masked upper
// triangle, and the probabilities held are attnBlock×T per worker, not T×T.
// A multiple of every microkernel's row tile. At 4×256 on one thread (medians
// of 4, go test -bench Attention ./autograd), a layer's forward + backward
// took 27 ms with blocks of 96 against 32.5 with one block for smollm2's
// shape, and 15.7 against 19.7 for stories15m's, on a Xeon (Sapphire
// Rapids), 48 about as fast as 96; on an AMD EPYC (Zen 4), 48 is the faster:
// smollm2 19.4 ms against 21.0 (96) and 21.0 (one block), stories15m 15.0
// against 15.2, TinyLlama's 32 heads at 1×512 58.9 against 60.1.
var attnBlock = 48

// attnStack bounds the stacked query rows of one block (group × block rows).
const attnStack = 288

// attnMinUnits: with fewer sequences × key/value heads than this, each
// sequence's key/value group is split further, by query blocks, so that one
// sequence of a model with few key/value heads (Qwen2.5-0.5B has 2, a
// multi-query model 1) still gives every thread work. The split depends on
// the shape alone, so results do not depend on the thread count.
var attnMinUnits = 8

// Attention is causal scaled-dot-product attention, fused: scores, mask,
// softmax and the weighted sum. q is (B·T, H·D); k and v are (B·T, Hkv·D).
// seg, when non-nil, holds a segment id per row: a query attends only keys at
// or before it with the same id, so packed examples never see each other.
// The query heads that share a key/value head are stacked, so each product
// covers the whole group (one packing of K and V for all of them). The
// probabilities (B·H·T·T) are not kept: backward recomputes each block's from
// Q and K (one more product, bitwise the same values) instead of holding H·T
// floats per token per layer.
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
	// Blocks of attnBlock query rows, fewer when the group is large, so the
	// stacked rows of a block (and its probabilities, R×T) stay near 3×96.
	bq := min(attnBlock, T, max(12, attnStack/group/12*12))
	R := group * bq // stacked query rows of one block
	y := tp.out(B*T, H*D, anyGrad(q, k, v))
	// kv returns rows r0..r1 of key/value head g of sequence b in t.
	kv := func(t []float32, b, g, r0, r1 int) kernels.Mat {
		return kernels.Mat{Data: t[(b*T+r0)*Hkv*D+g*D:], Rows: r1 - r0, Cols: D, Stride: Hkv * D}
	}
	// gather copies rows i0..i1 of the group's query heads from t (B·T, H·D)
	// into dst, head after head; scatter adds them back.
	gather := func(dst []float32, t []float32, b, g, i0, i1 int) kernels.Mat {
		n := i1 - i0
		for hh := 0; hh < group; hh++ {
			h := g*group + hh
			for r := 0; r < n; r++ {
				copy(dst[(hh*n+r)*D:][:D], t[(b*T+i0+r)*H*D+h*D:][:D])
			}
		}
		return kernels.MatOf(dst[:group*n*D], group*n, D)
	}
	scatter := func(t []float32, src []float32, b, g, i0, i1 int, add bool) {
		n := i1 - i0
		for hh := 0; hh < group; hh++ {
			h := g*group + hh
			for r := 0; r < n; r++ {
				d, sv := t[(b*T+i0+r)*H*D+h*D:][:D], src[(hh*n+r)*D:][:D]
				if add {
					kernels.Add(d, d, sv)
				} else {
					copy(d, sv)
				}
			}
		}
	}
	segOf := func(b int) []int32 {
		if seg == nil {
			return nil
		}
		return seg[b*T : (b+1)*T]
	}
	// keys returns the key range [lo, i1) that query rows i0..i1 can see.
	keys := func(sg []int32, i0, i1 int) (lo, hi int) {
		if sg != nil { // segments are contiguous runs: row i0's starts first
			for lo = i0; lo > 0 && sg[lo-1] == sg[i0]; lo-- {
			}
		}
		return lo, i1
	}
	// block views the stacked rows of a block over keys lo..hi in a
	// per-worker R×T buffer (columns lo.. of each row).
	block := func(buf []float32, n, lo, hi int) kernels.Mat {
		return kernels.Mat{Data: buf[lo:], Rows: group * n, Cols: hi - lo, Stride: T}
	}
	// probs computes the probabilities of the stacked queries Qs (rows
	// i0..i1 of each head of group g) over keys lo..hi into P: S = scale ·
	// Qs·Kᵀ, then each head's rows get the mask and a softmax, in place.
	probs := func(pool *kernels.Pool, P, Qs kernels.Mat, b, g, i0, i1, lo, hi int) {
		pool.Gemm(P, scale, Qs, kernels.NoTrans, kv(k.Data, b, g, lo, hi), kernels.Trans, 0)
		n := i1 - i0
		for hh := 0; hh < group; hh++ {
			maskSoftmax(pool.Path(), kernels.Mat{Data: P.Data[hh*n*T:], Rows: n, Cols: P.Cols, Stride: T}, segOf(b), i0, lo)
		}
	}
	// A unit of work is one sequence's key/value group, or with few of those
	// a share of its query blocks (blocks c, c+chunks, ..., which balances the
	// causal work); then each unit's dK, dV go to its own buffer and are
	// summed per group, in unit order, after the parallel part.
	nb := (T + bq - 1) / bq
	chunks := 1
	if B*Hkv < attnMinUnits {
		chunks = min(nb, (attnMinUnits+B*Hkv-1)/(B*Hkv))
	}
	units := B * Hkv * chunks
	unit := func(u int) (b, g, c int) {
		bg := u / chunks
		return bg / Hkv, bg % Hkv, u % chunks
	}
	pools := tp.Pool.Workers()
	per := R*T + 2*R*D // P, and two stacked R×D matrices
	fbuf := tp.forwardScratch(len(pools) * per)
	tp.Pool.Parallel(units, 1, func(w, lo, hi int) {
		pool := pools[w]
		buf := fbuf[w*per : (w+1)*per]
		pbuf, qbuf, obuf := buf[:R*T], buf[R*T:R*T+R*D], buf[R*T+R*D:]
		for u := lo; u < hi; u++ {
			b, g, c := unit(u)
			for bi := c; bi < nb; bi += chunks {
				i0 := bi * bq
				i1 := min(T, i0+bq)
				klo, khi := keys(segOf(b), i0, i1)
				P := block(pbuf, i1-i0, klo, khi)
				Qs := gather(qbuf, q.Data, b, g, i0, i1)
				probs(pool, P, Qs, b, g, i0, i1, klo, khi)
				// O = P · V
				Os := kernels.MatOf(obuf[:Qs.Rows*D], Qs.Rows, D)
				pool.Gemm(Os, 1, P, kernels.NoTrans, kv(v.Data, b, g, klo, khi), kernels.NoTrans, 0)
				scatter(y.Data, Os.Data, b, g, i0, i1, false)
			}
		}
	})
	if y.Grad != nil {
		tp.record(func() {
			// Each worker owns its units' dQ rows and, with one unit per group,
			// the group's dK, dV rows; split groups use per-unit T×D buffers.
			per := 2*R*T + 3*R*D // P, dP; Qs, dOs, dQs
			bufs := tp.scratch(len(pools) * per)
			var dkp, dvp []float32
			if chunks > 1 {
				dkp, dvp = tp.scratch(units*T*D), tp.scratch(units*T*D)
				clear(dkp)
				clear(dvp)
			}
			// dkv is where unit u's dK (or dV) rows r0..r1 accumulate.
			dkv := func(grad, part []float32, u, b, g, r0, r1 int) kernels.Mat {
				if chunks > 1 {
					return kernels.Mat{Data: part[(u*T+r0)*D:], Rows: r1 - r0, Cols: D, Stride: D}
				}
				return kv(grad, b, g, r0, r1)
			}
			tp.Pool.Parallel(units, 1, func(w, lo, hi int) {
				pool := pools[w]
				buf := bufs[w*per : (w+1)*per]
				pbuf, dpbuf := buf[:R*T], buf[R*T:2*R*T]
				qbuf, dobuf, dqbuf := buf[2*R*T:2*R*T+R*D], buf[2*R*T+R*D:2*R*T+2*R*D], buf[2*R*T+2*R*D:]
				for u := lo; u < hi; u++ {
					b, g, c := unit(u)
					for bi := c; bi < nb; bi += chunks {
						i0 := bi * bq
						i1 := min(T, i0+bq)
						n := i1 - i0
						klo, khi := keys(segOf(b), i0, i1)
						P, dP := block(pbuf, n, klo, khi), block(dpbuf, n, klo, khi)
						Qs := gather(qbuf, q.Data, b, g, i0, i1)
						probs(pool, P, Qs, b, g, i0, i1, klo, khi) // recomputed: the forward's values
						dOs := gather(dobuf, y.Grad, b, g, i0, i1)
						Vg := kv(v.Data, b, g, klo, khi)
						// dP = dO · Vᵀ; dV += Pᵀ · dO (summed over the group's heads)
						pool.Gemm(dP, 1, dOs, kernels.NoTrans, Vg, kernels.Trans, 0)
						if v.Grad != nil {
							pool.Gemm(dkv(v.Grad, dvp, u, b, g, klo, khi), 1, P, kernels.Trans, dOs, kernels.NoTrans, 1)
						}
						// dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place in dP
						// (P is 0 outside each row's keys, so dS is too)
						for i := 0; i < P.Rows; i++ {
							pr, dr := P.Row(i), dP.Row(i)
							d := kernels.Dot(dr, pr)
							for j := range dr {
								dr[j] = pr[j] * (dr[j] - d)
							}
						}
						// dQ += scale · dS · K; dK += scale · dSᵀ · Q
						if q.Grad != nil {
							dQs := kernels.MatOf(dqbuf[:Qs.Rows*D], Qs.Rows, D)
							pool.Gemm(dQs, scale, dP, kernels.NoTrans, kv(k.Data, b, g, klo, khi), kernels.NoTrans, 0)
							scatter(q.Grad, dQs.Data, b, g, i0, i1, true)
						}
						if k.Grad != nil {
							pool.Gemm(dkv(k.Grad, dkp, u, b, g, klo, khi), scale, dP, kernels.Trans, Qs, kernels.NoTrans, 1)
						}
					}
				}
			})
			if chunks == 1 {
				return
			}
			// Sum each group's per-unit dK, dV into k.Grad, v.Grad, unit by unit.
			tp.Pool.Parallel(B*T, 16, func(_, lo, hi int) {
				for row := lo; row < hi; row++ {
					b, t := row/T, row%T
					for g := 0; g < Hkv; g++ {
						dst := row*Hkv*D + g*D
						for c := 0; c < chunks; c++ {
							src := (((b*Hkv+g)*chunks+c)*T + t) * D
							if k.Grad != nil {
								kernels.Add(k.Grad[dst:dst+D], k.Grad[dst:dst+D], dkp[src:src+D])
							}
							if v.Grad != nil {
								kernels.Add(v.Grad[dst:dst+D], v.Grad[dst:dst+D], dvp[src:src+D])
							}
						}
					}
				}
			})
		})
	}
	return y
}

// maskSoftmax applies the causal (and segment) mask to the score rows of P,
// which hold query rows i0.. over keys lo.., and replaces each row by its
// softmax; masked entries become exactly 0.
func maskSoftmax(pa *kernels.Path, P kernels.Mat, seg []int32, i0, lo int) {
	for r := 0; r < P.Rows; r++ {
		i := i0 + r // the query's position; its row holds keys lo..lo+Cols
		row := P.Row(r)
		s := lo
		if seg != nil { // keys of the same segment form a contiguous run ending at i
			for s = i; s > lo && seg[s-1] == seg[i]; s-- {
			}
		}
		clear(row[:s-lo])
		clear(row[i+1-lo:])
		pa.Softmax(row[s-lo:i+1-lo], row[s-lo:i+1-lo])
	}
}

// attnStepDirect: with fewer new rows than this, AttentionStep reads the
// cache in place, one query row at a time (DotRows, Softmax, AxpyRows), as
// generation's one new token needs; from it on, the products are GEMMs
// (packing the cache is then shared by the rows). Per head, a GEMM of one
// row packed all L cached keys and values first, as much work as the
// product: with a 490-token prompt and 256 tokens of smollm2's shape,
// attention was 56% of generate's time.
const attnStepDirect = 16

// AttentionStep is attention for generation: the rows of q (Tn new tokens of
// one sequence, (Tn, H·D)) at positions pos0.. attend to the first pos0+Tn rows
// of the key/value cache kc, vc ((maxT, Hkv·D) each), causally. No gradient.
// scratch holds at least max(Tn, the pool's threads)·(pos0+Tn) floats.
func AttentionStep(pool *kernels.Pool, out, q *Tensor, kc, vc []float32, pos0 int, s AttnShape, scratch []float32) {
	H, Hkv, D := s.H, s.Hkv, s.D
	Tn := q.Rows
	L := pos0 + Tn
	scale := float32(1 / math.Sqrt(float64(D)))
	group := H / Hkv
	if Tn < attnStepDirect {
		pa := pool.Path()
		// Heads are independent: split over the workers when there is
		// enough to share (each head is one worker's whole, so the result
		// does not depend on the split).
		minHeads := H
		if L*D >= 4096 {
			minHeads = 1
		}
		pool.Parallel(H, minHeads, func(w, lo, hi int) {
			buf := scratch[w*L : (w+1)*L]
			for h := lo; h < hi; h++ {
				g := h / group
				for i := 0; i < Tn; i++ {
					n := pos0 + i + 1 // the keys row i sees
					p := buf[:n]
					K := kernels.Mat{Data: kc[g*D:], Rows: n, Cols: D, Stride: Hkv * D}
					V := kernels.Mat{Data: vc[g*D:], Rows: n, Cols: D, Stride: Hkv * D}
					pa.DotRows(p, q.Data[i*q.Cols+h*D:][:D], K, scale)
					pa.Softmax(p, p)
					pa.AxpyRows(out.Data[i*out.Cols+h*D:][:D], p, V)
				}
			}
		})
		return
	}
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
			pool.Path().Softmax(row[:pos0+i+1], row[:pos0+i+1])
		}
		pool.Gemm(kernels.Mat{Data: out.Data[h*D:], Rows: Tn, Cols: D, Stride: H * D}, 1, P, kernels.NoTrans, V, kernels.NoTrans, 0)
	}
}
