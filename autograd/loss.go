package autograd

import (
	"fmt"
	"math"

	"github.com/lowrank/lowrank/kernels"
)

// IgnoreIndex marks a target that is not supervised.
const IgnoreIndex = -100

// ceChunkFloats bounds the logits held at once: rows·V ≤ this (64 MiB), or
// one row when V is larger.
var ceChunkFloats = 1 << 24 // a variable for the tests

// CrossEntropy returns the summed negative log-likelihood of targets under
// logits = H·Wᵀ (W is the frozen V×C output matrix), divided by norm, as a 1×1
// tensor. Rows whose target is IgnoreIndex (or any negative id) are skipped.
// norm ≤ 0 means "the number of supervised rows here"; gradient accumulation
// passes the total over all micro-batches instead.
//
// Logits are computed for the supervised rows only, a chunk of them at a
// time, and never held for the whole batch. The gradient
// dH = (softmax − onehot)/norm · W is computed in the same pass, since the
// loss is the end of the graph; backward only scales it.
func (tp *Tape) CrossEntropy(h *Tensor, w *kernels.Weight, targets []int32, norm float32) (loss *Tensor, supervised int) {
	if h.Cols != w.Cols || len(targets) != h.Rows {
		panic(fmt.Sprintf("autograd: CrossEntropy: h %d×%d, W %d×%d, %d targets", h.Rows, h.Cols, w.Rows, w.Cols, len(targets)))
	}
	V := w.Rows
	for _, t := range targets {
		if t >= 0 {
			if int(t) >= V {
				panic(fmt.Sprintf("autograd: CrossEntropy: target %d outside the vocabulary of %d", t, V))
			}
			supervised++
		}
	}
	if norm <= 0 {
		norm = float32(max(supervised, 1))
	}
	loss = tp.out(1, 1, h.Grad != nil)
	var dh []float32
	if h.Grad != nil {
		dh = tp.scratch(h.Rows * h.Cols)
		clear(dh)
	}
	// Logits are computed for the supervised rows alone (a prompt's tokens
	// and padding have none, and no gradient), gathered in order where
	// others sit between them.
	sup := make([]int, 0, supervised)
	for i, t := range targets {
		if t >= 0 {
			sup = append(sup, i)
		}
	}
	C := h.Cols
	rows := CrossEntropyChunkRows(len(sup), V)
	logits := tp.scratch(rows * V)
	rowLoss := make([]float64, rows)
	coef := make([]float32, rows)
	var wt, hs, ds []float32
	if dh != nil {
		wt = tp.scratch(len(tp.Pool.Workers()) * C)
	}
	if len(sup) < h.Rows {
		hs = tp.scratch(rows * C)
		if dh != nil {
			ds = tp.scratch(rows * C)
		}
	}
	var total float64
	for s0 := 0; s0 < len(sup); s0 += rows {
		idx := sup[s0:min(len(sup), s0+rows)]
		n := len(idx)
		// X: H's rows in place where they are consecutive, else gathered;
		// dH's likewise, scattered after.
		var X, D kernels.Mat
		if idx[n-1]-idx[0] == n-1 {
			X = kernels.MatOf(h.Data[idx[0]*C:(idx[n-1]+1)*C], n, C)
			if dh != nil {
				D = kernels.MatOf(dh[idx[0]*C:(idx[n-1]+1)*C], n, C)
			}
		} else {
			for i, r := range idx {
				copy(hs[i*C:(i+1)*C], h.Data[r*C:(r+1)*C])
			}
			X = kernels.MatOf(hs[:n*C], n, C)
			if dh != nil {
				D = kernels.MatOf(ds[:n*C], n, C)
			}
		}
		L := kernels.MatOf(logits[:n*V], n, V)
		tp.Pool.GemmW(L, 1, X, kernels.NoTrans, w, kernels.Trans, 0)
		// Rows are independent: each worker turns its rows into e = exp(l − max)
		// and records their losses; the losses are summed in order afterwards.
		tp.Pool.Parallel(n, 8, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				t := targets[idx[i]]
				row := L.Row(i)
				mx := tp.Pool.Path().Max(row)
				lt := row[t] - mx // the target's logit, before the row is exponentiated
				z := tp.Pool.Path().ExpShiftSum(row, mx)
				rowLoss[i] = math.Log(float64(z)) - float64(lt)
				coef[i] = 1 / (z * norm)
			}
		})
		for _, l := range rowLoss[:n] {
			total += l
		}
		if dh == nil {
			continue
		}
		// dlogits = (e/z − onehot)/norm, so dH = dlogits·W is (e·W)·1/(z·norm)
		// − W[t]/norm per row: the product runs on e as it is (no pass over the
		// N×V logits to scale them) and the row factor and one-hot term are
		// applied to the N×C result.
		tp.Pool.GemmW(D, 1, L, kernels.NoTrans, w, kernels.NoTrans, 0)
		gathered := &D.Data[0] != &dh[idx[0]*C]
		tp.Pool.Parallel(n, 8, func(wk, lo, hi int) {
			wrow := wt[wk*C : (wk+1)*C]
			for i := lo; i < hi; i++ {
				d := D.Row(i)
				kernels.Scale(d, coef[i])
				tp.Pool.Path().DecodeRow(w, wrow, int(targets[idx[i]]))
				kernels.Axpy(d, -1/norm, wrow)
				if gathered {
					copy(dh[idx[i]*C:(idx[i]+1)*C], d)
				}
			}
		})
	}
	loss.Data[0] = float32(total / float64(norm))
	if loss.Grad != nil {
		tp.record(func() { kernels.Axpy(h.Grad, loss.Grad[0], dh) })
	}
	return loss, supervised
}

