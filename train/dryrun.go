package train

import (
	"fmt"
	"strings"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/data"
)

// DryRun resolves a run without training: the configuration, parameter
// counts, a memory estimate and the dataset's size.
func DryRun(c Config) (string, error) {
	sc := c
	sc.Init = "default" // the same parameter counts without PiSSA's SVDs
	s, err := newSession(sc, nil)
	if err != nil {
		return "", err
	}
	defer s.Close()
	opts := c.ModelOptions()
	opts.GPTQ = nil // the same size either way; a dry run does not calibrate
	if err := s.setup(opts, c.Adapter, true, false); err != nil {
		return "", err
	}
	m, ad, ds := s.Model, s.Adapter, s.Data
	cfg := m.Config
	trainable := ad.NumParams()
	est := s.memoryEstimate()
	var b strings.Builder
	rc := c
	rc.MaxSeqLen = s.Config.MaxSeqLen // 0 resolved by the model's context
	fmt.Fprintf(&b, "# resolved configuration\n%s\n", rc.YAML())
	fmt.Fprintf(&b, "model: %s, %d layers, hidden %d, vocab %d\n", cfg.Arch, cfg.Layers, cfg.Hidden, cfg.Vocab)
	fmt.Fprintf(&b, "parameters: %d total, %d trainable (%.3f%%) in %d adapted projections\n", m.Params(), trainable, 100*float64(trainable)/float64(m.Params()), len(ad.Layers))
	fmt.Fprintf(&b, "memory estimate: %s (base weights %s as %s, adapters %s, optimizer state %s, activations ~%s for %d×%d)",
		mib(est.Total()), mib(est.Base), c.Quant, mib(est.Adapter), mib(est.Optimizer), mib(est.Activations), c.BatchSize, s.Config.MaxSeqLen)
	if limit, why, _ := c.memoryLimit(); limit > 0 {
		fmt.Fprintf(&b, "; this process may use %s (%s)", mib(limit), why)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "data: %s (%s): %d rows, %d examples, %d tokens, %d supervised", c.Data, ds.Format, ds.Rows, len(ds.Train), ds.Tokens, ds.Supervised)
	if len(ds.Dropped) > 0 {
		fmt.Fprintf(&b, "; %s", data.DroppedSummary(ds.Dropped))
	}
	b.WriteString("\n")
	if err := s.checkMemory(); err != nil {
		fmt.Fprintf(&b, "the run would be refused: %v\n", err)
	}
	return b.String(), nil
}

// MemoryEstimate is what a training run holds, in bytes.
type MemoryEstimate struct {
	Base, Adapter, Optimizer, Activations int64
}

// Total is the sum of the parts.
func (e MemoryEstimate) Total() int64 { return e.Base + e.Adapter + e.Optimizer + e.Activations }

// mib formats a byte count in MiB, or GiB from 10 GiB on.
func mib(n int64) string {
	if n >= 10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// memoryEstimate is what training the session's model and adapter at its
// batch shape holds: the base weights, the adapter's values and gradients,
// the optimizer's moments and the activations.
func (s *Session) memoryEstimate() MemoryEstimate {
	c, m := &s.Config, s.Model
	cfg := m.Config
	trainable := int64(s.Adapter.NumParams())
	optState := 2 * trainable * 4 // AdamW moments
	if c.Optimizer == "sgd" {
		optState = trainable * 4 // momentum buffers at most
	}
	n := int64(c.BatchSize) * int64(c.MaxSeqLen)
	// Per token and layer a block keeps q (RoPE'd in place), k, v, the
	// attention output, o (the residual sum is written into it), gate, up and
	// down (likewise). The norms' and SwiGLU's outputs are transient: one
	// block's worth that all blocks share, rebuilt in backward. Attention
	// probabilities are recomputed in backward, not kept. The blocks' gradients
	// take one block's worth, shared (autograd.Tape.Block). A recomputed block
	// keeps only its input; while it is recomputed it holds its activations
	// (its gradients and transients use the shared regions).
	C, KV, I := int64(cfg.Hidden), int64(cfg.KVHeads*cfg.HeadDim), int64(cfg.Intermediate)
	kept := n * (4*C + 2*KV + 2*I) * 4
	shared := n * (2*C + I) * 4
	grads := n * (6*C + 2*KV + 3*I) * 4
	recomputed := 0
	for l := range cfg.Layers {
		if m.Recomputes(l) {
			recomputed++
		}
	}
	acts := kept*int64(cfg.Layers-recomputed) + n*C*4*int64(recomputed) + shared + grads
	if recomputed > 0 {
		acts += kept // the block being recomputed
	}
	// The loss: one chunk of logits (every token supervised at worst), dH
	// for the whole batch, and a chunk of H's and of dH's rows gathered.
	ceRows := int64(autograd.CrossEntropyChunkRows(int(min(n, 1<<30)), cfg.Vocab))
	acts += ceRows*int64(cfg.Vocab)*4 + n*C*4 + 2*ceRows*C*4
	return MemoryEstimate{Base: m.WeightBytes(), Adapter: 2 * trainable * 4, Optimizer: optState, Activations: acts}
}

// checkMemory refuses a run whose estimate is above the memory this process
// may use, before any of the batch-sized memory is allocated.
func (s *Session) checkMemory() error {
	limit, why, err := s.Config.memoryLimit()
	if err != nil || limit == 0 {
		return err
	}
	if est := s.memoryEstimate(); est.Total() > limit {
		return fmt.Errorf("this run needs about %s (activations %s for --batch-size %d × --max-seq-len %d, base %s, adapter and optimizer %s), more than the %s this process may use (%s): lower --batch-size or --max-seq-len, use --activation-checkpointing, or pass --memory-limit off to try anyway",
			mib(est.Total()), mib(est.Activations), s.Config.BatchSize, s.Config.MaxSeqLen, mib(est.Base), mib(est.Adapter+est.Optimizer), mib(limit), why)
	}
	return nil
}
