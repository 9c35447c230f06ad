package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/x448/float16"
)

// GPTQDamp is the dampening GPTQ adds to the Gram matrix's diagonal, as a
// fraction of its mean. 0.1 rather than the paper's 0.01: on stories260K it
// gave the lower and steadier cost across calibration sets (model package,
// TestQuantizationCost).
const GPTQDamp = 0.1

// GPTQHessian is what GPTQ needs of a layer's calibration inputs X: the
// upper triangular U with UᵀU = (XᵀX + λI)⁻¹, and XᵀX's diagonal (each
// column's input mean square, the weights of the scale search). Projections
// that read the same inputs (Q, K and V; gate and up) share one.
type GPTQHessian struct {
	n    int
	u    []float32 // n×n, row-major, upper triangular
	diag []float32 // XᵀX's diagonal; 0 marks a column no input reached
}

// NewGPTQHessian factors the Gram matrix gram = XᵀX (cols×cols, row-major,
// symmetric) of a layer's calibration inputs; see gptqFactor.
func NewGPTQHessian(cols int, gram []float32, pool *Pool) (*GPTQHessian, error) {
	if len(gram) != cols*cols {
		return nil, fmt.Errorf("GPTQ: a %d-value Gram matrix for %d columns", len(gram), cols)
	}
	u, err := gptqFactor(cols, gram, pool)
	if err != nil {
		return nil, err
	}
	h := &GPTQHessian{n: cols, u: u, diag: make([]float32, cols)}
	for i := range h.diag {
		h.diag[i] = gram[i*cols+i]
	}
	return h, nil
}

// QuantizeGPTQ stores w (rows×cols fp32, row-major; used as scratch and left
// modified) in a 4-bit format (Q4_0 or NF4) by GPTQ (Frantar et al., 2022):
// columns are quantized in order, and each one's rounding error is spread
// over the columns not yet quantized according to how the layer's inputs
// correlate, so that what is minimized is the layer's output error
// ‖X·(W − Ŵ)ᵀ‖² over calibration inputs X rather than the weights' own error.
// h holds the factored XᵀX (NewGPTQHessian). Every block's scale is chosen
// up front from the original weights ("static groups"), by the search that
// weights each column's error by its input's mean square (XᵀX's diagonal);
// on stories260K that cost less than choosing each scale from the block's
// values as GPTQ's updates leave them (q4_0 +3.1–3.9% against +3.3–4.3%
// over six calibration sets; nf4 the same within noise). Columns no input
// reached are zeroed. The result is an ordinary weight of format f: the
// bytes read as any other.
func QuantizeGPTQ(f Format, rows, cols int, w []float32, h *GPTQHessian, pool *Pool) (*Weight, error) {
	if f != Q4_0 && f != NF4 {
		return nil, fmt.Errorf("GPTQ quantizes to q4_0 or nf4, not %s", f)
	}
	if len(w) != rows*cols || h.n != cols {
		return nil, fmt.Errorf("GPTQ of a %d×%d weight given %d values and a %d-column Hessian", rows, cols, len(w), h.n)
	}
	u, diag := h.u, h.diag
	for i, d := range h.diag {
		if d == 0 {
			for r := 0; r < rows; r++ {
				w[r*cols+i] = 0
			}
		}
	}
	out := newWeight(f, rows, cols)
	bs := f.BlockSize()
	bpr := out.blocksPerRow
	switch f {
	case Q4_0:
		out.q = make([]byte, rows*bpr*18)
	case NF4:
		out.q = make([]byte, rows*bpr*32)
		out.absmax = make([]float32, rows*bpr)
	}
	// The scales, from the original weights; the codes start as those of
	// zero, which padding keeps.
	pool.Parallel(rows, 8, func(_, lo, hi int) {
		blk := make([]float32, bs)
		wt := make([]float32, bs)
		var tmp [32]byte
		for r := lo; r < hi; r++ {
			for b := 0; b < bpr; b++ {
				c0, c1 := b*bs, min(cols, (b+1)*bs)
				clear(blk)
				clear(wt)
				copy(blk, w[r*cols+c0:r*cols+c1])
				copy(wt, diag[c0:c1])
				k := r*bpr + b
				if f == Q4_0 {
					dst := out.q[k*18:][:18]
					quantQ4_0Weighted(dst, blk, wt)
					for j := 2; j < 18; j++ {
						dst[j] = 8 | 8<<4
					}
				} else {
					out.absmax[k] = quantNF4Weighted(tmp[:], blk, wt)
					z := gptqCode(NF4, 0, 0)
					for j := range 32 {
						out.q[k*32+j] = z<<4 | z
					}
				}
			}
		}
	})
	e := NewMat(rows, bs) // the block's errors, scaled for propagation
	for b := 0; b < bpr; b++ {
		c0, c1 := b*bs, min(cols, (b+1)*bs)
		// Rows are independent within a block: each worker takes a range.
		pool.Parallel(rows, 8, func(_, lo, hi int) {
			for r := lo; r < hi; r++ {
				row := w[r*cols : (r+1)*cols]
				k := r*bpr + b
				var scale float32
				if f == Q4_0 {
					scale = float16.Frombits(binary.LittleEndian.Uint16(out.q[k*18:])).Float32()
				} else {
					scale = out.absmax[k]
				}
				for i := c0; i < c1; i++ {
					x := row[i]
					c := gptqCode(f, x, scale)
					o := i - c0    // the element's place in its block
					if f == Q4_0 { // element o in the low nibble of byte o, o+16 in its high one
						p := &out.q[k*18+2+o%16]
						sh := 4 * (o / 16)
						*p = *p&^(15<<sh) | c<<sh
					} else { // two elements a byte, the first in the high nibble
						p := &out.q[k*32+o/2]
						sh := 4 * (1 - o%2)
						*p = *p&^(15<<sh) | c<<sh
					}
					er := (x - gptqValue(f, c, scale)) / u[i*cols+i]
					e.Data[r*bs+o] = er
					for j := i + 1; j < c1; j++ {
						row[j] -= float32(er * u[i*cols+j]) // float32(·): unfused, the same bits on every CPU
					}
				}
			}
		})
		if c1 < cols { // the columns after the block: W[:, c1:] −= E·U[c0:c1, c1:]
			ub := Mat{Data: u[c0*cols+c1:], Rows: c1 - c0, Cols: cols - c1, Stride: cols}
			eb := Mat{Data: e.Data, Rows: rows, Cols: c1 - c0, Stride: bs}
			wb := Mat{Data: w[c1:], Rows: rows, Cols: cols - c1, Stride: cols}
			pool.Gemm(wb, -1, eb, NoTrans, ub, NoTrans, 1)
		}
	}
	return out, nil
}

