package kernels

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"runtime"
	"testing"
)

// bf16Pools are pools on every bf16 path this CPU has (go-bf16 always).
func bf16Pools(t testing.TB, threads int) []*Pool {
	var ps []*Pool
	for _, pa := range bf16Twins() {
		ps = append(ps, NewPoolOn(threads, pa))
	}
	return ps
}

// nearestBF16 is round-to-nearest-even to bfloat16 done another way: the
// two neighbours of f in bf16, compared exactly (math/big).
func nearestBF16(f float32) uint16 {
	u := math.Float32bits(f)
	lo := uint16(u >> 16)
	if u&0xffff == 0 {
		return lo
	}
	hi := lo + 1 // the next bf16 away from zero
	x := new(big.Float).SetFloat64(float64(f))
	dl := new(big.Float).Sub(x, big.NewFloat(float64(fromBF16(lo))))
	dh := new(big.Float).Sub(big.NewFloat(float64(fromBF16(hi))), x)
	if hi&0x7f80 == 0x7f80 { // rounding up overflows to Inf: Inf counts as 2^128
		dh = new(big.Float).Sub(new(big.Float).SetMantExp(big.NewFloat(math.Copysign(1, float64(f))), 128), x)
	}
	dl.Abs(dl)
	dh.Abs(dh)
	switch dl.Cmp(dh) {
	case -1:
		return lo
	case 1:
		return hi
	}
	if lo&1 == 0 {
		return lo
	}
	return hi
}

// TestToBF16DAZ: rounding to nearest even against an exact comparison of
// the two neighbours, over random bits and the edges (ties, the largest
// finite value rounding to Inf, Inf, NaN, denormals to signed zeros).
func TestToBF16DAZ(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 16))
	check := func(f float32) {
		got := toBF16DAZ(f)
		u := math.Float32bits(f)
		switch {
		case f != f:
			if got&0x7f80 != 0x7f80 || got&0x7f == 0 {
				t.Errorf("NaN %#x became %#x", u, got)
			}
		case u&0x7f800000 == 0:
			if got != uint16(u>>16)&0x8000 {
				t.Errorf("denormal %#x became %#x, want a signed zero", u, got)
			}
		case math.IsInf(float64(f), 0):
			if got != uint16(u>>16) {
				t.Errorf("%g became %#x", f, got)
			}
		default:
			if want := nearestBF16(f); got != want {
				t.Errorf("%g (%#x): %#x, want %#x", f, u, got, want)
			}
		}
	}
	for _, u := range []uint32{0x3f808000, 0x3f818000, 0x3f808001, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0xff7fffff,
		0x7f800000, 0x7fc00000, 0x7f800001, 0x00000001, 0x807fffff, 0x00800000, 0x80000000, 0} {
		check(math.Float32frombits(u))
	}
	for i := 0; i < 200000; i++ {
		check(math.Float32frombits(r.Uint32()))
	}
}

// TestDotBF16Step: one VDPBF16PS lane, by its definition: the odd product
// added first, then the even one, each sum rounded once to fp32 (checked
// in float64, where the exact sum of an fp32 and an exact product of two
// bf16 rounds to fp32 correctly), denormals taken as zero.
func TestDotBF16Step(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 16))
	bf := func() uint16 { return toBF16DAZ(float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))) }
	for i := 0; i < 100000; i++ {
		a := uint32(bf()) | uint32(bf())<<16
		b := uint32(bf()) | uint32(bf())<<16
		acc := float32(r.NormFloat64() * 4)
		got := dotBF16Step(acc, a, b)
		s := float32(float64(acc) + float64(fromBF16(uint16(a>>16)))*float64(fromBF16(uint16(b>>16))))
		want := float32(float64(s) + float64(fromBF16(uint16(a)))*float64(fromBF16(uint16(b))))
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("acc %g a %#x b %#x: %g, want %g", acc, a, b, got, want)
		}
	}
	// Denormals in and out are zeros.
	tiny := math.Float32frombits(0x00400000)
	if got := dotBF16Step(tiny, 0, 0); got != 0 {
		t.Errorf("a denormal accumulator: %g, want 0", got)
	}
	small := uint32(toBF16DAZ(float32(math.Exp2(-70)))) << 16
	if got := dotBF16Step(0, small, small); got != 0 {
		t.Errorf("a product below the normal range: %g, want 0", got)
	}
}

