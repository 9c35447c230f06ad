package train

import (
	"fmt"
	"math"
	"sort"

	"github.com/lowrank/lowrank/lora"
)

// Optimizer updates an adapter's parameters from their gradients. Its state
// is explicit, keyed by parameter name, so a checkpoint saves and restores
// it exactly.
type Optimizer interface {
	Name() string
	// Step applies one update with learning rate lr, times each parameter's
	// LRScale (LoRA+ gives B a larger rate).
	Step(ps []lora.Param, lr float64)
	// Finite reports whether Step(ps, lr) would leave every parameter and
	// every value of the optimizer's state finite: with finite gradients a
	// learning rate large enough overflows float32 (AdamW's lr/(1-β1) at
	// the first step), and a run must stop before it, not save the result.
	Finite(ps []lora.Param, lr float64) bool
	// State returns the optimizer's state; its tensors view the optimizer's
	// own buffers (valid until the next Step).
	State(ps []lora.Param) *OptimizerState
	// Restore sets the state back, checking that it covers exactly ps.
	Restore(ps []lora.Param, st *OptimizerState) error
}

// OptimizerState is an optimizer's state as a checkpoint holds it: scalars
// in trainer_state.json, tensors in optimizer.safetensors.
type OptimizerState struct {
	Name string `json:"name"`
	// Steps is AdamW's step count t (bias correction).
	Steps int `json:"steps,omitempty"`
	// Initialized lists the parameters whose SGD momentum buffer exists
	// (torch.optim.SGD creates it at a parameter's first step).
	Initialized []string `json:"initialized,omitempty"`
	// Tensors by name: "exp_avg.NAME" and "exp_avg_sq.NAME" (AdamW),
	// "momentum_buffer.NAME" (SGD), NAME a lora.Param's.
	Tensors map[string][]float32 `json:"-"`
}

