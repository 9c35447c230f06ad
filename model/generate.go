package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/lowrank/lowrank/autograd"
)

// Cache holds the keys and values of every layer for one sequence.
type Cache struct {
	K, V [][]float32 // (L) × (Max, Hkv·D)
	Len  int         // tokens stored
	Max  int
}

// NewCache allocates a cache for up to maxT tokens (capped at the model's context).
func (m *Model) NewCache(maxT int) *Cache {
	maxT = min(maxT, m.Config.MaxPos)
	kvd := m.Config.KVHeads * m.Config.HeadDim
	c := &Cache{Max: maxT, K: make([][]float32, len(m.Blocks)), V: make([][]float32, len(m.Blocks))}
	for l := range c.K {
		c.K[l] = make([]float32, maxT*kvd)
		c.V[l] = make([]float32, maxT*kvd)
	}
	return c
}

// Step feeds ids at the next positions of the cache through the model (the
// same block code as training, without a gradient) and returns the logits
// after the last one (V values, valid until the next Step).
func (m *Model) Step(tp *autograd.Tape, c *Cache, ids []int32) ([]float32, error) {
	cfg := &m.Config
	n := len(ids)
	if n == 0 {
		return nil, fmt.Errorf("no tokens to feed")
	}
	if c.Len+n > c.Max {
		return nil, fmt.Errorf("context is full: %d tokens + %d new > %d", c.Len, n, c.Max)
	}
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(c.Len + i)
	}
	kvd := cfg.KVHeads * cfg.HeadDim
	shape := autograd.AttnShape{B: 1, T: n, H: cfg.Heads, Hkv: cfg.KVHeads, D: cfg.HeadDim}
	x, err := m.forwardCached(tp, ids, pos, func(l int, tp *autograd.Tape, q, k, v *autograd.Tensor) *autograd.Tensor {
		copy(c.K[l][c.Len*kvd:], k.Data)
		copy(c.V[l][c.Len*kvd:], v.Data)
		out := tp.Buffer(n, cfg.Heads*cfg.HeadDim)
		autograd.AttentionStep(tp.Pool, out, q, c.K[l], c.V[l], c.Len, shape, tp.Scratch(max(n, tp.Pool.Threads())*(c.Len+n)))
		return out
	})
	if err != nil {
		return nil, err
	}
	c.Len += n
	last := &autograd.Tensor{Data: x.Row(n - 1), Rows: 1, Cols: x.Cols}
	h := tp.RMSNorm(last, m.Norm, float32(cfg.RMSEps))
	logits := tp.Logits(h, m.Head).Data
	for _, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("the model computes %g logits at position %d: its weights (or an adapter's) hold non-finite values", v, c.Len-1)
		}
	}
	return logits, nil
}

// forwardCached runs ids at positions pos through the blocks without a
// gradient (the same block code as training); attend(l, …) stores layer l's
// keys and values in the caches and attends against them. It returns the
// last block's output rows.
func (m *Model) forwardCached(tp *autograd.Tape, ids, pos []int32, attend func(l int, tp *autograd.Tape, q, k, v *autograd.Tensor) *autograd.Tensor) (*autograd.Tensor, error) {
	for _, id := range ids {
		if id < 0 || int(id) >= m.Config.Vocab {
			return nil, fmt.Errorf("token id %d is outside the vocabulary of %d", id, m.Config.Vocab)
		}
	}
	if len(pos) > 0 {
		m.prepareRope(int(slices.Max(pos)) + 1)
	}
	tp.Reset()
	tp.SetNoGrad(true)
	x := tp.EmbedFrozen(ids, m.Embed)
	for l := range m.Blocks {
		// As a Block, which without a gradient hands everything the block
		// allocated out again to the next: a prompt holds one block's
		// activations, not every block's (a 490-token prompt of smollm2's
		// shape held 530 MB).
		x = tp.Block(l, x, func(tp *autograd.Tape, x *autograd.Tensor) *autograd.Tensor {
			return m.block(tp, l, x, pos, func(tp *autograd.Tape, q, k, v *autograd.Tensor) *autograd.Tensor {
				return attend(l, tp, q, k, v)
			})
		})
	}
	return x, nil
}

