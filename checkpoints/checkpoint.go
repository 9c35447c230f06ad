package checkpoints

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lowrank/lowrank/internal/atomicfile"
)

// A training checkpoint is a folder RUN/checkpoints/step-N holding what a
// run needs to continue exactly: the adapter (PEFT layout, with
// lowrank.json, so the folder is also an adapter), the optimizer's tensors,
// the trainer's state and the resolved configuration, and last the
// manifest: format, version, step and the size and SHA-256 of every file.
// The folder is written under a temporary name and renamed into place
// whole; a reader requires the manifest and every file to match it.

const (
	// ManifestFile is written last into every checkpoint.
	ManifestFile    = "manifest.json"
	manifestFormat  = "lowrank-checkpoint"
	checkpointsDir  = "checkpoints"
	stepPrefix      = "step-"
	manifestMaxSize = 1 << 20
)

// CheckpointVersion is the checkpoint format this version writes and the
// newest it reads. Change it with any change to what a checkpoint holds or
// means, and keep reading the older ones (testdata/golden).
const CheckpointVersion = 1

// Manifest is a checkpoint's manifest.json.
type Manifest struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Step    int    `json:"step"`
	// ValLoss is the validation loss evaluated at this step, if one was:
	// pruning keeps the checkpoint with the lowest.
	ValLoss *float64  `json:"val_loss,omitempty"`
	Created string    `json:"created"`
	Files   []FileSum `json:"files"`
	// Self is the SHA-256 of the manifest as written with Self empty: a
	// changed byte anywhere in manifest.json is reported as its damage.
	Self string `json:"manifest_sha256"`
}

// encodeManifest is manifest.json's exact bytes for m, its Self filled in.
func encodeManifest(m Manifest) ([]byte, error) {
	m.Self = ""
	body, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	m.Self = hex.EncodeToString(sum[:])
	raw, err := json.MarshalIndent(&m, "", "  ")
	return append(raw, '\n'), err
}

// FileSum is one file of a checkpoint.
type FileSum struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Checkpoint is a verified checkpoint folder.
type Checkpoint struct {
	Dir      string
	Manifest Manifest
}

// Path is the path of one of the checkpoint's files.
func (c *Checkpoint) Path(name string) string { return filepath.Join(c.Dir, name) }

// ReadJSON decodes one of the checkpoint's JSON files into v.
func (c *Checkpoint) ReadJSON(name string, v any) error {
	raw, err := os.ReadFile(c.Path(name))
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.Dir, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("checkpoint %s: %s: %v", c.Dir, name, err)
	}
	return nil
}

// CheckpointsDir is where a run keeps its checkpoints.
func CheckpointsDir(run string) string { return filepath.Join(run, checkpointsDir) }

// StepDir is the folder of run's checkpoint at step.
func StepDir(run string, step int) string {
	return filepath.Join(CheckpointsDir(run), stepPrefix+strconv.Itoa(step))
}

