package checkpoints

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// MergeReport says what a merge did.
type MergeReport struct {
	Merged   int    `json:"merged_layers"`
	BaseFrom string `json:"base_from"` // what the fp32 merge started from
	Dtype    string `json:"dtype"`
	Tensors  int    `json:"tensors"`
	Bytes    int64  `json:"bytes"`
}

// WriteMerged writes m with ad folded in as a Hugging Face model folder
// (MergeOptions{Dtype: dtype, Src: srcDir}; see WriteMergedWith).
func WriteMerged(dir string, m *model.Model, ad *lora.Adapter, srcDir, dtype string) (*MergeReport, error) {
	return WriteMergedWith(dir, m, ad, MergeOptions{Dtype: dtype, Src: srcDir})
}

// MergeOptions say how WriteMergedWith writes a merged folder.
type MergeOptions struct {
	Dtype string // f16 (default), bf16 or f32
	// Src is the base's Hugging Face folder, whose config.json and
	// tokenizer files are copied ("" for a GGUF base: the config is written
	// from the model's, the tokenizer files from Tokenizer).
	Src       string
	Tokenizer *tokenizer.Tokenizer
	// ChatTemplate, when set, is written as chat_template.jinja (the template
	// the adapter was trained with).
	ChatTemplate string
	// ShardBytes splits the weights into model-0000i-of-0000n.safetensors
	// shards of at most this many bytes, with model.safetensors.index.json,
	// when they are larger (0: 5 GB, transformers' default).
	ShardBytes int64
}

// WriteMergedWith writes m with ad folded in (nil: the base as it is) as a
// Hugging Face model folder: config.json, generation_config.json and the
// tokenizer files (copied from o.Src, or written from o.Tokenizer), and the
// weights in o.Dtype, one or more shards. Each adapted weight is W + s·B·A
// computed in fp32 from the base values m holds, one tensor at a time as it
// is written (load m with its stored dtype, LoadOptions{Quant: ""}, so these
// are the original weights). The folder appears whole or not at all.
func WriteMergedWith(dir string, m *model.Model, ad *lora.Adapter, o MergeOptions) (*MergeReport, error) {
	dtype := o.Dtype
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
	shard := o.ShardBytes
	if shard <= 0 {
		shard = 5_000_000_000
	}
	rep := &MergeReport{Dtype: dtype, BaseFrom: baseFrom(m)}
	mg := newMerger(ad)
	var shards [][]safetensors.WriteEntry
	var size int64
	for _, e := range m.Entries() {
		e := e
		shape := []int{e.Rows, e.Cols}
		if e.W == nil {
			shape = []int{e.Cols}
		}
		n := int64(e.Rows*e.Cols) * int64(dt.Size())
		if len(shards) == 0 || size > 0 && size+n > shard {
			shards, size = append(shards, nil), 0
		}
		size += n
		rep.Bytes += n
		shards[len(shards)-1] = append(shards[len(shards)-1], safetensors.WriteEntry{Name: e.HF, Dtype: dt, Shape: shape,
			Fill: func(w io.Writer) error { return writeFloatRows(w, dt, e.Rows, e.Cols, mg.rows(e)) }})
		rep.Tensors++
	}
	err := atomicfile.WriteDir(dir, func(tmp string) error {
		index := map[string]string{}
		for i, entries := range shards {
			name := "model.safetensors"
			if len(shards) > 1 {
				name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
			}
			for _, e := range entries {
				index[e.Name] = name
			}
			if err := safetensors.Write(filepath.Join(tmp, name), entries, map[string]string{"format": "pt"}); err != nil {
				return err
			}
		}
		if len(shards) > 1 {
			raw, err := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": rep.Bytes}, "weight_map": index}, "", "  ")
			if err != nil {
				return err
			}
			if err := WriteFileAtomic(filepath.Join(tmp, "model.safetensors.index.json"), append(raw, '\n')); err != nil {
				return err
			}
		}
		if err := writeConfig(tmp, m, o.Src, dtype); err != nil {
			return err
		}
		return writeTokenizer(tmp, m, o)
	})
	if err != nil {
		return nil, fmt.Errorf("merge %s: %w", dir, err)
	}
	rep.Merged = mg.merged
	return rep, nil
}