// gptqCode is x's code at scale s: Q4_0's nibble (q + 8, q rounded and
// clamped to [−8, 7]) or NF4's nearest codebook index.
func gptqCode(f Format, x, s float32) byte {
	if f == Q4_0 {
		if s == 0 {
			return 8
		}
		return byte(int8(max(-8, min(7, roundHalfAway(x/s)))) + 8)
	}
	if s == 0 {
		return nf4Index(0)
	}
	return nf4Index(x / s)
}

// gptqValue is the value code k decodes to at scale s.
func gptqValue(f Format, k byte, s float32) float32 {
	if f == Q4_0 {
		return s * float32(int8(k)-8)
	}
	return s * nf4Code[k]
}

// gptqFactor returns U (cols×cols, row-major, upper triangular) with
// UᵀU = (XᵀX + λI)⁻¹, λ = GPTQDamp × the mean diagonal. Columns no input
// ever reached (zero diagonal) get a unit diagonal.
//
// With J the order-reversing permutation and L the Cholesky factor of
// J·H·J, H = (J·L·J)(J·L·J)ᵀ with J·L·J upper triangular, so
// H⁻¹ = Uᵀ·U for U = J·L⁻¹·J: one factorization and one triangular
// inverse, without forming H⁻¹ and factoring it again. Both are blocked so
// that nearly all of the work (n³/3 multiply-adds each) is GEMM on the
// pool, in float32 as GPTQ's reference implementation factors; only the
// diagonal blocks are factored and inverted in float64.
func gptqFactor(n int, gram []float32, pool *Pool) ([]float32, error) {
	var mean float64
	for i := 0; i < n; i++ {
		mean += float64(gram[i*n+i])
	}
	mean /= float64(n)
	if mean == 0 {
		mean = 1
	}
	a := NewMat(n, n) // J·H·J + λI
	for i := 0; i < n; i++ {
		src := gram[(n-1-i)*n:][:n]
		row := a.Row(i)
		for j := range row {
			row[j] = src[n-1-j]
		}
		if row[i] == 0 {
			row[i] = 1
		}
		row[i] += float32(GPTQDamp * mean)
	}
	if err := choleskyBlocked(a, pool); err != nil {
		return nil, err
	}
	x := invLowerBlocked(a, pool)
	// U[i][j] = X[n−1−i][n−1−j]: the row-major array reversed.
	slices.Reverse(x.Data)
	return x.Data, nil
}