// TestBF16Kernels: each bf16 kernel on its own tile, accumulating and
// overwriting, for pair counts around its unrolling: the VDPBF16PS kernels
// give the pure-Go kernel's bits; AMX, whose tiles accumulate in their own
// order, agrees with a float64 product within fp32 accumulation's error,
// and its many-sliver form gives its one-sliver form's bits.
func TestBF16Kernels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 16))
	bfv := func() float32 { return fromBF16(toBF16DAZ(float32(r.NormFloat64()))) }
	for _, pa := range bf16Twins() {
		bk := pa.bf16
		mr, nr, _, _, _ := bk.geom(pa.mk)
		for _, kc := range []int{1, 2, 5, 9, 16, 31, 32, 33, 64, 256, 257} {
			kp := bk.pairs(kc)
			const nsl = 3
			// The operands as fp32 slivers, packed as the driver packs them.
			af := make([]float32, kc*mr)
			bf := make([]float32, nsl*kc*nr)
			for i := range af {
				af[i] = bfv()
			}
			for i := range bf {
				bf[i] = bfv()
			}
			a := make([]uint32, kp*mr)
			b := make([]uint32, nsl*kp*nr)
			if bk.rowsA {
				packRowsAMX(a, af, mr, kc, kp, 1)
			} else {
				packPairs(&pa.conv, a, af, mr, kc, kp, 1)
			}
			packPairs(&pa.conv, b, bf, nr, kc, kp, nsl)
			for _, over := range []bool{false, true} {
				ldc := nsl*nr + 3
				c := make([]float32, mr*ldc)
				for i := range c {
					c[i] = float32(r.NormFloat64())
				}
				c0 := append([]float32(nil), c...)
				for s := 0; s < nsl; s++ {
					bk.fn(kp, &a[0], &b[s*kp*nr], &c[s*nr], ldc, over)
				}
				name := fmt.Sprintf("%s kc=%d overwrite=%v", bk.name, kc, over)
				if bk.run != nil {
					cr := append([]float32(nil), c0...)
					bk.run(kp, &a[0], &b[0], &cr[0], ldc, over, nsl)
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(cr[i]) {
							t.Fatalf("%s: %d slivers in one call: C[%d] = %g, one at a time %g", name, nsl, i, cr[i], c[i])
						}
					}
				}
				if !bk.ownRounding {
					want := append([]float32(nil), c0...)
					for s := 0; s < nsl; s++ {
						gemmBF16Go(mr, nr, kp, &a[0], &b[s*kp*nr], &want[s*nr], ldc, over)
					}
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s: C[%d] = %g, want %g", name, i, c[i], want[i])
						}
					}
					continue
				}
				for i := 0; i < mr; i++ {
					for j := 0; j < nsl*nr; j++ {
						s, jj := j/nr, j%nr
						var exact, mag float64
						for p := 0; p < kc; p++ {
							v := float64(af[p*mr+i]) * float64(bf[(s*kc+p)*nr+jj])
							exact, mag = exact+v, mag+math.Abs(v)
						}
						want := exact
						if !over {
							want += float64(c0[i*ldc+j])
						}
						if d := math.Abs(float64(c[i*ldc+j]) - want); d > 1e-6*float64(kc+2)*(mag+math.Abs(want)) {
							t.Fatalf("%s: C[%d,%d] = %g, want %g", name, i, j, c[i*ldc+j], want)
						}
					}
				}
			}
		}
	}
}