// writeTokenizer puts the tokenizer files in a merged folder: the base
// folder's, or, for a GGUF base, tokenizer.json and tokenizer_config.json
// written from its vocabulary, and a generation_config.json; and the chat
// template the adapter was trained with as chat_template.jinja.
func writeTokenizer(dir string, m *model.Model, o MergeOptions) error {
	copied, err := copyTokenizer(o.Src, dir)
	if err != nil {
		return err
	}
	if !copied && o.Tokenizer != nil {
		tj, tc, err := o.Tokenizer.HFFiles()
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		if err := WriteFileAtomic(filepath.Join(dir, "tokenizer.json"), tj); err != nil {
			return err
		}
		if err := WriteFileAtomic(filepath.Join(dir, "tokenizer_config.json"), tc); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "generation_config.json")); err != nil {
		c := &m.Config
		gc := map[string]any{"bos_token_id": c.BOS, "eos_token_id": c.EOS, "do_sample": true, "temperature": 0.8, "top_p": 0.95}
		if c.Pad >= 0 {
			gc["pad_token_id"] = c.Pad
		}
		raw, _ := json.MarshalIndent(gc, "", "  ")
		if err := WriteFileAtomic(filepath.Join(dir, "generation_config.json"), append(raw, '\n')); err != nil {
			return err
		}
	}
	if o.ChatTemplate != "" {
		return WriteFileAtomic(filepath.Join(dir, "chat_template.jinja"), []byte(o.ChatTemplate))
	}
	return nil
}

// mergedFile reports whether name is a file a merged model folder holds.
func mergedFile(name string) bool {
	switch name {
	case "config.json", "model.safetensors", "model.safetensors.index.json":
		return true
	}
	for _, t := range tokenizerFiles {
		if name == t {
			return true
		}
	}
	return strings.HasPrefix(name, "model-") && strings.HasSuffix(name, ".safetensors")
}

// tokenizerFiles are the files of a Hugging Face folder that a merged
// folder takes from its base: the tokenizer's, in each form lowrank reads,
// and the generation config and chat template.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
	"vocab.json", "merges.txt", "added_tokens.json", "generation_config.json", "chat_template.jinja"}

// replaceable refuses an output folder that a merge would replace but that
// holds files of another kind (writing the merged folder replaces it whole).
func replaceable(dir string) error { return replaceableAs(dir, "merge", "a merged model", mergedFile) }

// replaceableAs refuses an existing folder dir, about to be replaced whole by
// what (an export), that holds a file ok does not accept.
func replaceableAs(dir, cmd, what string, ok func(string) bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s exists and is not a folder", cmd, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	for _, e := range entries {
		if !ok(e.Name()) {
			return fmt.Errorf("%s: %s holds %s, which is not part of %s: choose a new or empty folder (the export replaces the folder whole)", cmd, dir, e.Name(), what)
		}
	}
	return nil
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

// copyTokenizer copies the tokenizer files of a model directory (none for
// a GGUF source) and reports whether it found a tokenizer (tokenizer.json,
// or vocab.json with merges.txt).
func copyTokenizer(srcDir, dir string) (bool, error) {
	found := false
	if srcDir == "" {
		return false, nil
	}
	for _, name := range tokenizerFiles {
		in, err := os.Open(filepath.Join(srcDir, name))
		if err != nil {
			continue
		}
		data, err := io.ReadAll(in)
		in.Close()
		if err != nil {
			return false, fmt.Errorf("merge: %w", err)
		}
		if err := WriteFileAtomic(filepath.Join(dir, name), data); err != nil {
			return false, fmt.Errorf("merge: %w", err)
		}
		found = found || name == "tokenizer.json" || name == "vocab.json"
	}
	return found, nil
}
