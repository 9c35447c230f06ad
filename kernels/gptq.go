package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
	"gonum.org/v1/gonum/mat"
)

// GPTQDamp is the dampening GPTQ adds to the Gram matrix's diagonal, as a
// fraction of its mean. 0.1 rather than the paper's 0.01: on stories260K it
// gave the lower and steadier cost across calibration sets (model package,
// TestQuantizationCost).
const GPTQDamp = 0.1

// QuantizeGPTQ stores w (rows×cols fp32, row-major; used as scratch and left
// modified) in a 4-bit format (Q4_0 or NF4) by GPTQ (Frantar et al., 2022):
// columns are quantized in order, and each one's rounding error is spread
// over the columns not yet quantized according to how the layer's inputs
// correlate, so that what is minimized is the layer's output error
// ‖X·(W − Ŵ)ᵀ‖² over calibration inputs X rather than the weights' own error.
// gram is XᵀX (cols×cols, row-major). Each block's scale is chosen when the
// block is reached, from its values as they then stand, by the search that
// weights each column's error by its input's mean square (gram's diagonal).
// The result is an ordinary weight of format f: the bytes read as any other.
func QuantizeGPTQ(f Format, rows, cols int, w []float32, gram []float32, pool *Pool) (*Weight, error) {
	if f != Q4_0 && f != NF4 {
		return nil, fmt.Errorf("GPTQ quantizes to q4_0 or nf4, not %s", f)
	}
	if len(w) != rows*cols || len(gram) != cols*cols {
		return nil, fmt.Errorf("GPTQ of a %d×%d weight given %d values and a %d-value Gram matrix", rows, cols, len(w), len(gram))
	}
	u, err := gptqFactor(cols, gram, w, rows)
	if err != nil {
		return nil, err
	}
	out := newWeight(f, rows, cols)
	bs := f.BlockSize()
	switch f {
	case Q4_0:
		out.q = make([]byte, rows*out.blocksPerRow*18)
	case NF4:
		out.q = make([]byte, rows*out.blocksPerRow*32)
		out.absmax = make([]float32, rows*out.blocksPerRow)
	}
	e := NewMat(rows, bs)      // the block's errors, scaled for propagation
	blk := make([]float32, bs) // one row's block, zero-padded
	wt := make([]float32, bs)  // the block's column weights (padding: 0)
	var tmp [34]byte
	var nib [64]byte
	for b := 0; b < out.blocksPerRow; b++ {
		c0, c1 := b*bs, min(cols, (b+1)*bs)
		clear(wt)
		for i := c0; i < c1; i++ {
			wt[i-c0] = gram[i*cols+i]
		}
		for r := 0; r < rows; r++ {
			row := w[r*cols : (r+1)*cols]
			clear(blk)
			copy(blk, row[c0:c1])
			var scale float32
			if f == Q4_0 {
				quantQ4_0Weighted(tmp[:18], blk, wt)
				scale = float16.Frombits(binary.LittleEndian.Uint16(tmp[:])).Float32()
			} else {
				scale = quantNF4Weighted(tmp[:32], blk, wt)
			}
			for i := c0; i < c0+bs; i++ {
				if i >= c1 { // padding holds zero
					nib[i-c0] = gptqCode(f, 0, 0)
					continue
				}
				x := row[i]
				k := gptqCode(f, x, scale)
				nib[i-c0] = k
				er := (x - gptqValue(f, k, scale)) / u[i*cols+i]
				e.Data[r*bs+i-c0] = er
				for j := i + 1; j < c1; j++ {
					row[j] -= er * u[i*cols+j]
				}
			}
			if f == Q4_0 {
				dst := out.q[(r*out.blocksPerRow+b)*18:][:18]
				binary.LittleEndian.PutUint16(dst, float16.Fromfloat32(scale).Bits())
				for j := 0; j < 16; j++ {
					dst[2+j] = nib[j] | nib[16+j]<<4
				}
			} else {
				k := r*out.blocksPerRow + b
				out.absmax[k] = scale
				for j := 0; j < 32; j++ {
					out.q[k*32+j] = nib[2*j]<<4 | nib[2*j+1]
				}
			}
		}
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
// ever reached (zero diagonal) get a unit diagonal and are zeroed in w.
//
// With J the order-reversing permutation and L the Cholesky factor of
// J·H·J, H = (J·L·J)(J·L·J)ᵀ with J·L·J upper triangular, so
// H⁻¹ = Uᵀ·U for U = J·L⁻¹·J: one factorization and one triangular
// inverse, without forming H⁻¹ and factoring it again.
func gptqFactor(cols int, gram []float32, w []float32, rows int) ([]float32, error) {
	n := cols
	var mean float64
	for i := 0; i < n; i++ {
		mean += float64(gram[i*n+i])
	}
	mean /= float64(n)
	if mean == 0 {
		mean = 1
	}
	h := mat.NewSymDense(n, nil) // J·H·J
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			h.SetSym(n-1-j, n-1-i, float64(gram[i*n+j]))
		}
		if gram[i*n+i] == 0 {
			h.SetSym(n-1-i, n-1-i, 1)
			for r := 0; r < rows; r++ {
				w[r*n+i] = 0
			}
		}
		h.SetSym(n-1-i, n-1-i, h.At(n-1-i, n-1-i)+GPTQDamp*mean)
	}
	var ch mat.Cholesky
	if !ch.Factorize(h) {
		return nil, fmt.Errorf("GPTQ: the calibration Gram matrix is not positive definite")
	}
	var l, li mat.TriDense
	ch.LTo(&l)
	if err := li.InverseTri(&l); err != nil {
		return nil, fmt.Errorf("GPTQ: %w", err)
	}
	u := make([]float32, n*n)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			u[i*n+j] = float32(li.At(n-1-i, n-1-j))
		}
	}
	return u, nil
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
			e += float64(wt[j]) * r * r
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
			e += float64(wt[j]) * r * r
		}
		bestE = e
	}
	improved := false
	for t := -15; t <= 15; t++ {
		codes(mx / -(8 + 0.1*float32(t)))
		var num, den float64
		for j, v := range x {
			num += float64(wt[j]) * float64(v) * float64(q[j])
			den += float64(wt[j]) * float64(q[j]) * float64(q[j])
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
