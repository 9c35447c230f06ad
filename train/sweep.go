package train

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A sweep file is a run configuration with a sweep section that expands
// it into several runs:
//
//	model: HuggingFaceTB/SmolLM2-135M
//	data: train.parquet
//	out: runs/lr-rank
//	sweep:
//	  list:            # one run per entry, its keys set together
//	    - {data: customer-a.parquet}
//	    - {data: customer-b.parquet}
//	  grid:            # every combination, the last key varying fastest
//	    lr: [1e-4, 3e-4]
//	    rank: [8, 16]
//
// With both, each list entry is combined with every grid point (entries
// outer). Task I runs into OUT/task-I.

// ErrNotSweep is returned (wrapped) by ReadSweep for a file without a
// sweep section.
var ErrNotSweep = errors.New("no sweep section (a sweep file is a run configuration plus sweep: with a list or a grid)")

// Sweep is a sweep file expanded.
type Sweep struct {
	Path  string      `json:"file"`
	Out   string      `json:"out"`
	Tasks []SweepTask `json:"tasks"`
}

// SweepTask is one run of a sweep.
type SweepTask struct {
	Index int    `json:"index"`
	Out   string `json:"out"`
	// Settings are the keys the sweep sets for this task, in order, as
	// key=value (a structured value as YAML flow text).
	Settings []string `json:"settings"`
	Config   Config   `json:"-"`
}

// Label is the task's settings on one line.
func (t *SweepTask) Label() string { return strings.Join(t.Settings, " ") }

// TaskDir is the run folder of task i of a sweep whose out is out.
func TaskDir(out string, i int) string { return filepath.Join(out, fmt.Sprintf("task-%d", i)) }

// setting is one key's value in a list entry or on a grid axis.
type setting struct {
	key      string
	k, value *yaml.Node
}

// ReadSweep reads and expands a sweep file over base (the defaults, or
// what a command line sets before the file). Every task's configuration
// is checked (Validate) and an error names the task.
func ReadSweep(path string, base Config) (*Sweep, error) {
	c := base
	node, err := readConfig(&c, path)
	if err != nil {
		return nil, err
	}
	if node == nil {
		return nil, fmt.Errorf("sweep: %s: %w", path, ErrNotSweep)
	}
	at := func(n *yaml.Node, format string, args ...any) error {
		return fmt.Errorf("sweep: %s line %d: %s", path, n.Line, fmt.Sprintf(format, args...))
	}
	if c.Out == "" {
		return nil, fmt.Errorf("sweep: %s: out is required (the tasks run into OUT/task-I)", path)
	}
	if node.Kind != yaml.MappingNode {
		return nil, at(node, "sweep: want list: and/or grid:")
	}
	checkKey := func(k *yaml.Node) (string, error) {
		key := strings.ReplaceAll(k.Value, "-", "_")
		switch key {
		case "out":
			return "", at(k, "out is the sweep's: task I runs into OUT/task-I")
		case "sweep":
			return "", at(k, "a sweep cannot hold another")
		}
		return key, nil
	}
	var list [][]setting
	var grid [][]setting // per axis, its values
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		switch k.Value {
		case "list":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				return nil, at(v, "list: want a list of entries, each a map of settings")
			}
			for _, e := range v.Content {
				if e.Kind != yaml.MappingNode || len(e.Content) == 0 {
					return nil, at(e, "a list entry is a map of settings (key: value)")
				}
				var entry []setting
				for j := 0; j+1 < len(e.Content); j += 2 {
					key, err := checkKey(e.Content[j])
					if err != nil {
						return nil, err
					}
					entry = append(entry, setting{key, e.Content[j], e.Content[j+1]})
				}
				list = append(list, entry)
			}
		case "grid":
			if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
				return nil, at(v, "grid: want settings, each with a list of values")
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				gk, gv := v.Content[j], v.Content[j+1]
				key, err := checkKey(gk)
				if err != nil {
					return nil, err
				}
				if gv.Kind != yaml.SequenceNode || len(gv.Content) == 0 {
					return nil, at(gv, "grid %s: want a list of values", gk.Value)
				}
				var axis []setting
				for _, val := range gv.Content {
					axis = append(axis, setting{key, gk, val})
				}
				grid = append(grid, axis)
			}
		default:
			return nil, at(k, "sweep: unknown section %q (want list or grid)", k.Value)
		}
	}
	if list == nil {
		list = [][]setting{nil}
	}
	points := [][]setting{nil}
	for _, axis := range grid {
		var next [][]setting
		for _, p := range points {
			for _, s := range axis {
				next = append(next, append(append([]setting(nil), p...), s))
			}
		}
		points = next
	}
	sw := &Sweep{Path: path, Out: c.Out}
	for _, entry := range list {
		for _, p := range points {
			t := SweepTask{Index: len(sw.Tasks), Config: c}
			t.Out = TaskDir(c.Out, t.Index)
			seen := map[string]int{}
			for _, s := range append(append([]setting(nil), entry...), p...) {
				if first, dup := seen[s.key]; dup {
					return nil, at(s.k, "task %d sets %s twice (first on line %d)", t.Index, s.k.Value, first)
				}
				seen[s.key] = s.k.Line
				if err := t.Config.applyNode(path, s.key, s.k, s.value, map[string]int{}); err != nil {
					return nil, fmt.Errorf("sweep task %d: %w", t.Index, err)
				}
				t.Settings = append(t.Settings, s.k.Value+"="+flowText(s.value))
			}
			t.Config.Out = t.Out
			if err := t.Config.Validate(); err != nil {
				return nil, fmt.Errorf("sweep: %s task %d (%s): %w", path, t.Index, t.Label(), err)
			}
			sw.Tasks = append(sw.Tasks, t)
		}
	}
	return sw, nil
}

