package model

import (
	"fmt"
	"strings"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/kernels"
)

// GPTQOptions ask Load to quantize the block projections to q4_0 or nf4 by
// GPTQ (kernels.QuantizeGPTQ) instead of rounding each block on its own.
type GPTQOptions struct {
	// Tokens is the calibration text (token ids, cut into Window-long
	// sequences). When nil, about Samples tokens are sampled from the model
	// itself, in sequences from BOS at temperature 1 seeded by Seed: no data
	// needed, and the same on every run with the same seed.
	Tokens  []int32
	Samples int
	Seed    uint64
	// Window is the tokens per calibration sequence (default 256).
	Window int
	// Tune is the loss-aware step after GPTQ (see TuneOptions).
	Tune TuneOptions
}

// gptqBatch is how many calibration sequences are sampled together.
const gptqBatch = 16

// gptqInput is, for each projection of Block.Linears (Q, K, V, O, Gate, Up,
// Down), the first one that reads the same inputs: the projections with
// gptqInput[k] == k are the ones whose inputs are recorded.
var gptqInput = []int{0, 0, 0, 3, 4, 4, 6}

// gramObserver wraps a projection and adds XᵀX of its inputs into gram.
type gramObserver struct {
	Linear
	gram kernels.Mat
	pool *kernels.Pool
}