// TestGemmWBF16: GemmW on every bf16 path and weight format, forward and
// backward, with edges (odd K, partial tiles, several K blocks), against a
// float64 product of the bf16-rounded operands (the rounding bf16 compute
// defines), within fp32 accumulation's error; every VDPBF16PS path gives
// the go-bf16 path's bits; and the product is within bf16's own error of
// the fp32 one.
func TestGemmWBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 16))
	shapes := [][3]int{{1, 1, 1}, {7, 33, 29}, {13, 64, 64}, {33, 96, 172}, {129, 100, 301}, {5, 257, 129}, {40, 31, 520}, {3, 4400, 9}}
	ref := NewPoolOn(2, goBF16Path)
	f32 := NewPoolOn(2, goPath)
	for _, p := range bf16Pools(t, 2) {
		for _, f := range []Format{F32, F16, BF16, Q8_0, Q4_0, NF4} {
			for _, sh := range shapes {
				rows, cols, m := sh[0], sh[1], sh[2]
				src := randMat(r, rows, cols, cols)
				w := Quantize(f, rows, cols, src.Data)
				wd := w.Dequantize()
				for _, tw := range []Op{Trans, NoTrans} {
					k := cols
					if tw == NoTrans {
						k = rows
					}
					x := randMat(r, m, k, k+1)
					bc := wd.Rows
					if tw == NoTrans {
						bc = wd.Cols
					}
					c := randMat(r, m, bc, bc)
					c0, cr, cf := cloneMat(c), cloneMat(c), cloneMat(c)
					p.GemmW(c, 0.5, x, NoTrans, w, tw, 1)
					ref.GemmW(cr, 0.5, x, NoTrans, w, tw, 1)
					f32.GemmW(cf, 0.5, x, NoTrans, w, tw, 1)
					name := fmt.Sprintf("%s %s W %d×%d op %v, M=%d", p.Path().Name(), f, rows, cols, tw, m)
					if bmr, _, _, _, _ := p.Path().bf16.geom(p.mk); m < bmr {
						// Fewer rows than the bf16 tile run in fp32: the fp32 path's bits.
						fp := NewPoolOn(2, p.Path().f32Twin())
						cw := cloneMat(c0)
						fp.GemmW(cw, 0.5, x, NoTrans, w, tw, 1)
						for i := range c.Data {
							if math.Float32bits(c.Data[i]) != math.Float32bits(cw.Data[i]) {
								t.Fatalf("%s: C[%d] = %g, the %s path gives %g", name, i, c.Data[i], fp.Path().Name(), cw.Data[i])
							}
						}
						continue
					}
					for i := range c.Data {
						if !p.Path().bf16.ownRounding && math.Float32bits(c.Data[i]) != math.Float32bits(cr.Data[i]) {
							t.Fatalf("%s: C[%d] = %g, go-bf16 gives %g", name, i, c.Data[i], cr.Data[i])
						}
					}
					bk := denseOp(wd, tw)
					for i := 0; i < m; i++ {
						for j := 0; j < bc; j++ {
							var exact, mag, full float64
							for q := 0; q < k; q++ {
								av := float64(fromBF16(toBF16DAZ(0.5 * x.Data[i*x.Stride+q])))
								bv := float64(fromBF16(toBF16DAZ(float32(bk[q][j]))))
								exact += av * bv
								mag += math.Abs(av * bv)
								full += 0.5 * float64(x.Data[i*x.Stride+q]) * bk[q][j]
							}
							want := exact + float64(c0.Data[i*c.Stride+j])
							got := float64(c.Data[i*c.Stride+j])
							tol := 1e-6*float64(k+2)*(mag+math.Abs(want)) + 1e-30
							if math.Abs(got-want) > tol {
								t.Fatalf("%s: C[%d,%d] = %g, the bf16 operands' product gives %g (tolerance %g)", name, i, j, got, want, tol)
							}
							// bf16 rounds each operand by at most 2^-9 relative.
							if d := math.Abs(float64(cf.Data[i*c.Stride+j]) - got); d > 2*math.Exp2(-8)*mag+tol {
								t.Fatalf("%s: C[%d,%d] = %g, the fp32 path gives %g: further than bf16 rounding explains", name, i, j, got, cf.Data[i*c.Stride+j])
							}
							_ = full
						}
					}
				}
			}
		}
	}
}

