package augment

import (
	"math/rand/v2"

	"github.com/lowrank/lowrank/data"
)

// Window cuts an example longer than N tokens to a window of N at a
// random place, drawn from (Seed, epoch, index): every epoch trains on
// another part of a long document instead of always its start. The
// window's first token is not a target (nothing before it is seen).
type Window struct {
	Seed uint64
	N    int
}

const windowKey = 0x77696e646f77

// Transform returns w as the data hook.
func (w *Window) Transform() data.Transform { return w.apply }

func (w *Window) apply(epoch, index int, ex *data.Example) *data.Example {
	if len(ex.IDs) <= w.N {
		return ex
	}
	r := rand.New(rand.NewPCG(w.Seed^windowKey, uint64(epoch)<<32|uint64(uint32(index))))
	start := r.IntN(len(ex.IDs) - w.N + 1)
	out := &data.Example{IDs: ex.IDs[start : start+w.N], Mask: append([]bool(nil), ex.Mask[start:start+w.N]...)}
	out.Mask[0] = false
	if ex.Own != nil {
		out.Own = ex.Own[start : start+w.N]
	}
	return out
}

// Chain applies transforms in order (nil ones skipped); nil if none is set.
func Chain(ts ...data.Transform) data.Transform {
	var set []data.Transform
	for _, t := range ts {
		if t != nil {
			set = append(set, t)
		}
	}
	switch len(set) {
	case 0:
		return nil
	case 1:
		return set[0]
	}
	return func(epoch, index int, ex *data.Example) *data.Example {
		for _, t := range set {
			ex = t(epoch, index, ex)
		}
		return ex
	}
}
