package autograd

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestInPlaceAndTransientMatchPlain: a two-block stack written with the
// memory-saving ops (transient norm, dropout and SwiGLU outputs, in-place
// RoPE and residual add) gives bitwise the same loss and gradients as the plain ops,
// and holds fewer activation floats.
func TestInPlaceAndTransientMatchPlain(t *testing.T) {
	const N, C, I = 6, 8, 12
	r := rand.New(rand.NewPCG(31, 32))
	x := randT(r, N, C, true)
	wq, wg, wu, wd := randT(r, C, C, true), randT(r, I, C, true), randT(r, I, C, true), randT(r, C, I, true)
	norm := randT(r, 1, C, true)
	rope, err := NewRope(4, 10000, 16, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	pos := []int32{0, 1, 2, 3, 4, 5}
	params := []*Tensor{x, wq, wg, wu, wd, norm}
	stack := "bb" // b: Block, c: Checkpoint
	run := func(lean bool) (loss float32, grads []float32, floats int) {
		for _, p := range params {
			clear(p.Grad)
		}
		block := func(tp *Tape, x *Tensor) *Tensor {
			var h *Tensor
			if lean {
				h = tp.RMSNormTransient(x, norm, 1e-5)
			} else {
				h = tp.RMSNorm(x, norm, 1e-5)
			}
			var xd *Tensor // LoRA's dropped input
			if lean {
				xd = tp.DropoutTransient(h, 0.3, 99)
			} else {
				xd = tp.Dropout(h, 0.3, 99)
			}
			q := tp.MatMulT(xd, wq)
			tp.Release(xd)
			tp.Release(h)
			if lean {
				q = tp.RoPEInPlace(q, rope, pos)
				x = tp.AddInto(q, x)
				h = tp.RMSNormTransient(x, norm, 1e-5)
			} else {
				x = tp.Add(tp.RoPE(q, rope, pos), x)
				h = tp.RMSNorm(x, norm, 1e-5)
			}
			gate, up := tp.MatMulT(h, wg), tp.MatMulT(h, wu)
			tp.Release(h)
			var g *Tensor
			if lean {
				g = tp.SwiGLUTransient(gate, up)
			} else {
				g = tp.SwiGLU(gate, up)
			}
			d := tp.MatMulT(g, wd)
			tp.Release(g)
			if lean {
				return tp.AddInto(d, x)
			}
			return tp.Add(d, x)
		}
		tp := NewTape(nil)
		y := x
		for l := 0; l < len(stack); l++ {
			if stack[l] == 'c' {
				y = tp.Checkpoint(y, true, block)
			} else {
				y = tp.Block(l, y, block)
			}
		}
		dy := make([]float32, len(y.Data))
		for i := range dy {
			dy[i] = float32(i%5) - 2
			loss += dy[i] * y.Data[i]
		}
		backwardFrom(tp, y, dy)
		for _, p := range params {
			grads = append(grads, p.Grad...)
		}
		return loss, grads, keptFloats(tp)
	}
	l0, g0, f0 := run(false)
	l1, g1, f1 := run(true)
	if math.Float32bits(l0) != math.Float32bits(l1) {
		t.Fatalf("loss %v with the lean ops, %v with the plain ones", l1, l0)
	}
	for i := range g0 {
		if math.Float32bits(g0[i]) != math.Float32bits(g1[i]) {
			t.Fatalf("gradient %d: %v with the lean ops, %v with the plain ones", i, g1[i], g0[i])
		}
	}
	// Per block, plain keeps h, q, rope(q), x+q, h, gate, up, g, d, d+x (7
	// N×C and 3 N×I); lean keeps q (also rope(q) and x+q), gate, up and d (also
	// d+x): 2 N×C and 2 N×I, plus one block's h, h and g that all blocks share.
	if f1 >= f0*7/10 {
		t.Errorf("lean ops hold %d activation floats, plain %d", f1, f0)
	}
	t.Logf("activation floats: plain %d, lean %d", f0, f1)

	// Longer stacks, mixing kept and recomputed blocks: the block-output
	// gradient buffers alternate by parity and are reused two blocks apart.
	for _, st := range []string{"bbbbb", "bcbbcb", "ccbbb", "bbccc"} {
		stack = "bbbbbb"[:len(st)]
		_, ref, _ := run(true)
		stack = st
		_, got, _ := run(true)
		for i := range ref {
			if math.Float32bits(ref[i]) != math.Float32bits(got[i]) {
				t.Fatalf("stack %s: gradient %d is %v, all kept gives %v", st, i, got[i], ref[i])
			}
		}
	}
}

// keptFloats counts the floats handed out by the arenas that hold values
// (not gradients) after a forward.
func keptFloats(tp *Tape) int {
	used := func(a *arena) int {
		n := a.off
		for i := 0; i < a.ci; i++ {
			n += len(a.chunks[i])
		}
		return n
	}
	n := used(&tp.act)
	for _, b := range tp.blocks {
		if b != nil {
			n += used(&b.act)
		}
	}
	if tp.sharedTrans != nil {
		n += used(tp.sharedTrans)
	}
	return n
}

// TestUnreleasedTransientPanics: forgetting Release would leave stale values
// for backward, so Block refuses it.
func TestUnreleasedTransientPanics(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	x, w := randT(r, 3, 4, true), randT(r, 1, 4, true)
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "not released") {
			t.Fatalf("panic %q, want one about an unreleased transient", msg)
		}
	}()
	NewTape(nil).Block(0, x, func(tp *Tape, x *Tensor) *Tensor { return tp.RMSNormTransient(x, w, 1e-5) })
}

// TestInferBlock: on a tape that records nothing, a stack run through Block
// and Checkpoint gives bitwise the plain calls' output while its arena holds
// one block's activations, not the stack's.
func TestInferBlock(t *testing.T) {
	const N, C, L = 5, 7, 6
	r := rand.New(rand.NewPCG(41, 42))
	x0 := randT(r, N, C, false)
	ws := make([]*Tensor, L)
	for i := range ws {
		ws[i] = randT(r, C, C, false)
	}
	block := func(i int) func(tp *Tape, x *Tensor) *Tensor {
		return func(tp *Tape, x *Tensor) *Tensor {
			h := tp.SiLU(tp.MatMulT(x, ws[i]))
			return tp.Add(tp.Scale(h, 0.5), x)
		}
	}
	run := func(wrapped bool) ([]float32, int) {
		tp := NewTape(nil)
		tp.SetNoGrad(true)
		x := x0
		for i := range L {
			switch {
			case !wrapped:
				x = block(i)(tp, x)
			case i%2 == 0:
				x = tp.Block(i, x, block(i))
			default:
				x = tp.Checkpoint(x, false, block(i))
			}
		}
		return append([]float32(nil), x.Data...), tp.act.ci*arenaChunk + tp.act.off
	}
	plain, plainUsed := run(false)
	got, used := run(true)
	for i := range plain {
		if math.Float32bits(got[i]) != math.Float32bits(plain[i]) {
			t.Fatalf("output %d: %g through Block/Checkpoint, %g plain", i, got[i], plain[i])
		}
	}
	// Plain: 4 N×C tensors a block. Wrapped: the outputs (one a block) only.
	if want := L * N * C; used != want || plainUsed != 4*want {
		t.Errorf("arena floats in use: %d wrapped (want %d), %d plain (want %d)", used, want, plainUsed, 4*want)
	}
}
