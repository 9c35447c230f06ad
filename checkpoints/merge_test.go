package checkpoints

import (
	"math"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/model"
)

func lastLogits(t *testing.T, m *model.Model) []float32 {
	l, err := m.Step(autograd.NewTape(nil), m.NewCache(16), []int32{1, 403, 407, 261, 378})
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), l...)
}

// TestMergedEqualsAdapter: the merged directory gives the logits of base +
// adapter (f32: within 1e-5 relative; f16 within its rounding), and reloading
// it needs no adapter.
func TestMergedEqualsAdapter(t *testing.T) {
	base := testassets.Path(t, "models/stories260K/hf")
	m, err := model.Load(base, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ad, err := LoadAdapter("../train/testdata/parity/adapter", m)
	if err != nil {
		t.Fatal(err)
	}
	want := lastLogits(t, m)
	for _, c := range []struct {
		dtype string
		tol   float64
	}{{"f32", 1e-5}, {"f16", 5e-3}} {
		dir := t.TempDir()
		rep, err := WriteMerged(dir, m, ad, base, c.dtype)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Merged != 35 || rep.BaseFrom != "original weights" {
			t.Errorf("report %+v", rep)
		}
		mm, err := model.Load(dir, model.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := lastLogits(t, mm)
		mm.Close()
		var scale float64
		for _, w := range want {
			scale = math.Max(scale, math.Abs(float64(w)))
		}
		for i := range want {
			if d := math.Abs(float64(got[i]-want[i])) / scale; d > c.tol {
				t.Fatalf("%s: logit %d: merged %g, base+adapter %g", c.dtype, i, got[i], want[i])
			}
		}
	}
}
