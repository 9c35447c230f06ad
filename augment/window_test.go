package augment

import (
	"slices"
	"testing"

	"github.com/lowrank/lowrank/data"
)

func TestWindow(t *testing.T) {
	ex := &data.Example{}
	for i := range 300 {
		ex.IDs, ex.Mask, ex.Own = append(ex.IDs, int32(i)), append(ex.Mask, i > 0), append(ex.Own, true)
	}
	w := (&Window{Seed: 1, N: 65}).Transform()
	starts := map[int32]bool{}
	for epoch := range 20 {
		out := w(epoch, 3, ex)
		if len(out.IDs) != 65 || len(out.Mask) != 65 || len(out.Own) != 65 || out.Mask[0] || slices.Contains(out.Mask[1:], false) {
			t.Fatalf("epoch %d: a window of %d tokens, mask %v", epoch, len(out.IDs), out.Mask[:3])
		}
		for i := 1; i < 65; i++ {
			if out.IDs[i] != out.IDs[0]+int32(i) {
				t.Fatalf("epoch %d: not a contiguous window", epoch)
			}
		}
		if again := w(epoch, 3, ex); !slices.Equal(again.IDs, out.IDs) {
			t.Fatal("the same (seed, epoch, index) gave another window")
		}
		starts[out.IDs[0]] = true
	}
	if len(starts) < 10 || !ex.Mask[1] || ex.Mask[0] {
		t.Errorf("20 epochs drew %d windows (or the input changed)", len(starts))
	}
	short := &data.Example{IDs: []int32{1, 2, 3}, Mask: []bool{false, true, true}}
	if w(0, 0, short) != short {
		t.Error("a short example was changed")
	}
	if Chain(nil, nil) != nil || Chain(w) == nil {
		t.Error("Chain of nothing, or of one")
	}
}
