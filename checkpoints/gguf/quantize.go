package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Quantizers for the GGUF types lowrank writes but has no kernel for (Q5_0,
// Q5_1 and the K-quants), following the rules of ggml's reference
// quantizers (the ones llama-quantize uses without an importance matrix),
// in float32 arithmetic. Q8_0 and Q4_0 live in kernels, which computes
// with them.

// Quantize encodes src (a whole number of blocks) as type t into dst.
func Quantize(t Type, dst []byte, src []float32) error {
	vals, bytes, ok := t.BlockSize()
	if !ok {
		return fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	n := len(src)
	if n%vals != 0 || len(dst) < n/vals*bytes {
		return fmt.Errorf("%s: %d values need whole blocks of %d and %d bytes", t, n, vals, n/vals*bytes)
	}
	nb := n / vals
	var enc func(dst []byte, x []float32)
	switch t {
	case TypeQ5_0:
		enc = quantQ5_0
	case TypeQ5_1:
		enc = quantQ5_1
	case TypeQ4_K:
		enc = quantQ4K
	case TypeQ5_K:
		enc = quantQ5K
	case TypeQ6_K:
		enc = quantQ6K
	default:
		return fmt.Errorf("quantizing to %s is not supported here (Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)", t)
	}
	for b := 0; b < nb; b++ {
		enc(dst[b*bytes:(b+1)*bytes], src[b*vals:(b+1)*vals])
	}
	return nil
}

func putF16(b []byte, v float32) { binary.LittleEndian.PutUint16(b, float16.Fromfloat32(v).Bits()) }

// nearestInt rounds to the nearest integer, ties to even, as ggml's
// nearest_int does (adding 1.5·2²³ in float32).
func nearestInt(v float32) int { return int(math.RoundToEven(float64(v))) }

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }

// Q5_0: d = (the signed value of largest magnitude)/−16; q = min(31,
// trunc(x/d + 16.5)); low nibbles as Q4_0, the fifth bits in a u32.
func quantQ5_0(dst []byte, x []float32) {
	var amax, mx float32
	for _, v := range x {
		if amax < abs32(v) {
			amax, mx = abs32(v), v
		}
	}
	d := mx / -16
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(dst, d)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := byte(min(31, int8(float32(x[j]*id)+16.5)))
		x1 := byte(min(31, int8(float32(x[16+j]*id)+16.5)))
		dst[6+j] = x0&15 | (x1&15)<<4
		qh |= uint32(x0>>4) << j
		qh |= uint32(x1>>4) << (j + 16)
	}
	binary.LittleEndian.PutUint32(dst[2:], qh)
}

// Q5_1: d = (max − min)/31, m = min; q = trunc((x − min)/d + 0.5).
func quantQ5_1(dst []byte, x []float32) {
	mn, mx := float32(math.MaxFloat32), float32(-math.MaxFloat32)
	for _, v := range x {
		mn, mx = min(mn, v), max(mx, v)
	}
	d := (mx - mn) / 31
	var id float32
	if d != 0 {
		id = 1 / d
	}
	putF16(dst, d)
	putF16(dst[2:], mn)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := byte(uint8(float32((x[j]-mn)*id) + 0.5))
		x1 := byte(uint8(float32((x[16+j]-mn)*id) + 0.5))
		dst[8+j] = x0&15 | (x1&15)<<4
		qh |= uint32(x0>>4&1) << j
		qh |= uint32(x1>>4&1) << (j + 16)
	}
	binary.LittleEndian.PutUint32(dst[4:], qh)
}

