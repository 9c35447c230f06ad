package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/model"
)

// ShortNames are the projection names of a Llama-family block, in order.
var ShortNames = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// Config describes the adapters to attach.
type Config struct {
	Rank    int
	Alpha   float64
	Dropout float64
	// Targets: short module names ("q_proj"), globs over full module paths
	// ("model.layers.*.self_attn.*"), "re:REGEX" (matched against the whole
	// path, PEFT's string form), or "all-linear" (every projection, not the LM
	// head). Empty means all-linear.
	Targets []string
	RSLoRA  bool // scale α/√R instead of α/R
	DoRA    bool // weight-decomposed LoRA: a trainable magnitude per output row
	// Init: "default" (PEFT: Kaiming-uniform A, zero B), "gaussian" (A ~ N(0, 1/R),
	// zero B) or "pissa" (A, B from the top-R SVD of W; the residual stays frozen).
	Init string
	// RankPattern and AlphaPattern override Rank/Alpha for modules whose path
	// matches the key as PEFT matches it: the regex (.*\.)?KEY$.
	RankPattern  map[string]int
	AlphaPattern map[string]float64
	Seed         uint64 // initialization and dropout
	// LoRAPlusRatio > 0 trains B with that multiple of the learning rate (LoRA+).
	LoRAPlusRatio float64
	// TrainNorms makes the RMSNorm weights trainable; TrainBiases the
	// projection biases that exist (Qwen2's q/k/v). PEFT saves them as
	// modules_to_save.
	TrainNorms, TrainBiases bool
	// EveryTarget makes a target entry that matches no projection an error
	// even when others match (a typo on the command line or in a run
	// config). Without it PEFT's rule holds, an error only when nothing
	// matches: adapters written by other tools keep loading.
	EveryTarget bool
}

// Extra is a trainable tensor outside the low-rank factors (a norm weight or a
// bias), under its Hugging Face name.
type Extra struct {
	Name string
	T    *autograd.Tensor
}

// Linear is one adapted projection.
type Linear struct {
	Base   *model.Frozen
	A      *autograd.Tensor // (R, in)
	B      *autograd.Tensor // (out, R)
	Rank   int
	Alpha  float64
	Scale  float32
	index  int // position in the adapter, part of the dropout key
	ad     *Adapter
	merged bool             // the delta is folded into Base.W: skip the adapter path
	bias   *autograd.Tensor // trainable copy of Base.Bias (TrainBiases), or nil
	// Magnitude is DoRA's per-output magnitude (1, out), nil for plain LoRA.
	Magnitude *autograd.Tensor
	mergeNorm []float32 // DoRA: ‖W'‖ at merge time, for Unmerge
	fixedNorm []float32 // tests: hold ‖W'‖ constant, as its detached gradient assumes
}

// Adapter is the set of adapted layers of one model.
type Adapter struct {
	Config Config
	Layers []*Linear // in model order: layer by layer, ShortNames order
	Extras []Extra   // trainable norms and biases, if configured
	// Micro is the global index of the micro-batch being computed, set by the
	// trainer before each forward: with Seed and the layer index it keys
	// every dropout mask, so each micro-batch of an accumulated step draws
	// its own masks and a resumed run draws the same ones (explicit state).
	Micro uint64
	// Training turns dropout on.
	Training bool

	// Every trainable value lives in one slab and every gradient in
	// another, in Params order; the tensors' Data and Grad are views of them.
	values, grads []float32
	params        []Param
}

// Param is one trainable tensor: a named view of the adapter's slabs.
type Param struct {
	// Name is the tensor's name in a PEFT file without PEFT's
	// "base_model.model." prefix: "model.layers.0.self_attn.q_proj.lora_A.weight",
	// "…q_proj.lora_magnitude_vector", "model.norm.weight".
	Name string
	T    *autograd.Tensor // Data = Values()[Off:Off+len], Grad = Grads()[Off:Off+len]
	Off  int
	// LRScale multiplies the learning rate: the LoRA+ ratio for B, else 1.
	LRScale float64
}

// Dropout keys: purpose tags of autograd.Key.
const keyDropout = 0xd20

// Frozen returns the base layer.
func (l *Linear) Frozen() *model.Frozen { return l.Base }

