package kernels

import (
	"fmt"
	"math"
)

// The package functions here are the pure-Go row kernels, the reference for
// every path; a Path's methods of the same names run its vectorized versions
// where it has them.

// Max returns the largest element of a non-empty x.
func Max(x []float32) float32 {
	m := x[0]
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// ExpShiftSum replaces x by exp(x − shift) and returns the sum of the results
// (the softmax numerator and denominator in one pass).
func ExpShiftSum(x []float32, shift float32) float32 {
	var s float32
	for i, v := range x {
		e := Exp(v - shift)
		x[i] = e
		s += e
	}
	return s
}

// Row kernels: element-wise and per-row operations of the transformer, in pure
// Go, written so that the compiler keeps bounds checks out of the loops (the
// slices are resliced to a common length first). Destination first; dst may
// alias an input where noted. All accumulate in float32 except where a sum over
// a whole row needs float64 to stay exact enough (RMSNorm's mean square).

func sameLen(what string, n int, xs ...[]float32) {
	for _, x := range xs {
		if len(x) != n {
			panic(fmt.Sprintf("kernels: %s: lengths %d and %d differ", what, n, len(x)))
		}
	}
}

// Dot returns Σ x[i]·y[i] (eight partial sums, then a fixed-order reduction).
func Dot(x, y []float32) float32 {
	sameLen("Dot", len(x), y)
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(x); i += 8 {
		xv, yv := x[i:i+8:i+8], y[i:i+8:i+8]
		s0 += xv[0] * yv[0]
		s1 += xv[1] * yv[1]
		s2 += xv[2] * yv[2]
		s3 += xv[3] * yv[3]
		s4 += xv[4] * yv[4]
		s5 += xv[5] * yv[5]
		s6 += xv[6] * yv[6]
		s7 += xv[7] * yv[7]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// Axpy computes dst += a·x.
func Axpy(dst []float32, a float32, x []float32) {
	sameLen("Axpy", len(dst), x)
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += a * x[i]
	}
}

// Scale computes dst *= a.
func Scale(dst []float32, a float32) {
	for i := range dst {
		dst[i] *= a
	}
}

// Add computes dst = x + y (dst may alias x or y).
func Add(dst, x, y []float32) {
	sameLen("Add", len(dst), x, y)
	x, y = x[:len(dst)], y[:len(dst)]
	for i := range dst {
		dst[i] = x[i] + y[i]
	}
}

// Mul computes dst = x ⊙ y (dst may alias x or y).
func Mul(dst, x, y []float32) {
	sameLen("Mul", len(dst), x, y)
	x, y = x[:len(dst)], y[:len(dst)]
	for i := range dst {
		dst[i] = x[i] * y[i]
	}
}

// RMSNorm computes dst = x · rstd ⊙ w with rstd = 1/√(mean(x²) + eps) and
// returns rstd (kept for the backward pass). dst may alias x.
func RMSNorm(dst, x, w []float32, eps float32) (rstd float32) {
	sameLen("RMSNorm", len(dst), x, w)
	x, w = x[:len(dst)], w[:len(dst)]
	rstd = float32(1 / math.Sqrt(sumSquares(x)/float64(len(x))+float64(eps)))
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		d, xv, wv := dst[i:i+4:i+4], x[i:i+4:i+4], w[i:i+4:i+4]
		d[0], d[1], d[2], d[3] = xv[0]*rstd*wv[0], xv[1]*rstd*wv[1], xv[2]*rstd*wv[2], xv[3]*rstd*wv[3]
	}
	for ; i < len(dst); i++ {
		dst[i] = x[i] * rstd * w[i]
	}
	return rstd
}

// sumSquares is Σ x², in float64 over four running sums (independent
// chains: a quarter of one chain's latency per value).
func sumSquares(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		a, b, c, d := float64(v[0]), float64(v[1]), float64(v[2]), float64(v[3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// RMSNormBackward accumulates the gradients of y = x·rstd⊙w:
//
//	dx += rstd·(w⊙dy) − rstd³/n · x · Σ(w⊙dy⊙x)
//	dw += dy ⊙ x · rstd          (skipped when dw is nil: a frozen norm)
func RMSNormBackward(dx, dw, dy, x, w []float32, rstd float32) {
	n := len(x)
	sameLen("RMSNormBackward", n, dx, dy, w)
	dy, w, dx = dy[:n], w[:n], dx[:n]
	var d0, d1, d2, d3 float64 // Σ w·dy·x over four running sums
	i := 0
	for ; i+4 <= n; i += 4 {
		xv, wv, yv := x[i:i+4:i+4], w[i:i+4:i+4], dy[i:i+4:i+4]
		d0 += float64(wv[0]) * float64(yv[0]) * float64(xv[0])
		d1 += float64(wv[1]) * float64(yv[1]) * float64(xv[1])
		d2 += float64(wv[2]) * float64(yv[2]) * float64(xv[2])
		d3 += float64(wv[3]) * float64(yv[3]) * float64(xv[3])
	}
	for ; i < n; i++ {
		d0 += float64(w[i]) * float64(dy[i]) * float64(x[i])
	}
	dot := (d0 + d1) + (d2 + d3)
	c := float32(dot) * rstd * rstd * rstd / float32(n)
	for i, v := range x {
		dx[i] += rstd*w[i]*dy[i] - c*v
	}
	if dw != nil {
		sameLen("RMSNormBackward dw", n, dw)
		dw = dw[:n]
		for i, v := range x {
			dw[i] += dy[i] * v * rstd
		}
	}
}

// Softmax computes dst = exp(x − max x) / Σ exp(x − max x) (dst may alias x).
// A row of all −Inf (fully masked) gives zeros. (Path.Softmax is the same
// over a path's vectorized max and exponentials.)
func Softmax(dst, x []float32) {
	sameLen("Softmax", len(dst), x)
	if len(x) == 0 {
		return
	}
	mx := Max(x)
	if math.IsInf(float64(mx), -1) {
		clear(dst)
		return
	}
	copy(dst, x)
	Scale(dst, 1/ExpShiftSum(dst, mx))
}

// SoftmaxBackward accumulates dx += y ⊙ (dy − Σ dy⊙y) for y = softmax(x).
func SoftmaxBackward(dx, dy, y []float32) {
	sameLen("SoftmaxBackward", len(y), dx, dy)
	d := Dot(dy, y)
	dx, dy = dx[:len(y)], dy[:len(y)]
	for i, v := range y {
		dx[i] += v * (dy[i] - d)
	}
}

// sigmoid is 1/(1+e^−x), computed without overflow for large |x|.
func sigmoid(x float32) float32 {
	if x >= 0 {
		return 1 / (1 + Exp(-x))
	}
	e := Exp(x)
	return e / (1 + e)
}

// SiLU computes dst = x·σ(x) (dst may alias x).
func SiLU(dst, x []float32) {
	sameLen("SiLU", len(dst), x)
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = v * sigmoid(v)
	}
}

// SwiGLU computes dst = silu(gate) ⊙ up (dst may alias either).
func SwiGLU(dst, gate, up []float32) {
	sameLen("SwiGLU", len(dst), gate, up)
	gate, up = gate[:len(dst)], up[:len(dst)]
	for i, g := range gate {
		dst[i] = g * sigmoid(g) * up[i]
	}
}

// SwiGLUBackward accumulates the gradients of y = silu(g) ⊙ u:
//
//	du += dy ⊙ silu(g)
//	dg += dy ⊙ u ⊙ σ(g)·(1 + g·(1 − σ(g)))
func SwiGLUBackward(dgate, dup, dy, gate, up []float32) {
	n := len(dy)
	sameLen("SwiGLUBackward", n, dgate, dup, gate, up)
	dgate, dup, gate, up = dgate[:n], dup[:n], gate[:n], up[:n]
	for i, d := range dy {
		g := gate[i]
		s := sigmoid(g)
		dup[i] += d * g * s
		dgate[i] += d * up[i] * s * (1 + g*(1-s))
	}
}

// Exp returns e^x in float32 within 3 ulp (measured worst: see TestExp): x = n·ln2 + r
// with |r| ≤ ln2/2, e^r by a degree-6 polynomial, then scaled by 2^n through the
// exponent bits. No table, no branches in the common range, so it vectorizes
// well in the assembly kernels that may replace it.
func Exp(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -103.97208:
		return 0
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	// Round x·log2e to the nearest integer: adding 1.5·2²³ pushes the fraction
	// out of the mantissa (Go does not reassociate float arithmetic).
	const magic = 12582912
	n := float32(x*log2e+magic) - magic
	r := float32(x - float32(n*ln2hi))
	r = float32(r - float32(n*ln2lo))
	// e^r ≈ 1 + r + r²/2! + … + r⁶/6! (Horner), |r| ≤ 0.347
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	ni := int32(n)
	if ni < -126 { // subnormal result: scale in two steps
		return p * math.Float32frombits(uint32(ni+126+127)<<23) * math.Float32frombits(1<<23)
	}
	if ni > 127 {
		return p * 2 * math.Float32frombits(uint32(ni-1+127)<<23)
	}
	return p * math.Float32frombits(uint32(ni+127)<<23)
}

// ExpRow computes dst = e^x (dst may alias x).
func ExpRow(dst, x []float32) {
	sameLen("ExpRow", len(dst), x)
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = Exp(v)
	}
}