// StepBatch feeds one token to each of several sequences, ids[i] at the
// next position of cs[i], in one pass through the model: every projection is
// one product over all the sequences, so the weights are read once per step
// rather than once per sequence. It returns the logits after each token
// (len(ids) rows of V values, valid until the next step).
func (m *Model) StepBatch(tp *autograd.Tape, cs []*Cache, ids []int32) ([]float32, error) {
	cfg := &m.Config
	n := len(ids)
	if n == 0 || len(cs) != n {
		return nil, fmt.Errorf("batch step: %d tokens for %d caches", n, len(cs))
	}
	pos := make([]int32, n)
	for i, c := range cs {
		if c.Len+1 > c.Max {
			return nil, fmt.Errorf("context is full: %d tokens + 1 new > %d", c.Len, c.Max)
		}
		pos[i] = int32(c.Len)
	}
	kvd, qd := cfg.KVHeads*cfg.HeadDim, cfg.Heads*cfg.HeadDim
	shape := autograd.AttnShape{B: 1, T: 1, H: cfg.Heads, Hkv: cfg.KVHeads, D: cfg.HeadDim}
	x, err := m.forwardCached(tp, ids, pos, func(l int, tp *autograd.Tape, q, k, v *autograd.Tensor) *autograd.Tensor {
		out := tp.Buffer(n, qd)
		for i, c := range cs {
			copy(c.K[l][c.Len*kvd:], k.Row(i))
			copy(c.V[l][c.Len*kvd:], v.Row(i))
			qi := &autograd.Tensor{Data: q.Row(i), Rows: 1, Cols: qd}
			oi := &autograd.Tensor{Data: out.Row(i), Rows: 1, Cols: qd}
			autograd.AttentionStep(tp.Pool, oi, qi, c.K[l], c.V[l], c.Len, shape, tp.Scratch(tp.Pool.Threads()*(c.Len+1)))
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		c.Len++
	}
	h := tp.RMSNorm(x, m.Norm, float32(cfg.RMSEps))
	return tp.Logits(h, m.Head).Data, nil
}

// GenerateBatch is Generate for several sequences at once: each prompt is
// fed on its own, then the sequences still running take one batched step
// (StepBatch) per token. Sequence i draws with samplers[i] and stops at an
// EOS id or after maxTokens[i] tokens. The result is deterministic; its
// logits can differ from Generate's in the last bits (a product over several
// rows may sum in another order than the one-row product), so a sampled
// token can too.
func (m *Model) GenerateBatch(tp *autograd.Tape, prompts [][]int32, maxTokens []int, samplers []*Sampler) ([][]int32, error) {
	n := len(prompts)
	if len(maxTokens) != n || len(samplers) != n {
		return nil, fmt.Errorf("batch generation: %d prompts, %d lengths, %d samplers", n, len(maxTokens), len(samplers))
	}
	out := make([][]int32, n)
	caches := make([]*Cache, n)
	next := make([]int32, n)
	var live []int // sequences still running
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("empty prompt: start from at least the BOS token")
		}
		caches[i] = m.NewCache(len(p) + maxTokens[i])
		if len(p) > caches[i].Max {
			return nil, fmt.Errorf("prompt of %d tokens exceeds the model's context of %d", len(p), caches[i].Max)
		}
		logits, err := m.Step(tp, caches[i], p)
		if err != nil {
			return nil, err
		}
		if maxTokens[i] > 0 {
			next[i] = int32(samplers[i].Sample(logits))
			live = append(live, i)
		}
	}
	V := m.Config.Vocab
	for len(live) > 0 {
		var ids []int32
		var cs []*Cache
		running := live[:0:0]
		for _, i := range live {
			id := next[i]
			if m.Config.IsEOS(int(id)) {
				continue
			}
			out[i] = append(out[i], id)
			if len(out[i]) == maxTokens[i] || caches[i].Len == caches[i].Max {
				continue
			}
			running = append(running, i)
			ids = append(ids, id)
			cs = append(cs, caches[i])
		}
		live = running
		if len(live) == 0 {
			break
		}
		logits, err := m.StepBatch(tp, cs, ids)
		if err != nil {
			return out, err
		}
		for j, i := range live {
			next[i] = int32(samplers[i].Sample(logits[j*V : (j+1)*V]))
		}
	}
	return out, nil
}

// Sampler picks the next token from logits.
type Sampler struct {
	Temperature float64 // 0: greedy (argmax)
	TopK        int     // 0: off
	TopP        float64 // 0 or ≥ 1: off
	rng         *rand.Rand
	cand        []cand
	probs       []float64
}

// cand is a token and its logit, ordered by before.
type cand struct {
	l  float32
	id int32
}

// before is the candidates' order: the larger logit first, ties by the
// smaller id (a strict total order for non-NaN logits: the sorted prefix,
// and so every draw, does not depend on how it was found).
func before(a, b cand) bool { return a.l > b.l || a.l == b.l && a.id < b.id }

// NewSampler returns a sampler with its own seeded generator.
func NewSampler(temperature float64, topK int, topP float64, seed uint64) *Sampler {
	return &Sampler{Temperature: temperature, TopK: topK, TopP: topP, rng: rand.New(rand.NewPCG(seed, 0x6c6f7772616e6b))}
}

// sampleAll draws from the whole softmax(logits/T) in index order: with no
// top-k or top-p cut there is nothing to sort (sorting 50k logits per token
// cost more than the model's step).
func (s *Sampler) sampleAll(logits []float32) int {
	mx := logits[0]
	for _, v := range logits {
		mx = max(mx, v)
	}
	if cap(s.probs) < len(logits) {
		s.probs = make([]float64, len(logits))
	}
	p := s.probs[:len(logits)]
	var z float64
	for i, v := range logits {
		p[i] = math.Exp((float64(v) - float64(mx)) / s.Temperature)
		z += p[i]
	}
	u := s.rng.Float64() * z
	last := 0
	for i, v := range p {
		if v == 0 {
			continue
		}
		last = i
		if u -= v; u <= 0 {
			return i
		}
	}
	return last
}