// WriteCheckpoint writes run's checkpoint at step: fill writes its files
// into a temporary folder, then the manifest is written over them and the
// folder renamed into place (an existing one at that step is replaced).
// valLoss is the evaluation at this step, or nil.
func WriteCheckpoint(run string, step int, valLoss *float64, fill func(dir string) error) (*Checkpoint, error) {
	dir := StepDir(run, step)
	var m Manifest
	err := atomicfile.WriteDir(dir, func(tmp string) error {
		if err := fill(tmp); err != nil {
			return err
		}
		entries, err := os.ReadDir(tmp)
		if err != nil {
			return err
		}
		m = Manifest{Format: manifestFormat, Version: CheckpointVersion, Step: step, ValLoss: valLoss, Created: time.Now().UTC().Format(time.RFC3339)}
		for _, e := range entries {
			if !e.Type().IsRegular() || e.Name() == ManifestFile {
				continue
			}
			sum, n, err := hashFile(filepath.Join(tmp, e.Name()))
			if err != nil {
				return err
			}
			m.Files = append(m.Files, FileSum{Name: e.Name(), Bytes: n, SHA256: sum})
		}
		raw, err := encodeManifest(m)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(tmp, ManifestFile), raw)
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return &Checkpoint{Dir: dir, Manifest: m}, nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// CheckpointError says what is wrong with a checkpoint, naming the file.
type CheckpointError struct {
	Dir, File, Problem string
}

func (e *CheckpointError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("checkpoint %s: %s", e.Dir, e.Problem)
	}
	return fmt.Sprintf("checkpoint %s: %s: %s", e.Dir, e.File, e.Problem)
}

// OpenCheckpoint reads dir's manifest and checks every file against it: a
// missing manifest (an unfinished or foreign folder), an unknown format or
// a newer version, and a missing, resized or altered file are errors
// (*CheckpointError) naming the file.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	bad := func(file, format string, args ...any) (*Checkpoint, error) {
		return nil, &CheckpointError{Dir: dir, File: file, Problem: fmt.Sprintf(format, args...)}
	}
	mp := filepath.Join(dir, ManifestFile)
	st, err := os.Stat(mp)
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(dir); derr != nil {
			return nil, fmt.Errorf("checkpoint %w", derr)
		}
		return bad(ManifestFile, "missing (not a lowrank checkpoint, or one never finished)")
	}
	if err != nil {
		return bad(ManifestFile, "%v", err)
	}
	if st.Size() > manifestMaxSize {
		return bad(ManifestFile, "%d bytes: not a manifest", st.Size())
	}
	raw, err := os.ReadFile(mp)
	if err != nil {
		return bad(ManifestFile, "%v", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return bad(ManifestFile, "damaged: %v", err)
	}
	if m.Format != manifestFormat {
		return bad(ManifestFile, "format %q is not %q", m.Format, manifestFormat)
	}
	if m.Version > CheckpointVersion || m.Version < 1 {
		return bad(ManifestFile, "format version %d; this lowrank reads versions 1 to %d (written by a newer lowrank? use that version to resume)", m.Version, CheckpointVersion)
	}
	if canon, err := encodeManifest(m); err != nil || string(canon) != string(raw) {
		return bad(ManifestFile, "damaged: not as lowrank wrote it (its checksum or layout differs)")
	}
	if len(m.Files) == 0 {
		return bad(ManifestFile, "lists no files")
	}
	for _, f := range m.Files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || strings.HasPrefix(f.Name, ".") {
			return bad(ManifestFile, "lists an invalid file name %q", f.Name)
		}
		sum, n, err := hashFile(filepath.Join(dir, f.Name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return bad(f.Name, "missing")
		case err != nil:
			return bad(f.Name, "%v", err)
		case n != f.Bytes:
			return bad(f.Name, "%d bytes, the manifest says %d (truncated or replaced)", n, f.Bytes)
		case sum != f.SHA256:
			return bad(f.Name, "its SHA-256 differs from the manifest's (the file is damaged)")
		}
	}
	return &Checkpoint{Dir: dir, Manifest: m}, nil
}

// ListCheckpoints returns the steps of run's checkpoint folders, ascending
// (not verified).
func ListCheckpoints(run string) ([]int, error) {
	entries, err := os.ReadDir(CheckpointsDir(run))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), stepPrefix); ok && e.IsDir() {
			if s, err := strconv.Atoi(n); err == nil && s >= 0 && strconv.Itoa(s) == n {
				steps = append(steps, s)
			}
		}
	}
	sort.Ints(steps)
	return steps, nil
}

// LatestCheckpoint returns run's newest checkpoint that verifies, with an
// error for each newer one that does not (to report), or nil when there is
// no valid checkpoint.
func LatestCheckpoint(run string) (*Checkpoint, []error, error) {
	steps, err := ListCheckpoints(run)
	if err != nil {
		return nil, nil, err
	}
	var skipped []error
	for i := len(steps) - 1; i >= 0; i-- {
		c, err := OpenCheckpoint(StepDir(run, steps[i]))
		if err == nil {
			return c, skipped, nil
		}
		skipped = append(skipped, err)
	}
	return nil, skipped, nil
}

// PruneCheckpoints removes run's checkpoints but the newest keepLast
// (keepLast ≤ 0 keeps all) and the one with the lowest recorded
// validation loss, and returns the folders it removed. Call it only once
// the newest checkpoint is durable.
func PruneCheckpoints(run string, keepLast int) ([]string, error) {
	if keepLast <= 0 {
		return nil, nil
	}
	steps, err := ListCheckpoints(run)
	if err != nil || len(steps) <= keepLast {
		return nil, err
	}
	keep := map[int]bool{}
	for _, s := range steps[len(steps)-keepLast:] {
		keep[s] = true
	}
	best, bestStep := 0.0, -1
	for _, s := range steps {
		raw, err := os.ReadFile(filepath.Join(StepDir(run, s), ManifestFile))
		var m Manifest
		if err != nil || json.Unmarshal(raw, &m) != nil {
			continue // unfinished or damaged: no claim to be the best
		}
		if m.ValLoss != nil && (bestStep < 0 || *m.ValLoss < best) {
			best, bestStep = *m.ValLoss, s
		}
	}
	if bestStep >= 0 {
		keep[bestStep] = true
	}
	var removed []string
	for _, s := range steps[:len(steps)-keepLast] {
		if keep[s] {
			continue
		}
		dir := StepDir(run, s)
		if err := atomicfile.RemoveDir(dir); err != nil {
			return removed, err
		}
		removed = append(removed, dir)
	}
	return removed, nil
}
