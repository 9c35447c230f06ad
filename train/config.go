package train

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank/augment"
	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/internal/sysinfo"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
	"go.yaml.in/yaml/v3"
)

// Config is a training run. Every field is a flag (the json name) and a key
// of the --config file.
type Config struct {
	Model string `json:"model"`
	Data  string `json:"data"` // one dataset, or several separated by commas (a repeated --data)
	// DataWeights, one positive number per dataset, samples several as a
	// mixture with those probabilities (normalized); "" concatenates them.
	DataWeights string `json:"data_weights,omitempty"`
	// MixStop ends a mixture when the first dataset runs out
	// (first_exhausted) or once every one has been used whole
	// (all_exhausted), as Hugging Face's interleave_datasets does.
	MixStop string `json:"mix_stop"`
	// DataColumns gives each dataset its own column mapping, in the order
	// of Data, separated by ";" (an empty entry: Columns applies).
	DataColumns string `json:"data_columns,omitempty"`
	// DataFormats gives each dataset a format instead of the detected one,
	// in the order of Data, separated by ";" (an empty entry: detected).
	DataFormats string `json:"data_formats,omitempty"`
	Val         string `json:"val,omitempty"`
	// Split is the split of a dataset folder or hub dataset to train on
	// ("": train where it has one, else all its files).
	Split         string  `json:"split,omitempty"`
	Out           string  `json:"out"`
	Adapter       string  `json:"adapter,omitempty"` // start from this PEFT adapter
	Seed          uint64  `json:"seed"`
	Quant         string  `json:"quant"`
	GPTQTokens    int     `json:"gptq_tokens"` // > 0: GPTQ over this many self-generated tokens
	GPTQTune      int     `json:"gptq_tune"`   // > 0: that many passes tuning the scales after GPTQ
	Rank          int     `json:"rank"`
	Alpha         float64 `json:"alpha"`
	Dropout       float64 `json:"dropout"`
	Targets       string  `json:"targets"`
	RSLoRA        bool    `json:"rslora"`
	DoRA          bool    `json:"dora"`
	Init          string  `json:"init"`
	LoRAPlusRatio float64 `json:"loraplus_ratio"`
	Optimizer     string  `json:"optimizer"`
	LR            float64 `json:"lr"`
	LRSchedule    string  `json:"lr_schedule"`
	WarmupSteps   int     `json:"warmup_steps"`
	MinLRRatio    float64 `json:"min_lr_ratio"`
	WeightDecay   float64 `json:"weight_decay"`
	Momentum      float64 `json:"momentum"`
	MaxGradNorm   float64 `json:"max_grad_norm"`
	BatchSize     int     `json:"batch_size"`
	GradAccum     int     `json:"grad_accum"`
	MaxSeqLen     int     `json:"max_seq_len"`
	Epochs        int     `json:"epochs"`
	MaxSteps      int     `json:"max_steps"`
	EvalEvery     int     `json:"eval_every"`
	// Early stopping: stop after this many evaluations in a row that do not
	// lower the best validation loss by more than the threshold (0 = off).
	EarlyStoppingPatience  int     `json:"early_stopping_patience"`
	EarlyStoppingThreshold float64 `json:"early_stopping_threshold"`
	ValFraction            float64 `json:"val_fraction"`
	Pack                   bool    `json:"pack"`
	TrainOnInputs          bool    `json:"train_on_inputs"`
	// NEFTuneAlpha > 0 adds uniform noise in ±α/√(T·C) to the input
	// embeddings in training (NEFTune, TRL's neftune_noise_alpha).
	NEFTuneAlpha float64 `json:"neftune_noise_alpha"`
	// Token-level augmentation (package augment), on prompt tokens only
	// unless AugmentAnswers, never on BOS or special tokens: each eligible
	// token is dropped with probability TokenDropout, else replaced with
	// probability TokenReplace by a token drawn from the vocabulary
	// ("vocab") or from the training data's own token frequencies ("data").
	TokenDropout     float64 `json:"token_dropout"`
	TokenReplace     float64 `json:"token_replace"`
	TokenReplaceFrom string  `json:"token_replace_from"`
	AugmentAnswers   bool    `json:"augment_answers"`
	// TextWindows keeps text documents longer than max_seq_len whole and
	// trains each epoch on a random window of them (augment.Window), not
	// always on their start; validation uses their start.
	TextWindows bool `json:"text_windows"`
	// Text-level augmentation (augment.Text) before tokenization: EDA's
	// word swap and deletion and character noise, per word or letter, on
	// prompt fields (user and system messages, prompt, instruction, input)
	// unless TextFields is "all". Each epoch of a cycle of TextVariants
	// (0: the run's epochs, at most 16) trains on its own variant.
	TextWordSwap   float64 `json:"text_word_swap"`
	TextWordDelete float64 `json:"text_word_delete"`
	TextCharNoise  float64 `json:"text_char_noise"`
	TextFields     string  `json:"text_fields"`
	TextVariants   int     `json:"text_variants"`
	// SystemPrompts is a file of paraphrases, one per line: each variant
	// samples one as a chat row's system message (or an Alpaca row's
	// preamble), augment.Template.
	SystemPrompts string `json:"system_prompts,omitempty"`
	ChatTemplate  string `json:"chat_template,omitempty"`
	Columns       string `json:"columns,omitempty"`
	TextUnit      string `json:"text_unit"`  // .txt/.md files: "block" or "file"
	Truncation    string `json:"truncation"` // over max_seq_len: "keep-answer" or "right"
	Threads       int    `json:"threads"`
	// ComputeDType is the type of the frozen base's products: f32, bf16 or
	// auto ("": f32), kernels.PathFor.
	ComputeDType     string `json:"compute_dtype,omitempty"`
	Checkpointing    bool   `json:"activation_checkpointing"`
	CheckpointLayers int    `json:"checkpoint_layers"` // recompute only the first N blocks (0: all)
	LogEvery         int    `json:"log_every"`
	CacheDir         string `json:"cache_dir"` // token cache: "auto", "off" or a directory
	// SaveEvery writes a checkpoint every N optimizer steps, or at the end
	// of every epoch ("epoch"); "0" only at the end, on a signal and on a
	// NaN stop, as every run also does.
	SaveEvery string `json:"save_every"`
	// KeepLast keeps the newest N checkpoints and the one with the best
	// validation loss, removing older ones once a new one is on disk (0: all).
	KeepLast int `json:"keep_last"`
	// Overwrite starts again in a folder that holds a run, removing its files.
	Overwrite bool `json:"overwrite"`
	// MemoryLimit is what a run's memory estimate is checked against before
	// it starts: "auto" (the cgroup's limit, else physical memory), "off",
	// or a size (8GiB, 512MiB, 2G, bytes).
	MemoryLimit string `json:"memory_limit"`
}

