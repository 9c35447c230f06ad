package model

import (
	"math"
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