// Forward computes base + s·(dropout(x)·Aᵀ)·Bᵀ.
func (l *Linear) Forward(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor {
	if l.merged {
		return l.Base.Forward(tp, x)
	}
	xd, dropped := x, false
	if p := l.ad.Config.Dropout; p > 0 && l.ad.Training {
		// Transient inside a block: rebuilt from x and the key in backward
		// rather than kept (see autograd.Tape.Release).
		xd, dropped = tp.DropoutTransient(x, p, autograd.Key(l.ad.Config.Seed, keyDropout, l.ad.Micro, uint64(l.index))), true
	}
	y := l.forward(tp, x, xd, dropped)
	if dropped { // (x itself is the caller's to release)
		tp.Release(xd)
	}
	return y
}

func (l *Linear) forward(tp *autograd.Tape, x, xd *autograd.Tensor, dropped bool) *autograd.Tensor {
	if l.Magnitude != nil {
		return l.forwardDoRA(tp, x, xd, dropped)
	}
	if l.bias != nil { // a trainable copy of the bias
		return tp.AddRow(tp.LoRA(x, xd, l.Base.W, nil, l.A, l.B, l.Scale), l.bias)
	}
	return tp.LoRA(x, xd, l.Base.W, l.Base.Bias, l.A, l.B, l.Scale)
}

// Scaling returns α/R, or α/√R with rsLoRA.
func Scaling(alpha float64, rank int, rslora bool) float32 {
	if rslora {
		return float32(alpha / math.Sqrt(float64(rank)))
	}
	return float32(alpha / float64(rank))
}

func (c *Config) validate() error {
	if c.Rank <= 0 {
		return fmt.Errorf("lora: rank %d must be positive", c.Rank)
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return fmt.Errorf("lora: dropout %g must be in [0, 1)", c.Dropout)
	}
	switch c.Init {
	case "", "default", "gaussian", "pissa":
	default:
		return fmt.Errorf("lora: init %q is not supported (default, gaussian, pissa)", c.Init)
	}
	return nil
}

// Matches reports whether the module at path (e.g.
// "model.layers.3.self_attn.q_proj") is targeted.
func (c *Config) Matches(path string) (bool, error) {
	targets := c.Targets
	if len(targets) == 0 {
		targets = []string{"all-linear"}
	}
	for _, t := range targets {
		if ok, err := matchTarget(t, path); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// matchTarget reports whether one target entry selects the module at path.
func matchTarget(t, path string) (bool, error) {
	short := path[strings.LastIndex(path, ".")+1:]
	switch {
	case t == "all-linear":
		return true, nil
	case strings.HasPrefix(t, "re:"): // PEFT's string form: a regex matched against the whole path
		re, err := regexp.Compile(`^(?:` + t[3:] + `)$`)
		if err != nil {
			return false, fmt.Errorf("lora: target %q: %v", t, err)
		}
		return re.MatchString(path), nil
	case strings.ContainsAny(t, "*?["):
		ok, err := pathMatch(t, path)
		if err != nil {
			return false, fmt.Errorf("lora: target %q: %v", t, err)
		}
		return ok, nil
	}
	return t == short || strings.HasSuffix(path, "."+t), nil
}

// matchesAny reports whether target t selects any projection of m.
func matchesAny(t string, m *model.Model) bool {
	for bi := range m.Blocks {
		for _, lin := range m.Blocks[bi].Linears() {
			if ok, _ := matchTarget(t, (*lin).Frozen().Name); ok {
				return true
			}
		}
	}
	return false
}

// pathMatch matches a glob against the full path or its short name.
func pathMatch(glob, p string) (bool, error) {
	if ok, err := path.Match(glob, p); ok || err != nil {
		return ok, err
	}
	return path.Match(glob, p[strings.LastIndex(p, ".")+1:])
}

// patternFor returns the override for a module path, PEFT-style: the longest
// key that matches (.*\.)?KEY$.
func patternFor[V any](pat map[string]V, p string) (V, bool) {
	var zero V
	keys := make([]string, 0, len(pat))
	for k := range pat {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return len(keys[a]) > len(keys[b]) })
	for _, k := range keys {
		re, err := regexp.Compile(`^(.*\.)?(` + k + `)$`)
		if err == nil && re.MatchString(p) {
			return pat[k], true
		}
	}
	return zero, false
}

// Apply wraps every targeted projection of m with a freshly initialized
// adapter (B = 0, so the model's outputs are unchanged).
func Apply(m *model.Model, cfg Config) (*Adapter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ad := &Adapter{Config: cfg}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x6c6f7261))
	for bi := range m.Blocks {
		for _, lin := range m.Blocks[bi].Linears() {
			base := (*lin).Frozen()
			ok, err := cfg.Matches(base.Name)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			rank, alpha := cfg.Rank, cfg.Alpha
			if v, ok := patternFor(cfg.RankPattern, base.Name); ok {
				rank = v
			}
			if v, ok := patternFor(cfg.AlphaPattern, base.Name); ok {
				alpha = v
			}
			if rank <= 0 {
				return nil, fmt.Errorf("lora: rank %d for %s must be positive", rank, base.Name)
			}
			if w := min(base.W.Rows, base.W.Cols); rank > w {
				return nil, fmt.Errorf("lora: rank %d for %s (%d×%d) is above its width %d: a rank past min(in, out) adds parameters and no capacity", rank, base.Name, base.W.Rows, base.W.Cols, w)
			}
			l := &Linear{Base: base, Rank: rank, Alpha: alpha, Scale: Scaling(alpha, rank, cfg.RSLoRA), index: len(ad.Layers), ad: ad}
			l.A = autograd.NewParam(rank, base.W.Cols)
			l.B = autograd.NewParam(base.W.Rows, rank)
			initA(l.A, cfg.Init, r)
			if cfg.Init == "pissa" {
				if err := l.initPiSSA(); err != nil {
					return nil, err
				}
			}
			if cfg.DoRA {
				l.initDoRA()
			}
			ad.Layers = append(ad.Layers, l)
			*lin = l
		}
	}
	if len(ad.Layers) == 0 {
		return nil, fmt.Errorf("lora: targets %v match no projection (names: %s, or all-linear)", cfg.Targets, strings.Join(ShortNames, ", "))
	}
	if cfg.EveryTarget {
		for _, t := range cfg.Targets {
			if !matchesAny(t, m) {
				return nil, fmt.Errorf("lora: target %q matches no projection of the model (names: %s, or all-linear)", t, strings.Join(ShortNames, ", "))
			}
		}
	}
	if cfg.TrainBiases {
		for _, l := range ad.Layers {
			if l.Base.Bias != nil {
				l.bias = autograd.NewParam(1, len(l.Base.Bias))
				copy(l.bias.Data, l.Base.Bias)
				ad.Extras = append(ad.Extras, Extra{Name: l.Base.Name + ".bias", T: l.bias})
			}
		}
	}
	if cfg.TrainNorms {
		for _, e := range m.Entries() {
			if e.Norm != nil {
				e.Norm.Grad = make([]float32, len(e.Norm.Data))
				ad.Extras = append(ad.Extras, Extra{Name: e.HF, T: e.Norm})
			}
		}
	}
	ad.pack()
	return ad, nil
}

