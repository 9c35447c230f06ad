package checkpoints

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
)

// PEFTConfig is adapter_config.json with the keys Hugging Face PEFT writes.
type PEFTConfig struct {
	AlphaPattern        map[string]float64 `json:"alpha_pattern"`
	AutoMapping         any                `json:"auto_mapping"`
	BaseModelNameOrPath *string            `json:"base_model_name_or_path"`
	Bias                string             `json:"bias"`
	CordaConfig         any                `json:"corda_config"`
	EvaConfig           any                `json:"eva_config"`
	ExcludeModules      any                `json:"exclude_modules"`
	FanInFanOut         bool               `json:"fan_in_fan_out"`
	InferenceMode       bool               `json:"inference_mode"`
	InitLoraWeights     any                `json:"init_lora_weights"`
	LayerReplication    any                `json:"layer_replication"`
	LayersPattern       any                `json:"layers_pattern"`
	LayersToTransform   any                `json:"layers_to_transform"`
	LoftqConfig         map[string]any     `json:"loftq_config"`
	LoraAlpha           float64            `json:"lora_alpha"`
	LoraBias            bool               `json:"lora_bias"`
	LoraDropout         float64            `json:"lora_dropout"`
	MegatronConfig      any                `json:"megatron_config"`
	MegatronCore        string             `json:"megatron_core"`
	ModulesToSave       any                `json:"modules_to_save"`
	PeftType            string             `json:"peft_type"`
	R                   int                `json:"r"`
	RankPattern         map[string]int     `json:"rank_pattern"`
	Revision            any                `json:"revision"`
	TargetModules       json.RawMessage    `json:"target_modules"` // list of names or a regex string
	TaskType            string             `json:"task_type"`
	UseDora             bool               `json:"use_dora"`
	UseRslora           bool               `json:"use_rslora"`
}

const (
	adapterConfigFile  = "adapter_config.json"
	adapterWeightsFile = "adapter_model.safetensors"
	peftPrefix         = "base_model.model."
)

// SaveAdapter writes ad to dir in PEFT's layout (adapter_config.json,
// adapter_model.safetensors) with lowrank.json beside them when info is
// not nil. The folder is replaced whole or not at all (a kill or a full
// disk leaves the previous one). baseModel is recorded as
// base_model_name_or_path.
func SaveAdapter(dir string, ad *lora.Adapter, baseModel string, info *AdapterInfo) error {
	err := atomicfile.WriteDir(dir, func(tmp string) error { return WriteAdapterFiles(tmp, ad, baseModel, info) })
	if err != nil {
		return fmt.Errorf("adapter %s: %w", dir, err)
	}
	return nil
}

