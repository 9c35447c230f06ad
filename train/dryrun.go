package train

import (
	"fmt"
	"strings"

	"github.com/lowrank/lowrank/autograd"
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
	optState := 2 * trainable * 4 // AdamW moments
	if c.Optimizer == "sgd" {
		optState = 0
	}
	n := int64(c.BatchSize * c.MaxSeqLen)
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
	m.Checkpointing, m.CheckpointLayers = c.Checkpointing, c.CheckpointLayers
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
	// The loss: one chunk of logits and dH for the whole batch.
	acts += int64(autograd.CrossEntropyChunkRows(int(n), cfg.Vocab))*int64(cfg.Vocab)*4 + n*C*4
	var b strings.Builder
	fmt.Fprintf(&b, "# resolved configuration\n%s\n", c.YAML())
	fmt.Fprintf(&b, "model: %s, %d layers, hidden %d, vocab %d\n", cfg.Arch, cfg.Layers, cfg.Hidden, cfg.Vocab)
	fmt.Fprintf(&b, "parameters: %d total, %d trainable (%.3f%%) in %d adapted projections\n", m.Params(), trainable, 100*float64(trainable)/float64(m.Params()), len(ad.Layers))
	fmt.Fprintf(&b, "memory estimate: base weights %.1f MiB (%s), adapters %.1f MiB, optimizer state %.1f MiB, activations ~%.0f MiB for %d×%d\n",
		float64(m.WeightBytes())/(1<<20), c.Quant, float64(trainable*4)/(1<<20), float64(optState)/(1<<20), float64(acts)/(1<<20), c.BatchSize, c.MaxSeqLen)
	fmt.Fprintf(&b, "data: %s (%s): %d rows, %d examples, %d tokens, %d supervised", c.Data, ds.Format, ds.Rows, len(ds.Train), ds.Tokens, ds.Supervised)
	for reason, k := range ds.Dropped {
		fmt.Fprintf(&b, "; dropped %d (%s)", k, reason)
	}
	b.WriteString("\n")
	return b.String(), nil
}