// CrossEntropyChunkRows is the number of rows CrossEntropy computes logits for
// at once, out of n supervised rows over a vocabulary of V: as few chunks as
// ceChunkFloats allows, of equal size, since each chunk decodes the whole
// output matrix twice (logits and dH).
func CrossEntropyChunkRows(n, V int) int {
	chunks := max(1, (n*V+ceChunkFloats-1)/ceChunkFloats)
	return max(1, (n+chunks-1)/chunks)
}

// Logits returns H·Wᵀ (N × V) without a gradient (evaluation, generation).
func (tp *Tape) Logits(h *Tensor, w *kernels.Weight) *Tensor {
	y := tp.out(h.Rows, w.Rows, false)
	tp.Pool.GemmW(y.Mat(), 1, h.Mat(), kernels.NoTrans, w, kernels.Trans, 0)
	return y
}

// tailMin is the teacher probability left outside its top k below which
// Distill ignores the rest of the vocabulary.
const tailMin = 1e-6

// Distill returns the KL divergence from a teacher's next-token
// distributions to the student's, logits = H·Wᵀ, summed over rows, as a 1×1
// tensor: row n's teacher puts probability probs[n·k+i] on token ids[n·k+i]
// (i < k, distinct ids: its top k; a negative id is padding). The row
// contributes Σ p·(log p − log q) over those tokens, q = softmax(logits),
// and, when they leave teacher probability p_T = 1 − Σ p, the term
// p_T·log(p_T/q_T) of the rest of the vocabulary taken as one outcome. The
// sum is divided by norm (≤ 0: the number of rows). As CrossEntropy, logits are
// computed a chunk of rows at a time and dH = (softmax − p)/norm · W is
// formed in the same pass.
func (tp *Tape) Distill(h *Tensor, w *kernels.Weight, ids []int32, probs []float32, k int, norm float32) *Tensor {
	if h.Cols != w.Cols || k <= 0 || len(ids) != h.Rows*k || len(probs) != len(ids) {
		panic(fmt.Sprintf("autograd: Distill: h %d×%d, W %d×%d, %d ids and %d probabilities for k = %d", h.Rows, h.Cols, w.Rows, w.Cols, len(ids), len(probs), k))
	}
	V := w.Rows
	for _, id := range ids {
		if int(id) >= V {
			panic(fmt.Sprintf("autograd: Distill: teacher token %d outside the vocabulary of %d", id, V))
		}
	}
	if norm <= 0 {
		norm = float32(max(h.Rows, 1))
	}
	loss := tp.out(1, 1, h.Grad != nil)
	var dh []float32
	if h.Grad != nil {
		dh = tp.scratch(h.Rows * h.Cols)
	}
	rows := CrossEntropyChunkRows(h.Rows, V)
	logits := tp.scratch(rows * V)
	rowLoss := make([]float64, rows)
	coef := make([]float32, rows)
	vals := make([]float32, len(tp.Pool.Workers())*k)
	var total float64
	for r0 := 0; r0 < h.Rows; r0 += rows {
		r1 := min(h.Rows, r0+rows)
		n := r1 - r0
		L := kernels.MatOf(logits[:n*V], n, V)
		tp.Pool.GemmW(L, 1, kernels.MatOf(h.Data[r0*h.Cols:r1*h.Cols], n, h.Cols), kernels.NoTrans, w, kernels.Trans, 0)
		tp.Pool.Parallel(n, 8, func(wk, lo, hi int) {
			top := vals[wk*k : (wk+1)*k]
			for i := lo; i < hi; i++ {
				row := L.Row(i)
				tid, tpr := ids[(r0+i)*k:][:k], probs[(r0+i)*k:][:k]
				mx := tp.Pool.Path().Max(row)
				var cross, ent, mass float64 // Σ p·(l − max), Σ p·log p, Σ p
				for j, id := range tid {
					if id >= 0 && tpr[j] > 0 {
						cross += float64(tpr[j]) * float64(row[id]-mx)
						ent += float64(tpr[j]) * math.Log(float64(tpr[j]))
						mass += float64(tpr[j])
					}
				}
				tp.Pool.Path().ExpShiftSum(row, mx) // row is now e = exp(l − max)
				// z = Σ e in float64: the rest of the vocabulary's mass is
				// its small difference from the teacher tokens' (sk), and
				// log z is set against the top tokens' own terms; in float32
				// the sum of a large vocabulary loses the small tokens (each
				// below half an ulp of it), and with them that difference
				// (TestDistillTail; scale tuning on stories260K, q4_0: KL
				// after tuning 0.049 from Go's sequential float32 sum, 0.041
				// from the 8- and 16-lane ones, 0.041 on every path now).
				var z64, sk float64 // sk: the student's mass on the teacher's tokens, ·z
				for _, e := range row {
					z64 += float64(e)
				}
				z := float32(z64)
				for j, id := range tid {
					if id >= 0 {
						sk += float64(row[id])
						// (e/z − p)·z: the product with W below is scaled by 1/(z·norm)
						top[j] = row[id] - tpr[j]*z
					}
				}
				rowLoss[i] = ent - cross + mass*math.Log(z64)
				if pt := 1 - mass; pt > tailMin {
					// The rest of the vocabulary as one outcome: p_T·log(p_T/q_T),
					// whose gradient is q·(1 − p_T/q_T) on each of its tokens.
					qt := max((z64-sk)/z64, 1e-30)
					rowLoss[i] += pt * math.Log(pt/qt)
					kernels.Scale(row, float32(1-pt/qt))
				}
				for j, id := range tid {
					if id >= 0 {
						row[id] = top[j]
					}
				}
				coef[i] = 1 / (z * norm)
			}
		})
		for _, l := range rowLoss[:n] {
			total += l
		}
		if dh == nil {
			continue
		}
		D := kernels.MatOf(dh[r0*h.Cols:r1*h.Cols], n, h.Cols)
		tp.Pool.GemmW(D, 1, L, kernels.NoTrans, w, kernels.NoTrans, 0)
		for i := 0; i < n; i++ {
			kernels.Scale(D.Row(i), coef[i])
		}
	}
	loss.Data[0] = float32(total / float64(norm))
	if loss.Grad != nil {
		tp.record(func() { kernels.Axpy(h.Grad, loss.Grad[0], dh) })
	}
	return loss
}