// initA fills A as PEFT does. Default: Kaiming-uniform with a = √5, i.e.
// U(−1/√in, 1/√in); gaussian: N(0, 1/R).
func initA(a *autograd.Tensor, init string, r *rand.Rand) {
	if init == "gaussian" {
		std := 1 / float64(a.Rows)
		for i := range a.Data {
			a.Data[i] = float32(r.NormFloat64() * std)
		}
		return
	}
	bound := 1 / math.Sqrt(float64(a.Cols))
	for i := range a.Data {
		a.Data[i] = float32((r.Float64()*2 - 1) * bound)
	}
}

// pack lays every trainable tensor out in one value slab and one gradient
// slab, in Params order (A, B per layer, then DoRA magnitudes, then the
// extras), keeping their values: the tensors become views. Apply calls it;
// so must anything that replaces a tensor (CombineLayer).
func (a *Adapter) pack() {
	type slot struct {
		name string
		t    *autograd.Tensor
		b    bool
	}
	var slots []slot
	for _, l := range a.Layers {
		slots = append(slots, slot{l.Base.Name + ".lora_A.weight", l.A, false}, slot{l.Base.Name + ".lora_B.weight", l.B, true})
	}
	for _, l := range a.Layers {
		if l.Magnitude != nil { // PEFT names the magnitude without ".weight"
			slots = append(slots, slot{l.Base.Name + ".lora_magnitude_vector", l.Magnitude, false})
		}
	}
	for _, e := range a.Extras {
		slots = append(slots, slot{e.Name, e.T, false})
	}
	n := 0
	for _, s := range slots {
		n += len(s.t.Data)
	}
	a.values, a.grads = make([]float32, n), make([]float32, n)
	a.params = a.params[:0]
	off := 0
	for _, s := range slots {
		k := len(s.t.Data)
		copy(a.values[off:off+k], s.t.Data)
		s.t.Data, s.t.Grad = a.values[off:off+k:off+k], a.grads[off:off+k:off+k]
		a.params = append(a.params, Param{Name: s.name, T: s.t, Off: off, LRScale: 1})
		if s.b {
			a.params[len(a.params)-1].LRScale = -1 // the LoRA+ ratio, read at Params time
		}
		off += k
	}
}

// Params returns the trainable tensors in a fixed order: A, B per layer,
// then the DoRA magnitudes, then the extras. The slice is the caller's.
func (a *Adapter) Params() []Param {
	ratio := a.Config.LoRAPlusRatio
	if ratio <= 0 {
		ratio = 1
	}
	ps := slices.Clone(a.params)
	for i := range ps {
		if ps[i].LRScale < 0 {
			ps[i].LRScale = ratio
		}
	}
	return ps
}

// Values is the slab of every trainable value, in Params order.
func (a *Adapter) Values() []float32 { return a.values }

// Grads is the slab of every gradient, in Params order.
func (a *Adapter) Grads() []float32 { return a.grads }

// NumParams counts trainable values.
func (a *Adapter) NumParams() int64 { return int64(len(a.values)) }

// ZeroGrad clears every parameter's gradient.
func (a *Adapter) ZeroGrad() { clear(a.grads) }

// Remove puts the base layers back into the model (trainable norms keep
// their current values and lose their gradient buffers).
func (a *Adapter) Remove(m *model.Model) {
	for _, e := range a.Extras {
		e.T.Grad = nil
	}
	for bi := range m.Blocks {
		for _, lin := range m.Blocks[bi].Linears() {
			if l, ok := (*lin).(*Linear); ok && l.ad == a {
				*lin = l.Base
			}
		}
	}
}
