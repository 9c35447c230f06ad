package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func TestExp(t *testing.T) {
	worst := 0.0
	check := func(x float32) { checkExp(t, x, Exp(x), &worst) }
	var xs []float32
	for x := float32(-104); x < 89; x += 0.001234 {
		check(x)
		xs = append(xs, x)
	}
	for _, x := range []float32{0, -0, 1, -1, 88.7, 88.72283, -87.3, -100, -103.9, 1e-10, -1e-10} {
		check(x)
		xs = append(xs, x)
	}
	if !math.IsNaN(float64(Exp(float32(math.NaN())))) || Exp(float32(math.Inf(-1))) != 0 || !math.IsInf(float64(Exp(89)), 1) {
		t.Error("special values")
	}
	t.Logf("worst error %.2f ulp", worst)
	// Each path's ExpShiftSum, element by element (its clamp makes x past
	// 88.72283 the largest float, not +Inf: those are left out).
	for _, pa := range paths() {
		e := make([]float32, 0, len(xs))
		for _, x := range xs {
			if x <= 88.72283 {
				e = append(e, x)
			}
		}
		in := append([]float32(nil), e...)
		pa.ExpShiftSum(e, 0)
		pw := 0.0
		for i, x := range in {
			checkExp(t, x, e[i], &pw)
		}
		t.Logf("%s: worst error %.2f ulp", pa.Name(), pw)
	}
}

// checkExp fails t unless got is e^x within 3 ulp (subnormal results:
// within 3 of the smallest subnormal), recording the error in worst.
func checkExp(t *testing.T, x, got32 float32, worst *float64) {
	t.Helper()
	got, want := float64(got32), math.Exp(float64(x))
	if w32 := float32(want); w32 == 0 || math.IsInf(float64(w32), 1) {
		if got != float64(float32(want)) && !(want < 1e-45 && got < 1e-44) {
			t.Fatalf("Exp(%g) = %g, want %g", x, got, want)
		}
		return
	}
	ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1)))) - float64(float32(want))
	if want < 1.2e-38 { // subnormal results: absolute ulp
		ulp = 1.4e-45
	}
	e := math.Abs(got-want) / ulp
	*worst = math.Max(*worst, e)
	if !(e <= 3) {
		t.Fatalf("Exp(%g) = %g, want %g (%.2f ulp)", x, got, want, e)
	}
}

func TestRowKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, n := range []int{1, 3, 8, 17, 64, 172, 577} {
		x, y := randVec(r, n, 1), randVec(r, n, 1)
		var dot float64
		for i := range x {
			dot += float64(x[i]) * float64(y[i])
		}
		if got := float64(Dot(x, y)); math.Abs(got-dot) > 1e-5*float64(n) {
			t.Errorf("Dot n=%d: %g want %g", n, got, dot)
		}
		d := append([]float32(nil), y...)
		Axpy(d, 0.5, x)
		for i := range d {
			if d[i] != y[i]+0.5*x[i] {
				t.Fatalf("Axpy")
			}
		}
		Add(d, x, y)
		Mul(d, d, x)
		for i := range d {
			if d[i] != (x[i]+y[i])*x[i] {
				t.Fatalf("Add/Mul")
			}
		}
		// softmax against float64, sums to 1
		s := make([]float32, n)
		Softmax(s, x)
		mx := math.Inf(-1)
		for _, v := range x {
			mx = math.Max(mx, float64(v))
		}
		var z float64
		for _, v := range x {
			z += math.Exp(float64(v) - mx)
		}
		for i, v := range x {
			if want := math.Exp(float64(v)-mx) / z; math.Abs(float64(s[i])-want) > 1e-6 {
				t.Fatalf("Softmax n=%d [%d] %g want %g", n, i, s[i], want)
			}
		}
		// RMSNorm against float64
		w := randVec(r, n, 1)
		o := make([]float32, n)
		rstd := RMSNorm(o, x, w, 1e-5)
		var ss float64
		for _, v := range x {
			ss += float64(v) * float64(v)
		}
		rs := 1 / math.Sqrt(ss/float64(n)+1e-5)
		if math.Abs(float64(rstd)-rs) > 1e-6*rs {
			t.Fatalf("rstd %g want %g", rstd, rs)
		}
		for i := range o {
			if want := float64(x[i]) * rs * float64(w[i]); math.Abs(float64(o[i])-want) > 1e-5*(1+math.Abs(want)) {
				t.Fatalf("RMSNorm [%d] %g want %g", i, o[i], want)
			}
		}
		// SwiGLU
		sw := make([]float32, n)
		SwiGLU(sw, x, y)
		SiLU(o, x)
		for i := range sw {
			g := float64(x[i])
			want := g / (1 + math.Exp(-g)) * float64(y[i])
			if math.Abs(float64(sw[i])-want) > 1e-6*(1+math.Abs(want)) || math.Abs(float64(o[i])-g/(1+math.Exp(-g))) > 1e-6*(1+math.Abs(g)) {
				t.Fatalf("SwiGLU/SiLU [%d]", i)
			}
		}
	}
	z := []float32{float32(math.Inf(-1)), float32(math.Inf(-1))}
	Softmax(z, z)
	if z[0] != 0 || z[1] != 0 {
		t.Errorf("masked row: %v", z)
	}
}

