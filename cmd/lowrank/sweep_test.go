package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lowrank/lowrank/internal/testassets"
)

// writeSweep writes a 4-task sweep on stories260K (a list of two seeds ×
// a grid of two learning rates) into dir and returns its path.
func writeSweep(t *testing.T, dir string) string {
	t.Helper()
	f := filepath.Join(dir, "sweep.yaml")
	body := fmt.Sprintf(`model: %s
data: %s
val: %s
out: %s
batch_size: 2
max_seq_len: 64
max_steps: 8
eval_every: 4
save_every: 2
log_every: 1
threads: 1
sweep:
  list:
    - {seed: 1}
    - {seed: 2}
  grid:
    lr: [1e-3, 3e-3]
`, testassets.Path(t, "models/stories260K/hf"), testassets.Path(t, "datasets/wikisql/train.parquet"),
		testassets.Path(t, "datasets/wikisql/valid.parquet"), filepath.Join(dir, "runs"))
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSweep: a sweep file expands into its tasks (list × grid); train
// --task-index runs one into OUT/task-I, from the flag or from Slurm's or
// Kubernetes' variable; a finished task is skipped when run again, a
// killed one resumes to the bits a direct run with the same settings
// gives; the summary reports every task's state and draws the plot.
func TestSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	dir := t.TempDir()
	f := writeSweep(t, dir)
	runs := filepath.Join(dir, "runs")

	code, out, errOut := lowrank(t, "sweep", f, "--list", "--json")
	var sw struct {
		Tasks []struct {
			Index    int      `json:"index"`
			Out      string   `json:"out"`
			Settings []string `json:"settings"`
		} `json:"tasks"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &sw) != nil || len(sw.Tasks) != 4 {
		t.Fatalf("sweep --list: exit %d %s\n%s", code, errOut, out)
	}
	want := [][]string{{"seed=1", "lr=1e-3"}, {"seed=1", "lr=3e-3"}, {"seed=2", "lr=1e-3"}, {"seed=2", "lr=3e-3"}}
	for i, tk := range sw.Tasks {
		if tk.Index != i || tk.Out != filepath.Join(runs, fmt.Sprintf("task-%d", i)) || strings.Join(tk.Settings, " ") != strings.Join(want[i], " ") {
			t.Errorf("task %d: %+v, want settings %v", i, tk, want[i])
		}
	}

	// Task 1 by flag; again: skipped, nothing appended.
	if code, _, errOut := lowrank(t, "train", "--config", f, "--task-index", "1"); code != 0 || !strings.Contains(errOut, "task 1 of 4 (seed=1 lr=3e-3)") {
		t.Fatalf("task 1: exit %d\n%s", code, errOut)
	}
	m1 := metricsLines(t, filepath.Join(runs, "task-1"))
	if code, out, errOut := lowrank(t, "train", "--config", f, "--task-index", "1", "--json"); code != 0 || !strings.Contains(out, `"already_done": true`) {
		t.Fatalf("task 1 again: exit %d\n%s\n%s", code, out, errOut)
	}
	if m := metricsLines(t, filepath.Join(runs, "task-1")); len(m) != len(m1) {
		t.Errorf("task 1 run again appended %d metrics lines", len(m)-len(m1))
	}

	// Task 2 from SLURM_ARRAY_TASK_ID, killed after a checkpoint, then from
	// JOB_COMPLETION_INDEX: resumed.
	p := startLowrankEnv(t, []string{"SLURM_ARRAY_TASK_ID=2"}, "train", "--config", f)
	if !p.waitFor("msg=step step=5 ", 60*time.Second) {
		p.signal(syscall.SIGKILL)
		p.wait()
		t.Fatal("task 2 did not reach step 5")
	}
	p.signal(syscall.SIGKILL)
	p.wait()
	p = startLowrankEnv(t, []string{"JOB_COMPLETION_INDEX=2"}, "train", "--config", f)
	if code, errOut := p.wait(); code != 0 || !strings.Contains(errOut, "task 2 of 4") || !strings.Contains(errOut, "resum") {
		t.Fatalf("task 2 resumed: exit %d\n%s", code, errOut)
	}
	direct := filepath.Join(dir, "direct")
	if code, _, errOut := lowrank(t, append(runArgs(t, direct), "--max-steps", "8", "--eval-every", "4", "--save-every", "2", "--threads", "1", "--seed", "2", "--lr", "1e-3")...); code != 0 {
		t.Fatalf("direct run: exit %d\n%s", code, errOut)
	}
	sameRun(t, "task 2 killed and resumed", direct, filepath.Join(runs, "task-2"))

	// Task 3 started and killed before its first checkpoint; task 0 never.
	p = startLowrank(t, "train", "--config", f, "--task-index", "3")
	p.waitFor("msg=step step=1 ", 60*time.Second)
	p.signal(syscall.SIGKILL)
	p.wait()

	code, out, errOut = lowrank(t, "sweep", f, "--summary", "--json")
	var sum struct {
		Tasks []struct {
			State    string   `json:"state"`
			Steps    int      `json:"steps"`
			FinalVal *float64 `json:"final_val_loss"`
			BestVal  *float64 `json:"best_val_loss"`
			TPS      float64  `json:"tokens_per_s"`
			Adapter  bool     `json:"adapter"`
		} `json:"tasks"`
		Plot string `json:"plot"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || len(sum.Tasks) != 4 {
		t.Fatalf("sweep --summary: exit %d %s\n%s", code, errOut, out)
	}
	states := []string{sum.Tasks[0].State, sum.Tasks[1].State, sum.Tasks[2].State, sum.Tasks[3].State}
	if strings.Join(states, ",") != "missing,done,done,failed" && strings.Join(states, ",") != "missing,done,done,missing" {
		t.Errorf("states %v, want missing, done, done, failed (or missing: killed before any step line)", states)
	}
	for _, i := range []int{1, 2} {
		if s := sum.Tasks[i]; s.Steps != 8 || s.FinalVal == nil || s.BestVal == nil || *s.BestVal > *s.FinalVal || s.TPS <= 0 || !s.Adapter {
			t.Errorf("task %d summary: %+v", i, s)
		}
	}
	if st, err := os.Stat(sum.Plot); err != nil || st.Size() == 0 {
		t.Errorf("plot %q: %v", sum.Plot, err)
	}
	if code, out, _ := lowrank(t, "sweep", f, "--summary"); code != 0 || !strings.Contains(out, "4 tasks: 2 done") {
		t.Errorf("the summary table:\n%s", out)
	}
}

// TestSweepEmit: the Slurm script has the array, CPUs, requeue, append and
// signal settings and runs this binary on the file; the Kubernetes
// manifest is an Indexed Job of the sweep's size.
func TestSweepEmit(t *testing.T) {
	dir := t.TempDir()
	f := writeSweep(t, dir)
	code, out, errOut := capture(t, "sweep", f, "--emit", "slurm", "--parallel", "2", "--threads", "3", "--time", "1:00:00")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, w := range []string{"#SBATCH --array=0-3%2", "#SBATCH --cpus-per-task=3", "#SBATCH --requeue", "#SBATCH --open-mode=append",
		"#SBATCH --signal=B:TERM@120", "#SBATCH --time=1:00:00", `--config ` + f + ` --task-index "$SLURM_ARRAY_TASK_ID" --threads 3`} {
		if !strings.Contains(out, w) {
			t.Errorf("the script lacks %q:\n%s", w, out)
		}
	}
	// k8s wants out relative (to the volume): a copy with a relative out.
	raw, _ := os.ReadFile(f)
	rel := filepath.Join(dir, "rel.yaml")
	os.WriteFile(rel, []byte(strings.Replace(string(raw), "out: "+filepath.Join(dir, "runs"), "out: runs/sweep", 1)), 0o644)
	if code, _, errOut := capture(t, "sweep", f, "--emit", "k8s", "--image", "x"); code == 0 || !strings.Contains(errOut, "is absolute") {
		t.Errorf("an absolute out for k8s: exit %d %s", code, errOut)
	}
	code, out, errOut = capture(t, "sweep", rel, "--emit", "k8s", "--image", "registry.example/lowrank:1", "--parallel", "3", "--mem", "2Gi")
	if code != 0 {
		t.Fatalf("k8s: exit %d: %s", code, errOut)
	}
	dec := yaml.NewDecoder(strings.NewReader(out))
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			break
		}
		docs = append(docs, d)
	}
	if len(docs) != 2 || docs[1]["kind"] != "Job" {
		t.Fatalf("manifest:\n%s", out)
	}
	spec := docs[1]["spec"].(map[string]any)
	if spec["completionMode"] != "Indexed" || spec["completions"] != 4 || spec["parallelism"] != 3 {
		t.Errorf("job spec %v", spec)
	}
}

