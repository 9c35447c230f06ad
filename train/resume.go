package train

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/kernels"
)

// Files of a checkpoint besides the adapter's (checkpoints.WriteAdapterFiles).
const (
	stateFile     = "trainer_state.json"
	optimizerFile = "optimizer.safetensors"
	configFile    = "config.yaml"
)

// trainerState is a checkpoint's trainer_state.json.
type trainerState struct {
	Format       string            `json:"format"`
	Version      int               `json:"version"`
	State        State             `json:"state"`
	Optimizer    *OptimizerState   `json:"optimizer"`
	Fingerprints Fingerprints      `json:"fingerprints"`
	Path         kernels.PathInfo  `json:"kernel_path"`
	Seed         uint64            `json:"seed"`
	Params       map[string][2]int `json:"params"` // trainable tensors' shapes, by name
}

const trainerStateFormat = "lowrank-trainer-state"

// stepDirRe matches a checkpoint folder's name.
var stepDirRe = regexp.MustCompile(`^step-(0|[1-9][0-9]*)$`)

// ResumeTarget resolves --resume PATH: a run folder (its newest valid
// checkpoint) or one checkpoint folder (RUN/checkpoints/step-N). It returns
// the run folder and the checkpoint folder ("" for "the newest").
func ResumeTarget(path string) (run, ckpt string) {
	clean := filepath.Clean(path)
	if stepDirRe.MatchString(filepath.Base(clean)) && filepath.Base(filepath.Dir(clean)) == "checkpoints" {
		return filepath.Dir(filepath.Dir(clean)), clean
	}
	return clean, ""
}

// findCheckpoint opens the checkpoint a resume asks for: the named one
// (which must verify), or run's newest valid one, each skipped newer one
// reported through warn. It returns nil when run has no checkpoint folder
// at all.
func findCheckpoint(run, ckpt string, warn func(error)) (*checkpoints.Checkpoint, error) {
	if ckpt != "" {
		return checkpoints.OpenCheckpoint(ckpt)
	}
	c, skipped, err := checkpoints.LatestCheckpoint(run)
	if err != nil {
		return nil, fmt.Errorf("run folder %s: %w", run, err)
	}
	for _, e := range skipped {
		warn(e)
	}
	if c == nil && len(skipped) > 0 {
		return nil, fmt.Errorf("run folder %s: no checkpoint is intact (%d damaged): %v", run, len(skipped), skipped[0])
	}
	return c, nil
}

// freeKeys may change on resume: they do not change the result (the thread
// count and activation checkpointing are bitwise neutral) or only say how
// often things are written. The model and data are compared by their
// fingerprints, not their paths.
var freeKeys = map[string]bool{
	"threads": true, "eval_every": true, "save_every": true, "log_every": true, "keep_last": true,
	"cache_dir": true, "out": true, "overwrite": true, "activation_checkpointing": true, "checkpoint_layers": true,
	"model": true, "data": true, "val": true, "memory_limit": true,
}

// Change is one setting a resume changes.
type Change struct {
	Key, Was, Now string
}

func (c Change) String() string { return fmt.Sprintf("%s %s → %s", c.Key, c.Was, c.Now) }

// configChanges lists the settings (other than freeKeys) that differ.
func configChanges(was, now *Config) []Change {
	var out []Change
	a, b := reflect.ValueOf(was).Elem(), reflect.ValueOf(now).Elem()
	t := a.Type()
	for i := 0; i < t.NumField(); i++ {
		key := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if freeKeys[key] {
			continue
		}
		x, y := fmt.Sprint(a.Field(i).Interface()), fmt.Sprint(b.Field(i).Interface())
		if x != y {
			out = append(out, Change{Key: key, Was: x, Now: y})
		}
	}
	return out
}

// printChanges lists what the model, tokenizer and data fingerprints say
// changed.
func printChanges(was, now Fingerprints) []Change {
	var out []Change
	for _, f := range []struct{ key, a, b string }{
		{"model (the base's files)", was.Base, now.Base},
		{"tokenizer", was.Tokenizer, now.Tokenizer},
		{"data (its bytes or how it is rendered)", was.Data, now.Data},
		{"validation data", was.Val, now.Val},
	} {
		if f.a != f.b {
			out = append(out, Change{Key: f.key, Was: short(f.a), Now: short(f.b)})
		}
	}
	return out
}

func short(fp string) string {
	fp = strings.TrimPrefix(fp, "sha256:")
	if fp == "" {
		return "none"
	}
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

func joinChanges(cs []Change) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, "; ")
}

// readCheckpointConfig reads a checkpoint's resolved configuration.
func readCheckpointConfig(ck *checkpoints.Checkpoint) (*Config, error) {
	c := Defaults()
	c.ComputeDType = "f32" // what a configuration without the key ran with
	if err := ReadConfigFile(&c, ck.Path(configFile)); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", ck.Dir, err)
	}
	return &c, nil
}

