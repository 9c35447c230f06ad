package checkpoints

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/x448/float16"
)

// MergeReport says what a merge did.
type MergeReport struct {
	Merged   int    `json:"merged_layers"`
	BaseFrom string `json:"base_from"` // what the fp32 merge started from
	Dtype    string `json:"dtype"`
	Tensors  int    `json:"tensors"`
	Bytes    int64  `json:"bytes"`
}

// WriteMerged writes m with ad folded in as a Hugging Face model directory:
// config.json, the tokenizer files of srcDir (when it is a directory), and
// model.safetensors in dtype (f32, f16 or bf16). Each adapted weight is
// W + s·B·A computed in fp32 from the base values m holds: load m with its
// stored dtype (LoadOptions{Quant: ""}) so these are the original weights.
func WriteMerged(dir string, m *model.Model, ad *lora.Adapter, srcDir, dtype string) (*MergeReport, error) {
	var dt safetensors.Dtype
	switch dtype {
	case "", "f16":
		dt, dtype = safetensors.F16, "f16"
	case "bf16":
		dt = safetensors.BF16
	case "f32":
		dt = safetensors.F32
	default:
		return nil, fmt.Errorf("merge: --dtype %q (want f16, bf16 or f32)", dtype)
	}
	if err := replaceable(dir); err != nil {
		return nil, err
	}
	rep := &MergeReport{Dtype: dtype, BaseFrom: "original weights"}
	for _, s := range m.Stored {
		if s.From != "F32" && s.From != "F16" && s.From != "BF16" {
			rep.BaseFrom = "dequantized " + s.From + " weights (the file holds no unquantized copy)"
		}
	}
	adapted := map[*model.Frozen]*lora.Linear{}
	if ad != nil { // nil: write the base model as it is
		for _, l := range ad.Layers {
			adapted[l.Base] = l
		}
	}
	var entries []safetensors.WriteEntry
	add := func(name string, w kernels.Mat) {
		entries = append(entries, safetensors.WriteEntry{Name: name, Dtype: dt, Shape: []int{w.Rows, w.Cols}, Data: encode(w.Data, dt)})
		rep.Bytes += int64(len(entries[len(entries)-1].Data))
	}
	vec := func(name string, v []float32) {
		entries = append(entries, safetensors.WriteEntry{Name: name, Dtype: dt, Shape: []int{len(v)}, Data: encode(v, dt)})
	}
	add("model.embed_tokens.weight", m.Embed.Dequantize())
	if !m.Config.TieEmbeddings {
		add("lm_head.weight", m.Head.Dequantize())
	}
	vec("model.norm.weight", m.Norm.Data)
	for l := range m.Blocks {
		b := &m.Blocks[l]
		p := fmt.Sprintf("model.layers.%d.", l)
		vec(p+"input_layernorm.weight", b.AttnNorm.Data)
		vec(p+"post_attention_layernorm.weight", b.MLPNorm.Data)
		if b.QNorm != nil {
			vec(p+"self_attn.q_norm.weight", b.QNorm.Data)
			vec(p+"self_attn.k_norm.weight", b.KNorm.Data)
		}
		for _, lin := range b.Linears() {
			f := (*lin).Frozen()
			w := f.W.Dequantize()
			if la, ok := adapted[f]; ok {
				la.MergeInto(w)
				rep.Merged++
			}
			add(f.Name+".weight", w)
			if f.Bias != nil {
				vec(f.Name+".bias", f.Bias)
			}
		}
	}
	rep.Tensors = len(entries)
	// The folder appears whole or not at all (a kill or a full disk leaves
	// the previous one).
	err := atomicfile.WriteDir(dir, func(tmp string) error {
		if err := safetensors.Write(filepath.Join(tmp, "model.safetensors"), entries, map[string]string{"format": "pt"}); err != nil {
			return err
		}
		if err := writeConfig(tmp, m, srcDir, dtype); err != nil {
			return err
		}
		return copyTokenizer(srcDir, tmp)
	})
	if err != nil {
		return nil, fmt.Errorf("merge %s: %w", dir, err)
	}
	return rep, nil
}

// mergedFile reports whether name is a file a merged model folder holds.
func mergedFile(name string) bool {
	switch name {
	case "config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json",
		"tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "chat_template.jinja":
		return true
	}
	return strings.HasPrefix(name, "model-") && strings.HasSuffix(name, ".safetensors")
}

// replaceable refuses an output folder that a merge would replace but that
// holds files of another kind (writing the merged folder replaces it whole).
func replaceable(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("merge: %s exists and is not a folder", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	for _, e := range entries {
		if !mergedFile(e.Name()) {
			return fmt.Errorf("merge: %s holds %s, which is not part of a merged model: choose a new or empty folder (a merge replaces the folder whole)", dir, e.Name())
		}
	}
	return nil
}

func encode(v []float32, dt safetensors.Dtype) []byte {
	switch dt {
	case safetensors.F32:
		out := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
		}
		return out
	case safetensors.BF16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], kernels.F32ToBF16(x))
		}
		return out
	}
	out := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(x).Bits())
	}
	return out
}

var hfArchName = map[string]string{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

// writeConfig copies srcDir/config.json (with torch_dtype updated) or, for a
// GGUF source, writes one from the model's configuration.
func writeConfig(dir string, m *model.Model, srcDir, dtype string) error {
	torchDtype := map[string]string{"f16": "float16", "bf16": "bfloat16", "f32": "float32"}[dtype]
	var cfg map[string]any
	if raw, err := os.ReadFile(filepath.Join(srcDir, "config.json")); err == nil {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("merge: %s: %v", filepath.Join(srcDir, "config.json"), err)
		}
	} else {
		c := m.Config
		cfg = map[string]any{
			"architectures": []string{hfArchName[c.Arch]}, "model_type": c.Arch, "hidden_size": c.Hidden,
			"intermediate_size": c.Intermediate, "num_hidden_layers": c.Layers, "num_attention_heads": c.Heads,
			"num_key_value_heads": c.KVHeads, "head_dim": c.HeadDim, "vocab_size": c.Vocab,
			"max_position_embeddings": c.MaxPos, "rms_norm_eps": c.RMSEps, "rope_theta": c.RopeTheta,
			"tie_word_embeddings": c.TieEmbeddings, "hidden_act": "silu", "bos_token_id": c.BOS, "eos_token_id": c.EOS,
		}
	}
	cfg["torch_dtype"] = torchDtype
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, "config.json"), append(out, '\n'))
}

// copyTokenizer copies the tokenizer files of a model directory (none for a GGUF source).
func copyTokenizer(srcDir, dir string) error {
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "generation_config.json"} {
		in, err := os.Open(filepath.Join(srcDir, name))
		if err != nil {
			continue
		}
		data, err := io.ReadAll(in)
		in.Close()
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		if err := WriteFileAtomic(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("merge: %w", err)
		}
	}
	return nil
}