func (o *gramObserver) Forward(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor {
	xm := kernels.MatOf(x.Data, x.Rows, x.Cols)
	o.pool.Gemm(o.gram, 1, xm, kernels.Trans, xm, kernels.NoTrans, 1)
	return o.Linear.Forward(tp, x)
}

// gptq replaces the block projections of m, loaded in an 8-bit format, by
// GPTQ quantizations to f of the source tensors, one layer at a time: the
// calibration sequences run through the layers already requantized, each
// layer's projections record the Gram matrix of their inputs, are quantized
// from the source, and the sequences then run through the new layer. Only
// one layer's Gram matrices and one fp32 tensor are held at a time. With
// o.Tune, the 8-bit model's next-token distributions on the sequences are
// recorded first (the teacher, top k per token) and the block scales are
// tuned to them at the end (see TuneOptions); NF4 is double-quantized after.
func (m *Model) gptq(src tensorSource, f kernels.Format, o GPTQOptions, permute bool, doubleQuant bool) error {
	c := &m.Config
	pool := kernels.Default()
	window := o.Window
	if window <= 0 {
		window = 256
	}
	window = min(window, c.MaxPos)
	// Refuse before any calibration work: GPTQ needs the original weights.
	for l := range m.Blocks {
		for _, lin := range m.Blocks[l].Linears() {
			name := (*lin).Frozen().Name + ".weight"
			s, err := src.get(name)
			if err != nil {
				return err
			}
			switch s.dtype {
			case "F32", "F16", "BF16", "Q8_0":
			default:
				return fmt.Errorf("GPTQ needs the original weights (F32, F16, BF16 or Q8_0); %s is stored as %s", name, s.dtype)
			}
		}
	}
	tp := autograd.NewTape(pool)
	var seqs [][]int32
	if o.Tokens != nil {
		for s := 0; s < len(o.Tokens); s += window {
			seqs = append(seqs, o.Tokens[s:min(len(o.Tokens), s+window)])
		}
	} else {
		// Sequences of up to window tokens, sampled gptqBatch at a time; those
		// that stop early at EOS leave tokens for another round.
		for n, i := 0, uint64(0); n < o.Samples; {
			var prompts [][]int32
			var lens []int
			var ss []*Sampler
			for r := o.Samples - n; r > 0 && len(prompts) < gptqBatch; r -= window {
				prompts = append(prompts, []int32{int32(c.BOS)})
				lens = append(lens, min(window, r)-1)
				ss = append(ss, NewSampler(1, 0, 0, o.Seed+i))
				i++
			}
			outs, err := m.GenerateBatch(tp, prompts, lens, ss)
			if err != nil {
				return fmt.Errorf("GPTQ calibration: %w", err)
			}
			for _, out := range outs {
				seq := append([]int32{int32(c.BOS)}, out...) // as text is fed: from BOS
				seqs = append(seqs, seq)
				n += len(seq)
			}
		}
	}
	if len(seqs) == 0 {
		return fmt.Errorf("GPTQ needs calibration tokens")
	}
	for _, s := range seqs {
		for _, id := range s {
			if id < 0 || int(id) >= c.Vocab {
				return fmt.Errorf("GPTQ calibration token %d is outside the vocabulary of %d", id, c.Vocab)
			}
		}
	}
	tp.SetNoGrad(true)
	xs := make([][]float32, len(seqs))
	pos := make([][]int32, len(seqs))
	for i, s := range seqs {
		tp.Reset()
		xs[i] = append([]float32(nil), tp.EmbedFrozen(s, m.Embed).Data...)
		pos[i] = make([]int32, len(s))
		for j := range pos[i] {
			pos[i][j] = int32(j)
		}
	}
	var teach *teacher
	if o.Tune.Epochs > 0 {
		k := o.Tune.TopK
		if k <= 0 {
			k = 64
		}
		var err error
		if teach, err = m.teach(tp, seqs, pos, k); err != nil {
			return err
		}
	}
	// run passes the sequences through layer l; with keep, its outputs become
	// the next layer's inputs.
	run := func(l int, keep bool) {
		for i, s := range seqs {
			tp.Reset()
			shape := autograd.AttnShape{B: 1, T: len(s), H: c.Heads, Hkv: c.KVHeads, D: c.HeadDim}
			attend := func(tp *autograd.Tape, q, k, v *autograd.Tensor) *autograd.Tensor {
				return tp.Attention(q, k, v, shape, nil)
			}
			y := m.block(tp, l, autograd.Const(xs[i], len(s), c.Hidden), pos[i], attend)
			if keep {
				copy(xs[i], y.Data)
			}
		}
		tp.Reset()
	}
	var qperm, kperm func(int) int
	if permute {
		qperm, kperm = ropePerm(c.Heads, c.HeadDim), ropePerm(c.KVHeads, c.HeadDim)
	}
	for l := range m.Blocks {
		b := &m.Blocks[l]
		lins := b.Linears()
		// Q, K and V read the same inputs, as do Gate and Up: one Gram matrix
		// and one factorization serve each group.
		obs := make([]*gramObserver, len(lins))
		for k, lin := range lins {
			if gptqInput[k] == k {
				cols := (*lin).Frozen().W.Cols
				obs[k] = &gramObserver{Linear: *lin, gram: kernels.NewMat(cols, cols), pool: pool}
				*lin = obs[k]
			}
		}
		run(l, false) // through the 8-bit layer, for the Gram matrices only
		for k, o := range obs {
			if o != nil {
				*lins[k] = o.Linear
			}
		}
		hess := make([]*kernels.GPTQHessian, len(lins))
		for k := range obs {
			if obs[k] == nil {
				continue
			}
			h, err := kernels.NewGPTQHessian(obs[k].gram.Cols, obs[k].gram.Data, pool)
			if err != nil {
				return fmt.Errorf("layer %d: %w", l, err)
			}
			hess[k] = h
			obs[k] = nil
		}
		for k, lin := range lins {
			fr := (*lin).Frozen()
			name := fr.Name + ".weight"
			s, err := src.get(name)
			if err != nil {
				return err
			}
			var perm func(int) int
			if k == 0 {
				perm = qperm
			} else if k == 1 {
				perm = kperm
			}
			rows, cols := fr.W.Rows, fr.W.Cols
			full := make([]float32, rows*cols)
			for i := 0; i < rows; i++ {
				j := i
				if perm != nil {
					j = perm(i)
				}
				s.decode(full[i*cols:(i+1)*cols], j)
			}
			w, err := kernels.QuantizeGPTQ(f, rows, cols, full, hess[gptqInput[k]], pool)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			fr.W = w
		}
		run(l, true) // through the new layer: the next layer's inputs
	}
	note := "GPTQ"
	if teach != nil {
		r, err := m.tune(pool, seqs, pos, teach, o.Tune)
		if err != nil {
			return err
		}
		m.Tuned = r
		note = "GPTQ, scales tuned"
	}
	for l := range m.Blocks {
		for _, lin := range m.Blocks[l].Linears() {
			fr := (*lin).Frozen()
			if f == kernels.NF4 && doubleQuant {
				fr.W.DoubleQuantize()
			}
			st := m.restored(fr)
			st.Note = strings.TrimSuffix(note+"; "+st.Note, "; ")
		}
	}
	return nil
}
