package model

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/kernels"
)

// The one table of the Llama family's tensors: each tensor's Hugging Face
// name, its llama.cpp (GGUF) name and its layout. Loading, PEFT files,
// merging and every exporter go through it.

// Hugging Face names: the model's own, and a block's modules after
// BlockPrefix(l). Every other spelling of them goes through these.
const (
	HFEmbed = "model.embed_tokens.weight"
	HFNorm  = "model.norm.weight"
	HFHead  = "lm_head.weight"

	AttnNorm = "input_layernorm.weight"
	MLPNorm  = "post_attention_layernorm.weight"
	QNorm    = "self_attn.q_norm.weight"
	KNorm    = "self_attn.k_norm.weight"
	QProj    = "self_attn.q_proj" // projections: + ".weight" / ".bias"
	KProj    = "self_attn.k_proj"
	VProj    = "self_attn.v_proj"
	OProj    = "self_attn.o_proj"
	GateProj = "mlp.gate_proj"
	UpProj   = "mlp.up_proj"
	DownProj = "mlp.down_proj"
)

// BlockPrefix is the Hugging Face name prefix of block l's tensors.
func BlockPrefix(l int) string { return "model.layers." + strconv.Itoa(l) + "." }

// blockTensors are a block's tensors: HF suffix after BlockPrefix(N),
// GGUF suffix after "blk.N.", in llama.cpp's order within a block.
var blockTensors = []struct{ hf, gguf string }{
	{AttnNorm, "attn_norm.weight"},
	{QProj + ".weight", "attn_q.weight"},
	{QProj + ".bias", "attn_q.bias"},
	{KProj + ".weight", "attn_k.weight"},
	{KProj + ".bias", "attn_k.bias"},
	{VProj + ".weight", "attn_v.weight"},
	{VProj + ".bias", "attn_v.bias"},
	{OProj + ".weight", "attn_output.weight"},
	{QNorm, "attn_q_norm.weight"},
	{KNorm, "attn_k_norm.weight"},
	{MLPNorm, "ffn_norm.weight"},
	{GateProj + ".weight", "ffn_gate.weight"},
	{UpProj + ".weight", "ffn_up.weight"},
	{DownProj + ".weight", "ffn_down.weight"},
}

var topTensors = []struct{ hf, gguf string }{
	{HFEmbed, "token_embd.weight"},
	{HFNorm, "output_norm.weight"},
	{HFHead, "output.weight"},
}

var hfToGGUFBlock, ggufToHFBlock = func() (map[string]string, map[string]string) {
	a, b := map[string]string{}, map[string]string{}
	for _, t := range blockTensors {
		a[t.hf], b[t.gguf] = t.gguf, t.hf
	}
	return a, b
}()

// GGUFName maps a Hugging Face tensor name to llama.cpp's; a name outside
// the table is returned as it is.
func GGUFName(hf string) string {
	for _, t := range topTensors {
		if t.hf == hf {
			return t.gguf
		}
	}
	if rest, ok := strings.CutPrefix(hf, "model.layers."); ok {
		if n, suffix, ok := strings.Cut(rest, "."); ok {
			if g, ok := hfToGGUFBlock[suffix]; ok {
				return "blk." + n + "." + g
			}
		}
	}
	return hf
}

// HFName maps a llama.cpp tensor name to Hugging Face's (GGUFName's inverse).
func HFName(gguf string) string {
	for _, t := range topTensors {
		if t.gguf == gguf {
			return t.hf
		}
	}
	if rest, ok := strings.CutPrefix(gguf, "blk."); ok {
		if n, suffix, ok := strings.Cut(rest, "."); ok {
			if h, ok := ggufToHFBlock[suffix]; ok {
				return "model.layers." + n + "." + h
			}
		}
	}
	return gguf
}

