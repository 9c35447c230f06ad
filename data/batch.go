package data

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// IgnoreIndex marks a position without a target (the model's ignore value).
const IgnoreIndex = -100

// Batch is B sequences of T positions, flattened (N = B·T): the model's
// training input. Packed examples have their own segment id and positions
// restarting at 0; padding has segment −1 and no target.
type Batch struct {
	B, T    int
	IDs     []int32 // (N)
	Pos     []int32 // (N)
	Seg     []int32 // (N)
	Targets []int32 // (N) next token, or IgnoreIndex
	// Supervised is the number of targets that are not IgnoreIndex.
	Supervised int
}

// sequence is one row of a batch: the examples it holds.
type sequence []int

// Pack assigns examples to sequences of at most t positions by best-fit
// decreasing (an example of L tokens needs L−1 positions: inputs ids[:−1],
// targets ids[1:]). Examples longer than t+1 tokens must have been truncated.
func Pack(examples []*Example, t int) ([]sequence, error) {
	lengths := make([]int, len(examples))
	for i, e := range examples {
		lengths[i] = len(e.IDs)
	}
	return pack(lengths, t)
}

// pack is Pack over the examples' token counts.
func pack(lengths []int, t int) ([]sequence, error) {
	order := make([]int, len(lengths))
	for i := range order {
		order[i] = i
		if n := lengths[i] - 1; n > t {
			return nil, fmt.Errorf("data: example %d needs %d positions, more than the sequence length %d", i, n, t)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return lengths[order[a]] > lengths[order[b]] })
	var seqs []sequence
	var free []int // remaining positions per sequence
	for _, e := range order {
		need := lengths[e] - 1
		best := -1
		for s, f := range free {
			if f >= need && (best < 0 || f < free[best]) {
				best = s
			}
		}
		if best < 0 {
			seqs, free = append(seqs, nil), append(free, t)
			best = len(seqs) - 1
		}
		seqs[best] = append(seqs[best], e)
		free[best] -= need
	}
	return seqs, nil
}

// Transform is the augmentation hook: the example with index index (its
// position in the dataset) as epoch epoch sees it. It must be a pure
// function of its arguments (and its own seed), must not modify ex (its
// slices may be a read-only mapping: return a new Example, or ex itself),
// and may shorten an example but not lengthen it: batches are laid out
// from the examples as loaded (and their text-level variants, rendered at
// load), so the number of batches in an epoch, and with it the schedule's
// length, is fixed before the first step and does not depend on epochs.
type Transform func(epoch, index int, ex *Example) *Example

// Batcher yields batches over an epoch-shuffled order of sequences. Its state
// (Epoch, Step) is explicit so a checkpoint can resume exactly.
type Batcher struct {
	Examples []*Example
	T        int   // sequence length (positions)
	B        int   // sequences per batch
	Pack     bool  // several examples per sequence; otherwise one, padded
	Pad      int32 // token id placed in padding
	Seed     uint64
	// Transform, if set, is applied to every example as its batch is
	// built (training data only; see Transform).
	Transform Transform
	// Windows admits examples longer than T+1 tokens, laid out as T+1:
	// Transform must cut them to that (augment.Window).
	Windows bool
	// Variants, if set, holds each example's text-level variants
	// (Dataset.Variants): epoch e trains on variant e mod their count, then
	// Transform. An example is laid out with room for its longest variant.
	Variants [][]*Example

	Epoch, Step int // cursor: the next batch is batch Step of epoch Epoch

	seqs       []sequence
	order      []int // epoch order of sequences
	orderEpoch int
}

// Steps is the number of batches in an epoch.
func (b *Batcher) Steps() (int, error) {
	if err := b.prepare(); err != nil {
		return 0, err
	}
	return (len(b.seqs) + b.B - 1) / b.B, nil
}

func (b *Batcher) prepare() error {
	if b.seqs != nil {
		return nil
	}
	if b.T <= 0 || b.B <= 0 {
		return fmt.Errorf("data: batch size and sequence length must be positive")
	}
	if len(b.Examples) == 0 {
		return fmt.Errorf("data: no examples")
	}
	if b.Windows && b.Transform == nil {
		return fmt.Errorf("data: windows need a transform that cuts them")
	}
	if b.Pack {
		lengths := make([]int, len(b.Examples))
		for i := range lengths {
			lengths[i] = b.planned(i)
		}
		seqs, err := pack(lengths, b.T)
		if err != nil {
			return err
		}
		b.seqs = seqs
	} else {
		for i := range b.Examples {
			if n := b.planned(i) - 1; n > b.T {
				return fmt.Errorf("data: example %d needs %d positions, more than %d", i, n, b.T)
			}
			b.seqs = append(b.seqs, sequence{i})
		}
	}
	return nil
}

