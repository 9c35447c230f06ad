package kernels

import (
	"fmt"
	"math"
	"os"
	"strings"
)

// Path is the CPU-specific code a Pool runs, chosen once (NewPool) and
// carried by the Pool: the GEMM microkernel with its dot- and outer-product
// forms, the row kernels (max, exp-and-sum, SwiGLU), the block decoders of
// the quantized formats and the packing transpose. Nothing else picks a
// code path: a Pool on the "avx2" path runs no AVX-512 instruction, one on
// "go" no assembly at all. Paths agree within float tolerance; a run is
// bitwise reproducible on one path, so a checkpoint records its ID.
type Path struct {
	mk        *microKernel
	rows      rowKernels
	blocks    blockDecoders
	transpose transposeFn // nil: pure Go
	// packT packs kc rows of a transposed A (n ≤ 16 values each, srcBytes
	// apart, times alpha) as rows of a w-wide sliver (dstBytes apart; lanes
	// n..w-1 zero; nmask, wmask: the low n, w bits). nil: pure Go.
	packT func(dst, src *float32, kc, srcBytes, dstBytes int, nmask, wmask uint16, alpha float32)
	// simd names the instruction set of the vectorized pieces ("avx512");
	// pieces left nil run in pure Go.
	simd string
	// bf16, when set, computes GemmW's products in bf16 (see bf16.go),
	// packing through conv.
	bf16 *bf16Kernel
	conv bf16Conv
	// i8, when set, computes GemmW's forward products with a quantized
	// base in int8 (see int8.go); with i8Rows > 0 only those of at most
	// that many rows (generation's tokens, not its prompt).
	i8     *int8Kernel
	i8Rows int
}

// rowKernels are the vectorized row kernels of a path; nil members run in Go.
type rowKernels struct {
	max         func(x *float32, n int) float32
	expShiftSum func(x *float32, n int, shift float32) float32
	swiglu      func(dst, g, u *float32, n int)
	swigluBack  func(dg, du, dy, g, u *float32, n int)
	// Generation's attention over a cache in place (rows of nvec·16
	// floats, strideBytes apart, nvec ≤ 8): see DotRows, AxpyRows.
	dotRows  func(dst, x, m *float32, rows, strideBytes, nvec int, alpha float32)
	axpyRows func(dst, a, m *float32, rows, strideBytes, nvec int)
}

// blockDecoders are the vectorized decoders of quantized blocks (nb blocks,
// run r of 32 values at dst[r·step/4:]); nil members run in Go. They give
// the same bits as the Go decoders (TestBlockDecoders).
type blockDecoders struct {
	q8_0, q4_0 func(dst *float32, src *byte, nb, step int)
	nf4        func(dst *float32, src *byte, scale *float32, code *float32, nb, step int)
	// prefetch asks for each 64 bytes of n spans of span bytes, stride
	// apart from p, to be brought into cache (nil: nothing).
	prefetch func(p *byte, n, stride, span int)
	// f16 and bf16 convert n half-precision values (n a multiple of 8) to
	// fp32, exactly (a NaN stays a NaN, perhaps quieted).
	f16, bf16 func(dst *float32, src *uint16, n int)
}

// transposeFn transposes the first 16·⌊kc/16⌋ columns of at most 16 rows as
// transposeRowsGo does and returns how many columns it did (0: none).
type transposeFn func(dst []float32, rows [][]float32, w int, alpha float32) int

// goPath is pure Go: always compiled, on every CPU the reference.
var goPath = &Path{mk: goKernel}

// Name is the path's name: its microkernel's (avx512, avx2, neon, go),
// with "-bf16" or "-amx" for a path computing GemmW in bf16, "-int8" for
// one computing its forward products in int8.
func (p *Path) Name() string {
	if p.bf16 != nil {
		return p.mk.name + "-" + p.bf16.suffix
	}
	if p.i8 != nil {
		return p.mk.name + "-" + p.i8.suffix
	}
	return p.mk.name
}

