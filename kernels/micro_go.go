package kernels

import "unsafe"

// goKernel is the pure-Go microkernel: always compiled, the reference path for
// every CPU, and what LOWRANK_KERNEL=go or the noasm tag select. The tile is
// 2×4: eight accumulators are enough independent add chains to cover the
// latency of scalar SSE adds, and with the A and B values they fit in the 15
// float registers Go uses on amd64 (a 4×4 tile spills and runs at half speed).
// The loop takes two steps of p per iteration: one loop test and one slice
// advance per 32 flops instead of per 16 (4.8 → 7.5 GFLOPS on the AVX-512
// machine at GOAMD64=v1, go test -bench Microkernel/go ./kernels).
var goKernel = &microKernel{name: "go", mr: 2, nr: 4, mc: 128, kc: 256, nc: 1024, fn: gemm2x4Go}

func gemm2x4Go(kc int, ap, bp, cp *float32, ldc int, overwrite bool) {
	a := unsafe.Slice(ap, kc*2)
	b := unsafe.Slice(bp, kc*4)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	for len(a) >= 4 && len(b) >= 8 { // two steps of p; the condition proves the indexes in range
		a0, a1 := a[0], a[1]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a0, a1 = a[2], a[3]
		b0, b1, b2, b3 = b[4], b[5], b[6], b[7]
		a, b = a[4:], b[8:]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
	}
	for len(a) >= 2 && len(b) >= 4 { // the loop condition proves the indexes below in range
		a0, a1 := a[0], a[1]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		a, b = a[2:], b[4:]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
	}
	c := unsafe.Slice(cp, ldc+4)
	r0, r1 := c[0:4:4], c[ldc:ldc+4:ldc+4]
	if overwrite { // C = acc: clear, then the same adds as the accumulate path
		clear(r0)
		clear(r1)
	}
	r0[0] += c00
	r0[1] += c01
	r0[2] += c02
	r0[3] += c03
	r1[0] += c10
	r1[1] += c11
	r1[2] += c12
	r1[3] += c13
}