// DefaultMaxSeqLen is the sequence length of a run that sets none (0), or
// the model's context where that is shorter, as TRL caps its default by
// the tokenizer's model_max_length.
const DefaultMaxSeqLen = 512

// Defaults are what a run uses unless told otherwise (PEFT/TRL-like).
func Defaults() Config {
	return Config{Seed: 0, Quant: "q8_0", Rank: 8, Alpha: 16, Targets: "all-linear", Init: "default",
		Optimizer: "adamw", LR: 2e-4, LRSchedule: "cosine", MinLRRatio: 0.1, MaxGradNorm: 0,
		BatchSize: 4, GradAccum: 1, MaxSeqLen: 0, Epochs: 1, EvalEvery: 50, LogEvery: 10, TextUnit: "block", Truncation: "keep-answer", CacheDir: "auto", TokenReplaceFrom: "vocab", MixStop: data.MixFirstExhausted, TextFields: "prompt",
		SaveEvery: "100", KeepLast: 3, MemoryLimit: "auto", ComputeDType: "auto"}
}

// TokenCache is the token cache directory the configuration asks for: for
// "auto", $LOWRANK_CACHE or the user cache directory's lowrank/tokens (as
// Hugging Face datasets caches under ~/.cache); "" for "off" or "".
func (c *Config) TokenCache() string {
	switch c.CacheDir {
	case "", "off":
		return ""
	case "auto":
		if d := os.Getenv("LOWRANK_CACHE"); d != "" {
			return filepath.Join(d, "tokens")
		}
		d, err := os.UserCacheDir()
		if err != nil {
			return "" // no home: tokenize every time
		}
		return filepath.Join(d, "lowrank", "tokens")
	}
	return c.CacheDir
}

