package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/kernels"
)

// Linear is one projection of a block. The frozen base implements it; adapter
// packages wrap a *Frozen in their own Linear. Forward returns a new tensor
// that the block may overwrite in place (RoPE, the residual add), so its
// backward must not read the output's values.
type Linear interface {
	Forward(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor
	// Frozen returns the base layer underneath any wrapping.
	Frozen() *Frozen
}

// Frozen is a base projection y = x·Wᵀ (+ b) with W frozen in its storage format.
type Frozen struct {
	Name string          // Hugging Face module path, e.g. "model.layers.3.self_attn.q_proj"
	W    *kernels.Weight // (out, in)
	Bias []float32       // (out) or nil
}

func (f *Frozen) Forward(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor {
	return tp.Linear(x, f.W, f.Bias)
}

func (f *Frozen) Frozen() *Frozen { return f }

// Block is one transformer layer.
type Block struct {
	AttnNorm, MLPNorm *autograd.Tensor // (1, C)
	QNorm, KNorm      *autograd.Tensor // (1, D), Qwen3 only
	Q, K, V, O        Linear           // (H·D, C), (Hkv·D, C), (Hkv·D, C), (C, H·D)
	Gate, Up, Down    Linear           // (I, C), (I, C), (C, I)
}

// Linears returns the block's projections by short name, in a fixed order.
func (b *Block) Linears() []*Linear {
	return []*Linear{&b.Q, &b.K, &b.V, &b.O, &b.Gate, &b.Up, &b.Down}
}

// Model is a loaded transformer.
type Model struct {
	Config Config
	Embed  *kernels.Weight  // (V, C)
	Blocks []Block          // (L)
	Norm   *autograd.Tensor // (1, C)
	Head   *kernels.Weight  // (V, C); the same Weight as Embed when tied
	// rope holds RoPE's angles, rotate-half layout, (positions, D/2) for the
	// positions used so far (at most MaxPos): a 2^20-position config costs
	// nothing until a sequence that long is fed.
	rope   atomic.Pointer[autograd.Rope]
	Source string // the path it was loaded from
	// Checkpointing recomputes every block in backward instead of keeping its
	// activations (activation checkpointing); CheckpointLayers > 0 recomputes
	// only the first that many (see Recomputes).
	Checkpointing    bool
	CheckpointLayers int
	Stored           []StoredTensor // what each weight is held as (inspect, training log)
	Tuned            *TuneReport    // what tuning the scales after GPTQ did, if it ran
	BaseCache        *BaseCache     // how a GPTQ load used the cache, if it had one
	close            func() error
}

// StoredTensor reports how one weight is held in memory.
type StoredTensor struct {
	Name   string         `json:"name"`
	Shape  [2]int         `json:"shape"`
	From   string         `json:"from"` // dtype in the file
	Format kernels.Format `json:"-"`
	As     string         `json:"as"` // storage format in memory
	Bytes  int64          `json:"bytes"`
	Note   string         `json:"note,omitempty"`
}

// Recomputes reports whether block l is recomputed in backward (activation
// checkpointing) rather than keeping its activations.
func (m *Model) Recomputes(l int) bool {
	if m.CheckpointLayers > 0 {
		return l < m.CheckpointLayers
	}
	return m.Checkpointing
}

// Close releases memory-mapped files.
func (m *Model) Close() error {
	if m.close != nil {
		return m.close()
	}
	return nil
}

// Params counts the base model's parameters (tied embeddings once).
func (m *Model) Params() int64 {
	c := m.Config
	per := int64(c.Hidden)*int64(c.Heads*c.HeadDim)*2 + int64(c.Hidden)*int64(c.KVHeads*c.HeadDim)*2 +
		3*int64(c.Hidden)*int64(c.Intermediate) + 2*int64(c.Hidden)
	n := per*int64(c.Layers) + int64(c.Vocab)*int64(c.Hidden) + int64(c.Hidden)
	if !c.TieEmbeddings {
		n += int64(c.Vocab) * int64(c.Hidden)
	}
	return n
}

// stored is the StoredTensor of projection name (a module path).
func (m *Model) stored(name string) *StoredTensor {
	for i := range m.Stored {
		if m.Stored[i].Name == name+".weight" {
			return &m.Stored[i]
		}
	}
	return &StoredTensor{} // not listed: nothing to report
}

// restored updates the StoredTensor of fr to the weight it now holds (after
// requantization) and returns it for the caller's note.
func (m *Model) restored(fr *Frozen) *StoredTensor {
	st := m.stored(fr.Name)
	st.Format, st.As, st.Bytes = fr.W.Format, fr.W.Format.String(), fr.W.Bytes()
	return st
}

// WeightBytes is the memory the base weights take.
func (m *Model) WeightBytes() int64 {
	var n int64
	for _, s := range m.Stored {
		n += s.Bytes
	}
	return n
}

// Batch is B sequences of T tokens, flattened to N = B·T rows.
type Batch struct {
	B, T    int
	IDs     []int32 // (N) input token ids
	Pos     []int32 // (N) positions; restart at 0 for each packed example
	Seg     []int32 // (N) segment ids for packed rows, or nil
	Targets []int32 // (N) next-token targets, autograd.IgnoreIndex where unsupervised
	// Noise > 0 adds uniform noise in ±Noise to the input embeddings, each
	// value drawn from a generator seeded by NoiseKey (NEFTune: training
	// sets Noise = α/√(T·C) for the batch's row length T and width C).
	Noise    float32
	NoiseKey [2]uint64
}

func (b *Batch) check(c *Config) error {
	n := b.B * b.T
	if len(b.IDs) != n || len(b.Pos) != n || (b.Seg != nil && len(b.Seg) != n) || (b.Targets != nil && len(b.Targets) != n) {
		return fmt.Errorf("batch %d×%d: %d ids, %d positions, %d segment ids, %d targets", b.B, b.T, len(b.IDs), len(b.Pos), len(b.Seg), len(b.Targets))
	}
	for i, id := range b.IDs {
		if id < 0 || int(id) >= c.Vocab {
			return fmt.Errorf("token id %d at %d is outside the vocabulary of %d", id, i, c.Vocab)
		}
		if b.Pos[i] < 0 || int(b.Pos[i]) >= c.MaxPos {
			return fmt.Errorf("position %d at %d is outside the model's context of %d", b.Pos[i], i, c.MaxPos)
		}
	}
	return nil
}

// ropeInitial is how many positions a model's RoPE table covers at load.
const ropeInitial = 4096

// prepareRope makes the RoPE table cover positions below n (≤ MaxPos).
// Tables only grow, and a forward pass that loaded the old one keeps it.
func (m *Model) prepareRope(n int) {
	for {
		r := m.rope.Load()
		if n <= r.MaxPos || m.rope.CompareAndSwap(r, r.Extend(n)) {
			return
		}
	}
}

// Hidden runs the embedding and every block over a batch and returns the final
// normed hidden states (N, C), recording on tp.
func (m *Model) Hidden(tp *autograd.Tape, b *Batch) (*autograd.Tensor, error) {
	if err := b.check(&m.Config); err != nil {
		return nil, err
	}
	x := tp.EmbedFrozen(b.IDs, m.Embed)
	if b.Noise > 0 {
		addNoise(x.Data, b.Noise, b.NoiseKey)
	}
	return m.HiddenFrom(tp, x, b), nil
}

// addNoise adds uniform noise in ±scale to x, drawn in order from a
// generator seeded by key: the same values whatever the thread count.
// The embedding is frozen, so the noise is a constant of the forward pass.
func addNoise(x []float32, scale float32, key [2]uint64) {
	r := rand.New(rand.NewPCG(key[0], key[1]))
	for i := range x {
		x[i] += scale * float32(2*r.Float64()-1)
	}
}

// HiddenFrom runs every block from already-embedded inputs x (N, C) (which may
// carry a gradient) and returns the final normed hidden states.
func (m *Model) HiddenFrom(tp *autograd.Tape, x *autograd.Tensor, b *Batch) *autograd.Tensor {
	c := &m.Config
	if len(b.Pos) > 0 {
		m.prepareRope(int(slices.Max(b.Pos)) + 1)
	}
	shape := autograd.AttnShape{B: b.B, T: b.T, H: c.Heads, Hkv: c.KVHeads, D: c.HeadDim}
	attend := func(tp *autograd.Tape, q, k, v *autograd.Tensor) *autograd.Tensor {
		return tp.Attention(q, k, v, shape, b.Seg)
	}
	for l := range m.Blocks {
		if m.Recomputes(l) {
			x = tp.Checkpoint(x, m.blockTrainable(l), func(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor {
				return m.block(tp, l, x, b.Pos, attend)
			})
			continue
		}
		// Each block keeps its activations; its internal gradients share one
		// region with the other blocks' (see autograd.Tape.Block).
		x = tp.Block(l, x, func(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor {
			return m.block(tp, l, x, b.Pos, attend)
		})
	}
	return tp.RMSNorm(x, m.Norm, float32(c.RMSEps))
}

// Loss returns the next-token cross-entropy of a batch, normalized by norm
// (≤ 0: by its own supervised tokens), and the number of supervised tokens.
func (m *Model) Loss(tp *autograd.Tape, b *Batch, norm float32) (*autograd.Tensor, int, error) {
	if b.Targets == nil {
		return nil, 0, fmt.Errorf("batch has no targets")
	}
	for i, t := range b.Targets {
		if t >= 0 && int(t) >= m.Config.Vocab {
			return nil, 0, fmt.Errorf("target %d at %d is outside the vocabulary of %d", t, i, m.Config.Vocab)
		}
	}
	h, err := m.Hidden(tp, b)
	if err != nil {
		return nil, 0, err
	}
	loss, n := tp.CrossEntropy(h, m.Head, b.Targets, norm)
	return loss, n, nil
}

// block is one transformer layer, shared by training and generation: attend
// gets the roped q, k and v and returns the attention output (N, H·D).
func (m *Model) block(tp *autograd.Tape, l int, x *autograd.Tensor, pos []int32, attend func(tp *autograd.Tape, q, k, v *autograd.Tensor) *autograd.Tensor) *autograd.Tensor {
	c := &m.Config
	b := &m.Blocks[l]
	eps := float32(c.RMSEps)
	// Inside a training block the norms' and SwiGLU's outputs are transient
	// (rebuilt in backward for the projections that read them) and the
	// projections' outputs are overwritten by RoPE and the residual adds:
	// about 45% less activation memory per block for the same arithmetic.
	h := tp.RMSNormTransient(x, b.AttnNorm, eps)
	q := b.Q.Forward(tp, h)
	k := b.K.Forward(tp, h)
	v := b.V.Forward(tp, h)
	tp.Release(h)
	if b.QNorm != nil { // Qwen3: RMSNorm over each head vector
		q = reshape(tp.RMSNorm(reshape(q, q.Rows*c.Heads, c.HeadDim), b.QNorm, eps), q.Rows, q.Cols)
		k = reshape(tp.RMSNorm(reshape(k, k.Rows*c.KVHeads, c.HeadDim), b.KNorm, eps), k.Rows, k.Cols)
	}
	rope := m.rope.Load()
	q = tp.RoPEInPlace(q, rope, pos)
	k = tp.RoPEInPlace(k, rope, pos)
	a := attend(tp, q, k, v)
	x = tp.AddInto(b.O.Forward(tp, a), x)
	h = tp.RMSNormTransient(x, b.MLPNorm, eps)
	gate, up := b.Gate.Forward(tp, h), b.Up.Forward(tp, h)
	tp.Release(h)
	g := tp.SwiGLUTransient(gate, up)
	d := b.Down.Forward(tp, g)
	tp.Release(g)
	return tp.AddInto(d, x)
}

// blockTrainable reports whether block l has anything that takes a gradient:
// a wrapped (adapted) projection or a trainable norm.
func (m *Model) blockTrainable(l int) bool {
	b := &m.Blocks[l]
	for _, lin := range b.Linears() {
		if _, frozen := (*lin).(*Frozen); !frozen {
			return true
		}
	}
	for _, n := range []*autograd.Tensor{b.AttnNorm, b.MLPNorm, b.QNorm, b.KNorm} {
		if n != nil && n.Grad != nil {
			return true
		}
	}
	return false
}

// reshape views a tensor with another row length (row-major, no copy: the data
// and gradient buffers are shared).
func reshape(t *autograd.Tensor, rows, cols int) *autograd.Tensor {
	if rows*cols != t.Rows*t.Cols {
		panic("model: reshape changes the size")
	}
	return &autograd.Tensor{Data: t.Data, Grad: t.Grad, Rows: rows, Cols: cols}
}
