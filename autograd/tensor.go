package autograd

import (
	"fmt"

	"github.com/lowrank/lowrank/kernels"
)

// Tensor is a Rows×Cols row-major float32 matrix. Grad is nil for tensors that
// need no gradient.
type Tensor struct {
	Data       []float32 // (Rows, Cols)
	Grad       []float32 // (Rows, Cols), or nil
	Rows, Cols int
	refill     func() // recomputes a transient output's values (see Release)
}

// NewParam allocates a trainable zero tensor with a gradient buffer.
func NewParam(rows, cols int) *Tensor {
	return &Tensor{Data: make([]float32, rows*cols), Grad: make([]float32, rows*cols), Rows: rows, Cols: cols}
}

// Const wraps data (not copied) as a tensor that needs no gradient.
func Const(data []float32, rows, cols int) *Tensor {
	if len(data) != rows*cols {
		panic(fmt.Sprintf("autograd: Const %d×%d with %d values", rows, cols, len(data)))
	}
	return &Tensor{Data: data, Rows: rows, Cols: cols}
}

// RequiresGrad reports whether the tensor carries a gradient.
func (t *Tensor) RequiresGrad() bool { return t.Grad != nil }

// Mat views the values as a kernels.Mat.
func (t *Tensor) Mat() kernels.Mat { return kernels.MatOf(t.Data, t.Rows, t.Cols) }

// GradMat views the gradient as a kernels.Mat.
func (t *Tensor) GradMat() kernels.Mat { return kernels.MatOf(t.Grad, t.Rows, t.Cols) }

// Row returns row i of the values.
func (t *Tensor) Row(i int) []float32 { return t.Data[i*t.Cols : (i+1)*t.Cols] }

// ZeroGrad clears the gradient.
func (t *Tensor) ZeroGrad() { clear(t.Grad) }

// Tape records ops for one forward pass and runs their backward in reverse.
type Tape struct {
	Pool   *kernels.Pool
	ops    []func()
	act    arena
	noGrad bool
	sub    *Tape // scratch tape for Checkpoint

	// Block tapes (see Block): each keeps one block's activations; their
	// gradients and backward scratch come from grads, one arena they share.
	blocks      []*Tape
	shared      *arena       // owned by the root tape
	sharedTrans *arena       // the blocks' transient outputs, owned by the root tape
	bound       [2][]float32 // the blocks' output gradients, by parity (see Block)
	grads       *arena       // a block tape's gradient arena (shared), or nil
	backward    bool         // a block tape running its backward: scratch comes from grads
	trans       *arena       // a block tape's transient outputs (shared), or nil
	pending     int          // transient outputs not yet released
	hold        []float32    // a block's output while its activations are recycled (inferBlock)
}

// NewTape returns a tape whose matrix products run on pool (nil: kernels.Default()).
func NewTape(pool *kernels.Pool) *Tape {
	if pool == nil {
		pool = kernels.Default()
	}
	return &Tape{Pool: pool}
}

// SetNoGrad turns recording off (inference): ops compute outputs only.
func (tp *Tape) SetNoGrad(on bool) { tp.noGrad = on }

// Reset forgets the recorded ops and recycles every activation and gradient
// buffer handed out since the last Reset. Tensors from the previous pass must
// not be used afterwards.
func (tp *Tape) Reset() {
	clear(tp.ops)
	tp.ops = tp.ops[:0]
	tp.act.reset()
	tp.pending = 0
}

// Len returns the number of recorded ops.
func (tp *Tape) Len() int { return len(tp.ops) }

// Backward seeds d(loss) = 1 for a 1×1 loss and runs every recorded backward
// in reverse order. Parameters' gradients accumulate; zero them between steps.
func (tp *Tape) Backward(loss *Tensor) {
	if loss.Rows*loss.Cols != 1 || loss.Grad == nil {
		panic("autograd: Backward needs a 1×1 loss that requires grad")
	}
	loss.Grad[0] = 1
	for i := len(tp.ops) - 1; i >= 0; i-- {
		tp.ops[i]()
	}
}