// TestBF16Conv: every bf16 path's packing conversions give toBF16DAZ's
// bits (random bit patterns: NaNs, infinities, denormals, ties), at lengths
// around the vector width; and the packing straight from the rows (the
// pair slivers, AMX's A) equals packing through the fp32 sliver.
func TestBF16Conv(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 16))
	src := make([]float32, 301)
	hi := make([]float32, 301)
	for i := range src {
		src[i], hi[i] = math.Float32frombits(r.Uint32()), math.Float32frombits(r.Uint32())
		if i%5 == 0 {
			src[i] = float32(r.NormFloat64())
		}
	}
	src[3], src[4], src[5] = math.Float32frombits(0x3f808000), math.Float32frombits(0x00000001), float32(math.Inf(-1))
	for _, pa := range bf16Twins() {
		cv := &pa.conv
		for _, n := range []int{0, 1, 15, 16, 17, 32, 301} {
			for _, alpha := range []float32{1, -0.5} {
				got := make([]uint16, n)
				cv.rowTo(got, src[:n], alpha)
				for p := range got {
					if want := toBF16DAZ(alpha * src[p]); got[p] != want {
						t.Fatalf("%s row n=%d alpha=%g: [%d] %#x → %#x, want %#x", pa.Name(), n, alpha, p, math.Float32bits(src[p]), got[p], want)
					}
				}
			}
			got := make([]uint32, n)
			pairsTo(got, src[:n], hi[:n])
			for j := range got {
				if want := uint32(toBF16DAZ(src[j])) | uint32(toBF16DAZ(hi[j]))<<16; got[j] != want {
					t.Fatalf("%s pairs n=%d: [%d] %#x, want %#x", pa.Name(), n, j, got[j], want)
				}
			}
		}
		// Whole slivers (packPairs), every width the kernels use and odd
		// ones, against the conversion one value at a time.
		for _, w := range []int{1, 4, 7, 12, 16, 19, 32} {
			for _, kc := range []int{1, 2, 5, 64, 77} {
				in := make([]float32, 2*kc*w)
				for i := range in {
					in[i] = src[(i*7)%len(src)]
				}
				kp := (kc + 1) / 2
				out := make([]uint32, 2*(kp+1)*w)
				for i := range out {
					out[i] = 0xdeadbeef
				}
				packPairs(cv, out, in, w, kc, kp+1, 2)
				for s := 0; s < 2; s++ {
					for q := 0; q <= kp; q++ {
						for j := 0; j < w; j++ {
							var want uint32
							if 2*q < kc {
								want = uint32(toBF16DAZ(in[s*kc*w+2*q*w+j]))
							}
							if 2*q+1 < kc {
								want |= uint32(toBF16DAZ(in[s*kc*w+(2*q+1)*w+j])) << 16
							}
							if got := out[s*(kp+1)*w+q*w+j]; got != want {
								t.Fatalf("%s packPairs w=%d kc=%d: sliver %d pair %d lane %d = %#x, want %#x", pa.Name(), w, kc, s, q, j, got, want)
							}
						}
					}
				}
			}
		}
		// Straight from rows (packPairsT): the transpose then packPairs, in
		// Go, bit for bit; rows fewer than the width, K past whole blocks.
		for _, w := range []int{1, 7, 12, 16, 19, 32} {
			for _, kc := range []int{1, 2, 31, 32, 33, 64, 77, 256} {
				for _, rows := range []int{w, (w + 1) / 2} {
					for _, alpha := range []float32{1, -0.5} {
						rs := make([][]float32, rows)
						for j := range rs {
							rs[j] = make([]float32, kc)
							for p := range rs[j] {
								rs[j][p] = src[(j*131+p*7)%len(src)]
							}
						}
						kp := (kc+1)/2 + 1
						sliver := make([]float32, kc*w)
						transposeRowsGo(sliver, rs, w, alpha)
						want := make([]uint32, kp*w)
						packPairs(&bf16Conv{}, want, sliver, w, kc, kp, 1)
						got := make([]uint32, kp*w)
						for i := range got {
							got[i] = 0xdeadbeef
						}
						packPairsT(cv, got, rs, w, kp, alpha)
						for i := range want {
							if got[i] != want[i] {
								t.Fatalf("%s packPairsT w=%d rows=%d kc=%d alpha=%g: [%d] = %#x, want %#x", pa.Name(), w, rows, kc, alpha, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
		if !pa.bf16.rowsA {
			continue
		}
		for _, kc := range []int{1, 31, 32, 33, 100, 256} {
			const mr, mc = 32, 45
			a := randMat(r, 60, 300, 301)
			ws := newWorkspace(pa)
			kp := pa.bf16.pairs(kc)
			ws.packRowsAMXFrom(a, 0.5, mr, 7, mc, 3, kc, kp)
			direct := append([]uint32(nil), ws.apack16[:2*kp*mr]...)
			ws.packA(a, NoTrans, 0.5, mr, 7, mc, 3, kc)
			packRowsAMX(ws.apack16, ws.apack, mr, kc, kp, 2)
			for i, v := range direct {
				if ws.apack16[i] != v {
					t.Fatalf("%s kc=%d: packed straight from the rows, [%d] = %#x; through the sliver %#x", pa.Name(), kc, i, v, ws.apack16[i])
				}
			}
		}
	}
}

// TestBF16ThreadInvariance: a bf16 GemmW gives the same bits on 1, 2, 3
// and 7 workers.
func TestBF16ThreadInvariance(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 16))
	w := Quantize(Q8_0, 576, 1536, randMat(r, 576, 1536, 1536).Data)
	x := randMat(r, 300, 1536, 1536)
	dy := randMat(r, 300, 576, 576)
	for _, pa := range bf16Twins() {
		var first [2][]float32
		for _, threads := range []int{1, 2, 3, 7} {
			p := NewPoolOn(threads, pa)
			y := NewMat(300, 576)
			p.GemmW(y, 1, x, NoTrans, w, Trans, 0)
			dx := NewMat(300, 1536)
			p.GemmW(dx, 1, dy, NoTrans, w, NoTrans, 0)
			if threads == 1 {
				first = [2][]float32{y.Data, dx.Data}
				continue
			}
			for k, got := range [][]float32{y.Data, dx.Data} {
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(first[k][i]) {
						t.Fatalf("%s, %d workers, product %d: element %d differs from 1 worker's", pa.Name(), threads, k, i)
					}
				}
			}
		}
	}
}

// TestBF16Paths: the names, IDs and twins of the bf16 paths.
func TestBF16Paths(t *testing.T) {
	g, err := goPath.BF16()
	if err != nil || g != goBF16Path || g.Name() != "go-bf16" || g.ComputeDType() != "bf16" || goPath.ComputeDType() != "f32" {
		t.Fatalf("go's twin: %v %v", g, err)
	}
	if id := g.ID(); id != "go 2x4 rows=go blocks=go transpose=go compute=bf16(go)" {
		t.Errorf("ID %q", id)
	}
	for _, pa := range bf16Twins() {
		if got, err := ChoosePath(pa.Name()); err != nil || got != pa {
			t.Errorf("ChoosePath(%q): %v %v", pa.Name(), got, err)
		}
	}
	for _, pa := range Paths() {
		if pa.bf16 != nil {
			t.Errorf("%s is among the default paths", pa.Name())
		}
	}
}

// TestBF16Concurrent: bf16 products on many goroutines at once (pools of
// their own, the garbage collector and the scheduler's preemption signals
// running meanwhile: tile state lives within one kernel call) give the
// bits one goroutine alone gives.
func TestBF16Concurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 16))
	w := Quantize(Q8_0, 200, 320, randMat(r, 200, 320, 320).Data)
	x := randMat(r, 70, 320, 320)
	for _, pa := range bf16Twins() {
		want := NewMat(70, 200)
		NewPoolOn(1, pa).GemmW(want, 1, x, NoTrans, w, Trans, 0)
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			go func() {
				p := NewPoolOn(1+g%2, pa)
				y := NewMat(70, 200)
				for it := 0; it < 30; it++ {
					p.GemmW(y, 1, x, NoTrans, w, Trans, 0)
					for i := range y.Data {
						if math.Float32bits(y.Data[i]) != math.Float32bits(want.Data[i]) {
							errs <- fmt.Errorf("%s, goroutine %d, round %d: element %d differs", pa.Name(), g, it, i)
							return
						}
					}
					if it%10 == 0 {
						runtime.GC()
					}
				}
				errs <- nil
			}()
		}
		for g := 0; g < 8; g++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// f32Twin is the fp32 path p is the bf16 or int8 twin of (p itself if it
// is fp32).
func (p *Path) f32Twin() *Path {
	if p.bf16 == nil && p.i8 == nil {
		return p
	}
	for _, q := range paths() {
		if q.mk == p.mk {
			return q
		}
	}
	return goPath
}
