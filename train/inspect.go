package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/internal/flock"
)

// CheckpointInfo describes one checkpoint (inspect).
type CheckpointInfo struct {
	Dir     string `json:"dir"`
	Step    int    `json:"step"`
	Intact  bool   `json:"intact"`
	Problem string `json:"problem,omitempty"` // what is wrong when it is not intact
	// The rest is read only from an intact checkpoint.
	Version      int                   `json:"format_version,omitempty"`
	Created      string                `json:"created,omitempty"`
	State        *State                `json:"state,omitempty"`
	Optimizer    string                `json:"optimizer,omitempty"`
	Fingerprints *Fingerprints         `json:"fingerprints,omitempty"`
	Config       *Config               `json:"config,omitempty"`
	Adapter      *checkpoints.Summary  `json:"adapter,omitempty"`
	Files        []checkpoints.FileSum `json:"files,omitempty"`
}

// InspectCheckpoint verifies a checkpoint and reads what it holds. A
// damaged one is described (Intact false, Problem naming the file), not an
// error; an unreadable folder is.
func InspectCheckpoint(dir string) (*CheckpointInfo, error) {
	info := &CheckpointInfo{Dir: dir, Step: -1}
	if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "step-")); err == nil {
		info.Step = n
	}
	ck, err := checkpoints.OpenCheckpoint(dir)
	var ce *checkpoints.CheckpointError
	if errors.As(err, &ce) {
		info.Problem = ce.Problem
		if ce.File != "" {
			info.Problem = ce.File + ": " + ce.Problem
		}
		return info, nil
	}
	if err != nil {
		return nil, err
	}
	info.Intact, info.Step, info.Version, info.Created, info.Files = true, ck.Manifest.Step, ck.Manifest.Version, ck.Manifest.Created, ck.Manifest.Files
	ts, err := readState(ck)
	if err != nil {
		info.Intact, info.Problem = false, err.Error()
		return info, nil
	}
	info.State, info.Optimizer, info.Fingerprints = &ts.State, ts.Optimizer.Name, &ts.Fingerprints
	if c, err := readCheckpointConfig(ck); err == nil {
		info.Config = c
	}
	if s, err := checkpoints.Summarize(dir); err == nil {
		info.Adapter = s
	}
	return info, nil
}

// RunInfo describes a run folder (inspect).
type RunInfo struct {
	Dir    string  `json:"dir"`
	Config *Config `json:"config,omitempty"`
	// Status: "complete", "stopped early", "in progress or interrupted",
	// "not started" (no checkpoint yet).
	Status      string               `json:"status"`
	Step        int                  `json:"step"` // of the newest intact checkpoint
	Total       int                  `json:"total_steps"`
	LockedBy    string               `json:"locked_by,omitempty"` // a live process owning the folder
	Checkpoints []*CheckpointInfo    `json:"checkpoints"`
	Adapter     *checkpoints.Summary `json:"adapter,omitempty"`
	Best        *checkpoints.Summary `json:"best,omitempty"`
	Metrics     MetricsSummary       `json:"metrics"`
	Newest      *CheckpointInfo      `json:"-"` // the newest intact checkpoint
}

// MetricsSummary is what metrics.jsonl says.
type MetricsSummary struct {
	Lines       int      `json:"lines"`
	LastStep    int      `json:"last_step"`
	LastLoss    *float64 `json:"last_loss,omitempty"`
	LastValLoss *float64 `json:"last_val_loss,omitempty"`
	BestValLoss *float64 `json:"best_val_loss,omitempty"`
	BestValStep int      `json:"best_val_step,omitempty"`
	// TokensPerS is the last step line's: the run's tokens over its
	// training time so far.
	TokensPerS float64 `json:"tokens_per_s,omitempty"`
	Damaged    int     `json:"damaged_lines,omitempty"`
}

// IsRun reports whether dir looks like a run folder.
func IsRun(dir string) bool {
	for _, f := range []string{configFile, "metrics.jsonl", "checkpoints"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// InspectRun describes a run folder: its checkpoints (each verified), its
// adapters, what its metrics say, and whether a process holds it now.
func InspectRun(dir string) (*RunInfo, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	ri := &RunInfo{Dir: dir, Status: "not started (no checkpoint yet)"}
	c := Defaults()
	if err := ReadConfigFile(&c, filepath.Join(dir, configFile)); err == nil {
		ri.Config = &c
	}
	steps, err := checkpoints.ListCheckpoints(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		ci, err := InspectCheckpoint(checkpoints.StepDir(dir, s))
		if err != nil {
			return nil, err
		}
		ri.Checkpoints = append(ri.Checkpoints, ci)
		if ci.Intact && ci.State != nil {
			ri.Newest = ci
		}
	}
	if n := ri.Newest; n != nil {
		ri.Step, ri.Total = n.State.Step, n.State.Total
		switch {
		case n.State.Stopped != "":
			ri.Status = "stopped early (" + n.State.Stopped + ")"
		case n.State.Done():
			ri.Status = "complete"
		default:
			ri.Status = "in progress or interrupted"
		}
	}
	for name, dst := range map[string]**checkpoints.Summary{"adapter": &ri.Adapter, "best": &ri.Best} {
		if s, err := checkpoints.Summarize(filepath.Join(dir, name)); err == nil {
			*dst = s
		}
	}
	ri.Metrics = summarizeMetrics(filepath.Join(dir, "metrics.jsonl"))
	if _, err := os.Stat(filepath.Join(dir, lockFile)); err == nil {
		if l, err := flock.Acquire(filepath.Join(dir, lockFile)); err == nil {
			l.Close() // free: nobody runs here
		} else {
			var he *flock.HeldError
			if errors.As(err, &he) {
				ri.LockedBy = he.Holder.String()
				if ri.Status != "complete" {
					ri.Status = "running"
				}
			}
		}
	}
	return ri, nil
}

func summarizeMetrics(path string) MetricsSummary {
	var m MetricsSummary
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.Damaged = -1
		}
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		var line struct {
			Step     *int     `json:"step"`
			Loss     *float64 `json:"loss"`
			ValLoss  *float64 `json:"val_loss"`
			TokensPS float64  `json:"tokens_per_s"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Step == nil {
			m.Damaged++
			continue
		}
		m.Lines++
		m.LastStep = max(m.LastStep, *line.Step)
		if line.Loss != nil {
			m.LastLoss, m.TokensPerS = line.Loss, line.TokensPS
		}
		if v := line.ValLoss; v != nil {
			m.LastValLoss = v
			if m.BestValLoss == nil || *v < *m.BestValLoss {
				m.BestValLoss, m.BestValStep = v, *line.Step
			}
		}
	}
	return m
}