// ResumeConfig is the configuration a resume starts from: the one the
// checkpoint that --resume PATH names (or the run's newest) was written
// with; the command line's flags then override it.
func ResumeConfig(path string) (*Config, error) {
	run, ckpt := ResumeTarget(path)
	ck, err := findCheckpoint(run, ckpt, func(error) {})
	if err != nil {
		return nil, err
	}
	if ck == nil {
		return nil, noCheckpoint(run)
	}
	c, err := readCheckpointConfig(ck)
	if err != nil {
		return nil, err
	}
	c.Out = run
	return c, nil
}

func noCheckpoint(run string) error {
	if _, err := os.Stat(run); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--resume %s: no such run folder", run)
	} else if err != nil {
		return fmt.Errorf("--resume %s: %w", run, err)
	}
	return fmt.Errorf("--resume %s: the folder has no checkpoint to continue from (start a run there without --resume, or with --resume auto)", run)
}

// writeState writes the trainer's files into a checkpoint folder.
func (t *Trainer) writeState(dir string) error {
	s := t.S
	ps := s.Adapter.Params()
	opt := t.Opt.State(ps)
	shapes := map[string][2]int{}
	for _, p := range ps {
		shapes[p.Name] = [2]int{p.T.Rows, p.T.Cols}
	}
	ts := trainerState{Format: trainerStateFormat, Version: checkpoints.CheckpointVersion, State: t.State, Optimizer: opt,
		Fingerprints: s.Prints, Path: s.Pool.Path().Info(), Seed: s.Config.Seed, Params: shapes}
	raw, err := jsonIndent(&ts)
	if err != nil {
		return err
	}
	if err := checkpoints.WriteFileAtomic(filepath.Join(dir, stateFile), raw); err != nil {
		return err
	}
	var entries []safetensors.WriteEntry
	for _, name := range opt.TensorNames() {
		v := opt.Tensors[name]
		entries = append(entries, safetensors.WriteEntry{Name: name, Dtype: safetensors.F32, Shape: []int{len(v)}, Data: f32Bytes(v)})
	}
	if err := safetensors.Write(filepath.Join(dir, optimizerFile), entries, map[string]string{"optimizer": opt.Name}); err != nil {
		return err
	}
	return checkpoints.WriteFileAtomic(filepath.Join(dir, configFile), []byte(s.Config.YAML()))
}

// readState reads a checkpoint's trainer state and optimizer tensors.
func readState(ck *checkpoints.Checkpoint) (*trainerState, error) {
	var ts trainerState
	if err := ck.ReadJSON(stateFile, &ts); err != nil {
		return nil, err
	}
	if ts.Format != trainerStateFormat || ts.Optimizer == nil {
		return nil, &checkpoints.CheckpointError{Dir: ck.Dir, File: stateFile, Problem: "not a lowrank trainer state"}
	}
	if ts.Version > checkpoints.CheckpointVersion {
		return nil, &checkpoints.CheckpointError{Dir: ck.Dir, File: stateFile, Problem: "version " + strconv.Itoa(ts.Version) + " is newer than this lowrank reads"}
	}
	f, err := safetensors.Open(ck.Path(optimizerFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", ck.Dir, err)
	}
	defer f.Close()
	ts.Optimizer.Tensors = map[string][]float32{}
	for _, n := range f.Names() {
		tn, _ := f.Tensor(n)
		v := make([]float32, tn.Elements())
		if err := tn.Float32s(v); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %s: %v", ck.Dir, optimizerFile, err)
		}
		ts.Optimizer.Tensors[n] = v
	}
	return &ts, nil
}

// restore sets the trainer to a checkpoint's state: the adapter's values
// (by name: the adapter was attached as the run first attached it, so a
// PiSSA residual or trainable norms are as they were), the optimizer's
// state and the counters.
func (t *Trainer) restore(ck *checkpoints.Checkpoint, ts *trainerState) error {
	ad := t.S.Adapter
	path := ck.Path("adapter_model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", ck.Dir, err)
	}
	defer f.Close()
	ps := ad.Params()
	want := map[string]bool{}
	for _, p := range ps {
		name := "base_model.model." + p.Name
		want[name] = true
		tn, ok := f.Tensor(name)
		if !ok {
			return fmt.Errorf("checkpoint %s: the adapter has no %s, which this run trains (was it written with other LoRA settings?)", ck.Dir, name)
		}
		if tn.Elements() != len(p.T.Data) {
			return fmt.Errorf("checkpoint %s: %s has %d values, this run's %d", ck.Dir, name, tn.Elements(), len(p.T.Data))
		}
		if err := tn.Float32s(p.T.Data); err != nil {
			return fmt.Errorf("checkpoint %s: %s: %v", ck.Dir, path, err)
		}
	}
	for _, n := range f.Names() {
		if !want[n] {
			return fmt.Errorf("checkpoint %s: the adapter has %s, which this run does not train", ck.Dir, n)
		}
	}
	if err := t.Opt.Restore(ps, ts.Optimizer); err != nil {
		return fmt.Errorf("checkpoint %s: %s: %w", ck.Dir, optimizerFile, err)
	}
	t.State = ts.State
	return nil
}