// SavePEFTExport writes ad as PEFT writes it, for use outside lowrank: the
// adapter files and lowrank.json, and, when the run trained with a chat
// template of its own (info records it), that template as
// chat_template.jinja, which transformers reads with the tokenizer.
func SavePEFTExport(dir string, ad *lora.Adapter, baseModel string, info *AdapterInfo) error {
	if err := replaceableAs(dir, "export", "a PEFT adapter", adapterFile); err != nil {
		return err
	}
	err := atomicfile.WriteDir(dir, func(tmp string) error {
		if err := WriteAdapterFiles(tmp, ad, baseModel, info); err != nil {
			return err
		}
		if info != nil && info.ChatTemplate != "" {
			return WriteFileAtomic(filepath.Join(tmp, "chat_template.jinja"), []byte(info.ChatTemplate))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export %s: %w", dir, err)
	}
	return nil
}

// adapterFile says whether name is one of the files of an adapter folder
// (PEFT's, lowrank.json, the chat template, a model card).
func adapterFile(name string) bool {
	switch name {
	case adapterConfigFile, adapterWeightsFile, AdapterInfoFile, "chat_template.jinja", "README.md":
		return true
	}
	return false
}

// WriteAdapterFiles writes ad's files into the existing folder dir (a
// checkpoint's, or SaveAdapter's temporary one), each synced.
func WriteAdapterFiles(dir string, ad *lora.Adapter, baseModel string, info *AdapterInfo) error {
	c := ad.Config
	shorts := map[string]bool{}
	var entries []safetensors.WriteEntry
	for _, p := range ad.Params() {
		shape := []int{len(p.T.Data)} // vectors: DoRA magnitudes, norms, biases
		if strings.HasSuffix(p.Name, ".lora_A.weight") || strings.HasSuffix(p.Name, ".lora_B.weight") {
			shape = []int{p.T.Rows, p.T.Cols}
		}
		entries = append(entries, safetensors.WriteEntry{Name: peftPrefix + p.Name, Dtype: safetensors.F32, Shape: shape, Data: f32Bytes(p.T.Data)})
	}
	for _, l := range ad.Layers {
		name := l.Base.Name
		shorts[name[strings.LastIndex(name, ".")+1:]] = true
	}
	var saved []string
	for _, e := range ad.Extras {
		mod := strings.TrimSuffix(strings.TrimSuffix(e.Name, ".weight"), ".bias")
		saved = append(saved, mod[strings.LastIndex(mod, ".")+1:])
	}
	targets := make([]string, 0, len(shorts))
	for s := range shorts {
		targets = append(targets, s)
	}
	sort.Strings(targets)
	tj, _ := json.Marshal(targets)
	var base *string
	if baseModel != "" {
		base = &baseModel
	}
	init := any(true)
	if c.Init == "gaussian" {
		init = "gaussian"
	}
	pc := PEFTConfig{
		AlphaPattern: orEmpty(c.AlphaPattern), BaseModelNameOrPath: base, Bias: "none",
		InitLoraWeights: init, LoftqConfig: map[string]any{}, LoraAlpha: c.Alpha, LoraDropout: c.Dropout,
		MegatronCore: "megatron.core", PeftType: "LORA", R: c.Rank, RankPattern: orEmpty(c.RankPattern),
		TargetModules: tj, TaskType: "CAUSAL_LM", UseRslora: c.RSLoRA, UseDora: c.DoRA,
	}
	if len(saved) > 0 {
		pc.ModulesToSave = uniqueSorted(saved)
	}
	cj, err := json.MarshalIndent(pc, "", "  ")
	if err != nil {
		return err
	}
	if err := safetensors.Write(filepath.Join(dir, adapterWeightsFile), entries, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, adapterConfigFile), append(cj, '\n')); err != nil {
		return err
	}
	if info != nil {
		return writeAdapterInfo(dir, info)
	}
	return nil
}

func uniqueSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func orEmpty[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

// ReadPEFTConfig reads dir/adapter_config.json as a lora.Config.
func ReadPEFTConfig(dir string) (lora.Config, *PEFTConfig, error) {
	path := filepath.Join(dir, adapterConfigFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return lora.Config{}, nil, fmt.Errorf("adapter: %w", err)
	}
	var pc PEFTConfig
	if err := json.Unmarshal(raw, &pc); err != nil {
		return lora.Config{}, nil, fmt.Errorf("adapter: %s: %v", path, err)
	}
	if pc.PeftType != "" && pc.PeftType != "LORA" {
		return lora.Config{}, nil, fmt.Errorf("adapter: %s: peft_type %q is not supported (LORA only)", path, pc.PeftType)
	}
	if pc.FanInFanOut {
		return lora.Config{}, nil, fmt.Errorf("adapter: %s: fan_in_fan_out adapters (GPT-2 Conv1D) are not supported", path)
	}
	c := lora.Config{Rank: pc.R, Alpha: pc.LoraAlpha, Dropout: pc.LoraDropout, RSLoRA: pc.UseRslora, DoRA: pc.UseDora,
		RankPattern: pc.RankPattern, AlphaPattern: pc.AlphaPattern}
	if c.Alpha == 0 {
		c.Alpha = 8 // PEFT's default lora_alpha
	}
	var list []string
	var one string
	switch {
	case len(pc.TargetModules) == 0 || string(pc.TargetModules) == "null":
	case json.Unmarshal(pc.TargetModules, &list) == nil:
		c.Targets = list
	case json.Unmarshal(pc.TargetModules, &one) == nil:
		if one == "all-linear" {
			c.Targets = []string{one}
		} else {
			c.Targets = []string{"re:" + one}
		}
	default:
		return lora.Config{}, nil, fmt.Errorf("adapter: %s: target_modules is neither a list nor a string", path)
	}
	return c, &pc, nil
}

// LoadAdapter attaches the PEFT adapter in dir to m and fills its weights.
// It fails, naming the tensor, when a shape or a target does not fit the model.
func LoadAdapter(dir string, m *model.Model) (*lora.Adapter, error) {
	c, _, err := ReadPEFTConfig(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, adapterWeightsFile)
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	defer f.Close()
	// With no targets in the config, adapt exactly the modules the file has.
	if len(c.Targets) == 0 {
		seen := map[string]bool{}
		for _, n := range f.Names() {
			if i := strings.Index(n, ".lora_"); i > 0 {
				mod := strings.TrimPrefix(n[:i], peftPrefix)
				seen[mod[strings.LastIndex(mod, ".")+1:]] = true
			}
		}
		for s := range seen {
			c.Targets = append(c.Targets, s)
		}
		sort.Strings(c.Targets)
	}
	ad, err := lora.Apply(m, c)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	used := map[string]bool{}
	fail := func(err error) (*lora.Adapter, error) {
		ad.Remove(m)
		return nil, err
	}
	for _, l := range ad.Layers {
		for _, p := range []struct {
			suffix string
			dst    []float32
			rows   int
			cols   int
		}{{".lora_A.weight", l.A.Data, l.A.Rows, l.A.Cols}, {".lora_B.weight", l.B.Data, l.B.Rows, l.B.Cols}} {
			key := peftPrefix + l.Base.Name + p.suffix
			t, ok := f.Tensor(key)
			if !ok {
				return fail(fmt.Errorf("adapter: %s has no tensor %s (the config targets it)", path, key))
			}
			if len(t.Shape) != 2 || t.Shape[0] != p.rows || t.Shape[1] != p.cols {
				return fail(fmt.Errorf("adapter: %s: %s has shape %v, the model needs [%d %d]: was it trained for another model?", path, key, t.Shape, p.rows, p.cols))
			}
			if err := readFinite(t, p.dst); err != nil {
				return fail(fmt.Errorf("adapter: %s: %s %v", path, key, err))
			}
			used[key] = true
		}
		if l.Magnitude != nil {
			key := peftPrefix + l.Base.Name + ".lora_magnitude_vector"
			t, ok := f.Tensor(key)
			if !ok {
				key += ".weight"
				t, ok = f.Tensor(key)
			}
			if !ok || t.Elements() != len(l.Magnitude.Data) {
				return fail(fmt.Errorf("adapter: %s: DoRA magnitude %s is missing or has the wrong size", path, key))
			}
			if err := readFinite(t, l.Magnitude.Data); err != nil {
				return fail(fmt.Errorf("adapter: %s: %s %v", path, key, err))
			}
			used[key] = true
		}
	}
	// modules_to_save: trained norms and biases replace the model's.
	for _, n := range f.Names() {
		if strings.Contains(n, ".lora_") || used[n] {
			if !used[n] {
				return fail(fmt.Errorf("adapter: %s: tensor %s matches no projection of the model", path, n))
			}
			continue
		}
		name := strings.TrimPrefix(n, peftPrefix)
		dst := extraTarget(m, name)
		t, _ := f.Tensor(n)
		if dst == nil || t.Elements() != len(dst) {
			return fail(fmt.Errorf("adapter: %s: saved module %s does not fit the model", path, n))
		}
		vals := make([]float32, len(dst))
		if err := readFinite(t, vals); err != nil {
			return fail(fmt.Errorf("adapter: %s: %s %v", path, n, err))
		}
		copy(dst, vals) // the model's own values: replaced only once known good
	}
	return ad, nil
}

// readFinite decodes t into dst and refuses NaN and ±Inf: an adapter that
// holds them would print a NaN loss, or text from garbage, as a success.
func readFinite(t *safetensors.Tensor, dst []float32) error {
	if err := t.Float32s(dst); err != nil {
		return err
	}
	for i, v := range dst {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("holds %g at value %d: the adapter is not usable (saved from a diverged run?)", v, i)
		}
	}
	return nil
}

// f32Bytes views float32 values as little-endian bytes (no copy).
func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// WriteFileAtomic writes data to path through a synced temporary file in the
// same directory and a rename.
func WriteFileAtomic(path string, data []byte) error {
	err := atomicfile.Write(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if err != nil && !errors.As(err, new(*fs.PathError)) { // a PathError names the file
		return fmt.Errorf("%s: %w", path, err)
	}
	return err
}

// extraTarget returns the model's values for a saved norm weight or bias.
func extraTarget(m *model.Model, name string) []float32 { return m.Vector(name) }
