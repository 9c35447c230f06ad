package train

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/internal/testassets"
)

var update = flag.Bool("update", false, "rewrite testdata/golden (a run folder with checkpoints of this version)")

// goldenRun is a run folder written by lowrank at checkpoint format version
// 1 (go test -run GoldenCheckpoint -update ./train rewrites it): stories260K,
// rank 2 on q_proj and v_proj, 4 steps, checkpoints at 2 and 4.
const goldenRun = "testdata/golden/run"

// TestGoldenCheckpoint: checkpoints written by an earlier version of the
// format still verify, read (state, optimizer, adapter) and resume: a later
// lowrank must keep reading them, or say which version it cannot.
func TestGoldenCheckpoint(t *testing.T) {
	if *update {
		writeGolden(t)
	}
	dir := checkpoints.StepDir(goldenRun, 2)
	ck, err := checkpoints.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Manifest.Version != 1 || ck.Manifest.Step != 2 {
		t.Fatalf("manifest %+v", ck.Manifest)
	}
	ts, err := readState(ck)
	if err != nil {
		t.Fatal(err)
	}
	if ts.State.Step != 2 || ts.State.Micro != 2 || ts.State.Total != 4 || ts.Optimizer.Name != "adamw" || ts.Optimizer.Steps != 2 ||
		len(ts.Optimizer.Tensors) != 2*len(ts.Params) || len(ts.Params) != 20 {
		t.Fatalf("state %+v, optimizer %s/%d with %d tensors, %d params", ts.State, ts.Optimizer.Name, ts.Optimizer.Steps, len(ts.Optimizer.Tensors), len(ts.Params))
	}
	if info, err := InspectCheckpoint(dir); err != nil || !info.Intact || info.Adapter == nil || info.Adapter.Rank != 2 || info.Adapter.Info == nil || info.Adapter.Info.Step != 2 {
		t.Fatalf("inspect: %+v, %v", info, err)
	}
	if testing.Short() {
		t.Skip("the resume is a training run: skipped with -short (the emulated arm64 run)")
	}
	run := filepath.Join(t.TempDir(), "run")
	if out, err := exec.Command("cp", "-r", goldenRun, run).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	c, err := ResumeConfig(checkpoints.StepDir(run, 2))
	if err != nil {
		t.Fatal(err)
	}
	// The paths recorded are the writer's machine's: the fingerprints decide.
	c.Model, c.Data = testassets.Path(t, "models/stories260K/hf"), testassets.Path(t, "datasets/wikisql/train.parquet")
	res, err := Run(context.Background(), *c, RunOptions{Resume: checkpoints.StepDir(run, 2)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 4 || !strings.HasSuffix(res.ResumedFrom, "step-2") {
		t.Errorf("resumed %+v", res)
	}
}

func writeGolden(t *testing.T) {
	c := Defaults()
	c.Model, c.Data, c.Out = testassets.Path(t, "models/stories260K/hf"), testassets.Path(t, "datasets/wikisql/train.parquet"), goldenRun
	c.Rank, c.Alpha, c.Targets, c.MaxSteps, c.SaveEvery, c.KeepLast = 2, 4, "q_proj,v_proj", 4, "2", 0
	c.BatchSize, c.MaxSeqLen, c.LogEvery, c.Threads, c.Overwrite = 1, 32, 0, 1, true
	os.RemoveAll(goldenRun)
	if _, err := Run(context.Background(), c, RunOptions{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(goldenRun, ".lock"))
}