// flowText is a YAML value on one line: a scalar as written, else flow
// style ({path: a.parquet, weight: 2}).
func flowText(v *yaml.Node) string {
	if v.Kind == yaml.ScalarNode {
		return v.Value
	}
	c := *v
	c.Style = yaml.FlowStyle
	b, err := yaml.Marshal(&c)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// Task returns task i, or an error that says how many there are.
func (s *Sweep) Task(i int) (*SweepTask, error) {
	if i < 0 || i >= len(s.Tasks) {
		return nil, fmt.Errorf("--task-index %d: %s has %d tasks (0 to %d)", i, s.Path, len(s.Tasks), len(s.Tasks)-1)
	}
	return &s.Tasks[i], nil
}

// TaskSummary is one task's state and results (lowrank sweep --summary).
type TaskSummary struct {
	Index    int    `json:"index"`
	Out      string `json:"out"`
	Settings string `json:"settings"`
	// State: done (complete or stopped early), running (a live process
	// holds its folder), failed (started, not done, nobody running it:
	// crashed, killed, or waiting to be requeued) or missing (not started).
	State       string   `json:"state"`
	Status      string   `json:"status"` // the run's own (inspect)
	Steps       int      `json:"steps"`
	Total       int      `json:"total_steps,omitempty"`
	FinalVal    *float64 `json:"final_val_loss,omitempty"`
	BestVal     *float64 `json:"best_val_loss,omitempty"`
	BestValStep int      `json:"best_val_step,omitempty"`
	TokensPerS  float64  `json:"tokens_per_s,omitempty"`
	HasAdapter  bool     `json:"adapter"`
}

// Summary inspects every task's run folder.
func (s *Sweep) Summary() ([]TaskSummary, error) {
	var out []TaskSummary
	for _, t := range s.Tasks {
		ts := TaskSummary{Index: t.Index, Out: t.Out, Settings: t.Label(), State: "missing", Status: "no run folder"}
		if IsRun(t.Out) {
			ri, err := InspectRun(t.Out)
			if err != nil {
				return nil, fmt.Errorf("sweep task %d: %w", t.Index, err)
			}
			ts.Status, ts.Steps, ts.Total = ri.Status, max(ri.Step, ri.Metrics.LastStep), ri.Total
			ts.FinalVal, ts.BestVal, ts.BestValStep, ts.TokensPerS = ri.Metrics.LastValLoss, ri.Metrics.BestValLoss, ri.Metrics.BestValStep, ri.Metrics.TokensPerS
			ts.HasAdapter = ri.Adapter != nil
			switch {
			case ri.LockedBy != "" && ri.Status == "running":
				ts.State = "running"
			case ri.Newest != nil && ri.Newest.State.Done():
				ts.State = "done"
			case ri.Metrics.Lines == 0 && ri.Newest == nil:
				ts.State = "missing"
			default:
				ts.State = "failed"
			}
		}
		out = append(out, ts)
	}
	return out, nil
}
