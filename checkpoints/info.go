package checkpoints

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/lora"
)

// AdapterInfoFile is the sidecar lowrank writes beside every adapter. It is
// a file of its own, not keys in adapter_config.json: older PEFT versions
// reject unknown keys there.
const AdapterInfoFile = "lowrank.json"

// AdapterInfo is an adapter's lowrank.json: how the base it was trained
// over was held and how its data was rendered, so that eval, generate and
// export meet the weights the adapter has seen. A PEFT adapter without one
// keeps the defaults.
type AdapterInfo struct {
	Format  string `json:"format"`  // "lowrank-adapter"
	Version int    `json:"version"` // AdapterInfoVersion
	// Quant is the storage format of the base's projections in training;
	// DoubleQuant is NF4's double quantization of the block scales.
	Quant       string    `json:"quant"`
	DoubleQuant bool      `json:"double_quant,omitempty"`
	GPTQ        *GPTQInfo `json:"gptq,omitempty"`
	// ChatTemplate is the template's source when the run chose one
	// (ChatTemplateName as given: a built-in name or a file); empty when the
	// tokenizer's own served.
	ChatTemplate     string `json:"chat_template,omitempty"`
	ChatTemplateName string `json:"chat_template_name,omitempty"`
	MaxSeqLen        int    `json:"max_seq_len"`
	Base             struct {
		Path        string `json:"path"`
		Fingerprint string `json:"fingerprint"` // model.Fingerprint of the base's files
	} `json:"base"`
	Step       int    `json:"step"`        // optimizer steps the adapter has had
	KernelPath string `json:"kernel_path"` // kernels.Path.ID it was trained on
}

// GPTQInfo is how a GPTQ base was made (model.GPTQOptions as the run set them).
type GPTQInfo struct {
	Tokens int    `json:"tokens"`
	Tune   int    `json:"tune,omitempty"`
	Seed   uint64 `json:"seed"`
}

const (
	adapterInfoFormat = "lowrank-adapter"
	// AdapterInfoVersion is the lowrank.json this version writes and the
	// newest it reads.
	AdapterInfoVersion = 1
)

func writeAdapterInfo(dir string, info *AdapterInfo) error {
	i := *info
	i.Format, i.Version = adapterInfoFormat, AdapterInfoVersion
	raw, err := json.MarshalIndent(&i, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, AdapterInfoFile), append(raw, '\n'))
}

// ReadAdapterInfo reads dir/lowrank.json; (nil, nil) when there is none (a
// PEFT adapter from elsewhere).
func ReadAdapterInfo(dir string) (*AdapterInfo, error) {
	path := filepath.Join(dir, AdapterInfoFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	var i AdapterInfo
	if err := json.Unmarshal(raw, &i); err != nil {
		return nil, fmt.Errorf("adapter: %s: %v", path, err)
	}
	if i.Format != adapterInfoFormat {
		return nil, fmt.Errorf("adapter: %s: format %q is not %q", path, i.Format, adapterInfoFormat)
	}
	if i.Version > AdapterInfoVersion {
		return nil, fmt.Errorf("adapter: %s: version %d is newer than this lowrank reads (%d): use a newer lowrank", path, i.Version, AdapterInfoVersion)
	}
	return &i, nil
}

// Summary describes an adapter folder (inspect).
type Summary struct {
	Dir       string       `json:"dir"`
	Rank      int          `json:"r"`
	Alpha     float64      `json:"lora_alpha"`
	Scale     float64      `json:"scale"` // α/r, or α/√r with rsLoRA
	Dropout   float64      `json:"lora_dropout"`
	RSLoRA    bool         `json:"use_rslora,omitempty"`
	DoRA      bool         `json:"use_dora,omitempty"`
	Targets   []string     `json:"target_modules"`
	Saved     []string     `json:"modules_to_save,omitempty"`
	Base      string       `json:"base_model_name_or_path,omitempty"`
	Tensors   int          `json:"tensors"`
	Values    int64        `json:"trainable_values"`
	Bytes     int64        `json:"bytes"`
	Layers    int          `json:"adapted_layers"`
	Info      *AdapterInfo `json:"lowrank,omitempty"` // lowrank.json, if present
	InfoError string       `json:"lowrank_error,omitempty"`
}

// Summarize reads an adapter folder's config and tensor directory (not the
// values) and its lowrank.json.
func Summarize(dir string) (*Summary, error) {
	c, pc, err := ReadPEFTConfig(dir)
	if err != nil {
		return nil, err
	}
	f, err := safetensors.Open(filepath.Join(dir, adapterWeightsFile))
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	defer f.Close()
	s := &Summary{Dir: dir, Rank: c.Rank, Alpha: c.Alpha, Dropout: c.Dropout, RSLoRA: c.RSLoRA, DoRA: c.DoRA, Targets: c.Targets,
		Scale: float64(lora.Scaling(c.Alpha, c.Rank, c.RSLoRA))}
	if pc.BaseModelNameOrPath != nil {
		s.Base = *pc.BaseModelNameOrPath
	}
	if l, ok := pc.ModulesToSave.([]any); ok {
		for _, v := range l {
			s.Saved = append(s.Saved, fmt.Sprint(v))
		}
	}
	for _, n := range f.Names() {
		t, _ := f.Tensor(n)
		s.Tensors++
		s.Values += int64(t.Elements())
		if strings.HasSuffix(n, ".lora_A.weight") {
			s.Layers++
		}
	}
	if st, err := os.Stat(filepath.Join(dir, adapterWeightsFile)); err == nil {
		s.Bytes = st.Size()
	}
	if s.Info, err = ReadAdapterInfo(dir); err != nil {
		s.InfoError = err.Error()
	}
	return s, nil
}
