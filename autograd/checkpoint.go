package autograd

import "fmt"

// Checkpoint runs y = f(tp, x) without keeping f's intermediate activations:
// the forward runs f on a scratch tape and keeps only y; the backward runs f
// again, recording, and back-propagates through it. With frozen weights the
// cost is about one extra forward of f; the memory saved is everything f
// allocates. f must be deterministic (replay any randomness from explicit
// state) and may read parameters, whose gradients accumulate as usual.
//
// trainable says whether f reads parameters that need gradients; with it (or
// an input that carries a gradient) the output carries one. The forward then
// runs without recording at all.
func (tp *Tape) Checkpoint(x *Tensor, trainable bool, f func(tp *Tape, x *Tensor) *Tensor) *Tensor {
	if tp.noGrad {
		return tp.inferBlock(x, f)
	}
	if tp.sub == nil {
		tp.sharedArenas()
		tp.sub = NewTape(tp.Pool)
		tp.sub.grads, tp.sub.trans = tp.shared, tp.sharedTrans
	}
	sub := tp.sub
	sub.Reset()
	tp.shared.reset() // forward scratch (see forwardScratch) starts over per block
	sub.noGrad = true
	ys := f(sub, &Tensor{Data: x.Data, Rows: x.Rows, Cols: x.Cols})
	sub.noGrad = false
	y := tp.out(ys.Rows, ys.Cols, trainable || x.Grad != nil)
	copy(y.Data, ys.Data)
	sub.Reset()
	if y.Grad == nil {
		return y
	}
	tp.record(func() {
		// The recomputation is a block's forward and backward: its gradients
		// and transient outputs use the regions the blocks share (see Block).
		if tp.isBoundary(x.Grad) {
			clear(x.Grad)
		}
		sub.Reset()
		tp.shared.reset()
		tp.sharedTrans.reset()
		ys := f(sub, &Tensor{Data: x.Data, Grad: x.Grad, Rows: x.Rows, Cols: x.Cols}) // dx accumulates into x.Grad
		if sub.pending != 0 {
			panic(fmt.Sprintf("autograd: Checkpoint: %d transient outputs were not released", sub.pending))
		}
		end := tp.shared.mark()
		tp.shared.clearTo(end, tp.Pool)
		tp.shared.seek(end)
		copy(ys.Grad, y.Grad)
		sub.backward = true
		for i := len(sub.ops) - 1; i >= 0; i-- {
			sub.ops[i]()
		}
		sub.backward = false
		sub.Reset()
	})
	return y
}

// inferBlock is Block and Checkpoint on a tape that records nothing: f's
// activations are needed only until it returns, so everything f allocates
// is handed out again to the next block, and only y is kept. A forward
// through a stack then holds one block's activations, not all of them.
func (tp *Tape) inferBlock(x *Tensor, f func(tp *Tape, x *Tensor) *Tensor) *Tensor {
	m := tp.act.mark()
	ys := f(tp, x)
	n := len(ys.Data)
	if cap(tp.hold) < n {
		tp.hold = make([]float32, n)
	}
	hold := tp.hold[:n]
	copy(hold, ys.Data) // ys may lie anywhere past m
	tp.act.seek(m)
	y := tp.out(ys.Rows, ys.Cols, false)
	copy(y.Data, hold)
	return y
}

// sharedArenas creates the regions that blocks share (see Block).
func (tp *Tape) sharedArenas() {
	if tp.shared == nil {
		tp.shared, tp.sharedTrans = &arena{}, &arena{}
	}
}

// Block runs y = f(tp, x) for block i of a stack (a transformer layer) on a
// tape of its own that keeps f's activations, as a plain call would, but not
// their gradients: every block's internal gradients live in one region the
// blocks share, since a block's are only needed while its own backward runs;
// the region is zeroed when it starts. Only the block boundaries (x, y) keep
// gradients of their own. Peak memory is the activations plus one block's
// gradients instead of every gradient; the arithmetic is the plain call's.
//
// The gradient of a block's output y is live only from the backward of the
// next block to this block's own backward, so two buffers serve every block
// of the stack, alternating: y's gradient buffer is block i−2's and i+2's too.
// The next Block (or Checkpoint) clears it when its backward starts. So y must
// be read either by the next Block or Checkpoint alone, or by ordinary ops
// alone (the last block of a stack).
func (tp *Tape) Block(i int, x *Tensor, f func(tp *Tape, x *Tensor) *Tensor) *Tensor {
	if tp.noGrad {
		return tp.inferBlock(x, f)
	}
	for len(tp.blocks) <= i {
		tp.blocks = append(tp.blocks, nil)
	}
	tp.sharedArenas()
	b := tp.blocks[i]
	if b == nil {
		b = NewTape(tp.Pool)
		b.grads, b.trans = tp.shared, tp.sharedTrans
		tp.blocks[i] = b
	}
	b.Reset()
	tp.shared.reset()
	tp.sharedTrans.reset()
	ys := f(b, &Tensor{Data: x.Data, Grad: x.Grad, Rows: x.Rows, Cols: x.Cols}) // dx accumulates into x.Grad
	if b.pending != 0 {
		panic(fmt.Sprintf("autograd: Block %d: %d transient outputs were not released", i, b.pending))
	}
	y := &Tensor{Data: ys.Data, Rows: ys.Rows, Cols: ys.Cols}
	if ys.Grad == nil {
		return y
	}
	end := tp.shared.mark() // this block's gradients: everything before end
	y.Grad = tp.boundary(i, len(ys.Data))
	clear(y.Grad)
	tp.record(func() {
		if tp.isBoundary(x.Grad) {
			clear(x.Grad) // it last held the gradient of the output two blocks up
		}
		tp.shared.clearTo(end, tp.Pool)
		tp.shared.seek(end) // backward scratch goes after the gradients
		copy(ys.Grad, y.Grad)
		b.backward = true
		for j := len(b.ops) - 1; j >= 0; j-- {
			b.ops[j]()
		}
		b.backward = false
	})
	return y
}

// boundary returns the gradient buffer for block i's output: one of two,
// by the parity of i (see Block).
func (tp *Tape) boundary(i, n int) []float32 {
	k := i % 2
	if len(tp.bound[k]) < n {
		tp.bound[k] = make([]float32, n)
	}
	return tp.bound[k][:n:n]
}

// isBoundary reports whether g is one of the block-output gradient buffers.
func (tp *Tape) isBoundary(g []float32) bool {
	if len(g) == 0 {
		return false
	}
	for _, b := range tp.bound {
		if len(b) > 0 && &b[0] == &g[0] {
			return true
		}
	}
	return false
}

// ArenaFloats reports how many float32 values the tape's arenas hold (its
// activation memory, for tests and benchmarks).
func (tp *Tape) ArenaFloats() int {
	n := 0
	for _, c := range tp.act.chunks {
		n += len(c)
	}
	if tp.sub != nil {
		n += tp.sub.ArenaFloats()
	}
	for _, b := range tp.blocks {
		if b != nil {
			n += b.ArenaFloats()
		}
	}
	n += len(tp.bound[0]) + len(tp.bound[1])
	for _, a := range []*arena{tp.shared, tp.sharedTrans} {
		if a != nil {
			for _, c := range a.chunks {
				n += len(c)
			}
		}
	}
	return n
}