// TestSweepBad: a malformed sweep file or a bad sweep command line gets one
// line naming the file, the line and the problem.
func TestSweepBad(t *testing.T) {
	dir := t.TempDir()
	good := writeSweep(t, dir)
	raw, _ := os.ReadFile(good)
	base, _, _ := strings.Cut(string(raw), "sweep:\n")
	file := func(name, sweep string) string {
		p := filepath.Join(dir, name+".yaml")
		os.WriteFile(p, []byte(base+sweep), 0o644)
		return p
	}
	noOut := filepath.Join(dir, "noout.yaml")
	os.WriteFile(noOut, []byte(strings.Replace(string(raw), "out: ", "# out: ", 1)), 0o644)
	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte(base), 0o644)
	refuses(t, []badCase{
		{"unknown key", []string{"sweep", file("k", "sweep:\n  grid:\n    learning_rate: [1, 2]\n"), "--list"}, []string{"k.yaml line", "learning_rate"}},
		{"grid not a list", []string{"sweep", file("g", "sweep:\n  grid:\n    lr: 1e-3\n"), "--list"}, []string{"g.yaml line 14", "grid lr: want a list of values"}},
		{"empty list", []string{"sweep", file("e", "sweep:\n  list: []\n"), "--list"}, []string{"e.yaml line 13", "list: want a list of entries"}},
		{"unknown section", []string{"sweep", file("u", "sweep:\n  zip:\n    lr: [1]\n"), "--list"}, []string{"u.yaml line 13", `unknown section "zip"`}},
		{"out in a task", []string{"sweep", file("o", "sweep:\n  list:\n    - {out: elsewhere}\n"), "--list"}, []string{"o.yaml line 14", "task I runs into OUT/task-I"}},
		{"twice in a task", []string{"sweep", file("t", "sweep:\n  list:\n    - {lr: 1e-3}\n  grid:\n    lr: [1e-3]\n"), "--list"}, []string{"t.yaml line 16", "task 0 sets lr twice (first on line 14)"}},
		{"bad value", []string{"sweep", file("v", "sweep:\n  grid:\n    lr: [1e-3, -1]\n"), "--list"}, []string{"v.yaml task 1 (lr=-1)", "lr: -1 must be positive"}},
		{"no out", []string{"sweep", noOut, "--list"}, []string{"noout.yaml: out is required"}},
		{"not a sweep", []string{"sweep", plain, "--list"}, []string{"plain.yaml: no sweep section"}},
		{"no mode", []string{"sweep", good}, []string{"give one of --list, --emit slurm|k8s, --summary"}},
		{"bad emit", []string{"sweep", good, "--emit", "pbs"}, []string{`--emit "pbs": want slurm or k8s`}},
		{"bad parallel", []string{"sweep", good, "--emit", "slurm", "--parallel", "-2"}, []string{"--parallel -2"}},
		{"index too big", []string{"train", "--config", good, "--task-index", "4"}, []string{"--task-index 4", "has 4 tasks (0 to 3)"}},
		{"no index", []string{"train", "--config", good}, []string{"is a sweep of 4 runs", "--task-index I"}},
		{"index without sweep", []string{"train", "--config", plain, "--task-index", "0"}, []string{"--task-index 0", "is not a sweep file"}},
		{"out with a task", []string{"train", "--config", good, "--task-index", "0", "--out", filepath.Join(dir, "x")}, []string{"--out: a sweep's task 0 runs into"}},
	})
}
