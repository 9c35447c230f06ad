package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// TestSampler: temperature, top-k and top-p draw from the distribution they
// describe (frequencies over many draws within 4 standard errors), greedy is
// the first argmax, and a seed fixes the draws.
func TestSampler(t *testing.T) {
	logits := []float32{1.0, 3.0, 2.0, -1.0, 2.5, 0.0}
	softmax := func(temp float64, keep []int) []float64 {
		p := make([]float64, len(logits))
		var z float64
		for _, i := range keep {
			p[i] = math.Exp(float64(logits[i]) / temp)
			z += p[i]
		}
		for i := range p {
			p[i] /= z
		}
		return p
	}
	all := []int{0, 1, 2, 3, 4, 5}
	for _, c := range []struct {
		name  string
		temp  float64
		topK  int
		topP  float64
		probs []float64
	}{
		{"T=1", 1, 0, 0, softmax(1, all)},
		{"T=0.5", 0.5, 0, 0, softmax(0.5, all)},
		{"T=2, top-k ≥ V", 2, 6, 1, softmax(2, all)},
		{"top-k 2", 1, 2, 0, softmax(1, []int{1, 4})},
		// softmax(1): 3.0 → 0.46, 2.5 → 0.28, 2.0 → 0.17: 0.46+0.28 < 0.8 ≤ +0.17.
		{"top-p 0.8", 1, 0, 0.8, softmax(1, []int{1, 4, 2})},
	} {
		s := NewSampler(c.temp, c.topK, c.topP, 42)
		const n = 200000
		counts := make([]int, len(logits))
		for range n {
			counts[s.Sample(logits)]++
		}
		for i, p := range c.probs {
			got := float64(counts[i]) / n
			se := math.Sqrt(p*(1-p)/n) + 1e-9
			if math.Abs(got-p) > 4*se {
				t.Errorf("%s: token %d drawn %.4f of the time, want %.4f", c.name, i, got, p)
			}
		}
	}
	if got := NewSampler(0, 0, 0, 1).Sample([]float32{1, 5, 5, 2}); got != 1 {
		t.Errorf("greedy picked %d, want 1 (the first of the tied maxima)", got)
	}
	a, b := NewSampler(1, 0, 0, 7), NewSampler(1, 0, 0, 7)
	for i := range 100 {
		if x, y := a.Sample(logits), b.Sample(logits); x != y {
			t.Fatalf("draw %d: %d and %d from the same seed", i, x, y)
		}
	}
}

// TestSamplerCut: the top-k and top-p cuts, found by selection, keep
// exactly the tokens the whole stably sorted vocabulary keeps (a 49152-token
// vocabulary with tied logits; peaked and flat distributions), so equal
// seeds draw equal tokens; and their draws stay inside the cut.
func TestSamplerCut(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const V = 49152
	for _, c := range []struct {
		temp, spread float64
		topK         int
		topP         float64
	}{
		{0.8, 8, 0, 0.95}, {0.8, 0.1, 0, 0.95}, {1, 4, 40, 0}, {1, 4, 40, 0.5}, {0.7, 2, 0, 0.3}, {1, 3, 1000, 0.9}, {1, 0, 0, 0.5},
	} {
		logits := make([]float32, V)
		for i := range logits {
			logits[i] = float32(math.Round(r.NormFloat64()*c.spread*8) / 8) // many ties
		}
		keep := refCut(logits, c.temp, c.topK, c.topP)
		s := NewSampler(c.temp, c.topK, c.topP, 11)
		for range 300 {
			id := s.Sample(logits)
			if !keep[id] {
				t.Fatalf("T=%g top-k %d top-p %g: drew token %d, outside the cut of %d tokens", c.temp, c.topK, c.topP, id, len(keep))
			}
		}
		// The cut itself: the sampler's kept prefix is the reference's.
		s.Sample(logits)
		got := map[int]bool{}
		for _, e := range s.cand[:len(keep)] {
			got[int(e.id)] = true
		}
		for id := range keep {
			if !got[id] {
				t.Fatalf("T=%g top-k %d top-p %g: token %d is in the reference cut (%d tokens), not the sampler's prefix", c.temp, c.topK, c.topP, id, len(keep))
			}
		}
	}
}

// refCut is the cut as the whole vocabulary stably sorted by logit gives it.
func refCut(logits []float32, temp float64, topK int, topP float64) map[int]bool {
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	k := len(idx)
	if topK > 0 && topK < k {
		k = topK
	}
	mx := float64(logits[idx[0]])
	p := make([]float64, k)
	var z float64
	for i := range p {
		p[i] = math.Exp((float64(logits[idx[i]]) - mx) / temp)
		z += p[i]
	}
	if topP > 0 && topP < 1 {
		var acc float64
		for i := range p {
			if acc += p[i] / z; acc >= topP {
				k = i + 1
				break
			}
		}
	}
	keep := map[int]bool{}
	for _, id := range idx[:k] {
		keep[id] = true
	}
	return keep
}

// BenchmarkSample: one draw from a 49152-token vocabulary at generate's
// defaults (T 0.8, top-p 0.95) and with top-k 40, from a peaked and a flat
// distribution.
func BenchmarkSample(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, spread := range []float64{8, 0.1} {
		logits := make([]float32, 49152)
		for i := range logits {
			logits[i] = float32(r.NormFloat64() * spread)
		}
		for _, c := range []struct {
			topK int
			topP float64
		}{{0, 0.95}, {40, 0}} {
			b.Run(fmt.Sprintf("spread%g/topk%d/topp%g", spread, c.topK, c.topP), func(b *testing.B) {
				s := NewSampler(0.8, c.topK, c.topP, 1)
				for i := 0; i < b.N; i++ {
					s.Sample(logits)
				}
			})
		}
	}
}
