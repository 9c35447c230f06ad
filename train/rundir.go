package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/internal/flock"
)

// The run folder (RUN):
//
//	config.yaml       the resolved configuration
//	metrics.jsonl     one line per step and per evaluation
//	adapter/          the newest adapter (PEFT layout + lowrank.json)
//	best/             the adapter with the best validation loss
//	checkpoints/step-N/  training state for resume (checkpoints.WriteCheckpoint)
//	.lock             held (flock) by the process that owns the folder
//
// A run owns its folder through the lock, so two runs never write one
// folder; it refuses a folder that holds another run unless told to
// resume it or to start again; every multi-file output is written whole.

// runFiles are what a run writes into its folder (and --overwrite removes).
var runFiles = []string{"config.yaml", "metrics.jsonl", "adapter", "best", "checkpoints", "loss.png"}

const lockFile = ".lock"

// runDir is a run folder held by this process.
type runDir struct {
	path    string
	lock    *flock.Lock
	metrics *os.File
}

// openRunDir creates the folder if needed, takes its lock (unless noLock)
// and removes what killed writers left in it.
func openRunDir(path string, noLock bool) (*runDir, []string, error) {
	if err := os.MkdirAll(path, 0o777); err != nil {
		return nil, nil, fmt.Errorf("run folder: %w", err)
	}
	rd := &runDir{path: path}
	if !noLock {
		l, err := flock.Acquire(filepath.Join(path, lockFile))
		var he *flock.HeldError
		switch {
		case errors.As(err, &he):
			return nil, nil, fmt.Errorf("run folder %s is in use by %s: wait for that run to end, or choose another --out", path, he.Holder)
		case errors.Is(err, flock.ErrUnsupported):
			return nil, nil, fmt.Errorf("run folder %s: %v: two runs could write it at once; pass --no-lock if you are sure only one will", path, err)
		case err != nil:
			return nil, nil, fmt.Errorf("run folder: %w", err)
		}
		rd.lock = l
	}
	var removed []string
	for _, d := range []string{path, checkpoints.CheckpointsDir(path)} {
		r, err := atomicfile.RemoveTemps(d)
		if err != nil {
			rd.Close()
			return nil, nil, fmt.Errorf("run folder: %w", err)
		}
		removed = append(removed, r...)
	}
	return rd, removed, nil
}

// Close releases the lock and closes metrics.jsonl.
func (rd *runDir) Close() error {
	var err error
	if rd.metrics != nil {
		err = rd.metrics.Close()
		rd.metrics = nil
	}
	if rd.lock != nil {
		rd.lock.Close()
		rd.lock = nil
	}
	return err
}

// contents says what the folder holds: the run files present, and whether
// anything else (not lowrank's) is there.
func (rd *runDir) contents() (run []string, foreign bool, err error) {
	entries, err := os.ReadDir(rd.path)
	if err != nil {
		return nil, false, fmt.Errorf("run folder: %w", err)
	}
	known := map[string]bool{lockFile: true}
	for _, f := range runFiles {
		known[f] = true
	}
	for _, e := range entries {
		switch {
		case known[e.Name()] && e.Name() != lockFile:
			run = append(run, e.Name())
		case !known[e.Name()] && !strings.HasPrefix(e.Name(), atomicfile.TempPrefix):
			foreign = true
		}
	}
	return run, foreign, nil
}

// clear removes the run files (--overwrite, or a fresh start where no
// checkpoint was ever written).
func (rd *runDir) clear() error {
	for _, f := range runFiles {
		p := filepath.Join(rd.path, f)
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err == nil && st.IsDir():
			err = atomicfile.RemoveDir(p)
		case err == nil:
			err = os.Remove(p)
		}
		if err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
	}
	return nil
}

// describe summarizes a run folder's files for a refusal message.
func describeRun(path string, files []string) string {
	var parts []string
	if steps, _ := checkpoints.ListCheckpoints(path); len(steps) > 0 {
		parts = append(parts, fmt.Sprintf("checkpoints up to step %d", steps[len(steps)-1]))
	}
	for _, f := range files {
		if f == "adapter" || f == "best" {
			parts = append(parts, f+"/")
		}
	}
	if n := countLines(filepath.Join(path, "metrics.jsonl")); n > 0 {
		parts = append(parts, fmt.Sprintf("%d metrics lines", n))
	}
	if len(parts) == 0 {
		return strings.Join(files, ", ")
	}
	return strings.Join(parts, ", ")
}

func countLines(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(raw, []byte("\n"))
}

// metricsWriter appends JSON lines to metrics.jsonl; every write is checked.
type metricsWriter struct {
	f    *os.File
	path string
}

// (A nil writer writes nothing: a process other than rank 0.)
func (m *metricsWriter) write(v any) error {
	if m == nil {
		return nil
	}
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	if _, err := m.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	return nil
}

func (m *metricsWriter) sync() error {
	if m == nil {
		return nil
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	return nil
}

// openMetrics starts metrics.jsonl: empty for a fresh run; for a resumed
// one, cut back to the lines of steps up to step (a line a kill cut short
// goes too), so that the file reads as one run, then appended to.
func (rd *runDir) openMetrics(resumeStep int, resumed bool) (*metricsWriter, error) {
	path := filepath.Join(rd.path, "metrics.jsonl")
	if resumed {
		var kept bytes.Buffer
		if raw, err := os.ReadFile(path); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(raw))
			sc.Buffer(make([]byte, 1<<16), 1<<24)
			for sc.Scan() {
				var line struct {
					Step *int `json:"step"`
				}
				if json.Unmarshal(sc.Bytes(), &line) != nil || line.Step == nil || *line.Step > resumeStep {
					continue
				}
				kept.Write(sc.Bytes())
				kept.WriteByte('\n')
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := atomicfile.WriteFile(path, kept.Bytes()); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !resumed {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o666)
	if err != nil {
		return nil, fmt.Errorf("run folder: %w", err)
	}
	rd.metrics = f
	return &metricsWriter{f: f, path: path}, nil
}