// fitScaleMin finds, for values x with weights w, a scale and a min such
// that x ≈ scale·L − min with L in [0, nmax]: the range's own fit first,
// then nstep+1 candidate scales around it, each refit by weighted least
// squares, keeping the one of least weighted squared error (ggml's
// make_qkx2_quants). It fills L and returns (scale, min ≥ 0).
func fitScaleMin(x, w []float32, L, aux []uint8, nmax int, rmin, rdelta float32, nstep int) (float32, float32) {
	lo, hi := x[0], x[0]
	sumW := w[0]
	sumX := sumW * x[0]
	for i := 1; i < len(x); i++ {
		lo, hi = min(lo, x[i]), max(hi, x[i])
		sumW += w[i]
		sumX += w[i] * x[i]
	}
	lo = min(lo, 0)
	if hi == lo {
		clear(L)
		return 0, -lo
	}
	fmax := float32(nmax)
	iscale := fmax / (hi - lo)
	scale := 1 / iscale
	var best float32
	for i, v := range x {
		l := max(0, min(nmax, nearestInt(iscale*(v-lo))))
		L[i] = uint8(l)
		diff := scale*float32(l) + lo - v
		best += w[i] * diff * diff
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + rdelta*float32(is) + fmax) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := max(0, min(nmax, nearestInt(iscale*(v-lo))))
			aux[i] = uint8(l)
			fl := float32(l)
			sumL += w[i] * fl
			sumL2 += w[i] * fl * fl
			sumXL += w[i] * fl * v
		}
		D := sumW*sumL2 - sumL*sumL
		if D <= 0 {
			continue
		}
		thisScale := (sumW*sumXL - sumX*sumL) / D
		thisMin := (sumL2*sumX - sumL*sumXL) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var cur float32
		for i, v := range x {
			diff := thisScale*float32(aux[i]) + thisMin - v
			cur += w[i] * diff * diff
		}
		if cur < best {
			copy(L, aux)
			best, scale, lo = cur, thisScale, thisMin
		}
	}
	return scale, -lo
}

// packScalesK4 stores 8 six-bit scales and mins as Q4_K/Q5_K keep them.
func packScalesK4(q []byte, ls, lm [8]uint8) {
	clear(q[:12])
	for j := 0; j < 8; j++ {
		if j < 4 {
			q[j], q[j+4] = ls[j], lm[j]
		} else {
			q[j+4] = ls[j]&0xF | (lm[j]&0xF)<<4
			q[j-4] |= (ls[j] >> 4) << 6
			q[j] |= (lm[j] >> 4) << 6
		}
	}
}

// quantSubK quantizes a 256-value super-block into 8 sub-blocks of 32 as
// Q4_K (nmax 15) and Q5_K (nmax 31) do: a scale and a min per sub-block
// (fitScaleMin, weighted by |x| plus the sub-block's RMS), both quantized to
// 6 bits against the largest; then every value requantized with the stored
// scales. It returns d, dmin and the levels.
func quantSubK(x []float32, nmax int, rmin, rdelta float32, nstep int, scales []byte) (d, dmin float32, L [256]uint8) {
	var sc, mins [8]float32
	var w [32]float32
	var aux [32]uint8
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		xs := x[32*j : 32*j+32]
		var s2 float32
		for _, v := range xs {
			s2 += v * v
		}
		av := float32(math.Sqrt(float64(s2 / 32)))
		for l, v := range xs {
			w[l] = av + abs32(v)
		}
		sc[j], mins[j] = fitScaleMin(xs, w[:], L[32*j:32*j+32], aux[:], nmax, rmin, rdelta, nstep)
		maxScale, maxMin = max(maxScale, sc[j]), max(maxMin, mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	var ls, lm [8]uint8
	for j := 0; j < 8; j++ {
		ls[j] = uint8(min(63, uint8(nearestInt(invScale*sc[j]))))
		lm[j] = uint8(min(63, uint8(nearestInt(invMin*mins[j]))))
	}
	packScalesK4(scales, ls, lm)
	d = float16.Fromfloat32(maxScale / 63).Float32()
	dmin = float16.Fromfloat32(maxMin / 63).Float32()
	for j := 0; j < 8; j++ {
		dj := d * float32(ls[j])
		if dj == 0 {
			continue
		}
		mj := dmin * float32(lm[j])
		for i := 0; i < 32; i++ {
			L[32*j+i] = uint8(max(0, min(nmax, nearestInt((x[32*j+i]+mj)/dj))))
		}
	}
	return d, dmin, L
}

// Q4_K: d, dmin (fp16), 12 bytes of 6-bit scales and mins, 128 bytes of
// nibbles (values j and j+32 of each 64 share a byte).
func quantQ4K(dst []byte, x []float32) {
	d, dmin, L := quantSubK(x, 15, -1, 0.1, 20, dst[4:16])
	putF16(dst, d)
	putF16(dst[2:], dmin)
	q := dst[16:144]
	for j := 0; j < 256; j += 64 {
		for l := 0; l < 32; l++ {
			q[l] = L[j+l] | L[j+l+32]<<4
		}
		q = q[32:]
	}
}

// Q5_K: d, dmin, 12 bytes of scales and mins, 32 bytes of fifth bits, 128
// bytes of nibbles.
func quantQ5K(dst []byte, x []float32) {
	d, dmin, L := quantSubK(x, 31, -0.5, 0.1, 15, dst[4:16])
	putF16(dst, d)
	putF16(dst[2:], dmin)
	qh, ql := dst[16:48], dst[48:176]
	clear(qh)
	m1, m2 := byte(1), byte(2)
	for n := 0; n < 256; n += 64 {
		for j := 0; j < 32; j++ {
			l1, l2 := L[n+j], L[n+j+32]
			if l1 > 15 {
				l1 -= 16
				qh[j] |= m1
			}
			if l2 > 15 {
				l2 -= 16
				qh[j] |= m2
			}
			ql[j] = l1 | l2<<4
		}
		m1, m2 = m1<<2, m2<<2
		ql = ql[32:]
	}
}

// fitSymmetric finds a scale for x ≈ scale·(L − nmax), L in [0, 2·nmax),
// weighted by x², trying 18 scales around the range's own (ggml's
// make_qx_quants with rmse_type 1). It fills L and returns the scale.
func fitSymmetric(x []float32, L []int8, nmax int) float32 {
	var amax, mx float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, mx = a, v
		}
	}
	if amax < 1e-15 {
		clear(L)
		return 0
	}
	fmax := float32(nmax)
	quant := func(iscale float32) (sumLX, sumL2 float32) {
		for _, v := range x {
			l := max(-nmax, min(nmax-1, nearestInt(iscale*v)))
			w := v * v
			sumLX += w * v * float32(l)
			sumL2 += w * float32(l) * float32(l)
		}
		return
	}
	set := func(iscale float32) {
		for i, v := range x {
			L[i] = int8(nmax + max(-nmax, min(nmax-1, nearestInt(iscale*v))))
		}
	}
	iscale := -fmax / mx
	set(iscale)
	sumLX, sumL2 := quant(iscale)
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		isc := -(fmax + 0.1*float32(is)) / mx
		slx, sl2 := quant(isc)
		if sl2 > 0 && slx*slx > best*sl2 {
			set(isc)
			scale = slx / sl2
			best = scale * slx
		}
	}
	return scale
}