// PathInfo describes a path piece by piece (bench, logs, checkpoints).
type PathInfo struct {
	Name        string `json:"name"`
	Microkernel string `json:"microkernel"` // name and register tile, e.g. "avx512 12x32"
	Dot         bool   `json:"dot_form"`    // narrow products in dot-product form
	Outer       bool   `json:"outer_form"`  // LoRA gradients in outer-product form
	Rows        string `json:"row_kernels"`
	Blocks      string `json:"block_decoders"`
	Transpose   string `json:"transpose"`
	Compute     string `json:"compute"`               // GemmW's products: f32, bf16 or int8
	BF16Kernel  string `json:"bf16_kernel,omitempty"` // with bf16: its kernel (amx, avx512bf16, go)
	Int8Kernel  string `json:"int8_kernel,omitempty"` // with int8: its kernel (vnni, go)
}

// Info describes p.
func (p *Path) Info() PathInfo {
	which := func(vectorized bool) string {
		if vectorized {
			return p.simd
		}
		return "go"
	}
	in := PathInfo{
		Name: p.Name(), Microkernel: fmt.Sprintf("%s %dx%d", p.mk.name, p.mk.mr, p.mk.nr),
		Dot: p.mk.dot != nil, Outer: p.mk.outer != nil,
		Rows: which(p.rows.max != nil), Blocks: which(p.blocks.q8_0 != nil), Transpose: which(p.transpose != nil),
		Compute: p.ComputeDType(),
	}
	if p.bf16 != nil {
		in.BF16Kernel = p.bf16.name
	}
	if p.i8 != nil {
		in.Int8Kernel = p.i8.name
	}
	return in
}

// ID is a one-line summary that differs between paths that can round
// differently: "avx512 12x32 dot outer rows=avx512 blocks=avx512 transpose=avx512".
func (p *Path) ID() string {
	in := p.Info()
	s := in.Microkernel
	if in.Dot {
		s += " dot"
	}
	if in.Outer {
		s += " outer"
	}
	s = fmt.Sprintf("%s rows=%s blocks=%s transpose=%s", s, in.Rows, in.Blocks, in.Transpose)
	if in.BF16Kernel != "" {
		s += " compute=bf16(" + in.BF16Kernel + ")"
	}
	if in.Int8Kernel != "" {
		s += " compute=int8(" + in.Int8Kernel
		if p.i8Rows > 0 {
			s += fmt.Sprintf(", M≤%d", p.i8Rows)
		}
		s += ")"
	}
	return s
}

func (p *Path) String() string { return p.ID() }

// Paths lists the paths this CPU and build can run, best first; "go" is
// always last.
func Paths() []*Path { return paths() }

// Kernels lists the names of Paths.
func Kernels() []string {
	var names []string
	for _, p := range paths() {
		names = append(names, p.Name())
	}
	return names
}

// ChoosePath returns the named path (a bf16 or int8 path too:
// "avx512-bf16", "go-bf16", "avx512-int8"), or for "" the one LOWRANK_KERNEL names, or the best this CPU
// has.
func ChoosePath(name string) (*Path, error) {
	avail := paths()
	if name == "" {
		name = strings.TrimSpace(os.Getenv("LOWRANK_KERNEL"))
	}
	if name == "" {
		return avail[0], nil
	}
	twins := append(bf16Twins(), int8Twins()...)
	for _, p := range append(avail, twins...) {
		if p.Name() == name {
			return p, nil
		}
	}
	names := Kernels()
	for _, p := range twins {
		names = append(names, p.Name())
	}
	return nil, fmt.Errorf("kernels: path %q is not available on this CPU/build (have %s)", name, strings.Join(names, ", "))
}

// Max returns the largest element of a non-empty x.
func (p *Path) Max(x []float32) float32 {
	if p.rows.max != nil && len(x) > 0 {
		return p.rows.max(&x[0], len(x))
	}
	return Max(x)
}