// cholNB is the block size of the blocked Cholesky factorization and
// triangular inverse.
const cholNB = 128

// choleskyBlocked overwrites the lower triangle of the symmetric a with its
// Cholesky factor L (a = L·Lᵀ) and zeroes the strict upper triangle:
// right-looking, each diagonal block factored in float64, the panel below it
// solved through the block's inverse and the trailing lower triangle updated
// by GEMM, one block column at a time.
func choleskyBlocked(a Mat, pool *Pool) error {
	n := a.Rows
	d := make([]float64, cholNB*cholNB)
	inv := NewMat(cholNB, cholNB)
	var tmp Mat
	for k := 0; k < n; k += cholNB {
		b := min(cholNB, n-k)
		for i := 0; i < b; i++ {
			for j := 0; j <= i; j++ {
				d[i*b+j] = float64(a.Data[(k+i)*a.Stride+k+j])
			}
		}
		if !cholesky64(d[:b*b], b) {
			return fmt.Errorf("GPTQ: the calibration Gram matrix is not positive definite")
		}
		for i := 0; i < b; i++ {
			for j := 0; j < b; j++ {
				v := 0.0
				if j <= i {
					v = d[i*b+j]
				}
				a.Data[(k+i)*a.Stride+k+j] = float32(v)
			}
		}
		if k+b == n {
			break
		}
		invLower64(d[:b*b], b)
		iv := inv.Slice(0, b, 0, b)
		for i := 0; i < b; i++ {
			for j := 0; j < b; j++ {
				iv.Data[i*iv.Stride+j] = float32(d[i*b+j])
			}
		}
		// L21 = A21·L11⁻ᵀ
		a21 := a.Slice(k+b, n, k, k+b)
		if tmp.Data == nil {
			tmp = NewMat(n, cholNB)
		}
		t := tmp.Slice(0, n-k-b, 0, b)
		for i := 0; i < t.Rows; i++ {
			copy(t.Row(i), a21.Row(i))
		}
		pool.Gemm(a21, 1, t, NoTrans, iv, Trans, 0)
		// A22 −= L21·L21ᵀ, lower triangle, by block columns
		for c := k + b; c < n; c += cholNB {
			cb := min(cholNB, n-c)
			l := a21.Slice(c-k-b, n-k-b, 0, b)
			r := a21.Slice(c-k-b, c-k-b+cb, 0, b)
			pool.Gemm(a.Slice(c, n, c, c+cb), -1, l, NoTrans, r, Trans, 1)
		}
	}
	for i := 0; i < n; i++ {
		clear(a.Data[i*a.Stride+i+1 : i*a.Stride+n])
	}
	return nil
}

// invLowerBlocked returns L⁻¹ for the lower triangular l (strict upper
// triangle zero), from the last block column to the first: with the
// trailing inverse X₂₂ known, X₂₁ = −X₂₂·L₂₁·L₁₁⁻¹, the product with the
// triangular X₂₂ taken by block rows over its nonzero part.
func invLowerBlocked(l Mat, pool *Pool) Mat {
	n := l.Rows
	x := NewMat(n, n)
	d := make([]float64, cholNB*cholNB)
	inv := NewMat(cholNB, cholNB)
	tmp := NewMat(n, cholNB)
	last := (n - 1) / cholNB * cholNB
	for j := last; j >= 0; j -= cholNB {
		jb := min(cholNB, n-j)
		for i := 0; i < jb; i++ {
			for c := 0; c < jb; c++ {
				d[i*jb+c] = float64(l.Data[(j+i)*l.Stride+j+c])
			}
		}
		invLower64(d[:jb*jb], jb)
		iv := inv.Slice(0, jb, 0, jb)
		for i := 0; i < jb; i++ {
			for c := 0; c < jb; c++ {
				v := float32(d[i*jb+c])
				iv.Data[i*iv.Stride+c] = v
				x.Data[(j+i)*x.Stride+j+c] = v
			}
		}
		if j+jb == n {
			continue
		}
		// T = X₂₂·L₂₁, block row by block row over X₂₂'s lower part
		l21 := l.Slice(j+jb, n, j, j+jb)
		t := tmp.Slice(0, n-j-jb, 0, jb)
		for r := j + jb; r < n; r += cholNB {
			rb := min(cholNB, n-r)
			pool.Gemm(t.Slice(r-j-jb, r-j-jb+rb, 0, jb), 1, x.Slice(r, r+rb, j+jb, r+rb), NoTrans, l21.Slice(0, r+rb-j-jb, 0, jb), NoTrans, 0)
		}
		pool.Gemm(x.Slice(j+jb, n, j, j+jb), -1, t, NoTrans, iv, NoTrans, 0)
	}
	return x
}

