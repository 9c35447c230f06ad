package model

import (
	"math/rand/v2"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/kernels"
)

// Presets are architectures for benchmarks, built with random weights.
var Presets = map[string]Config{
	"smollm2-135m":   {Arch: "llama", Hidden: 576, Intermediate: 1536, Layers: 30, Heads: 9, KVHeads: 3, HeadDim: 64, Vocab: 49152, MaxPos: 2048, RMSEps: 1e-5, RopeTheta: 100000, TieEmbeddings: true, EOS: []int{0}, Pad: -1},
	"stories15m":     {Arch: "llama", Hidden: 288, Intermediate: 768, Layers: 6, Heads: 6, KVHeads: 6, HeadDim: 48, Vocab: 32000, MaxPos: 256, RMSEps: 1e-5, RopeTheta: 10000, TieEmbeddings: true, BOS: 1, EOS: []int{2}, Pad: -1},
	"tinyllama-1.1b": {Arch: "llama", Hidden: 2048, Intermediate: 5632, Layers: 22, Heads: 32, KVHeads: 4, HeadDim: 64, Vocab: 32000, MaxPos: 2048, RMSEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: []int{2}, Pad: -1},
}

// NewRandom builds a model of the given shape in memory with seeded random
// weights (normal, std 0.02; norms 1), each projection quantized row by row to
// format f as it is generated: no file, and no fp32 copy of a projection.
func NewRandom(cfg Config, f kernels.Format, seed uint64) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x72616e646f6d))
	m := &Model{Config: cfg, Source: "random"}
	rope, err := autograd.NewRope(cfg.HeadDim, cfg.RopeTheta, min(cfg.MaxPos, ropeInitial), cfg.RopeScaling, false)
	if err != nil {
		return nil, err
	}
	m.rope.Store(rope)
	mat := func(name string, rows, cols int, f kernels.Format) *kernels.Weight {
		w := kernels.QuantizeRows(f, rows, cols, func(_ int, dst []float32) {
			for j := range dst {
				dst[j] = float32(r.NormFloat64() * 0.02)
			}
		})
		m.Stored = append(m.Stored, StoredTensor{Name: name, Shape: [2]int{rows, cols}, From: "random", Format: w.Format, As: w.Format.String(), Bytes: w.Bytes()})
		return w
	}
	ones := func(n int) *autograd.Tensor {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return autograd.Const(v, 1, n)
	}
	headFmt := f
	if f == kernels.Q4_0 || f == kernels.NF4 {
		headFmt = kernels.Q8_0
	}
	m.Embed = mat(HFEmbed, cfg.Vocab, cfg.Hidden, headFmt)
	m.Head = m.Embed
	if !cfg.TieEmbeddings {
		m.Head = mat(HFHead, cfg.Vocab, cfg.Hidden, headFmt)
	}
	m.Norm = ones(cfg.Hidden)
	qd, kvd := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	m.Blocks = make([]Block, cfg.Layers)
	for l := range m.Blocks {
		b := &m.Blocks[l]
		p := BlockPrefix(l)
		b.AttnNorm, b.MLPNorm = ones(cfg.Hidden), ones(cfg.Hidden)
		if cfg.QKNorm {
			b.QNorm, b.KNorm = ones(cfg.HeadDim), ones(cfg.HeadDim)
		}
		lin := func(name string, out, in int) Linear {
			fr := &Frozen{Name: p + name, W: mat(p+name+".weight", out, in, f)}
			if cfg.QKVBias && (name == QProj || name == KProj || name == VProj) {
				fr.Bias = make([]float32, out)
			}
			return fr
		}
		b.Q, b.K, b.V = lin(QProj, qd, cfg.Hidden), lin(KProj, kvd, cfg.Hidden), lin(VProj, kvd, cfg.Hidden)
		b.O = lin(OProj, cfg.Hidden, qd)
		b.Gate, b.Up, b.Down = lin(GateProj, cfg.Intermediate, cfg.Hidden), lin(UpProj, cfg.Intermediate, cfg.Hidden), lin(DownProj, cfg.Hidden, cfg.Intermediate)
	}
	return m, nil
}
