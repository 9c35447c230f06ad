package data

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func randomExamples(n int, seed uint64) []*Example {
	r := rand.New(rand.NewPCG(seed, 1))
	var ex []*Example
	for i := 0; i < n; i++ {
		l := 2 + r.IntN(40)
		e := &Example{IDs: make([]int32, l), Mask: make([]bool, l)}
		for j := range e.IDs {
			e.IDs[j] = int32(1000*i + j) // unique per example and position
			e.Mask[j] = j > l/3
		}
		ex = append(ex, e)
	}
	return ex
}

// TestPacking: every example appears exactly once per epoch, sequences never
// overflow, segments separate examples, positions restart, targets follow the
// mask, and a seed gives the same batches.
func TestPacking(t *testing.T) {
	ex := randomExamples(300, 1)
	for _, pack := range []bool{true, false} {
		b := &Batcher{Examples: ex, T: 64, B: 4, Pack: pack, Pad: 0, Seed: 7}
		steps, err := b.Steps()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int32]int{}
		var first []int32
		wantSup := 0
		for _, e := range ex {
			for j := 1; j < len(e.IDs); j++ {
				if e.Mask[j] {
					wantSup++
				}
			}
		}
		gotSup := 0
		for s := 0; s < steps; s++ {
			bt, err := b.Next()
			if err != nil {
				t.Fatal(err)
			}
			if s == 0 {
				first = append([]int32(nil), bt.IDs...)
			}
			gotSup += bt.Supervised
			for i := range bt.IDs {
				if bt.Seg[i] < 0 {
					if bt.Targets[i] != IgnoreIndex {
						t.Fatal("padding has a target")
					}
					continue
				}
				id := bt.IDs[i]
				ex, pos := id/1000, id%1000
				if bt.Pos[i] != pos {
					t.Fatalf("position %d for token %d of example %d", bt.Pos[i], pos, ex)
				}
				if i+1 < len(bt.IDs) && bt.Targets[i] != IgnoreIndex && bt.Targets[i] != id+1 {
					t.Fatalf("target %d after %d", bt.Targets[i], id)
				}
				if pos == 0 {
					seen[ex]++
				}
				// the same segment never holds two examples
				if i > 0 && bt.Seg[i] == bt.Seg[i-1] && i%bt.T != 0 && bt.IDs[i-1]/1000 != ex {
					t.Fatal("two examples share a segment")
				}
			}
		}
		if len(seen) != len(ex) {
			t.Fatalf("pack=%v: %d examples seen, want %d", pack, len(seen), len(ex))
		}
		for e, n := range seen {
			if n != 1 {
				t.Fatalf("example %d seen %d times", e, n)
			}
		}
		if gotSup != wantSup {
			t.Errorf("pack=%v: %d supervised targets, want %d", pack, gotSup, wantSup)
		}
		// determinism and resume: a fresh batcher with the same seed, moved to
		// the same cursor, yields the same batch
		b2 := &Batcher{Examples: ex, T: 64, B: 4, Pack: pack, Seed: 7}
		bt, _ := b2.Next()
		if !slices.Equal(bt.IDs, first) {
			t.Errorf("pack=%v: same seed, different first batch", pack)
		}
		next, _ := b.Next() // epoch 1 starts: a different order
		if slices.Equal(next.IDs, first) {
			t.Errorf("pack=%v: epoch 1 repeats epoch 0's order", pack)
		}
		b3 := &Batcher{Examples: ex, T: 64, B: 4, Pack: pack, Seed: 7, Epoch: b.Epoch, Step: b.Step - 1}
		again, _ := b3.Next()
		if !slices.Equal(again.IDs, next.IDs) {
			t.Errorf("pack=%v: resuming at the cursor gives another batch", pack)
		}
		// At is a pure function of (seed, epoch, step): asked out of order,
		// by another batcher, it gives what the cursor gave.
		b4 := &Batcher{Examples: ex, T: 64, B: 4, Pack: pack, Seed: 7}
		late, _ := b4.At(b.Epoch, b.Step-1)
		early, _ := b4.At(0, 0)
		if !slices.Equal(late.IDs, next.IDs) || !slices.Equal(early.IDs, first) {
			t.Errorf("pack=%v: At out of order differs from the cursor's batches", pack)
		}
		if _, err := b4.At(0, 1<<20); err == nil {
			t.Errorf("pack=%v: At past the epoch's end gave a batch", pack)
		}
	}
	if _, err := Pack([]*Example{{IDs: make([]int32, 100)}}, 64); err == nil {
		t.Error("an example longer than a sequence was packed")
	}
}

func BenchmarkPack(b *testing.B) {
	ex := randomExamples(5000, 2)
	for i := 0; i < b.N; i++ {
		Pack(ex, 512)
	}
}
