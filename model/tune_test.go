package model

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

// TestTopK: the heap selection returns the k largest values, ties to the
// lower index, for every k up to the length.
func TestTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, 300)
	for i := range v {
		v[i] = float32(r.IntN(40)) // many ties
	}
	order := make([]int32, len(v))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		switch {
		case v[a] > v[b]:
			return -1
		case v[a] < v[b]:
			return 1
		}
		return 0
	})
	for _, k := range []int{1, 2, 7, 64, 299, 300} {
		got := topK(nil, v, k)
		slices.Sort(got)
		want := slices.Clone(order[:k])
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("top %d: %v, want %v", k, got, want)
		}
	}
}

// TestTune: tuning the scales after GPTQ lowers the KL to the 8-bit model on
// the calibration text, changes the weights but not their format or size,
// is deterministic, reports itself in the tensors' notes, and leaves NF4
// double-quantized when asked.
func TestTune(t *testing.T) {
	dir := testassets.Path(t, "models/stories260K/hf")
	samples := 512
	if testing.Short() {
		samples = 48 // sampling token by token is slow under emulation
	}
	load := func(quant string, tune int) *Model {
		m, err := Load(dir, BaseOptions(quant, samples, tune, 5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	for _, quant := range []string{"q4_0", "nf4"} {
		untuned, a, b := load(quant, 0), load(quant, 2), load(quant, 2)
		if untuned.Tuned != nil {
			t.Errorf("%s: a load without tuning reports %+v", quant, *untuned.Tuned)
		}
		r := a.Tuned
		if r == nil || r.Epochs != 2 || !(r.After < r.Before) || !(r.Before > 0) {
			t.Fatalf("%s: tuning report %+v: want the calibration KL lowered", quant, r)
		}
		if !slices.Equal(rawWeights(a), rawWeights(b)) {
			t.Errorf("%s: two tuned loads with the same seed differ", quant)
		}
		if slices.Equal(rawWeights(a), rawWeights(untuned)) {
			t.Errorf("%s: tuning left the weights as GPTQ made them", quant)
		}
		plain, err := Load(dir, BaseOptions(quant, 0, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if a.WeightBytes() != plain.WeightBytes() || untuned.WeightBytes() != plain.WeightBytes() {
			t.Errorf("%s: tuned weights take %d bytes, untuned %d, plain %s %d", quant, a.WeightBytes(), untuned.WeightBytes(), quant, plain.WeightBytes())
		}
		plain.Close()
		for l := range a.Blocks {
			for _, lin := range a.Blocks[l].Linears() {
				w := (*lin).Frozen().W
				if w.Format.String() != quant || (quant == "nf4") != w.DoubleQuantized() {
					t.Errorf("%s: %s is %s, double-quantized %v", quant, (*lin).Frozen().Name, w.Format, w.DoubleQuantized())
				}
			}
		}
		for _, s := range a.Stored {
			if strings.HasPrefix(s.Note, "GPTQ") && !strings.HasPrefix(s.Note, "GPTQ, scales tuned") {
				t.Errorf("%s: %s noted %q", quant, s.Name, s.Note)
			}
		}
	}
}
