package train

import (
	"fmt"
	"math"

	"github.com/lowrank/lowrank/autograd"
)

// Optimizer updates parameters from their gradients. State is explicit so a
// checkpoint can save and restore it exactly.
type Optimizer interface {
	// Step applies one update with learning rate lr; scale[i] multiplies lr for
	// params[i] (LoRA+ gives B a larger rate), nil means 1.
	Step(params []*autograd.Tensor, lr float64, scale []float64)
	Name() string
}

// SGD is stochastic gradient descent with optional momentum and (coupled)
// weight decay, as torch.optim.SGD computes it.
type SGD struct {
	Momentum    float64
	WeightDecay float64
	buf         [][]float32
}

func (o *SGD) Name() string { return "sgd" }

func (o *SGD) Step(params []*autograd.Tensor, lr float64, scale []float64) {
	if o.Momentum != 0 && o.buf == nil {
		o.buf = make([][]float32, len(params))
	}
	for i, p := range params {
		plr := float32(lr * scaleOf(scale, i))
		wd := float32(o.WeightDecay)
		mom := float32(o.Momentum)
		var buf []float32
		if mom != 0 {
			if o.buf[i] == nil {
				o.buf[i] = make([]float32, len(p.Data))
				for j, g := range p.Grad { // first step: buf = d_p
					o.buf[i][j] = g + wd*p.Data[j]
				}
				buf = o.buf[i]
			} else {
				buf = o.buf[i]
				for j, g := range p.Grad {
					buf[j] = mom*buf[j] + (g + wd*p.Data[j])
				}
			}
		}
		for j, g := range p.Grad {
			d := g + wd*p.Data[j]
			if buf != nil {
				d = buf[j]
			}
			p.Data[j] -= plr * d
		}
	}
}

// AdamW is Adam with decoupled weight decay and bias correction, with fp32
// moments, computed in the order torch.optim.AdamW uses.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	T                              int // steps taken
	M, V                           [][]float32
}

// NewAdamW returns AdamW with PyTorch's defaults (β 0.9, 0.999; ε 1e-8) and the given decay.
func NewAdamW(weightDecay float64) *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
}

func (o *AdamW) Name() string { return "adamw" }

func (o *AdamW) Step(params []*autograd.Tensor, lr float64, scale []float64) {
	if o.M == nil {
		o.M = make([][]float32, len(params))
		o.V = make([][]float32, len(params))
		for i, p := range params {
			o.M[i] = make([]float32, len(p.Data))
			o.V[i] = make([]float32, len(p.Data))
		}
	}
	if len(o.M) != len(params) {
		panic(fmt.Sprintf("train: AdamW state has %d tensors, step got %d", len(o.M), len(params)))
	}
	o.T++
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	bc1 := 1 - math.Pow(o.Beta1, float64(o.T))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.T))
	for i, p := range params {
		plr := lr * scaleOf(scale, i)
		decay := float32(1 - plr*o.WeightDecay)
		stepSize := float32(plr / bc1)
		bc2sqrt := float32(math.Sqrt(bc2))
		eps := float32(o.Eps)
		m, v := o.M[i], o.V[i]
		for j, g := range p.Grad {
			p.Data[j] *= decay
			m[j] = m[j]*b1 + g*(1-b1)
			v[j] = v[j]*b2 + g*g*(1-b2)
			denom := float32(math.Sqrt(float64(v[j])))/bc2sqrt + eps
			p.Data[j] -= stepSize * (m[j] / denom)
		}
	}
}

func scaleOf(s []float64, i int) float64 {
	if s == nil {
		return 1
	}
	return s[i]
}