// Q6_K: 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 sub-block
// scales (sub-blocks of 16) and d.
func quantQ6K(dst []byte, x []float32) {
	var L [256]int8
	var sc [16]float32
	var maxScale, maxAbs float32
	for ib := 0; ib < 16; ib++ {
		sc[ib] = fitSymmetric(x[16*ib:16*ib+16], L[16*ib:16*ib+16], 32)
		if a := abs32(sc[ib]); a > maxAbs {
			maxAbs, maxScale = a, sc[ib]
		}
	}
	clear(dst[:210])
	if maxAbs < 1e-15 {
		return
	}
	iscale := -128 / maxScale
	putF16(dst[208:], 1/iscale)
	d := float16.Fromfloat32(1 / iscale).Float32()
	scales := dst[192:208]
	for ib := 0; ib < 16; ib++ {
		scales[ib] = byte(int8(min(127, nearestInt(iscale*sc[ib]))))
	}
	for j := 0; j < 16; j++ {
		dj := d * float32(int8(scales[j]))
		if dj == 0 {
			continue
		}
		for i := 0; i < 16; i++ {
			l := max(-32, min(31, nearestInt(x[16*j+i]/dj)))
			L[16*j+i] = int8(l + 32)
		}
	}
	ql, qh := dst[0:128], dst[128:192]
	for j := 0; j < 256; j += 128 {
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := uint8(L[j+l])&0xF, uint8(L[j+l+32])&0xF, uint8(L[j+l+64])&0xF, uint8(L[j+l+96])&0xF
			ql[l] = q1 | q3<<4
			ql[l+32] = q2 | q4<<4
			qh[l] = uint8(L[j+l])>>4 | (uint8(L[j+l+32])>>4)<<2 | (uint8(L[j+l+64])>>4)<<4 | (uint8(L[j+l+96])>>4)<<6
		}
		ql, qh = ql[64:], qh[32:]
	}
}
