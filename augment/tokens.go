package augment

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/lowrank/lowrank/data"
)

// Tokens is token-level noise: each eligible token of an example is
// dropped with probability Dropout, else replaced with probability Replace
// by a token drawn from Draw. Eligible are the tokens after the first
// (BOS, or what nothing predicts) of the row's own text (Example.Own: not
// what a chat template or prompt wrapper wrote) that Protected does not
// hold (special and added tokens) and, unless Answers, that are not
// supervised (the prompt). A replaced answer token is no longer a target:
// the model reads noise but is never taught to write it.
type Tokens struct {
	Seed             uint64
	Dropout, Replace float64
	Answers          bool
	Protected        []bool // by token id; ids past its end are not protected
	Draw             *Sampler
}

// Transform returns t as the data hook.
func (t *Tokens) Transform() data.Transform { return t.apply }

// key separates this transform's draws from every other seeded draw.
const tokensKey = 0x746f6b656e73

func (t *Tokens) protected(id int32) bool { return int(id) < len(t.Protected) && t.Protected[id] }

func (t *Tokens) apply(epoch, index int, ex *data.Example) *data.Example {
	if t.Dropout == 0 && t.Replace == 0 {
		return ex
	}
	r := rand.New(rand.NewPCG(t.Seed^tokensKey, uint64(epoch)<<32|uint64(uint32(index))))
	out := &data.Example{IDs: make([]int32, 0, len(ex.IDs)), Mask: make([]bool, 0, len(ex.Mask)), Truncated: ex.Truncated}
	if ex.Own != nil {
		out.Own = make([]bool, 0, len(ex.Own))
	}
	for i, id := range ex.IDs {
		mask := ex.Mask[i]
		own := ex.Own == nil || ex.Own[i]
		if i > 0 && own && !t.protected(id) && (!mask || t.Answers) {
			// Two draws per eligible token whatever happens, so that one
			// token's fate does not shift the next one's.
			u, v := r.Float64(), r.Float64()
			switch {
			case u < t.Dropout:
				continue
			case v < t.Replace && t.Draw != nil:
				if n := t.Draw.draw(r); n != id {
					id, mask = n, false
				}
			}
		}
		out.IDs = append(out.IDs, id)
		out.Mask = append(out.Mask, mask)
		if out.Own != nil {
			out.Own = append(out.Own, own)
		}
	}
	return out
}

// Sampler draws replacement tokens from a distribution over the vocabulary.
type Sampler struct {
	ids []int32
	cum []float64 // cumulative weights, nil: uniform over ids
}

// UniformSampler draws uniformly from the ids below vocab that protected
// does not hold.
func UniformSampler(vocab int, protected []bool) (*Sampler, error) {
	s := &Sampler{}
	for id := 0; id < vocab; id++ {
		if id >= len(protected) || !protected[id] {
			s.ids = append(s.ids, int32(id))
		}
	}
	if len(s.ids) == 0 {
		return nil, fmt.Errorf("augment: no token of the vocabulary can replace another")
	}
	return s, nil
}

// FrequencySampler draws tokens as often as they occur in examples (the
// training data's own unigram distribution), protected ones excluded.
func FrequencySampler(examples []*data.Example, vocab int, protected []bool) (*Sampler, error) {
	counts := make([]float64, vocab)
	for _, ex := range examples {
		for _, id := range ex.IDs {
			if int(id) < vocab {
				counts[id]++
			}
		}
	}
	s := &Sampler{}
	total := 0.0
	for id, c := range counts {
		if c > 0 && (id >= len(protected) || !protected[id]) {
			total += c
			s.ids = append(s.ids, int32(id))
			s.cum = append(s.cum, total)
		}
	}
	if len(s.ids) == 0 {
		return nil, fmt.Errorf("augment: the data has no token that can replace another")
	}
	return s, nil
}

func (s *Sampler) draw(r *rand.Rand) int32 {
	if s.cum == nil {
		return s.ids[r.IntN(len(s.ids))]
	}
	u := r.Float64() * s.cum[len(s.cum)-1]
	return s.ids[sort.SearchFloat64s(s.cum, u)]
}
