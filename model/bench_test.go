package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/sysinfo"
	"github.com/lowrank/lowrank/kernels"
)

func randomBatch(cfg Config, B, T int, seed uint64) *Batch {
	r := rand.New(rand.NewPCG(seed, 1))
	b := &Batch{B: B, T: T, IDs: make([]int32, B*T), Pos: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range b.IDs {
		b.IDs[i] = int32(r.IntN(cfg.Vocab))
		b.Targets[i] = int32(r.IntN(cfg.Vocab))
		b.Pos[i] = int32(i % T)
	}
	return b
}

// BenchmarkForwardBackward times one training pass of the base model (the
// embedding output carries a gradient, so backward runs dX through every
// layer, as it does under LoRA) on the smollm2-135m shape, batch 4×256.
// Reports tokens/s and peak RSS.
func BenchmarkForwardBackward(b *testing.B) {
	for _, f := range []kernels.Format{kernels.Q8_0, kernels.NF4} {
		for _, th := range []int{1, 2} {
			for _, ckpt := range []bool{false, true} {
				b.Run(fmt.Sprintf("smollm2-135m/%s/t%d/ckpt=%v", f, th, ckpt), func(b *testing.B) {
					cfg := Presets["smollm2-135m"]
					m, err := NewRandom(cfg, f, 1)
					if err != nil {
						b.Fatal(err)
					}
					m.Checkpointing = ckpt
					pool, _ := kernels.NewPool(th, "")
					tp := autograd.NewTape(pool)
					batch := randomBatch(cfg, 4, 256, 2)
					step := func(backward bool) {
						tp.Reset()
						x := tp.EmbedFrozen(batch.IDs, m.Embed)
						if backward {
							x.Grad = make([]float32, len(x.Data))
						}
						h := m.HiddenFrom(tp, x, batch)
						loss, _ := tp.CrossEntropy(h, m.Head, batch.Targets, 0)
						if backward {
							tp.Backward(loss)
						}
					}
					step(true)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						step(true)
					}
					b.ReportMetric(float64(4*256*b.N)/b.Elapsed().Seconds(), "tokens/s")
					b.ReportMetric(float64(sysinfo.PeakRSS())/(1<<20), "peakRSS_MiB")
					b.ReportMetric(float64(tp.ArenaFloats())*4/(1<<20), "activations_MiB")
				})
			}
		}
	}
}