// DotRows writes dst[j] = alpha·(x · m.Row(j)) for each row of m (m.Cols =
// len(x)): attention's scores of one query against the cached keys, read
// in place.
func (p *Path) DotRows(dst, x []float32, m Mat, alpha float32) {
	if len(x) != m.Cols || len(dst) < m.Rows {
		panic(fmt.Sprintf("kernels: DotRows: %d values, x of %d, m %d×%d", len(dst), len(x), m.Rows, m.Cols))
	}
	if m.Rows == 0 {
		return
	}
	if p.rows.dotRows != nil && m.Cols%16 == 0 && m.Cols <= 128 {
		_ = m.Data[(m.Rows-1)*m.Stride+m.Cols-1]
		p.rows.dotRows(&dst[0], &x[0], &m.Data[0], m.Rows, 4*m.Stride, m.Cols/16, alpha)
		return
	}
	for j := 0; j < m.Rows; j++ {
		dst[j] = alpha * Dot(x, m.Row(j))
	}
}

// AxpyRows writes dst = Σ_j a[j]·m.Row(j) (len(dst) = m.Cols, len(a) ≥
// m.Rows): attention's weighted sum of the cached values, read in place.
func (p *Path) AxpyRows(dst, a []float32, m Mat) {
	if len(dst) != m.Cols || len(a) < m.Rows {
		panic(fmt.Sprintf("kernels: AxpyRows: %d values, %d weights, m %d×%d", len(dst), len(a), m.Rows, m.Cols))
	}
	if p.rows.axpyRows != nil && m.Cols%16 == 0 && m.Cols <= 128 && m.Rows > 0 {
		_ = m.Data[(m.Rows-1)*m.Stride+m.Cols-1]
		p.rows.axpyRows(&dst[0], &a[0], &m.Data[0], m.Rows, 4*m.Stride, m.Cols/16)
		return
	}
	clear(dst)
	for j := 0; j < m.Rows; j++ {
		Axpy(dst, a[j], m.Row(j))
	}
}

// ExpShiftSum replaces x by exp(x − shift) and returns the sum of the
// results (the softmax numerator and denominator in one pass).
func (p *Path) ExpShiftSum(x []float32, shift float32) float32 {
	if p.rows.expShiftSum != nil && len(x) > 0 {
		return p.rows.expShiftSum(&x[0], len(x), shift)
	}
	return ExpShiftSum(x, shift)
}

// Softmax computes dst = exp(x − max x) / Σ exp(x − max x) (dst may alias
// x); a row of all −Inf (fully masked) gives zeros.
func (p *Path) Softmax(dst, x []float32) {
	sameLen("Softmax", len(dst), x)
	if len(x) == 0 {
		return
	}
	mx := p.Max(x)
	if math.IsInf(float64(mx), -1) {
		clear(dst)
		return
	}
	copy(dst, x)
	Scale(dst, 1/p.ExpShiftSum(dst, mx))
}

// SwiGLU computes dst = silu(gate) ⊙ up (dst may alias either).
func (p *Path) SwiGLU(dst, gate, up []float32) {
	sameLen("SwiGLU", len(dst), gate, up)
	if p.rows.swiglu != nil && len(dst) > 0 {
		p.rows.swiglu(&dst[0], &gate[0], &up[0], len(dst))
		return
	}
	SwiGLU(dst, gate, up)
}

// SwiGLUBackward accumulates the gradients of y = silu(g) ⊙ u (see the
// package function).
func (p *Path) SwiGLUBackward(dgate, dup, dy, gate, up []float32) {
	n := len(dy)
	sameLen("SwiGLUBackward", n, dgate, dup, gate, up)
	if p.rows.swigluBack != nil && n > 0 {
		p.rows.swigluBack(&dgate[0], &dup[0], &dy[0], &gate[0], &up[0], n)
		return
	}
	SwiGLUBackward(dgate, dup, dy, gate, up)
}

// DecodeRow writes row i of w as fp32 into dst (len ≥ w.Cols) with the
// path's block decoders (the same bits as Weight.DecodeRow).
func (p *Path) DecodeRow(w *Weight, dst []float32, i int) { w.decodeRow(&p.blocks, dst, i) }
