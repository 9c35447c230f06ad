package kernels

import "unsafe"

// goKernel is the pure-Go 4×4 microkernel: always compiled, the reference path
// for every CPU, and what LOWRANK_KERNEL=go or the noasm tag select.
var goKernel = &microKernel{name: "go", mr: 4, nr: 4, mc: 128, kc: 256, nc: 1024, fn: gemm4x4Go}

func gemm4x4Go(kc int, ap, bp, cp *float32, ldc int, overwrite bool) {
	a := unsafe.Slice(ap, kc*4)
	b := unsafe.Slice(bp, kc*4)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	for p := 0; p < kc; p++ {
		av := a[p*4 : p*4+4 : p*4+4]
		bv := b[p*4 : p*4+4 : p*4+4]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		a0 := av[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := av[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := av[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := av[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	c := unsafe.Slice(cp, 3*ldc+4)
	if overwrite { // C = acc: clear, then the same adds as the accumulate path
		clear(c[0:4])
		clear(c[ldc : ldc+4])
		clear(c[2*ldc : 2*ldc+4])
		clear(c[3*ldc : 3*ldc+4])
	}
	r := c[0:4:4]
	r[0] += c00
	r[1] += c01
	r[2] += c02
	r[3] += c03
	r = c[ldc : ldc+4 : ldc+4]
	r[0] += c10
	r[1] += c11
	r[2] += c12
	r[3] += c13
	r = c[2*ldc : 2*ldc+4 : 2*ldc+4]
	r[0] += c20
	r[1] += c21
	r[2] += c22
	r[3] += c23
	r = c[3*ldc : 3*ldc+4 : 3*ldc+4]
	r[0] += c30
	r[1] += c31
	r[2] += c32
	r[3] += c33
}