// PermutesQK reports whether GGUF files of the architecture store the rows
// of Q and K (weights and biases) in the interleaved-RoPE order: llama and
// mistral do; qwen2 and qwen3 keep Hugging Face's rotate-half order.
func (c *Config) PermutesQK() bool { return c.Arch == "llama" || c.Arch == "mistral" }

// GGUFRow is the GGUF row that holds Hugging Face row r of a Q (heads =
// Heads) or K (heads = KVHeads) projection of an architecture that permutes.
func (c *Config) GGUFRow(heads int) func(r int) int { return ropePerm(heads, c.HeadDim) }

// Entry is one tensor of a loaded model, under both names.
type Entry struct {
	HF, GGUF   string
	Rows, Cols int // (1, n) for vectors
	// Heads > 0: Q (Heads) or K (KVHeads) rows, which GGUF files of an
	// architecture that permutes (PermutesQK) store interleaved.
	Heads int
	// One of W (a matrix: embedding, head, projection) and Vec (a norm or a
	// bias: the model's own values) is set; Layer is the projection that
	// holds W, or nil.
	W     *kernels.Weight
	Vec   []float32
	Layer *Frozen
	// Norm is a norm weight's tensor (Vec is its values), nil otherwise.
	Norm *autograd.Tensor
}

// Entries lists the model's tensors in llama.cpp's order: the embedding,
// each block's, the final norm, and the head unless it is tied.
func (m *Model) Entries() []Entry {
	c := &m.Config
	out := []Entry{{HF: topTensors[0].hf, GGUF: topTensors[0].gguf, Rows: m.Embed.Rows, Cols: m.Embed.Cols, W: m.Embed}}
	for l := range m.Blocks {
		b := &m.Blocks[l]
		p, g := BlockPrefix(l), "blk."+strconv.Itoa(l)+"."
		proj := map[string]*Frozen{}
		heads := map[string]int{QProj: c.Heads, KProj: c.KVHeads}
		for _, lin := range b.Linears() {
			f := (*lin).Frozen()
			proj[strings.TrimPrefix(f.Name, p)] = f
		}
		for _, t := range blockTensors {
			e := Entry{HF: p + t.hf, GGUF: g + t.gguf}
			mod, kind, _ := strings.Cut(t.hf, "_proj.")
			switch t.hf {
			case AttnNorm:
				e.Norm = b.AttnNorm
			case MLPNorm:
				e.Norm = b.MLPNorm
			case QNorm:
				e.Norm = b.QNorm
			case KNorm:
				e.Norm = b.KNorm
			default:
				f := proj[mod+"_proj"]
				if f == nil {
					panic(fmt.Sprintf("model: no projection for %s", t.hf))
				}
				e.Layer, e.Heads = f, heads[mod+"_proj"]
				if kind == "weight" {
					e.W, e.Rows, e.Cols = f.W, f.W.Rows, f.W.Cols
				} else {
					e.Vec = f.Bias
				}
			}
			if e.Norm != nil {
				e.Vec = e.Norm.Data
			}
			if e.W == nil && e.Vec == nil {
				continue // this architecture has no such tensor
			}
			if e.Vec != nil {
				e.Rows, e.Cols = 1, len(e.Vec)
			}
			out = append(out, e)
		}
	}
	out = append(out, Entry{HF: topTensors[1].hf, GGUF: topTensors[1].gguf, Rows: 1, Cols: len(m.Norm.Data), Vec: m.Norm.Data, Norm: m.Norm})
	if !c.TieEmbeddings {
		out = append(out, Entry{HF: topTensors[2].hf, GGUF: topTensors[2].gguf, Rows: m.Head.Rows, Cols: m.Head.Cols, W: m.Head})
	}
	return out
}

// Vector returns the values of the norm weight or bias named hf (Hugging
// Face's name), or nil.
func (m *Model) Vector(hf string) []float32 {
	for _, e := range m.Entries() {
		if e.HF == hf {
			return e.Vec
		}
	}
	return nil
}