// TensorNames returns the state's tensor names in a fixed order.
func (s *OptimizerState) TensorNames() []string {
	names := make([]string, 0, len(s.Tensors))
	for n := range s.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// slabLen is the length of the slab ps are views of.
func slabLen(ps []lora.Param) int {
	if len(ps) == 0 {
		return 0
	}
	last := ps[len(ps)-1]
	return last.Off + len(last.T.Data)
}

// restoreTensors copies st's tensors prefix+NAME into slab at each
// parameter's offset, requiring exactly those tensors (of those prefixes).
func restoreTensors(ps []lora.Param, st *OptimizerState, slab []float32, prefix string, want map[string]bool) error {
	for _, p := range ps {
		if !want[p.Name] {
			continue
		}
		v, ok := st.Tensors[prefix+p.Name]
		if !ok {
			return fmt.Errorf("optimizer state has no %s%s", prefix, p.Name)
		}
		if len(v) != len(p.T.Data) {
			return fmt.Errorf("optimizer state %s%s has %d values, the parameter %d", prefix, p.Name, len(v), len(p.T.Data))
		}
		copy(slab[p.Off:p.Off+len(v)], v)
	}
	return nil
}

func checkNoExtra(ps []lora.Param, st *OptimizerState, prefixes ...string) error {
	known := map[string]bool{}
	for _, p := range ps {
		for _, pre := range prefixes {
			known[pre+p.Name] = true
		}
	}
	for _, n := range st.TensorNames() {
		if !known[n] {
			return fmt.Errorf("optimizer state has %s, which is not a parameter of this adapter", n)
		}
	}
	return nil
}

// SGD is stochastic gradient descent with optional momentum and (coupled)
// weight decay, as torch.optim.SGD computes it.
type SGD struct {
	Momentum    float64
	WeightDecay float64
	buf         []float32 // momentum buffers, one slab in the parameters' layout
	init        []bool    // per parameter: its buffer exists
}

func (o *SGD) Name() string { return "sgd" }

func (o *SGD) Step(ps []lora.Param, lr float64) {
	if o.Momentum != 0 && o.buf == nil {
		o.buf, o.init = make([]float32, slabLen(ps)), make([]bool, len(ps))
	}
	for i, pa := range ps {
		k := o.step(pa, lr, i)
		p := pa.T
		for j, g := range p.Grad {
			var buf float32
			if o.buf != nil {
				buf = o.buf[pa.Off+j]
			}
			x, buf := k.at(p.Data[j], buf, g)
			p.Data[j] = x
			if o.buf != nil {
				o.buf[pa.Off+j] = buf
			}
		}
	}
	for i := range o.init {
		o.init[i] = true
	}
}

func (o *SGD) Finite(ps []lora.Param, lr float64) bool {
	for i, pa := range ps {
		k := o.step(pa, lr, i)
		p := pa.T
		var bad float32 // x-x: 0 when finite, NaN otherwise
		for j, g := range p.Grad {
			var buf float32
			if o.buf != nil {
				buf = o.buf[pa.Off+j]
			}
			x, buf := k.at(p.Data[j], buf, g)
			bad += (x - x) + (buf - buf)
		}
		if bad != 0 {
			return false
		}
	}
	return true
}

// sgdStep holds the scalars of a step for parameter i.
type sgdStep struct {
	lr, wd, mom float32
	first       bool // no momentum buffer yet: buf = d
}

func (o *SGD) step(pa lora.Param, lr float64, i int) sgdStep {
	return sgdStep{lr: float32(lr * pa.LRScale), wd: float32(o.WeightDecay), mom: float32(o.Momentum), first: o.init == nil || !o.init[i]}
}

// at is one value's update as torch.optim.SGD computes it: d = g + wd·p;
// with momentum buf = d at the first step, then mom·buf + d, and d = buf;
// p -= lr·d. It returns the new value and buffer.
func (k *sgdStep) at(p, buf, g float32) (float32, float32) {
	d := g + k.wd*p
	if k.mom != 0 {
		if k.first {
			buf = d
		} else {
			buf = k.mom*buf + d
		}
		d = buf
	}
	return p - k.lr*d, buf
}

func (o *SGD) State(ps []lora.Param) *OptimizerState {
	st := &OptimizerState{Name: o.Name(), Tensors: map[string][]float32{}}
	for i, p := range ps {
		if o.init != nil && o.init[i] {
			st.Initialized = append(st.Initialized, p.Name)
			st.Tensors["momentum_buffer."+p.Name] = o.buf[p.Off : p.Off+len(p.T.Data)]
		}
	}
	return st
}

func (o *SGD) Restore(ps []lora.Param, st *OptimizerState) error {
	if st.Name != o.Name() {
		return fmt.Errorf("optimizer state is %s's, the run uses sgd", st.Name)
	}
	o.buf, o.init = nil, nil
	if len(st.Initialized) == 0 {
		return checkNoExtra(ps, st)
	}
	if o.Momentum == 0 {
		return fmt.Errorf("optimizer state has momentum buffers but the momentum is 0")
	}
	inited := map[string]bool{}
	for _, n := range st.Initialized {
		inited[n] = true
	}
	o.buf, o.init = make([]float32, slabLen(ps)), make([]bool, len(ps))
	have := map[string]bool{}
	for i, p := range ps {
		o.init[i], have[p.Name] = inited[p.Name], true
	}
	for _, n := range st.Initialized {
		if !have[n] {
			return fmt.Errorf("optimizer state has a momentum buffer for %s, which is not a parameter of this adapter", n)
		}
	}
	if err := restoreTensors(ps, st, o.buf, "momentum_buffer.", inited); err != nil {
		return err
	}
	return checkNoExtra(ps, st, "momentum_buffer.")
}

// AdamW is Adam with decoupled weight decay and bias correction, with fp32
// moments, computed in the order torch.optim.AdamW uses.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	T                              int       // steps taken
	M, V                           []float32 // first and second moments, slabs in the parameters' layout
}

// NewAdamW returns AdamW with PyTorch's defaults (β 0.9, 0.999; ε 1e-8) and the given decay.
func NewAdamW(weightDecay float64) *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
}

func (o *AdamW) Name() string { return "adamw" }

