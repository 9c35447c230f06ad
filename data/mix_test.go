package data

import (
	"math"
	"slices"
	"testing"
)

// part is a dataset of n one-token examples whose id names the dataset.
func part(id int32, n int) *Dataset {
	ds := &Dataset{Format: FormatText, Rows: n, Key: string(rune('a' + id))}
	for range n {
		ds.Train = append(ds.Train, &Example{IDs: []int32{id, id}, Mask: []bool{false, true}})
	}
	return ds
}

func counts(ds *Dataset) map[int32]int {
	c := map[int32]int{}
	for _, e := range ds.Train {
		c[e.IDs[0]]++
	}
	return c
}

func TestCombineConcatenates(t *testing.T) {
	out, shares, err := Combine([]*Dataset{part(0, 3), part(1, 5)}, []string{"a", "b"}, nil, MixFirstExhausted, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	for _, e := range out.Train {
		ids = append(ids, e.IDs[0])
	}
	if !slices.Equal(ids, []int32{0, 0, 0, 1, 1, 1, 1, 1}) || shares[0].Examples != 3 || shares[1].Supervised != 5 || out.Supervised != 8 {
		t.Errorf("concatenation %v, shares %+v", ids, shares)
	}
}

// TestCombineMixture: the first_exhausted mixture ends when a dataset runs
// out, with each dataset's share of examples within 4 standard deviations
// of its weight; all_exhausted goes on until every dataset has been used
// whole; both are the same for the same seed and differ for another.
func TestCombineMixture(t *testing.T) {
	parts := []*Dataset{part(0, 10000), part(1, 3000), part(2, 100000)}
	w := []float64{2, 1, 1} // probabilities 0.5, 0.25, 0.25
	out, shares, err := Combine(parts, []string{"a", "b", "c"}, w, MixFirstExhausted, 7)
	if err != nil {
		t.Fatal(err)
	}
	c := counts(out)
	n := len(out.Train)
	// b (3000 at 0.25) runs out first, at about 12000 draws.
	if c[1] != 3000 || n < 10000 || n > 14000 {
		t.Fatalf("first_exhausted: %v in %d", c, n)
	}
	for i, p := range []float64{0.5, 0.25, 0.25} {
		sd := math.Sqrt(float64(n) * p * (1 - p))
		if math.Abs(float64(c[int32(i)])-float64(n)*p) > 4*sd {
			t.Errorf("dataset %d: %d of %d examples, want %.0f ± %.0f", i, c[int32(i)], n, float64(n)*p, 4*sd)
		}
		if shares[i].Examples != c[int32(i)] || shares[i].Weight != p {
			t.Errorf("share %d: %+v", i, shares[i])
		}
	}
	again, _, _ := Combine(parts, []string{"a", "b", "c"}, w, MixFirstExhausted, 7)
	other, _, _ := Combine(parts, []string{"a", "b", "c"}, w, MixFirstExhausted, 8)
	if !slices.Equal(again.Train, out.Train) || slices.Equal(other.Train, out.Train) || again.Key != out.Key || other.Key == out.Key {
		t.Error("the mixture is not a function of the seed")
	}
	all, _, err := Combine(parts[:2], []string{"a", "b"}, []float64{1, 3}, MixAllExhausted, 7)
	if err != nil {
		t.Fatal(err)
	}
	// a (10000 at 0.25) is used whole last, at about 40000 draws: b repeats.
	if c := counts(all); c[0] != 10000 || c[1] < 25000 {
		t.Errorf("all_exhausted: %v", c)
	}
	for _, bad := range [][]float64{{1}, {1, -1}, {1, math.NaN()}} {
		if _, _, err := Combine(parts[:2], []string{"a", "b"}, bad, MixFirstExhausted, 1); err == nil {
			t.Errorf("weights %v accepted", bad)
		}
	}
	if _, _, err := Combine(parts[:2], []string{"a", "b"}, []float64{1, 1}, "sometimes", 1); err == nil {
		t.Error("an unknown stop accepted")
	}
}