// centralDiff returns ∂L/∂x[i] of L(x) = Σ dy ⊙ f(x) by central differences in float64.
func centralDiff(f func(x []float64) []float64, x, dy []float64) []float64 {
	g := make([]float64, len(x))
	const h = 1e-6
	for i := range x {
		old := x[i]
		x[i] = old + h
		p := f(x)
		x[i] = old - h
		m := f(x)
		x[i] = old
		for j := range p {
			g[i] += dy[j] * (p[j] - m[j]) / (2 * h)
		}
	}
	return g
}

func to64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

func closeGrad(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > 2e-4*(1+math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %g, central difference %g", what, i, got[i], want[i])
		}
	}
}

func TestRowBackwards(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, n := range []int{1, 5, 33} {
		x, w, dy, u := randVec(r, n, 1), randVec(r, n, 1), randVec(r, n, 1), randVec(r, n, 1)
		x64, w64, dy64, u64 := to64(x), to64(w), to64(dy), to64(u)
		rms := func(x, w []float64) []float64 {
			var ss float64
			for _, v := range x {
				ss += v * v
			}
			rs := 1 / math.Sqrt(ss/float64(len(x))+1e-5)
			o := make([]float64, len(x))
			for i := range x {
				o[i] = x[i] * rs * w[i]
			}
			return o
		}
		dx, dw := make([]float32, n), make([]float32, n)
		rstd := RMSNorm(make([]float32, n), x, w, 1e-5)
		RMSNormBackward(dx, dw, dy, x, w, rstd)
		closeGrad(t, "RMSNorm dx", dx, centralDiff(func(v []float64) []float64 { return rms(v, w64) }, x64, dy64))
		closeGrad(t, "RMSNorm dw", dw, centralDiff(func(v []float64) []float64 { return rms(x64, v) }, w64, dy64))

		sw := func(g, u []float64) []float64 {
			o := make([]float64, len(g))
			for i := range g {
				o[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			return o
		}
		dg, du := make([]float32, n), make([]float32, n)
		SwiGLUBackward(dg, du, dy, x, u)
		closeGrad(t, "SwiGLU dgate", dg, centralDiff(func(v []float64) []float64 { return sw(v, u64) }, x64, dy64))
		closeGrad(t, "SwiGLU dup", du, centralDiff(func(v []float64) []float64 { return sw(x64, v) }, u64, dy64))

		sm := func(x []float64) []float64 {
			mx := math.Inf(-1)
			for _, v := range x {
				mx = math.Max(mx, v)
			}
			var z float64
			o := make([]float64, len(x))
			for i, v := range x {
				o[i] = math.Exp(v - mx)
				z += o[i]
			}
			for i := range o {
				o[i] /= z
			}
			return o
		}
		y := make([]float32, n)
		Softmax(y, x)
		dsx := make([]float32, n)
		SoftmaxBackward(dsx, dy, y)
		closeGrad(t, "Softmax dx", dsx, centralDiff(sm, x64, dy64))
	}
}

func BenchmarkRows(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	x, y, w := randVec(r, 4096, 1), randVec(r, 4096, 1), randVec(r, 4096, 1)
	o := make([]float32, 4096)
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"Dot", func() { Dot(x, y) }},
		{"Axpy", func() { Axpy(o, 0.5, x) }},
		{"RMSNorm", func() { RMSNorm(o, x, w, 1e-5) }},
		{"Softmax", func() { Softmax(o, x) }},
		{"SwiGLU", func() { SwiGLU(o, x, y) }},
		{"Exp", func() { ExpRow(o, x) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(4096 * 4)
			for i := 0; i < b.N; i++ {
				c.f()
			}
		})
	}
}

// TestRowKernelPaths: the vectorized row kernels agree with the pure-Go ones
// on every length 0..70 (tails) and on extreme inputs.
func TestRowKernelPaths(t *testing.T) {
	for _, pa := range paths() {
		t.Run(pa.Name(), func(t *testing.T) { testRowKernelPath(t, pa) })
	}
}