// BaseCache is where GPTQ bases are kept (model.LoadOptions.CacheDir), ""
// for none: beside the token cache, in its "gptq" directory.
func (c *Config) BaseCache() string {
	switch c.CacheDir {
	case "", "off":
		return ""
	case "auto":
		if t := c.TokenCache(); t != "" {
			return filepath.Join(filepath.Dir(t), "gptq")
		}
		return ""
	}
	return filepath.Join(c.CacheDir, "gptq")
}

// ReadConfigFile fills c from a YAML (or JSON) file: the flag names as keys
// (hyphens or underscores), in any order; a list where a setting takes
// several values (targets: [q_proj, v_proj]), a map for columns
// ({prompt: question}); data as a path, a list of paths, or a list of
// {path, weight}; augment as a list of transforms. Unknown keys, wrong
// types and duplicate keys are errors naming the file and the line.
func ReadConfigFile(c *Config, path string) error {
	sweep, err := readConfig(c, path)
	if err == nil && sweep != nil {
		err = fmt.Errorf("config: %s line %d: the file is a sweep: run one of its runs with lowrank train --config %s --task-index I (or under a Slurm array or a Kubernetes Indexed Job, which set the index), list them with lowrank sweep %s --list", path, sweep.Line, path, path)
	}
	return err
}

// readConfig reads a configuration file into c; a sweep file's sweep
// section is returned, not applied (nil: none).
func readConfig(c *Config, path string) (sweep *yaml.Node, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config: %s: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, nil // empty, or comments only
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: %s line %d: want settings as \"key: value\" lines", path, root.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := strings.ReplaceAll(k.Value, "-", "_")
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("config: %s line %d: %s is given twice (first on line %d)", path, k.Line, k.Value, first)
		}
		seen[key] = k.Line
		if key == "sweep" {
			sweep = v
			continue
		}
		if err := c.applyNode(path, key, k, v, seen); err != nil {
			return nil, err
		}
	}
	return sweep, nil
}

// applyNode sets one configuration key from its YAML value (k its key's
// node, for the line of an error).
func (c *Config) applyNode(path, key string, k, v *yaml.Node, seen map[string]int) error {
	var err error
	switch key {
	case "augment":
		err = c.setAugment(v, seen)
	case "data":
		err = c.setData(v, seen)
	default:
		var val string
		if val, err = scalarText(v); err == nil {
			err = c.Set(key, val)
		}
	}
	var le lineError
	if errors.As(err, &le) {
		return fmt.Errorf("config: %s line %d: %s", path, le.line, le.msg)
	}
	if err != nil {
		return fmt.Errorf("config: %s line %d: %v", path, k.Line, err)
	}
	return nil
}