// planned is how many tokens example e is laid out with: its own or its
// longest variant's, with Windows at most T+1.
func (b *Batcher) planned(e int) int {
	n := len(b.Examples[e].IDs)
	if b.Variants != nil {
		for _, v := range b.Variants[e] {
			n = max(n, len(v.IDs))
		}
	}
	if b.Windows {
		n = min(n, b.T+1)
	}
	return n
}

// shuffle sets epoch's order: a permutation seeded by (Seed, epoch).
// Unpacked sequences are then grouped by length within windows of 64 batches
// so padding stays small (length bucketing), keeping the shuffle between them.
func (b *Batcher) shuffle(epoch int) {
	r := rand.New(rand.NewPCG(b.Seed, uint64(epoch)+0x5eed))
	b.order = r.Perm(len(b.seqs))
	if b.Pack {
		return
	}
	win := 64 * b.B
	for s := 0; s < len(b.order); s += win {
		w := b.order[s:min(len(b.order), s+win)]
		sort.SliceStable(w, func(i, j int) bool {
			return b.planned(b.seqs[w[i]][0]) > b.planned(b.seqs[w[j]][0])
		})
	}
}

// Next returns the batch at the cursor and advances it (to the next epoch
// after the last batch of one).
func (b *Batcher) Next() (*Batch, error) {
	steps, err := b.Steps()
	if err != nil {
		return nil, err
	}
	if b.Step >= steps {
		b.Epoch, b.Step = b.Epoch+1, 0
	}
	out, err := b.At(b.Epoch, b.Step)
	b.Step++
	return out, err
}

// At returns batch step of epoch: a pure function of (Seed, epoch, step)
// and the examples, whatever was asked before (the cursor is not moved).
func (b *Batcher) At(epoch, step int) (*Batch, error) {
	steps, err := b.Steps()
	if err != nil {
		return nil, err
	}
	if step < 0 || step >= steps || epoch < 0 {
		return nil, fmt.Errorf("data: batch %d of epoch %d: an epoch has %d batches", step, epoch, steps)
	}
	if b.order == nil || b.orderEpoch != epoch {
		b.shuffle(epoch)
		b.orderEpoch = epoch
	}
	idx := b.order[step*b.B : min(len(b.order), (step+1)*b.B)]
	t := b.T
	if !b.Pack { // pad to the longest sequence of this batch
		t = 1
		for _, s := range idx {
			t = max(t, b.planned(b.seqs[s][0])-1)
		}
	}
	out := &Batch{B: len(idx), T: t}
	n := out.B * t
	out.IDs, out.Pos, out.Seg, out.Targets = make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	for row, s := range idx {
		base := row * t
		p := 0
		for k, e := range b.seqs[s] {
			ex := b.Examples[e]
			if b.Variants != nil && len(b.Variants[e]) > 0 {
				ex = b.Variants[e][epoch%len(b.Variants[e])]
			}
			if b.Transform != nil {
				tx := b.Transform(epoch, e, ex)
				if len(tx.IDs) > b.planned(e) || len(tx.Mask) != len(tx.IDs) || (tx.Own != nil && len(tx.Own) != len(tx.IDs)) {
					return nil, fmt.Errorf("data: a transform made example %d %d tokens long (%d masks) for a place of %d: it may only shorten", e, len(tx.IDs), len(tx.Mask), b.planned(e))
				}
				ex = tx
			}
			for i := 0; i+1 < len(ex.IDs); i++ {
				out.IDs[base+p] = ex.IDs[i]
				out.Pos[base+p] = int32(i)
				out.Seg[base+p] = int32(k)
				out.Targets[base+p] = IgnoreIndex
				if ex.Mask[i+1] {
					out.Targets[base+p] = ex.IDs[i+1]
					out.Supervised++
				}
				p++
			}
		}
		for ; p < t; p++ {
			out.IDs[base+p], out.Pos[base+p], out.Seg[base+p], out.Targets[base+p] = b.Pad, 0, -1, IgnoreIndex
		}
	}
	return out, nil
}