func (o *AdamW) Step(ps []lora.Param, lr float64) {
	n := slabLen(ps)
	if o.M == nil {
		o.M, o.V = make([]float32, n), make([]float32, n)
	}
	if len(o.M) != n {
		panic(fmt.Sprintf("train: AdamW state has %d values, step got %d", len(o.M), n))
	}
	o.T++
	for _, pa := range ps {
		k := o.step(pa, lr, o.T)
		p := pa.T
		m, v := o.M[pa.Off:pa.Off+len(p.Data)], o.V[pa.Off:pa.Off+len(p.Data)]
		for j, g := range p.Grad {
			p.Data[j], m[j], v[j] = k.at(p.Data[j], m[j], v[j], g)
		}
	}
}

func (o *AdamW) Finite(ps []lora.Param, lr float64) bool {
	for _, pa := range ps {
		k := o.step(pa, lr, o.T+1)
		p := pa.T
		var m, v []float32 // nil before the first step: zero moments
		if o.M != nil {
			m, v = o.M[pa.Off:pa.Off+len(p.Data)], o.V[pa.Off:pa.Off+len(p.Data)]
		}
		// x-x is 0 for a finite x and NaN otherwise: one sum says whether
		// every value is finite, without a branch per value.
		var bad float32
		if len(m) == 0 {
			for j, g := range p.Grad {
				x, m1, v1 := k.at(p.Data[j], 0, 0, g)
				bad += (x - x) + (m1 - m1) + (v1 - v1)
			}
		} else {
			for j, g := range p.Grad {
				x, m1, v1 := k.at(p.Data[j], m[j], v[j], g)
				bad += (x - x) + (m1 - m1) + (v1 - v1)
			}
		}
		if bad != 0 {
			return false
		}
	}
	return true
}

// adamwStep holds the scalars of step t for one parameter.
type adamwStep struct{ b1, b2, bc2sqrt, eps, decay, stepSize float32 }

func (o *AdamW) step(pa lora.Param, lr float64, t int) adamwStep {
	plr := lr * pa.LRScale
	return adamwStep{b1: float32(o.Beta1), b2: float32(o.Beta2), bc2sqrt: float32(math.Sqrt(1 - math.Pow(o.Beta2, float64(t)))),
		eps: float32(o.Eps), decay: float32(1 - plr*o.WeightDecay), stepSize: float32(plr / (1 - math.Pow(o.Beta1, float64(t))))}
}

// at is one value's update, in the order torch.optim.AdamW computes it:
// p·(1-lr·wd), the moments, then p -= lr/(1-β1^t) · m/(√v/√(1-β2^t) + ε).
func (k *adamwStep) at(p, m, v, g float32) (float32, float32, float32) {
	p *= k.decay
	m = m*k.b1 + g*(1-k.b1)
	v = v*k.b2 + g*g*(1-k.b2)
	denom := float32(math.Sqrt(float64(v)))/k.bc2sqrt + k.eps
	return p - k.stepSize*(m/denom), m, v
}

func finite32(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

func (o *AdamW) State(ps []lora.Param) *OptimizerState {
	st := &OptimizerState{Name: o.Name(), Steps: o.T, Tensors: map[string][]float32{}}
	if o.M == nil {
		return st
	}
	for _, p := range ps {
		k := len(p.T.Data)
		st.Tensors["exp_avg."+p.Name] = o.M[p.Off : p.Off+k]
		st.Tensors["exp_avg_sq."+p.Name] = o.V[p.Off : p.Off+k]
	}
	return st
}

func (o *AdamW) Restore(ps []lora.Param, st *OptimizerState) error {
	if st.Name != o.Name() {
		return fmt.Errorf("optimizer state is %s's, the run uses adamw", st.Name)
	}
	o.T, o.M, o.V = st.Steps, nil, nil
	if st.Steps == 0 {
		return checkNoExtra(ps, st)
	}
	n := slabLen(ps)
	o.M, o.V = make([]float32, n), make([]float32, n)
	all := map[string]bool{}
	for _, p := range ps {
		all[p.Name] = true
	}
	if err := restoreTensors(ps, st, o.M, "exp_avg.", all); err != nil {
		return err
	}
	if err := restoreTensors(ps, st, o.V, "exp_avg_sq.", all); err != nil {
		return err
	}
	return checkNoExtra(ps, st, "exp_avg.", "exp_avg_sq.")
}