func testRowKernelPath(t *testing.T, pa *Path) {
	r := rand.New(rand.NewPCG(51, 52))
	for n := 1; n <= 70; n++ {
		x := randVec(r, n, 30)
		g, u, dy := randVec(r, n, 4), randVec(r, n, 1), randVec(r, n, 1)
		x[0] = -200 // deep underflow
		if n > 2 {
			x[2] = 95 // overflow clamps
		}
		var want [6][]float32
		var wmax, wsum float32
		wmax = Max(x)
		want[0] = append([]float32(nil), x...)
		wsum = ExpShiftSum(want[0], 3)
		want[1] = make([]float32, n)
		SwiGLU(want[1], g, u)
		want[2], want[3] = make([]float32, n), make([]float32, n)
		SwiGLUBackward(want[2], want[3], dy, g, u)
		if got := pa.Max(x); got != wmax {
			t.Fatalf("n=%d: Max %g, Go %g", n, got, wmax)
		}
		e := append([]float32(nil), x...)
		sum := pa.ExpShiftSum(e, 3)
		if math.Abs(float64(sum-wsum)) > 1e-5*math.Abs(float64(wsum)) {
			t.Fatalf("n=%d: sum %g, Go %g", n, sum, wsum)
		}
		sm, wsm := make([]float32, n), make([]float32, n)
		pa.Softmax(sm, x)
		Softmax(wsm, x)
		for i := range sm {
			if d := math.Abs(float64(sm[i] - wsm[i])); d > 4e-6*math.Abs(float64(wsm[i]))+1e-9 {
				t.Fatalf("n=%d Softmax [%d]: %g, Go %g", n, i, sm[i], wsm[i])
			}
		}
		s := make([]float32, n)
		pa.SwiGLU(s, g, u)
		dg, du := make([]float32, n), make([]float32, n)
		pa.SwiGLUBackward(dg, du, dy, g, u)
		for i := 0; i < n; i++ {
			for k, pair := range [][2]float32{{e[i], want[0][i]}, {s[i], want[1][i]}, {dg[i], want[2][i]}, {du[i], want[3][i]}} {
				if d := math.Abs(float64(pair[0] - pair[1])); d > 4e-6*math.Abs(float64(pair[1]))+1e-8 {
					t.Fatalf("n=%d kernel %d [%d]: %g, Go %g", n, k, i, pair[0], pair[1])
				}
			}
		}
	}
}

// TestAttnRows: DotRows and AxpyRows on every path against float64 sums,
// over cache widths the kernels take (16..128) and others (Go), row counts
// around their unrolling, and a strided cache (rows of several heads).
func TestAttnRows(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	for _, pa := range paths() {
		for _, d := range []int{16, 48, 64, 128, 8, 72, 144} {
			for _, rows := range []int{0, 1, 2, 3, 4, 5, 7, 8, 17, 301} {
				stride := 3*d + 5
				m := randMat(r, rows, d, stride)
				x, a := randVec(r, d, 1), randVec(r, rows+1, 1)
				dst := make([]float32, rows+1)
				dst[rows] = 42
				pa.DotRows(dst, x, m, 0.125)
				if dst[rows] != 42 {
					t.Fatalf("%s d=%d rows=%d: DotRows wrote past its rows", pa.Name(), d, rows)
				}
				out := make([]float32, d)
				for i := range out {
					out[i] = float32(math.NaN()) // overwritten, not added to
				}
				pa.AxpyRows(out, a, m)
				for j := 0; j < rows; j++ {
					var want, mag float64
					for c := 0; c < d; c++ {
						v := float64(x[c]) * float64(m.Data[j*stride+c])
						want += v
						mag += math.Abs(v)
					}
					want *= 0.125
					if math.Abs(float64(dst[j])-want) > 1e-6*(0.125*mag)+1e-30 {
						t.Fatalf("%s d=%d rows=%d: DotRows[%d] = %g, want %g", pa.Name(), d, rows, j, dst[j], want)
					}
				}
				for c := 0; c < d; c++ {
					var want, mag float64
					for j := 0; j < rows; j++ {
						v := float64(a[j]) * float64(m.Data[j*stride+c])
						want += v
						mag += math.Abs(v)
					}
					if math.Abs(float64(out[c])-want) > 1e-6*mag+1e-30 || math.IsNaN(float64(out[c])) {
						t.Fatalf("%s d=%d rows=%d: AxpyRows[%d] = %g, want %g", pa.Name(), d, rows, c, out[c], want)
					}
				}
			}
		}
	}
}
