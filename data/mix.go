package data

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Mixing stops, as Hugging Face's interleave_datasets names them.
const (
	MixFirstExhausted = "first_exhausted" // the mixture ends when a dataset runs out
	MixAllExhausted   = "all_exhausted"   // datasets that run out start over until every one has been used whole
)

// Share is one dataset's part of a combined dataset.
type Share struct {
	Path       string  `json:"path"`
	Format     Format  `json:"format"`
	Examples   int     `json:"examples"`   // in the combination (repeats counted)
	Supervised int     `json:"supervised"` // supervised tokens in the combination
	Weight     float64 `json:"weight,omitempty"`
}

// Combine makes one training set of several datasets, each loaded with its
// own format. Without weights the training examples are concatenated in
// order; with weights (one per dataset, positive: normalized to
// probabilities) they are sampled as a mixture, each draw picking a dataset
// with its probability and taking its next example in a seeded order,
// until stop (MixFirstExhausted or MixAllExhausted). The mixture is drawn
// once, a pure function of the seed and the datasets, so every epoch (and
// a resumed run) has the same examples, shuffled per epoch by the batcher.
// Validation examples are concatenated. The parts stay open: close them,
// not the result.
func Combine(parts []*Dataset, paths []string, weights []float64, stop string, seed uint64) (*Dataset, []Share, error) {
	if len(parts) == 0 || len(parts) != len(paths) {
		return nil, nil, fmt.Errorf("data: %d datasets for %d paths", len(parts), len(paths))
	}
	if len(weights) != 0 && len(weights) != len(parts) {
		return nil, nil, fmt.Errorf("data: %d weights for %d datasets", len(weights), len(parts))
	}
	out := &Dataset{Dropped: map[string]int{}, Format: parts[0].Format}
	h := sha256.New()
	shares := make([]Share, len(parts))
	for i, p := range parts {
		if len(p.Train) == 0 {
			return nil, nil, fmt.Errorf("data: %s has no training examples", paths[i])
		}
		if p.Format != out.Format {
			out.Format = "mixed"
		}
		out.Rows += p.Rows
		out.Truncated += p.Truncated
		out.FromCache = out.FromCache || p.FromCache
		for r, n := range p.Dropped {
			out.Dropped[r] += n
		}
		out.Val = append(out.Val, p.Val...)
		shares[i] = Share{Path: paths[i], Format: p.Format}
		fmt.Fprintf(h, "%s\x00", p.Key)
	}
	varied := false
	for _, p := range parts {
		varied = varied || p.Variants != nil
	}
	pick := func(i, e int) {
		ex := parts[i].Train[e]
		out.Train = append(out.Train, ex)
		if varied {
			var v []*Example
			if parts[i].Variants != nil {
				v = parts[i].Variants[e]
			}
			out.Variants = append(out.Variants, v)
		}
		shares[i].Examples++
		shares[i].Supervised += ex.Supervised()
	}
	if len(weights) == 0 {
		for i, p := range parts {
			for e := range p.Train {
				pick(i, e)
			}
		}
	} else {
		total := 0.0
		for i, w := range weights {
			if !(w > 0) || math.IsInf(w, 0) {
				return nil, nil, fmt.Errorf("data: weight %g of %s must be a positive number", w, paths[i])
			}
			total += w
		}
		if stop != MixFirstExhausted && stop != MixAllExhausted {
			return nil, nil, fmt.Errorf("data: mixing stop %q: want %s or %s", stop, MixFirstExhausted, MixAllExhausted)
		}
		cum := make([]float64, len(weights))
		acc := 0.0
		for i, w := range weights {
			acc += w / total
			cum[i] = acc
			shares[i].Weight = w / total
		}
		r := rand.New(rand.NewPCG(seed, 0x6d6978))
		orders, cursor, passes := make([][]int, len(parts)), make([]int, len(parts)), make([]int, len(parts))
		for i, p := range parts {
			orders[i] = r.Perm(len(p.Train))
		}
		whole := 0 // datasets used whole at least once
		for {
			u, i := r.Float64(), 0
			for i < len(cum)-1 && u >= cum[i] {
				i++
			}
			pick(i, orders[i][cursor[i]])
			if cursor[i]++; cursor[i] < len(orders[i]) {
				continue
			}
			if stop == MixFirstExhausted {
				break
			}
			if passes[i]++; passes[i] == 1 {
				whole++
			}
			if whole == len(parts) {
				break
			}
			orders[i], cursor[i] = r.Perm(len(parts[i].Train)), 0
		}
		fmt.Fprintf(h, "%v %s %d", weights, stop, seed)
	}
	for _, ex := range out.Train {
		out.Tokens += len(ex.IDs)
		out.Supervised += ex.Supervised()
	}
	out.Key = hex.EncodeToString(h.Sum(nil))[:32]
	return out, shares, nil
}

// SplitPaths reads a data setting naming several datasets: paths separated
// by commas (a repeated --data flag joins its values so).
func SplitPaths(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ParseWeights reads --data-weights: numbers separated by commas.
func ParseWeights(s string) ([]float64, error) {
	var out []float64
	for _, f := range SplitPaths(s) {
		var w float64
		if _, err := fmt.Sscan(f, &w); err != nil || !(w > 0) || math.IsInf(w, 0) {
			return nil, errors.New("want positive numbers separated by commas, one per dataset, e.g. 0.7,0.3")
		}
		out = append(out, w)
	}
	return out, nil
}