// selectTop moves the n first candidates of c in the order before to
// c[:n] (in no particular order; the rest after): a quickselect, linear on
// average, with the middle of three as pivot.
func selectTop(c []cand, n int) {
	lo, hi := 0, len(c) // the n-th lies in c[lo:hi]
	for hi-lo > 1 {
		m := lo + (hi-lo)/2
		// Median of c[lo], c[m], c[hi-1] to c[hi-1] as the pivot.
		if before(c[m], c[lo]) {
			c[m], c[lo] = c[lo], c[m]
		}
		if before(c[hi-1], c[lo]) {
			c[hi-1], c[lo] = c[lo], c[hi-1]
		}
		if before(c[m], c[hi-1]) {
			c[m], c[hi-1] = c[hi-1], c[m]
		}
		pv := c[hi-1]
		st := lo
		for i := lo; i < hi-1; i++ {
			if before(c[i], pv) {
				c[i], c[st] = c[st], c[i]
				st++
			}
		}
		c[st], c[hi-1] = c[hi-1], c[st] // c[:st] before the pivot, at st
		switch {
		case st == n || st == n-1:
			return
		case st > n:
			hi = st
		default:
			lo = st + 1
		}
	}
}

// sortCands sorts c in the order before.
func sortCands(c []cand) {
	slices.SortFunc(c, func(a, b cand) int {
		if before(a, b) {
			return -1
		}
		if before(b, a) {
			return 1
		}
		return 0
	})
}

// Sample returns a token id.
func (s *Sampler) Sample(logits []float32) int {
	if s.Temperature <= 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	if (s.TopK <= 0 || s.TopK >= len(logits)) && (s.TopP <= 0 || s.TopP >= 1) {
		return s.sampleAll(logits)
	}
	if cap(s.cand) < len(logits) {
		s.cand = make([]cand, len(logits))
		s.probs = make([]float64, len(logits))
	}
	c := s.cand[:len(logits)]
	mx := logits[0]
	for i, v := range logits {
		c[i] = cand{v, int32(i)}
		mx = max(mx, v)
	}
	// The candidates in order, only as far as the cut needs: the top k
	// selected and sorted; for top-p alone, chunks of growing size until
	// their mass reaches TopP (a trained model's nucleus is a few hundred
	// tokens of 50k; a flat distribution ends up sorting them all).
	k := len(c)
	if s.TopK > 0 && s.TopK < k {
		k = s.TopK
		selectTop(c, k)
		c = c[:k]
	}
	p := s.probs[:len(c)]
	w := func(l float32) float64 { return math.Exp((float64(l) - float64(mx)) / s.Temperature) }
	var z float64
	for _, e := range c {
		z += w(e.l)
	}
	topP := s.TopP > 0 && s.TopP < 1
	sorted := 0 // c[:sorted] is in order, with p[:sorted] their weights
	var acc float64
	for chunk, cut := 256, false; sorted < len(c) && !cut; chunk *= 4 {
		end := len(c)
		if topP && sorted+chunk < len(c) {
			end = sorted + chunk
			selectTop(c[sorted:], chunk)
		}
		sortCands(c[sorted:end])
		for i := sorted; i < end && !cut; i++ {
			p[i] = w(c[i].l)
			if topP { // the smallest prefix whose mass reaches TopP
				acc += p[i] / z
				k, cut = i+1, acc >= s.TopP
			}
		}
		sorted = end
	}
	z = 0
	for _, v := range p[:k] {
		z += v
	}
	u := s.rng.Float64() * z
	for i := 0; i < k; i++ {
		u -= p[i]
		if u <= 0 {
			return int(c[i].id)
		}
	}
	return int(c[k-1].id)
}

// Generate feeds prompt, then samples up to maxTokens tokens, calling emit with
// each; it stops early at an EOS id of the model or when emit returns false.
// It returns the generated ids (without the prompt).
func (m *Model) Generate(tp *autograd.Tape, prompt []int32, maxTokens int, s *Sampler, emit func(id int32) bool) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("empty prompt: start from at least the BOS token")
	}
	c := m.NewCache(len(prompt) + maxTokens)
	if len(prompt) > c.Max {
		return nil, fmt.Errorf("prompt of %d tokens exceeds the model's context of %d", len(prompt), c.Max)
	}
	logits, err := m.Step(tp, c, prompt)
	if err != nil {
		return nil, err
	}
	var out []int32
	for len(out) < maxTokens {
		id := int32(s.Sample(logits))
		if m.Config.IsEOS(int(id)) {
			break
		}
		out = append(out, id)
		if emit != nil && !emit(id) {
			break
		}
		if len(out) == maxTokens || c.Len == c.Max {
			break
		}
		if logits, err = m.Step(tp, c, []int32{id}); err != nil {
			return out, err
		}
	}
	return out, nil
}
