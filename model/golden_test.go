package model

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
)

// trainable is a test Linear whose weight is a trainable fp32 tensor, so the
// whole model's projection gradients can be compared with PyTorch's.
type trainable struct {
	f *Frozen
	w *autograd.Tensor
}

func (t *trainable) Forward(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor {
	return tp.MatMulT(x, t.w)
}
func (t *trainable) Frozen() *Frozen { return t.f }

func f32s(t *testing.T, f *safetensors.File, name string) []float32 {
	t.Helper()
	tn, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("golden file has no %s", name)
	}
	out := make([]float32, tn.Elements())
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(tn.Data[4*i:]))
	}
	return out
}

func i32s(t *testing.T, f *safetensors.File, name string) []int32 {
	v := f32s(t, f, name) // same width; reinterpret
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(math.Float32bits(x))
	}
	return out
}

func closeTo(t *testing.T, what string, got, want []float32, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= rel*scale+1e-7) {
			t.Fatalf("%s[%d] = %g, PyTorch %g (max |value| %g)", what, i, got[i], want[i], scale)
		}
	}
}

// TestAgainstPyTorch: loss, logits and the gradient of every projection and
// norm weight agree with testdata/torch_llama_golden.py (an independent
// PyTorch implementation). The LM head's gradient is not compared: lowrank's
// cross-entropy treats the head as frozen.
func TestAgainstPyTorch(t *testing.T) {
	g, err := safetensors.Open("testdata/tiny-llama-golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m, err := Load("testdata/tiny-llama", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	params := map[string]*autograd.Tensor{}
	for l := range m.Blocks {
		b := &m.Blocks[l]
		for _, lin := range b.Linears() {
			f := (*lin).Frozen()
			d := f.W.Dequantize()
			w := autograd.NewParam(d.Rows, d.Cols)
			copy(w.Data, d.Data)
			*lin = &trainable{f: f, w: w}
			params[f.Name+".weight"] = w
		}
		p := "model.layers." + strconv.Itoa(l) + "."
		for name, n := range map[string]*autograd.Tensor{p + "input_layernorm.weight": b.AttnNorm, p + "post_attention_layernorm.weight": b.MLPNorm} {
			n.Grad = make([]float32, len(n.Data))
			params[name] = n
		}
	}
	m.Norm.Grad = make([]float32, len(m.Norm.Data))
	params["model.norm.weight"] = m.Norm

	ids, targets := i32s(t, g, "ids"), i32s(t, g, "targets")
	const B, T = 2, 9
	batch := &Batch{B: B, T: T, IDs: ids, Targets: targets, Pos: make([]int32, B*T)}
	for i := range batch.Pos {
		batch.Pos[i] = int32(i % T)
	}
	tp := autograd.NewTape(nil)
	loss, n, err := m.Loss(tp, batch, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 14 {
		t.Fatalf("supervised tokens %d, want 14", n)
	}
	tp.Backward(loss)
	closeTo(t, "loss", loss.Data, f32s(t, g, "loss"), 1e-5)
	checked := 0
	for name, p := range params {
		closeTo(t, "grad "+name, p.Grad, f32s(t, g, "grad."+name), 2e-4)
		checked++
	}
	for _, name := range g.Names() {
		if strings.HasPrefix(name, "grad.") && params[strings.TrimPrefix(name, "grad.")] == nil && name != "grad.lm_head.weight" {
			t.Errorf("golden gradient %s was not compared", name)
		}
	}
	tp2 := autograd.NewTape(nil)
	tp2.SetNoGrad(true)
	h, err := m.Hidden(tp2, batch)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "logits", tp2.Logits(h, m.Head).Data, f32s(t, g, "logits"), 1e-5)
	t.Logf("loss %.6f; %d gradients match PyTorch", loss.Data[0], checked)
}