// lineError is a problem at a line of the file other than its key's.
type lineError struct {
	line int
	msg  string
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func atLine(line int, format string, args ...any) error {
	return lineError{line, fmt.Sprintf(format, args...)}
}

// scalarText is a setting's value as flag text: a scalar as written (null:
// empty), a list of scalars joined by commas, a map of scalars as
// k=v,k2=v2.
func scalarText(v *yaml.Node) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", nil
		}
		return v.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, len(v.Content))
		for i, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				return "", atLine(e.Line, "want a list of plain values")
			}
			parts[i] = e.Value
		}
		return strings.Join(parts, ","), nil
	case yaml.MappingNode:
		parts := make([]string, 0, len(v.Content)/2)
		for i := 0; i+1 < len(v.Content); i += 2 {
			if v.Content[i+1].Kind != yaml.ScalarNode {
				return "", atLine(v.Content[i+1].Line, "want name: value pairs")
			}
			parts = append(parts, v.Content[i].Value+"="+v.Content[i+1].Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("want a value, a list or a map")
}

// setData reads data: a path, a list of paths, or a list of {path, weight,
// columns} (all weighted or none; columns the dataset's own mapping).
func (c *Config) setData(v *yaml.Node, seen map[string]int) error {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 || v.Content[0].Kind != yaml.MappingNode {
		text, err := scalarText(v)
		if err != nil {
			return fmt.Errorf("data: %w", err)
		}
		return c.Set("data", text)
	}
	var paths, weights, columns, formats []string
	anyColumns, anyFormats := false, false
	for _, e := range v.Content {
		if e.Kind != yaml.MappingNode {
			return atLine(e.Line, "data: want every entry as {path, weight}")
		}
		entry := map[string]string{}
		for i := 0; i+1 < len(e.Content); i += 2 {
			k, val := e.Content[i], e.Content[i+1]
			switch k.Value {
			case "path", "weight":
				if val.Kind != yaml.ScalarNode {
					return atLine(k.Line, "data: %s takes one value", k.Value)
				}
				entry[k.Value] = val.Value
			case "columns":
				text, err := scalarText(val)
				if err != nil {
					return fmt.Errorf("data: columns: %w", err)
				}
				entry["columns"], anyColumns = text, true
			case "format":
				if val.Kind != yaml.ScalarNode {
					return atLine(k.Line, "data: format takes one value")
				}
				if _, err := data.ParseFormat(val.Value); err != nil {
					return atLine(k.Line, "data: %v", err)
				}
				entry["format"], anyFormats = val.Value, true
			default:
				return atLine(k.Line, "data: unknown key %q (want path, weight, columns and format)", k.Value)
			}
		}
		if entry["path"] == "" {
			return atLine(e.Line, "data: an entry without a path")
		}
		paths = append(paths, entry["path"])
		columns = append(columns, entry["columns"])
		formats = append(formats, entry["format"])
		if w, ok := entry["weight"]; ok {
			weights = append(weights, w)
		}
	}
	if len(weights) != 0 && len(weights) != len(paths) {
		return fmt.Errorf("data: %d of %d datasets have a weight: give every one a weight, or none", len(weights), len(paths))
	}
	if len(weights) > 0 {
		if line, ok := seen["data_weights"]; ok {
			return fmt.Errorf("data: the entries' weights and data_weights (line %d) both give weights", line)
		}
		seen["data_weights"] = v.Line
		if err := c.Set("data_weights", strings.Join(weights, ",")); err != nil {
			return err
		}
	}
	if anyColumns {
		if err := c.Set("data_columns", strings.Join(columns, ";")); err != nil {
			return err
		}
	}
	if anyFormats {
		if err := c.Set("data_formats", strings.Join(formats, ";")); err != nil {
			return err
		}
	}
	return c.Set("data", strings.Join(paths, ","))
}

// augmentKeys maps each transform of an augment: list and its fields to
// the settings they set ("" is the transform's value given alone).
var augmentKeys = map[string]map[string]string{
	"neftune":       {"": "neftune_noise_alpha", "alpha": "neftune_noise_alpha"},
	"token_dropout": {"": "token_dropout", "p": "token_dropout", "answers": "augment_answers"},
	"token_replace": {"": "token_replace", "p": "token_replace", "from": "token_replace_from", "answers": "augment_answers"},
	"word_swap":     {"": "text_word_swap", "p": "text_word_swap", "fields": "text_fields"},
	"word_delete":   {"": "text_word_delete", "p": "text_word_delete", "fields": "text_fields"},
	"char_noise":    {"": "text_char_noise", "p": "text_char_noise", "fields": "text_fields"},
}

// setAugment reads augment: a list of transforms, each a name with its
// probability (token_dropout: 0.1) or with fields (token_replace: {p: 0.1,
// from: data, answers: true}).
func (c *Config) setAugment(v *yaml.Node, seen map[string]int) error {
	if v.Kind != yaml.SequenceNode {
		return fmt.Errorf("augment: want a list of transforms, e.g. - token_dropout: 0.1")
	}
	for _, e := range v.Content {
		if e.Kind != yaml.MappingNode || len(e.Content) != 2 {
			return atLine(e.Line, "augment: want one transform per entry, e.g. - neftune: {alpha: 5}")
		}
		name, val := e.Content[0], e.Content[1]
		keys, ok := augmentKeys[name.Value]
		if !ok {
			return atLine(name.Line, "augment: unknown transform %q (have neftune, token_dropout, token_replace, word_swap, word_delete, char_noise)", name.Value)
		}
		fields := map[string]*yaml.Node{"": val}
		if val.Kind == yaml.MappingNode {
			fields = map[string]*yaml.Node{}
			for i := 0; i+1 < len(val.Content); i += 2 {
				fields[val.Content[i].Value] = val.Content[i+1]
			}
		}
		for f, node := range fields {
			key, ok := keys[f]
			if !ok {
				return atLine(node.Line, "augment: %s has no field %q", name.Value, f)
			}
			text, err := scalarText(node)
			if err != nil {
				return err
			}
			// Every text transform may name the fields; they must agree.
			if line, dup := seen[key]; dup && !(key == "text_fields" && text == c.TextFields) {
				return atLine(node.Line, "augment: %s is set twice (also on line %d)", key, line)
			}
			seen[key] = node.Line
			if err := c.Set(key, text); err != nil {
				return atLine(node.Line, "augment: %v", err)
			}
		}
	}
	return nil
}

// Set assigns one field by its json name from text.
func (c *Config) Set(name, value string) error {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("json"), ",")[0] != name {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(value)
		case reflect.Bool:
			b, err := strconv.ParseBool(value)
			if err != nil {
				return fmt.Errorf("%s: %q is not true or false", name, value)
			}
			f.SetBool(b)
		case reflect.Int:
			n, err := strconv.Atoi(value)
			if err != nil {
				return fmt.Errorf("%s: %q is not an integer", name, value)
			}
			f.SetInt(int64(n))
		case reflect.Uint64:
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not a non-negative integer", name, value)
			}
			f.SetUint(n)
		case reflect.Float64:
			x, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number", name, value)
			}
			f.SetFloat(x)
		}
		return nil
	}
	return fmt.Errorf("unknown key %q", name)
}

