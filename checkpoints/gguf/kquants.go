package gguf

import (
	"encoding/binary"
	"fmt"

	"github.com/x448/float16"
)

// K-quants: super-blocks of 256 values (llama.cpp's ggml-common.h layouts).
// lowrank has no GEMM kernel for them; loaders dequantize them row by row and
// re-quantize to a training format. The arithmetic follows ggml's reference
// dequantizers operation for operation in float32, so the values equal
// llama.cpp's gguf-py dequantize bit for bit.

const qk = 256

// Dequantize decodes n values of type t from src into dst. It supports the
// float types, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K.
func Dequantize(t Type, dst []float32, src []byte) error {
	vals, bytes, ok := t.BlockSize()
	if !ok {
		return fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	n := len(dst)
	if n%vals != 0 || len(src) < n/vals*bytes {
		return fmt.Errorf("%s: %d values need %d bytes, have %d", t, n, n/vals*bytes, len(src))
	}
	nb := n / vals
	switch t {
	case TypeQ4_K:
		for b := 0; b < nb; b++ {
			dequantQ4K(dst[b*qk:(b+1)*qk], src[b*144:(b+1)*144])
		}
	case TypeQ5_K:
		for b := 0; b < nb; b++ {
			dequantQ5K(dst[b*qk:(b+1)*qk], src[b*176:(b+1)*176])
		}
	case TypeQ6_K:
		for b := 0; b < nb; b++ {
			dequantQ6K(dst[b*qk:(b+1)*qk], src[b*210:(b+1)*210])
		}
	case TypeF32:
		for i := range dst {
			dst[i] = f32(src[4*i:])
		}
	case TypeF16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(src[2*i:])).Float32()
		}
	case TypeBF16:
		for i := range dst {
			dst[i] = f32bits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case TypeQ8_0:
		for b := 0; b < nb; b++ {
			blk := src[b*34:]
			d := h(blk)
			for j := 0; j < 32; j++ {
				dst[b*32+j] = float32(int8(blk[2+j])) * d
			}
		}
	case TypeQ4_0:
		for b := 0; b < nb; b++ {
			blk := src[b*18:]
			d := h(blk)
			for j := 0; j < 16; j++ {
				dst[b*32+j] = float32(int(blk[2+j]&15)-8) * d
				dst[b*32+j+16] = float32(int(blk[2+j]>>4)-8) * d
			}
		}
	case TypeQ5_0, TypeQ5_1:
		for b := 0; b < nb; b++ {
			blk := src[b*bytes:]
			d := h(blk)
			var m float32
			off, bias := 2, float32(16)
			if t == TypeQ5_1 {
				m, off, bias = h(blk[2:]), 4, 0
			}
			qh := binary.LittleEndian.Uint32(blk[off:])
			qs := blk[off+4:]
			for j := 0; j < 16; j++ {
				x0 := float32(int(qs[j]&15)|int(qh>>j&1)<<4) - bias
				x1 := float32(int(qs[j]>>4)|int(qh>>(j+16)&1)<<4) - bias
				dst[b*32+j] = x0*d + m
				dst[b*32+j+16] = x1*d + m
			}
		}
	default:
		return fmt.Errorf("dequantizing %s is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)", t)
	}
	return nil
}

func h(b []byte) float32 { return float16.Frombits(binary.LittleEndian.Uint16(b)).Float32() }

// scaleMinK4 unpacks the j-th 6-bit scale and min of a Q4_K/Q5_K block.
func scaleMinK4(j int, q []byte) (sc, m byte) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return (q[j+4] & 0xF) | ((q[j-4] >> 6) << 4), (q[j+4] >> 4) | ((q[j] >> 6) << 4)
}

// Q4_K: d, dmin (fp16), 12 bytes of 6-bit scales/mins for 8 sub-blocks, 128 bytes of nibbles.
func dequantQ4K(y []float32, b []byte) {
	d, dmin := h(b[0:]), h(b[2:])
	scales, q := b[4:16], b[16:144]
	is := 0
	for j := 0; j < qk; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := 0; l < 32; l++ {
			y[j+l] = d1*float32(q[l]&0xF) - m1
			y[j+32+l] = d2*float32(q[l]>>4) - m2
		}
		q = q[32:]
		is += 2
	}
}

// Q5_K: d, dmin, 12 bytes of scales/mins, 32 bytes of high bits, 128 bytes of nibbles.
func dequantQ5K(y []float32, b []byte) {
	d, dmin := h(b[0:]), h(b[2:])
	scales, qh, ql := b[4:16], b[16:48], b[48:176]
	is := 0
	u1, u2 := byte(1), byte(2)
	for j := 0; j < qk; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := 0; l < 32; l++ {
			hi1, hi2 := 0, 0
			if qh[l]&u1 != 0 {
				hi1 = 16
			}
			if qh[l]&u2 != 0 {
				hi2 = 16
			}
			y[j+l] = d1*float32(int(ql[l]&0xF)+hi1) - m1
			y[j+32+l] = d2*float32(int(ql[l]>>4)+hi2) - m2
		}
		ql = ql[32:]
		is += 2
		u1 <<= 2
		u2 <<= 2
	}
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales, d (fp16).
func dequantQ6K(y []float32, b []byte) {
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	d := h(b[208:])
	for n := 0; n < qk; n += 128 {
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int(int8((ql[l]&0xF)|((qh[l]>>0)&3)<<4)) - 32
			q2 := int(int8((ql[l+32]&0xF)|((qh[l]>>2)&3)<<4)) - 32
			q3 := int(int8((ql[l]>>4)|((qh[l]>>4)&3)<<4)) - 32
			q4 := int(int8((ql[l+32]>>4)|((qh[l]>>6)&3)<<4)) - 32
			y[n+l] = d * float32(int8(sc[is])) * float32(q1)
			y[n+l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			y[n+l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			y[n+l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
		ql, qh, sc = ql[64:], qh[32:], sc[8:]
	}
}