// cholesky64 overwrites the lower triangle of the n×n row-major a with its
// Cholesky factor; false when a is not positive definite.
func cholesky64(a []float64, n int) bool {
	for j := 0; j < n; j++ {
		s := a[j*n+j]
		for k := 0; k < j; k++ {
			s -= float64(a[j*n+k] * a[j*n+k]) // float64(·): unfused on every CPU (Go may fuse on arm64)
		}
		if !(s > 0) {
			return false
		}
		s = math.Sqrt(s)
		a[j*n+j] = s
		for i := j + 1; i < n; i++ {
			v := a[i*n+j]
			for k := 0; k < j; k++ {
				v -= float64(a[i*n+k] * a[j*n+k])
			}
			a[i*n+j] = v / s
		}
	}
	return true
}

// invLower64 overwrites the lower triangular n×n row-major l (its lower
// triangle; the rest is ignored) with its inverse, zeroing the strict upper
// triangle.
func invLower64(l []float64, n int) {
	x := make([]float64, n*n)
	for j := 0; j < n; j++ {
		x[j*n+j] = 1 / l[j*n+j]
		for i := j + 1; i < n; i++ {
			var s float64
			for k := j; k < i; k++ {
				s += float64(l[i*n+k] * x[k*n+j])
			}
			x[i*n+j] = -s / l[i*n+i]
		}
	}
	copy(l, x)
}

// quantQ4_0Weighted chooses a Q4_0 block's scale by weighted least squares:
// for scales around the reference one (the largest value on level −8 or up
// to ±1.5 levels either side of it), codes by rounding, then the weighted
// least-squares scale for those codes, rounded to fp16 and the codes redone
// for it; the choice with the least Σ wt·error² is kept. The reference scale
// is among the candidates, so the result is never worse than quantQ4_0's.
func quantQ4_0Weighted(dst []byte, x, wt []float32) {
	var amax, mx float32
	for _, v := range x {
		if amax < abs32(v) {
			amax, mx = abs32(v), v
		}
	}
	quantQ4_0(dst, x)
	if amax == 0 {
		return
	}
	var q [32]int8
	codes := func(d float32) (e float64) {
		var id float32
		if d != 0 {
			id = 1 / d
		}
		for j, v := range x {
			q[j] = int8(max(-8, min(7, roundHalfAway(v*id))))
			r := float64(v) - float64(d)*float64(q[j])
			e += float64(float64(wt[j]) * r * r) // float64(·): no fused multiply-add (arm64), the same choice on every CPU
		}
		return e
	}
	ref := float16.Frombits(binary.LittleEndian.Uint16(dst)).Float32()
	bestD, bestE := ref, math.Inf(1)
	{ // the reference block's own error (its codes truncate, not round)
		var e float64
		for j, v := range x {
			c := int8(dst[2+j%16]>>(4*(j/16))&15) - 8
			r := float64(v) - float64(ref)*float64(c)
			e += float64(float64(wt[j]) * r * r)
		}
		bestE = e
	}
	improved := false
	for t := -15; t <= 15; t++ {
		codes(mx / -(8 + float32(0.1*float32(t))))
		var num, den float64
		for j, v := range x {
			num += float64(float64(wt[j]) * float64(v) * float64(q[j]))
			den += float64(float64(wt[j]) * float64(q[j]) * float64(q[j]))
		}
		if den == 0 {
			continue
		}
		d := float16.Fromfloat32(float32(num / den)).Float32()
		if e := codes(d); e < bestE {
			bestD, bestE, improved = d, e, true
		}
	}
	if !improved {
		return
	}
	codes(bestD)
	binary.LittleEndian.PutUint16(dst, float16.Fromfloat32(bestD).Bits())
	for j := 0; j < 16; j++ {
		dst[2+j] = byte(q[j]+8) | byte(q[16+j]+8)<<4
	}
}

// quantNF4Weighted is quantNF4 with each value's squared error weighted by
// wt, over a finer search: absmax and six smaller scales (down to
// 0.76·absmax), then two weighted least-squares refits (down to 0.5·absmax).
func quantNF4Weighted(dst []byte, x, wt []float32) float32 {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	if amax == 0 {
		return quantNF4Absmax(dst, x)
	}
	return nf4Search(dst, x, wt, amax, 7, 0.04, 2, 0.5)
}