// Validate checks the configuration up front, naming the field.
func (c *Config) Validate() error {
	var errs []string
	reported := map[string]bool{}
	bad := func(field, format string, args ...any) { // one complaint per field: the first
		if !reported[field] {
			reported[field] = true
			errs = append(errs, field+": "+fmt.Sprintf(format, args...))
		}
	}
	if c.Model == "" {
		bad("model", "required")
	}
	if err := kernels.CheckComputeDType(c.ComputeDType); err != nil {
		bad("compute_dtype", "%v", err)
	}
	if c.Data == "" {
		bad("data", "required")
	}
	if c.Out == "" {
		bad("out", "required (the run directory)")
	}
	if c.Rank <= 0 && c.Adapter == "" {
		bad("rank", "%d must be positive", c.Rank)
	}
	// NaN compares false with everything, so every range below is written
	// as what is accepted, and non-finite values are refused first.
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"lr", c.LR}, {"alpha", c.Alpha}, {"dropout", c.Dropout}, {"weight_decay", c.WeightDecay}, {"momentum", c.Momentum},
		{"max_grad_norm", c.MaxGradNorm}, {"loraplus_ratio", c.LoRAPlusRatio}, {"min_lr_ratio", c.MinLRRatio},
		{"val_fraction", c.ValFraction}, {"early_stopping_threshold", c.EarlyStoppingThreshold},
		{"neftune_noise_alpha", c.NEFTuneAlpha}, {"token_dropout", c.TokenDropout}, {"token_replace", c.TokenReplace},
		{"text_word_swap", c.TextWordSwap}, {"text_word_delete", c.TextWordDelete}, {"text_char_noise", c.TextCharNoise},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			bad(f.name, "%g is not a finite number", f.v)
		}
	}
	if !(c.LR > 0) {
		bad("lr", "%g must be positive", c.LR)
	}
	if !(c.Alpha > 0) && c.Adapter == "" {
		bad("alpha", "%g must be positive", c.Alpha)
	}
	if !(c.WeightDecay >= 0) {
		bad("weight_decay", "%g must not be negative", c.WeightDecay)
	}
	if !(c.Momentum >= 0 && c.Momentum < 1) {
		bad("momentum", "%g must be in [0, 1)", c.Momentum)
	}
	if !(c.MaxGradNorm >= 0) {
		bad("max_grad_norm", "%g must not be negative (0: no clipping)", c.MaxGradNorm)
	}
	if !(c.LoRAPlusRatio >= 0) {
		bad("loraplus_ratio", "%g must not be negative (0: off)", c.LoRAPlusRatio)
	}
	if ws, err := data.ParseWeights(c.DataWeights); err != nil {
		bad("data_weights", "%q: %v", c.DataWeights, err)
	} else if n := len(data.SplitPaths(c.Data)); len(ws) > 0 && len(ws) != n {
		bad("data_weights", "%d weights for %d datasets", len(ws), n)
	}
	if c.DataColumns != "" {
		if n, m := len(strings.Split(c.DataColumns, ";")), len(data.SplitPaths(c.Data)); n != m {
			bad("data_columns", "%d column mappings for %d datasets", n, m)
		}
		for _, cols := range strings.Split(c.DataColumns, ";") {
			if _, err := data.ParseColumns(cols); err != nil {
				bad("data_columns", "%v", err)
			}
		}
	}
	if c.DataFormats != "" {
		if n, m := len(strings.Split(c.DataFormats, ";")), len(data.SplitPaths(c.Data)); n != m {
			bad("data_formats", "%d formats for %d datasets", n, m)
		}
		for _, f := range strings.Split(c.DataFormats, ";") {
			if f = strings.TrimSpace(f); f != "" {
				if _, err := data.ParseFormat(f); err != nil {
					bad("data_formats", "%v", err)
				}
			}
		}
	}
	if c.MixStop != data.MixFirstExhausted && c.MixStop != data.MixAllExhausted {
		bad("mix_stop", "%q: want %s or %s", c.MixStop, data.MixFirstExhausted, data.MixAllExhausted)
	}
	if !(c.NEFTuneAlpha >= 0) {
		bad("neftune_noise_alpha", "%g must not be negative (0: off; TRL suggests 5)", c.NEFTuneAlpha)
	}
	if !(c.TokenDropout >= 0 && c.TokenDropout < 1) {
		bad("token_dropout", "%g must be in [0, 1)", c.TokenDropout)
	}
	if !(c.TokenReplace >= 0 && c.TokenReplace < 1) {
		bad("token_replace", "%g must be in [0, 1)", c.TokenReplace)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"text_word_swap", c.TextWordSwap}, {"text_word_delete", c.TextWordDelete}, {"text_char_noise", c.TextCharNoise}} {
		if !(f.v >= 0 && f.v < 1) {
			bad(f.name, "%g must be in [0, 1)", f.v)
		}
	}
	if _, err := augment.ParseFields(c.TextFields); err != nil {
		bad("text_fields", "%v", err)
	}
	if c.TextVariants < 0 {
		bad("text_variants", "%d must not be negative (0: the run's epochs)", c.TextVariants)
	}
	if c.TokenReplaceFrom != "vocab" && c.TokenReplaceFrom != "data" {
		bad("token_replace_from", "%q: want vocab or data", c.TokenReplaceFrom)
	}
	if !(c.MinLRRatio >= 0 && c.MinLRRatio <= 1) {
		bad("min_lr_ratio", "%g must be in [0, 1]", c.MinLRRatio)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"warmup_steps", c.WarmupSteps}, {"max_steps", c.MaxSteps}, {"epochs", c.Epochs}, {"eval_every", c.EvalEvery},
		{"log_every", c.LogEvery}, {"threads", c.Threads},
	} {
		if f.v < 0 {
			bad(f.name, "%d must not be negative", f.v)
		}
	}
	switch c.Optimizer {
	case "adamw", "sgd":
	default:
		bad("optimizer", "%q: want adamw or sgd", c.Optimizer)
	}
	switch c.LRSchedule {
	case "constant", "linear", "cosine":
	default:
		bad("lr_schedule", "%q: want constant, linear or cosine", c.LRSchedule)
	}
	if c.BatchSize <= 0 || c.GradAccum <= 0 {
		bad("batch_size/grad_accum", "must be positive")
	}
	if c.MaxSeqLen < 0 || c.MaxSeqLen == 1 {
		bad("max_seq_len", "%d: want at least 2 tokens (0: %d, or the model's context if shorter)", c.MaxSeqLen, DefaultMaxSeqLen)
	}
	if c.Epochs <= 0 && c.MaxSteps <= 0 {
		bad("epochs/max_steps", "one must be positive")
	}
	if !(c.ValFraction >= 0 && c.ValFraction < 1) {
		bad("val_fraction", "%g must be in [0, 1)", c.ValFraction)
	}
	if c.CheckpointLayers < 0 {
		bad("checkpoint_layers", "%d must not be negative", c.CheckpointLayers)
	}
	if c.TextUnit != "" && c.TextUnit != "block" && c.TextUnit != "file" {
		bad("text_unit", "%q: want block (one example per blank-line-separated block) or file", c.TextUnit)
	}
	if c.Truncation != "" && c.Truncation != "keep-answer" && c.Truncation != "right" {
		bad("truncation", "%q: want keep-answer (drop the start of the prompt, then the end of the answer) or right", c.Truncation)
	}
	if c.EarlyStoppingPatience < 0 || !(c.EarlyStoppingThreshold >= 0) {
		bad("early_stopping_patience/early_stopping_threshold", "must not be negative")
	}
	if c.EarlyStoppingPatience > 0 && c.Val == "" && c.ValFraction == 0 && data.ValidationSplit(c.Data) == "" {
		bad("early_stopping_patience", "needs validation data (--val or --val-fraction)")
	}
	if c.GPTQTokens < 0 {
		bad("gptq_tokens", "%d must not be negative", c.GPTQTokens)
	}
	if c.GPTQTokens > 0 && c.Quant != "q4_0" && c.Quant != "nf4" {
		bad("gptq_tokens", "GPTQ quantizes to q4_0 or nf4, not %q (set --quant)", c.Quant)
	}
	if c.GPTQTune < 0 {
		bad("gptq_tune", "%d must not be negative", c.GPTQTune)
	}
	if c.GPTQTune > 0 && c.GPTQTokens == 0 {
		bad("gptq_tune", "tunes the scales GPTQ chose over its calibration text: needs gptq_tokens")
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		bad("dropout", "%g must be in [0, 1)", c.Dropout)
	}
	if _, err := c.saveEvery(); err != nil {
		bad("save_every", "%v", err)
	}
	if c.KeepLast < 0 {
		bad("keep_last", "%d must not be negative (0 keeps every checkpoint)", c.KeepLast)
	}
	if _, _, err := c.memoryLimit(); err != nil {
		bad("memory_limit", "%v", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// memoryLimit parses MemoryLimit: bytes (0: no check) and where the
// number comes from.
func (c *Config) memoryLimit() (int64, string, error) {
	switch v := strings.TrimSpace(c.MemoryLimit); v {
	case "off", "0":
		return 0, "", nil
	case "", "auto":
		n, why := sysinfo.Memory()
		return n, why, nil
	default:
		n, err := parseSize(v)
		if err != nil {
			return 0, "", err
		}
		return n, "--memory-limit", nil
	}
}

// parseSize reads 8GiB, 512MiB, 2G, 300M, 1.5GB or a byte count (K, M, G, T
// are powers of 1024, as memory is counted).
func parseSize(v string) (int64, error) {
	num := strings.TrimRight(strings.ToUpper(v), "IB")
	mult := 1.0
	if k := strings.IndexAny(num, "KMGT"); k >= 0 && k == len(num)-1 {
		mult = float64(int64(1) << (10 * (1 + strings.IndexByte("KMGT", num[k]))))
		num = num[:k]
	}
	x, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || !(x > 0) || x*mult >= 1<<62 {
		return 0, fmt.Errorf("%q: want auto, off or a size such as 8GiB", v)
	}
	return int64(x * mult), nil
}

// saveEvery parses SaveEvery: steps between checkpoints (0: none but the
// end, a signal and a NaN stop), or -1 for every epoch.
func (c *Config) saveEvery() (int, error) {
	switch c.SaveEvery {
	case "epoch":
		return -1, nil
	case "", "0":
		return 0, nil
	}
	n, err := strconv.Atoi(c.SaveEvery)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a number of steps, or epoch", c.SaveEvery)
	}
	return n, nil
}

// ModelOptions are how a run loads its base model: in the chosen format,
// NF4 with QLoRA's double quantization, and by GPTQ over self-generated
// calibration text (seeded by the run's seed) when asked, the GPTQ base kept
// in BaseCache for the next load.
func (c *Config) ModelOptions() model.LoadOptions {
	o := model.BaseOptions(c.Quant, c.GPTQTokens, c.GPTQTune, c.Seed)
	o.CacheDir = c.BaseCache()
	return o
}

// YAML renders the configuration as flat YAML (RUN/config.yaml).
func (c *Config) YAML() string {
	var b strings.Builder
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		val := v.Field(i).Interface()
		if s, ok := val.(string); ok {
			val = strconv.Quote(s)
		}
		fmt.Fprintf(&b, "%s: %v\n", name, val)
	}
	return b.String()
}
