package train

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/model"
)

// TestParityWithPyTorch: one SGD step and one AdamW step on stories260K (HF,
// f32 base) from a non-zero adapter loaded from a PEFT directory give the same
// loss and the same updated adapter as PyTorch (testdata/torch_lora_step.py).
func TestParityWithPyTorch(t *testing.T) {
	golden, err := safetensors.Open("testdata/parity/golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer golden.Close()
	raw, err := os.ReadFile("testdata/parity/example.json")
	if err != nil {
		t.Fatal(err)
	}
	var ex struct {
		InputIDs []int32 `json:"input_ids"`
	}
	if err := json.Unmarshal(raw, &ex); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opt  Optimizer
		lr   float64
		tol  float64
	}{{"sgd", &SGD{}, 0.1, 2e-5}, {"adamw", NewAdamW(0.01), 0.01, 2e-4}} {
		m, err := model.Load(testassets.Path(t, "models/stories260K/hf"), model.LoadOptions{Quant: "f32"})
		if err != nil {
			t.Fatal(err)
		}
		ad, err := checkpoints.LoadAdapter("testdata/parity/adapter", m)
		if err != nil {
			t.Fatal(err)
		}
		n := len(ex.InputIDs) - 1
		b := &model.Batch{B: 1, T: n, IDs: ex.InputIDs[:n], Targets: ex.InputIDs[1:], Pos: make([]int32, n)}
		for i := range b.Pos {
			b.Pos[i] = int32(i)
		}
		tp := autograd.NewTape(nil)
		loss, _, err := m.Loss(tp, b, 0)
		if err != nil {
			t.Fatal(err)
		}
		tp.Backward(loss)
		if want := goldenF32(t, golden, "loss")[0]; math.Abs(float64(loss.Data[0]-want)) > 1e-5*float64(want) {
			t.Errorf("%s: loss %g, PyTorch %g", c.name, loss.Data[0], want)
		}
		c.opt.Step(ad.Params(), c.lr)
		worst := 0.0
		for _, l := range ad.Layers {
			for _, p := range []struct {
				key string
				got *autograd.Tensor
			}{{"lora_A.weight", l.A}, {"lora_B.weight", l.B}} {
				want := goldenF32(t, golden, c.name+".base_model.model."+l.Base.Name+"."+p.key)
				var scale float64
				for _, w := range want {
					scale = math.Max(scale, math.Abs(float64(w)))
				}
				for i, w := range want {
					d := math.Abs(float64(p.got.Data[i]-w)) / scale
					worst = math.Max(worst, d)
					if d > c.tol {
						t.Fatalf("%s: %s.%s[%d] = %g after the step, PyTorch %g", c.name, l.Base.Name, p.key, i, p.got.Data[i], w)
					}
				}
			}
		}
		t.Logf("%s: loss %.6f; %d adapter tensors match PyTorch after one step (worst relative difference %.2g)", c.name, loss.Data[0], 2*len(ad.Layers), worst)
		m.Close()
	}
}

func goldenF32(t *testing.T, f *safetensors.File, name string) []float32 {
	t.Helper()
	tn, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("golden file has no %s", name)
	}
	out := make([]float32, tn.Elements())
	if err := tn.Float32s(out); err != nil {
		t.Fatal(err)
	}
	return out
}
