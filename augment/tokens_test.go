package augment

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lowrank/lowrank/data"
)

// example is a prompt of np tokens then an answer of na, ids from 10 up,
// with token 1 (BOS) first and a protected token 2 in the prompt.
func example(np, na int) *data.Example {
	ex := &data.Example{}
	for i := range np + na {
		ex.IDs = append(ex.IDs, int32(10+i%50))
		ex.Mask = append(ex.Mask, i >= np)
	}
	ex.IDs[0], ex.IDs[3] = 1, 2
	return ex
}

func TestTokensDeterministic(t *testing.T) {
	protected := make([]bool, 100)
	protected[1], protected[2] = true, true
	draw, _ := UniformSampler(100, protected)
	tr := (&Tokens{Seed: 7, Dropout: 0.2, Replace: 0.2, Protected: protected, Draw: draw}).Transform()
	ex := example(40, 20)
	orig := slices.Clone(ex.IDs)
	a, b := tr(3, 11, ex), tr(3, 11, ex)
	if !slices.Equal(a.IDs, b.IDs) || !slices.Equal(a.Mask, b.Mask) {
		t.Fatal("the same (seed, epoch, index) gave two variants")
	}
	if !slices.Equal(ex.IDs, orig) {
		t.Fatal("the transform modified its input")
	}
	for _, other := range []*data.Example{tr(4, 11, ex), tr(3, 12, ex), (&Tokens{Seed: 8, Dropout: 0.2, Replace: 0.2, Protected: protected, Draw: draw}).apply(3, 11, ex)} {
		if slices.Equal(a.IDs, other.IDs) {
			t.Error("another epoch, index or seed gave the same variant")
		}
	}
}

// TestTokensRates: over many examples the dropped and replaced fractions
// of eligible tokens are within 4 standard deviations of the settings, and
// nothing else changes: BOS, protected tokens, the answer and its mask.
func TestTokensRates(t *testing.T) {
	protected := make([]bool, 100)
	protected[1], protected[2] = true, true
	draw, _ := UniformSampler(100, protected)
	const pd, pr = 0.1, 0.15
	tr := &Tokens{Seed: 1, Dropout: pd, Replace: pr, Protected: protected, Draw: draw}
	ex := example(40, 20)
	eligible, dropped, replaced := 0, 0, 0
	for idx := range 2000 {
		out := tr.apply(0, idx, ex)
		if out.IDs[0] != 1 || len(out.IDs) > len(ex.IDs) || len(out.Mask) != len(out.IDs) {
			t.Fatalf("variant %d: %v", idx, out.IDs)
		}
		// The answer is the last 20 tokens, untouched, supervised.
		if !slices.Equal(out.IDs[len(out.IDs)-20:], ex.IDs[40:]) || slices.Contains(out.Mask[len(out.Mask)-20:], false) || slices.Contains(out.Mask[:len(out.Mask)-20], true) {
			t.Fatalf("variant %d changed the answer or its mask", idx)
		}
		if !slices.Contains(out.IDs, 2) {
			t.Fatalf("variant %d dropped a protected token", idx)
		}
		eligible += 38 // the prompt without BOS and the protected token
		dropped += len(ex.IDs) - len(out.IDs)
	}
	check := func(what string, got, n int, p float64) {
		sd := math.Sqrt(float64(n) * p * (1 - p))
		if math.Abs(float64(got)-float64(n)*p) > 4*sd {
			t.Errorf("%s %d of %d, want %.0f ± %.0f", what, got, n, float64(n)*p, 4*sd)
		}
	}
	check("dropped", dropped, eligible, pd)
	// Replacement: count it exactly with dropout off.
	tr.Dropout = 0
	for idx := range 2000 {
		out := tr.apply(0, idx, ex)
		for i := range out.IDs {
			if out.IDs[i] != ex.IDs[i] {
				replaced++
			}
		}
	}
	// A replacement may draw the same token (1 in 98): the expected count of
	// visible changes is p·(1-1/98).
	check("replaced", replaced, eligible, pr*(1-1.0/98))
}

// TestTokensAnswers: with Answers, answer tokens are eligible; a replaced
// one is no longer a target.
func TestTokensAnswers(t *testing.T) {
	draw, _ := UniformSampler(100, nil)
	tr := &Tokens{Seed: 3, Replace: 0.5, Answers: true, Draw: draw}
	ex := example(10, 30)
	changed := 0
	for idx := range 50 {
		out := tr.apply(0, idx, ex)
		for i := 10; i < len(ex.IDs); i++ {
			if out.IDs[i] != ex.IDs[i] {
				changed++
				if out.Mask[i] {
					t.Fatalf("variant %d: replaced answer token %d is still a target", idx, i)
				}
			} else if !out.Mask[i] {
				t.Fatalf("variant %d: unchanged answer token %d lost its target", idx, i)
			}
		}
	}
	if changed == 0 {
		t.Error("no answer token was replaced")
	}
}

func TestFrequencySampler(t *testing.T) {
	exs := []*data.Example{{IDs: []int32{5, 5, 5, 7}}, {IDs: []int32{5, 9, 9, 9}}}
	protected := make([]bool, 10)
	protected[9] = true
	s, err := FrequencySampler(exs, 10, protected)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	counts := map[int32]int{}
	for range 10000 {
		counts[s.draw(r)]++
	}
	// 5 four times as often as 7; 9 protected; nothing else occurs.
	if counts[9] != 0 || len(counts) != 2 || math.Abs(float64(counts[5])/10000-0.8) > 0.02 {
		t.Errorf("draws %v, want 5 at 80%%, 7 at 20%%", counts)
	}
	if _, err := FrequencySampler(exs[1:2], 10, []bool{false, false, false, false, false, true, false, false, false, true}); err == nil {
		t.Error("a data set of protected tokens only was accepted")
	}
}

// TestTokensOwnOnly: tokens a template wrote (Example.Own false) are never
// dropped or replaced.
func TestTokensOwnOnly(t *testing.T) {
	draw, _ := UniformSampler(100, nil)
	tr := &Tokens{Seed: 2, Dropout: 0.3, Replace: 0.3, Draw: draw}
	ex := example(40, 10)
	ex.Own = make([]bool, len(ex.IDs))
	for i := 20; i < 40; i++ {
		ex.Own[i] = true // the prompt's second half is the row's text; the first a template's
	}
	changed := 0
	for idx := range 200 {
		out := tr.apply(0, idx, ex)
		if !slices.Equal(out.IDs[:20], ex.IDs[:20]) || len(out.Own) != len(out.IDs) || slices.Contains(out.Own[:20], true) {
			t.Fatalf("variant %d changed template tokens: %v", idx, out.IDs[:20])
		}
		changed += len(ex.IDs) - len(out.IDs)
	}
	if changed == 0 {
		t.Error("nothing of the row's own text was dropped")
	}
}
