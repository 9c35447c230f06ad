package autograd

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
		return f(tp, x)
	}
	if tp.sub == nil {
		tp.sub = NewTape(tp.Pool)
	}
	sub := tp.sub
	sub.Reset()
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
		sub.Reset()
		xin := &Tensor{Data: x.Data, Rows: x.Rows, Cols: x.Cols}
		if x.Grad != nil {
			xin.Grad = sub.scratch(len(x.Data))
			clear(xin.Grad)
		}
		ys := f(sub, xin)
		copy(ys.Grad, y.Grad)
		for i := len(sub.ops) - 1; i >= 0; i-- {
			sub.ops[i]()
		}
		if x.Grad != nil {
			for i, g := range xin.Grad {
				x.Grad[i] += g
			}
		}
		sub.Reset()
	})
	return y
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
	return n
}