// record registers a backward closure if recording is on.
func (tp *Tape) record(f func()) {
	if !tp.noGrad {
		tp.ops = append(tp.ops, f)
	}
}

// out allocates an output tensor from the arena; it gets a zeroed gradient
// buffer when grad is true and the tape records.
func (tp *Tape) out(rows, cols int, grad bool) *Tensor {
	t := &Tensor{Data: tp.act.get(rows * cols), Rows: rows, Cols: cols}
	if grad && !tp.noGrad {
		if tp.grads != nil {
			t.Grad = tp.grads.get(rows * cols) // zeroed when the block's backward starts
		} else {
			t.Grad = tp.act.get(rows * cols)
			clear(t.Grad)
		}
	}
	return t
}

// scratch returns n floats from the arena (contents undefined), alive until
// Reset; during a block's backward, until that backward ends.
func (tp *Tape) scratch(n int) []float32 {
	if tp.backward && tp.grads != nil {
		return tp.grads.get(n)
	}
	return tp.act.get(n)
}

// forwardScratch returns n floats (contents undefined) that an op needs only
// while its forward runs: on a block tape they come from the region the
// blocks share (reset for each block), not from the block's kept activations.
func (tp *Tape) forwardScratch(n int) []float32 {
	if tp.grads != nil {
		return tp.grads.get(n)
	}
	return tp.act.get(n)
}

// anyGrad reports whether any input needs a gradient.
func anyGrad(ts ...*Tensor) bool {
	for _, t := range ts {
		if t != nil && t.Grad != nil {
			return true
		}
	}
	return false
}

// arena hands out float32 slices from large chunks; reset recycles them all.
// With the same sequence of requests each pass, it allocates only once.
type arena struct {
	chunks [][]float32
	ci     int // current chunk
	off    int // next free element in it
}

const arenaChunk = 1 << 20 // 4 MiB

func (a *arena) get(n int) []float32 {
	for a.ci < len(a.chunks) {
		c := a.chunks[a.ci]
		if a.off+n <= len(c) {
			s := c[a.off : a.off+n : a.off+n]
			a.off += n
			return s
		}
		a.ci++
		a.off = 0
	}
	c := make([]float32, max(n, arenaChunk))
	a.chunks = append(a.chunks, c)
	a.ci = len(a.chunks) - 1
	a.off = n
	return c[:n:n]
}

func (a *arena) reset() { a.ci, a.off = 0, 0 }

// arenaMark is a position in an arena.
type arenaMark struct{ ci, off int }

func (a *arena) mark() arenaMark  { return arenaMark{a.ci, a.off} }
func (a *arena) seek(m arenaMark) { a.ci, a.off = m.ci, m.off }

// clearTo zeroes everything handed out before m, split over pool's threads
// (a block's gradients are tens of MiB: one thread clearing them while the
// others wait was 3% of a 2-thread training step).
func (a *arena) clearTo(m arenaMark, pool *kernels.Pool) {
	for i := 0; i <= m.ci && i < len(a.chunks); i++ {
		c := a.chunks[i]
		if i == m.ci {
			c = c[:m.off]
		}
		pool.Parallel(len(c), 1<<16, func(_, lo, hi int) { clear(c[lo:hi]) })
	}
}

func same(what string, a, b *Tensor) {
	if a.Rows != b.Rows || a.Cols != b.Cols {
		panic(fmt.Sprintf("autograd: %s: shapes %d×%d and %d×%d differ", what, a.Rows, a.Cols, b.Rows, b.Cols))
	}
}

// Buffer returns a tensor from the arena with no gradient, alive until Reset
// (generation's scratch activations).
func (tp *Tape) Buffer(rows, cols int) *Tensor { return tp.out(rows, cols, false) }

// Scratch returns n floats from the arena (contents undefined), alive until Reset.
func (tp *Tape) Scratch(n int) []float32 { return tp.act.get(n) }