// TestCheckpointingSameGradients: with activation checkpointing of all blocks
// or of some (CheckpointLayers), the input gradient is bitwise identical to
// the plain run's (whose blocks share one gradient region), and the tape
// holds less activation memory the more blocks are recomputed.
func TestCheckpointingSameGradients(t *testing.T) {
	if testing.Short() {
		t.Skip("training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	cfg := Presets["stories15m"]
	cfg.Layers, cfg.Vocab = 6, 512
	modes := []struct {
		ckpt   bool
		layers int
	}{{false, 0}, {true, 4}, {true, 0}}
	grads := make([][]float32, len(modes))
	arena := make([]int, len(modes))
	for i, mode := range modes {
		m, err := NewRandom(cfg, kernels.Q8_0, 3)
		if err != nil {
			t.Fatal(err)
		}
		m.Checkpointing, m.CheckpointLayers = mode.ckpt, mode.layers
		tp := autograd.NewTape(nil)
		for step := 0; step < 2; step++ { // the second pass reuses every arena
			tp.Reset()
			batch := randomBatch(cfg, 4, 128, 4)
			x := tp.EmbedFrozen(batch.IDs, m.Embed)
			x.Grad = make([]float32, len(x.Data))
			loss, _ := tp.CrossEntropy(m.HiddenFrom(tp, x, batch), m.Head, batch.Targets, 0)
			tp.Backward(loss)
			grads[i], arena[i] = x.Grad, tp.ArenaFloats()
		}
	}
	for i := 1; i < len(modes); i++ {
		for j := range grads[0] {
			if math.Float32bits(grads[0][j]) != math.Float32bits(grads[i][j]) {
				t.Fatalf("checkpointing %+v: gradient %d is %g, without %g", modes[i], j, grads[i][j], grads[0][j])
			}
		}
	}
	t.Logf("activation arena: %d floats without checkpointing, %d with 4 of 6 blocks recomputed, %d with all", arena[0], arena[1], arena[2])
	if !(arena[2] < arena[1] && arena[1] < arena[0]) {
		t.Errorf("activation memory does not fall as more blocks are recomputed: %v", arena)
	}
}

// BenchmarkGenerate times sampling (temperature 1, no top-k/top-p) from the
// smollm2-135m shape with seeded random weights, one token at a time with the
// KV cache. Reports tokens/s.
func BenchmarkGenerate(b *testing.B) {
	for _, f := range []kernels.Format{kernels.Q8_0, kernels.NF4} {
		b.Run(fmt.Sprintf("smollm2-135m/%s", f), func(b *testing.B) {
			m, err := NewRandom(Presets["smollm2-135m"], f, 1)
			if err != nil {
				b.Fatal(err)
			}
			tp := autograd.NewTape(nil)
			const n = 32
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, err := m.Generate(tp, []int32{1}, n, &Sampler{Temperature: 1, rng: rand.New(rand.NewPCG(uint64(i), 0))}, nil)
				if err != nil || len(out) == 0 {
					b.Fatal(err, len(out))
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkGPTQLoad times loading the smollm2-135m shape (seeded random
// weights, written once as a bf16 safetensors file) as nf4, plainly, by GPTQ
// over 256 and 4096 self-sampled tokens, by GPTQ over 4096 tokens with 2
// passes tuning the scales, and a GPTQ base read from the cache. Reports seconds per load and the process's peak
// RSS so far (the cases run in order, so a case's peak covers those before).
func BenchmarkGPTQLoad(b *testing.B) {
	dir := b.TempDir()
	writeRandomHF(b, dir, "smollm2-135m")
	for _, c := range []struct {
		tokens, tune int
		cached       bool
	}{{0, 0, false}, {256, 0, false}, {4096, 0, false}, {4096, 2, false}, {256, 1, true}} {
		name := fmt.Sprintf("smollm2-135m/nf4/gptq%d", c.tokens)
		if c.tune > 0 {
			name += fmt.Sprintf("-tune%d", c.tune)
		}
		if c.cached {
			name += "-cached"
		}
		b.Run(name, func(b *testing.B) {
			o := BaseOptions("nf4", c.tokens, c.tune, 1)
			if c.cached { // the timed loads read the base the first one stored
				o.CacheDir = b.TempDir()
				m, err := Load(dir, o)
				if err != nil {
					b.Fatal(err)
				}
				m.Close()
				b.ResetTimer()
			}
			for i := 0; i < b.N; i++ {
				m, err := Load(dir, o)
				if err != nil {
					b.Fatal(err)
				}
				m.Close()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/load")
			b.ReportMetric(float64(sysinfo.PeakRSS())/(1<<20), "peakRSS_MiB")
		})
	}
}

// writeRandomHF writes a preset with seeded random bf16 weights (norms 1) as
// a Hugging Face directory: config.json and model.safetensors.
func writeRandomHF(b testing.TB, dir, preset string) {
	cfg := Presets[preset]
	m, err := NewRandom(cfg, kernels.BF16, 1)
	if err != nil {
		b.Fatal(err)
	}
	var es []safetensors.WriteEntry
	add := func(name string, w *kernels.Weight) {
		raw, err := w.RawBytes()
		if err != nil {
			b.Fatal(err)
		}
		es = append(es, safetensors.WriteEntry{Name: name, Dtype: "BF16", Shape: []int{w.Rows, w.Cols}, Data: raw})
	}
	ones := func(name string, n int) {
		raw := make([]byte, 2*n)
		for i := range n {
			binary.LittleEndian.PutUint16(raw[2*i:], kernels.F32ToBF16(1))
		}
		es = append(es, safetensors.WriteEntry{Name: name, Dtype: "BF16", Shape: []int{n}, Data: raw})
	}
	add("model.embed_tokens.weight", m.Embed)
	ones("model.norm.weight", cfg.Hidden)
	for l := range m.Blocks {
		p := fmt.Sprintf("model.layers.%d.", l)
		ones(p+"input_layernorm.weight", cfg.Hidden)
		ones(p+"post_attention_layernorm.weight", cfg.Hidden)
		for _, lin := range m.Blocks[l].Linears() {
			add((*lin).Frozen().Name+".weight", (*lin).Frozen().W)
		}
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), es, map[string]string{"format": "pt"}); err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(map[string]any{"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama",
		"hidden_size": cfg.Hidden, "intermediate_size": cfg.Intermediate, "num_hidden_layers": cfg.Layers,
		"num_attention_heads": cfg.Heads, "num_key_value_heads": cfg.KVHeads, "vocab_size": cfg.Vocab,
		"max_position_embeddings": cfg.MaxPos, "rms_norm_eps": cfg.RMSEps, "rope_theta": cfg.RopeTheta,
		"tie_word_embeddings": cfg.TieEmbeddings, "bos_token_id": 1, "eos_token_id": cfg.EOS[0], "hidden_act": "silu"})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		b.Fatal(err)
	}
}
