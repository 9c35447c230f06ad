package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/kernels"
)

// proc is lowrank run as a separate process (this test binary with
// LOWRANK_TEST_MAIN=1): something to send signals to.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	stdout bytes.Buffer
	lines  chan string
	done   chan struct{}
}

func startLowrank(t *testing.T, args ...string) *proc {
	t.Helper()
	return startLowrankEnv(t, nil, args...)
}

// startLowrankEnv is startLowrank with more environment variables.
func startLowrankEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(os.Args[0], args...), lines: make(chan string, 1<<16), done: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "LOWRANK_TEST_MAIN=1"), env...)
	p.cmd.Stdout = &p.stdout
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	return p
}

// waitFor returns when a stderr line contains s (true) or the process ends
// or the timeout passes (false).
func (p *proc) waitFor(s string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return false
			}
			if strings.Contains(l, s) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func (p *proc) signal(sig os.Signal) { p.cmd.Process.Signal(sig) }

// wait returns the exit code (-1 for a signal) and all of stderr.
func (p *proc) wait() (int, string) {
	<-p.done
	err := p.cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return code, p.stderr.String()
}

// lowrank runs lowrank to the end in its own process.
func lowrank(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	p := startLowrank(t, args...)
	code, stderr := p.wait()
	return code, p.stdout.String(), stderr
}

// runArgs are the training arguments shared by a case's runs.
func runArgs(t *testing.T, out string, extra ...string) []string {
	return append([]string{"train", "--model", testassets.Path(t, "models/stories260K/hf"),
		"--data", testassets.Path(t, "datasets/wikisql/train.parquet"), "--val", testassets.Path(t, "datasets/wikisql/valid.parquet"),
		"--out", out, "--log-every", "1", "--batch-size", "2", "--max-seq-len", "64"}, extra...)
}

// sameRun compares two run folders: the adapters (and best/) byte for byte
// and metrics.jsonl line by line, timing fields aside.
func sameRun(t *testing.T, what, a, b string) {
	t.Helper()
	for _, f := range []string{"adapter/adapter_model.safetensors", "adapter/adapter_config.json", "best/adapter_model.safetensors"} {
		x, errx := os.ReadFile(filepath.Join(a, f))
		y, erry := os.ReadFile(filepath.Join(b, f))
		if errx != nil || erry != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: %s differs from the uninterrupted run's (%v, %v)", what, f, errx, erry)
		}
	}
	ma, mb := metricsLines(t, a), metricsLines(t, b)
	if len(ma) != len(mb) {
		t.Errorf("%s: %d metrics lines, the uninterrupted run has %d", what, len(mb), len(ma))
	}
	for i := 0; i < min(len(ma), len(mb)); i++ {
		if ma[i] != mb[i] {
			t.Errorf("%s: metrics line %d\n got  %s\n want %s", what, i+1, mb[i], ma[i])
			break
		}
	}
}

// metricsLines are a run's metrics.jsonl lines without their timing fields.
func metricsLines(t *testing.T, run string) []string {
	raw, err := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: metrics line %q: %v", run, l, err)
		}
		delete(m, "tokens_per_s")
		delete(m, "elapsed_s")
		b, _ := json.Marshal(m)
		out = append(out, string(b))
	}
	return out
}

// TestResumeExact is the checkpoint issue's exactness test: runs stopped
// after a checkpoint (SIGTERM in two cases, SIGKILL in two) and resumed end
// with the same adapter bytes and the same metrics lines (timing aside) as
// the uninterrupted run. Together the cases cover 1 and 2 threads (and a
// thread count changed on resume), packing, gradient accumulation over 3
// micro-batches, dropout, a cosine schedule with warm-up, evaluation with
// early stopping, and f32 and nf4 bases.
func TestResumeExact(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	cases := []struct {
		name   string
		args   []string
		resume []string // extra flags on resume (free settings)
		kill   bool     // SIGKILL after the checkpoint at step 6; else SIGTERM early
	}{
		{"f32 pack accum3 dropout cosine-warmup threads1→2 SIGTERM",
			[]string{"--quant", "f32", "--pack", "--grad-accum", "3", "--dropout", "0.1", "--warmup-steps", "3", "--threads", "1", "--max-steps", "12", "--eval-every", "3", "--save-every", "6"},
			[]string{"--threads", "2"}, false},
		{"nf4 linear threads2 SIGKILL",
			[]string{"--quant", "nf4", "--lr-schedule", "linear", "--threads", "2", "--max-steps", "12", "--eval-every", "4", "--save-every", "6"},
			nil, true},
		{"nf4 pack accum3 dropout cosine-warmup threads2 SIGKILL",
			[]string{"--quant", "nf4", "--pack", "--grad-accum", "3", "--dropout", "0.1", "--warmup-steps", "2", "--threads", "2", "--max-steps", "12", "--eval-every", "3", "--save-every", "6"},
			nil, true},
		{"f32 dropout early-stopping threads1 SIGTERM",
			[]string{"--quant", "f32", "--dropout", "0.05", "--threads", "1", "--max-steps", "20", "--eval-every", "3", "--save-every", "4",
				"--early-stopping-patience", "3", "--early-stopping-threshold", "10"},
			[]string{"--log-every", "2", "--eval-every", "3"}, false},
		{"q8_0 bf16 compute threads2→1 SIGKILL",
			[]string{"--compute-dtype", "bf16", "--threads", "2", "--max-steps", "12", "--eval-every", "4", "--save-every", "6"},
			[]string{"--threads", "1"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if slices.Contains(tc.args, "bf16") {
				if _, err := kernels.PathFor("", "bf16"); err != nil {
					t.Skipf("no bf16 path on this CPU: %v", err)
				}
			}
			dir := t.TempDir()
			full, part := filepath.Join(dir, "full"), filepath.Join(dir, "part")
			if code, _, stderr := lowrank(t, runArgs(t, full, tc.args...)...); code != 0 {
				t.Fatalf("uninterrupted run: exit %d\n%s", code, stderr)
			}
			p := startLowrank(t, runArgs(t, part, tc.args...)...)
			if tc.kill {
				if !p.waitFor("msg=step step=7 ", 60*time.Second) {
					t.Fatal("no step 7")
				}
				p.signal(syscall.SIGKILL)
			} else {
				if !p.waitFor("msg=step step=2 ", 60*time.Second) {
					t.Fatal("no step 2")
				}
				p.signal(syscall.SIGTERM)
			}
			code, stderr := p.wait()
			if tc.kill && code != -1 || !tc.kill && code != 130 {
				t.Fatalf("stopped run: exit %d\n%s", code, stderr)
			}
			steps, _ := checkpoints.ListCheckpoints(part)
			if len(steps) == 0 {
				t.Fatalf("no checkpoint after the stop:\n%s", stderr)
			}
			if last := steps[len(steps)-1]; tc.kill && last != 6 || !tc.kill && last >= 9 {
				t.Fatalf("stopped at step %d: too late to test a resume (checkpoints %v)", last, steps)
			}
			t.Logf("stopped with checkpoints at steps %v", steps)
			args := append([]string{"train", "--resume", part}, tc.resume...)
			if code, stdout, stderr := lowrank(t, args...); code != 0 || !strings.Contains(stdout, "resumed from") {
				t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
			}
			sameRun(t, tc.name, full, part)
		})
	}
}

// TestRunFolderSafety: a run folder holding a run is never silently
// replaced: a second train into it is refused (naming --resume and
// --overwrite) and changes nothing, as is starting "from its adapter"
// into the same folder; two processes on one folder are refused naming
// the holder's pid; a killed holder leaves no stale lock; what a killed
// writer left (.tmp-*) goes with the next run; files keep the umask's mode.
func TestRunFolderSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	base := []string{"--max-steps", "4", "--save-every", "2"}
	if code, _, stderr := lowrank(t, runArgs(t, run, base...)...); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, stderr)
	}
	snapshot := func() string {
		var b strings.Builder
		filepath.Walk(run, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() && info.Name() != ".lock" {
				raw, _ := os.ReadFile(p)
				fmt.Fprintf(&b, "%s %x\n", p, raw)
			}
			return nil
		})
		return b.String()
	}
	before := snapshot()
	for _, extra := range [][]string{{"--max-steps", "2"}, {"--max-steps", "2", "--adapter", filepath.Join(run, "adapter")}} {
		code, _, stderr := lowrank(t, runArgs(t, run, extra...)...)
		if code == 0 || !strings.Contains(stderr, "--resume "+run) || !strings.Contains(stderr, "--overwrite") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("second run into a run folder %v: exit %d, stderr %q", extra, code, stderr)
		}
		if snapshot() != before {
			t.Errorf("the refused run %v changed the folder", extra)
		}
	}
	// umask: files are 0666 and folders 0777 less it (the test runs under the process's umask).
	um := syscall.Umask(0)
	syscall.Umask(um)
	for _, f := range []string{"config.yaml", "metrics.jsonl", "adapter/adapter_model.safetensors", "checkpoints/step-4/manifest.json"} {
		st, err := os.Stat(filepath.Join(run, f))
		if want := os.FileMode(0o666 &^ um); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v (umask %03o)", f, st.Mode().Perm(), want, um)
		}
	}

	// Two processes on one folder.
	long := filepath.Join(dir, "long")
	p := startLowrank(t, runArgs(t, long, "--max-steps", "100000", "--save-every", "0")...)
	if !p.waitFor("msg=step ", 60*time.Second) {
		t.Fatal("no step")
	}
	code, _, stderr := lowrank(t, runArgs(t, long, "--max-steps", "3", "--overwrite")...)
	if host, _ := os.Hostname(); code == 0 || !strings.Contains(stderr, fmt.Sprintf("pid %d on host %s", p.cmd.Process.Pid, host)) {
		t.Errorf("second process on a held folder: exit %d, %q", code, stderr)
	}
	p.signal(syscall.SIGKILL)
	p.wait()
	// A kill -9 leaves no stale lock, and whatever it was writing is removed.
	junk := filepath.Join(long, ".tmp-adapter_model.safetensors-dead")
	os.WriteFile(junk, make([]byte, 16<<20), 0o644)
	os.MkdirAll(filepath.Join(long, "checkpoints", ".tmp-step-9-dead"), 0o755)
	code, stdout, stderr := lowrank(t, runArgs(t, long, "--max-steps", "3", "--overwrite")...)
	if code != 0 || !strings.Contains(stdout, "trained 3 steps") {
		t.Fatalf("after the holder was killed: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(junk); err == nil || !strings.Contains(stderr, "removed what a killed run left") {
		t.Errorf("leftover temporary file kept (%v):\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(long, "checkpoints", ".tmp-step-9-dead")); err == nil {
		t.Error("leftover temporary checkpoint folder kept")
	}
}

// TestSignals: the first SIGTERM finishes the step and saves; SIGTERMs that
// follow (schedulers repeat them) do not abort the save; a second SIGINT
// quits at once, unless it is the first one delivered twice.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	// Steps long enough to signal within one, a second apart or more: at 40
	// micro-batches a step took 90 ms on an AMD EPYC (Zen 5), so that the
	// run had saved and exited before the second Ctrl-C, 200 ms on.
	slow := []string{"--max-steps", "100000", "--save-every", "0", "--grad-accum", "500"}
	p := startLowrank(t, runArgs(t, run, slow...)...)
	if !p.waitFor("msg=step ", 60*time.Second) {
		t.Fatal("no step")
	}
	for i := 0; i < 4; i++ { // spaced: the kernel merges a signal into one still pending
		p.signal(syscall.SIGTERM)
		time.Sleep(30 * time.Millisecond)
	}
	code, stderr := p.wait()
	if code != 130 || !strings.Contains(stderr, "still saving") || !strings.Contains(stderr, "continue with: lowrank train --resume "+run) || strings.Contains(stderr, "goroutine") {
		t.Fatalf("repeated SIGTERM: exit %d\n%s", code, stderr)
	}
	if c, _, err := checkpoints.LatestCheckpoint(run); c == nil || err != nil {
		t.Fatalf("no intact checkpoint after SIGTERM: %v", err)
	}
	p = startLowrank(t, runArgs(t, filepath.Join(dir, "run2"), slow...)...)
	if !p.waitFor("msg=step ", 60*time.Second) {
		t.Fatal("no step")
	}
	p.signal(syscall.SIGINT)
	p.waitFor("interrupted: finishing", 10*time.Second)
	time.Sleep(200 * time.Millisecond) // as a person would
	p.signal(syscall.SIGINT)
	code, stderr = p.wait()
	if code != 130 || !strings.HasSuffix(strings.TrimSpace(stderr), "lowrank: interrupted") {
		t.Fatalf("Ctrl-C twice: exit %d\n%s", code, stderr)
	}
	// One Ctrl-C delivered twice at once (to the process and to its group,
	// as timeout(1) sends it) is one Ctrl-C: the run saves.
	run3 := filepath.Join(dir, "run3")
	p = startLowrank(t, runArgs(t, run3, slow...)...)
	if !p.waitFor("msg=step ", 60*time.Second) {
		t.Fatal("no step")
	}
	p.signal(syscall.SIGINT)
	time.Sleep(2 * time.Millisecond)
	p.signal(syscall.SIGINT)
	code, stderr = p.wait()
	if c, _, _ := checkpoints.LatestCheckpoint(run3); code != 130 || c == nil || !strings.Contains(stderr, "continue with") {
		t.Fatalf("a doubled SIGINT: exit %d, checkpoint %v\n%s", code, c, stderr)
	}
}

// faultArgs are the fault-injection runs' arguments: a checkpoint after
// every step and an evaluation (and so a best/ save) every 5.
func faultArgs(t *testing.T, out string, extra ...string) []string {
	return append([]string{"train", "--model", testassets.Path(t, "models/stories260K/hf"),
		"--data", testassets.Path(t, "datasets/wikisql/train.parquet"), "--val-fraction", "0.02",
		"--out", out, "--log-every", "1", "--batch-size", "2", "--max-seq-len", "48", "--dropout", "0.1",
		"--max-steps", "300", "--save-every", "1", "--keep-last", "2", "--eval-every", "5", "--resume", "auto"}, extra...)
}

// checkIntact fails unless every checkpoint folder of run verifies, and its
// adapters read (a kill never leaves a partial one under its final name).
func checkIntact(t *testing.T, run string) {
	t.Helper()
	steps, err := checkpoints.ListCheckpoints(run)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if _, err := checkpoints.OpenCheckpoint(checkpoints.StepDir(run, s)); err != nil {
			t.Fatalf("after a kill: %v", err)
		}
	}
	for _, a := range []string{"adapter", "best"} {
		dir := filepath.Join(run, a)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		s, err := checkpoints.Summarize(dir)
		if err != nil || s.Info == nil || s.InfoError != "" {
			t.Fatalf("after a kill, %s/ does not read whole: %v %+v", a, err, s)
		}
	}
}

// hasTemps reports whether a writer's temporary entry is in the run folder.
func hasTemps(run string) bool {
	for _, d := range []string{run, filepath.Join(run, "checkpoints")} {
		m, _ := filepath.Glob(filepath.Join(d, ".tmp-*"))
		if len(m) > 0 {
			return true
		}
	}
	return false
}

// TestKillDuringSaves is the fault-injection test: at least 100 SIGKILLs at
// random moments of a run that writes a checkpoint every step (a loop
// bounded in time), each followed by --resume auto. No kill leaves a
// state from which the resume fails or reads a partial checkpoint or
// adapter; the run resumed to its end, and a copy of it taken after kill
// 50 and resumed to its end, equal the uninterrupted run bit for bit.
func TestKillDuringSaves(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	dir := t.TempDir()
	ref, run := filepath.Join(dir, "ref"), filepath.Join(dir, "run")
	if code, _, stderr := lowrank(t, faultArgs(t, ref)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, stderr)
	}
	// Kills fall uniformly over the next three steps' time (a step with its
	// checkpoint, as the uninterrupted run took them), so that the run
	// moves on between kills, evaluations and best/ saves included.
	var last struct {
		Step    int     `json:"step"`
		Elapsed float64 `json:"elapsed_s"`
	}
	raw, _ := os.ReadFile(filepath.Join(ref, "metrics.jsonl"))
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		json.Unmarshal([]byte(l), &last)
	}
	window := time.Duration(3 * last.Elapsed / float64(max(last.Step, 1)) * float64(time.Second))
	window = min(max(window, 20*time.Millisecond), 300*time.Millisecond)
	r := newRand(t)
	deadline := time.Now().Add(150 * time.Second)
	kills, midWrite, finished := 0, 0, false
	var copies []string
	for kills < 100 && time.Now().Before(deadline) {
		p := startLowrank(t, faultArgs(t, run)...)
		if !p.waitFor("msg=step ", 60*time.Second) { // it ended: complete, or failed
			code, stderr := p.wait()
			if code != 0 {
				t.Fatalf("after %d kills, --resume auto failed: exit %d\n%s", kills, code, stderr)
			}
			finished = true
			break
		}
		time.Sleep(time.Duration(r.Int64N(int64(window))))
		p.signal(syscall.SIGKILL)
		if code, stderr := p.wait(); code == 0 {
			finished = true
			break
		} else if code != -1 {
			t.Fatalf("after %d kills: exit %d\n%s", kills, code, stderr)
		}
		kills++
		if hasTemps(run) {
			midWrite++ // killed while writing a checkpoint or an adapter
		}
		checkIntact(t, run)
		if kills == 50 {
			c := filepath.Join(dir, fmt.Sprintf("copy%d", kills))
			if out, err := exec.Command("cp", "-a", run, c).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			copies = append(copies, c)
		}
	}
	steps, _ := checkpoints.ListCheckpoints(run)
	t.Logf("%d SIGKILLs within %v of a step (%d while a checkpoint or adapter was being written); checkpoints left at steps %v", kills, window, midWrite, steps)
	if kills < 100 && !finished {
		t.Errorf("only %d kills in the time allowed", kills)
	}
	if midWrite < kills/10 {
		t.Errorf("only %d of %d kills fell during a write: the test does not test the writes", midWrite, kills)
	}
	for _, c := range append(copies, run) {
		if code, _, stderr := lowrank(t, faultArgs(t, c)...); code != 0 {
			t.Fatalf("%s: resume to the end: exit %d\n%s", c, code, stderr)
		}
		sameRun(t, filepath.Base(c), ref, c)
	}
}

// TestDamagedCheckpoint: resuming from an older checkpoint sets the newer
// ones aside (abandoned-step-N) so that they are not taken for the
// continued run's; a byte changed in the newest checkpoint is reported by
// inspect, naming the file, and --resume says so, sets it aside
// (damaged-step-N) and continues from the one before it. Both end as the
// uninterrupted run does.
func TestDamagedCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	dir := t.TempDir()
	full, part := filepath.Join(dir, "full"), filepath.Join(dir, "part")
	args := []string{"--max-steps", "8", "--save-every", "2", "--keep-last", "0", "--eval-every", "4"}
	for _, r := range []string{full, part} {
		if code, _, stderr := lowrank(t, runArgs(t, r, args...)...); code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	}
	code, out, stderr := lowrank(t, "train", "--resume", filepath.Join(part, "checkpoints", "step-4"))
	for _, s := range []string{"6", "8"} {
		if _, err := os.Stat(filepath.Join(part, "checkpoints", "abandoned-step-"+s)); err != nil {
			t.Errorf("checkpoint step-%s not set aside: %v", s, err)
		}
	}
	if code != 0 || !strings.Contains(out, "resumed from "+filepath.Join(part, "checkpoints", "step-4")) {
		t.Fatalf("resume from step 4: exit %d\n%s\n%s", code, out, stderr)
	}
	sameRun(t, "resumed from step 4", full, part)

	f := filepath.Join(part, "checkpoints", "step-8", "optimizer.safetensors")
	b, _ := os.ReadFile(f)
	b[len(b)-7] ^= 0x40
	os.WriteFile(f, b, 0o644)
	code, out, _ = lowrank(t, "inspect", part)
	if code != 0 || !strings.Contains(out, "checkpoint step 8: DAMAGED") || !strings.Contains(out, "optimizer.safetensors") {
		t.Errorf("inspect RUN: exit %d\n%s", code, out)
	}
	code, out, _ = lowrank(t, "inspect", filepath.Join(part, "checkpoints", "step-8"))
	if code == 0 || !strings.Contains(out, "optimizer.safetensors: its SHA-256 differs") {
		t.Errorf("inspect CHECKPOINT: exit %d\n%s", code, out)
	}
	code, out, stderr = lowrank(t, "train", "--resume", part)
	if code != 0 || !strings.Contains(stderr, "skipping a damaged checkpoint") || !strings.Contains(stderr, "optimizer.safetensors") ||
		!strings.Contains(out, "resumed from "+filepath.Join(part, "checkpoints", "step-6")) {
		t.Fatalf("resume past a damaged checkpoint: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(part, "checkpoints", "damaged-step-8")); err != nil {
		t.Errorf("the damaged checkpoint was not set aside: %v", err)
	}
	sameRun(t, "resumed from step 6", full, part)
}

// TestDivergence: a NaN loss stops the run keeping the last finite state as
// a checkpoint, and the message gives the command that continues from it
// with a lower learning rate. (Here that state is already ruined by the
// step before, so the continued run diverges again: what is checked is
// that the command works.)
func TestDivergence(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	run := filepath.Join(t.TempDir(), "run")
	code, _, stderr := lowrank(t, runArgs(t, run, "--max-steps", "20", "--lr", "1e38", "--quant", "f32")...)
	want := "lowrank train --resume " + run + " --lr 1e+37 --force"
	if code != 1 || !strings.Contains(stderr, "training diverged") || !strings.Contains(stderr, want) || strings.Contains(stderr, "goroutine") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	ck, _, err := checkpoints.LatestCheckpoint(run)
	if err != nil || ck == nil || !strings.Contains(stderr, ck.Dir) {
		t.Fatalf("the last finite state: %v %v", ck, err)
	}
	// What the divergence left (the checkpoint, adapter/ if written) holds finite values only.
	for _, dir := range []string{ck.Dir, filepath.Join(run, "adapter"), filepath.Join(run, "best")} {
		f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
		if os.IsNotExist(err) && dir != ck.Dir {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range f.Names() {
			ten, _ := f.Tensor(n)
			v := make([]float32, ten.Elements())
			ten.Float32s(v)
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("%s: %s holds %g after the divergence", dir, n, x)
				}
			}
		}
		f.Close()
	}
	_, _, stderr = lowrank(t, strings.Fields(want)[1:]...)
	if !strings.Contains(stderr, "msg=resumed checkpoint="+ck.Dir) || strings.Contains(stderr, "settings differ") {
		t.Errorf("the printed command does not resume from %s:\n%s", ck.Dir, stderr)
	}
}

// TestFullDisk: a run whose folder fills up (a 2 MiB tmpfs) ends with one
// clear line naming the newest checkpoint, which is intact; copied to a
// disk with room, it resumes. A full token cache folder makes a run go on
// uncached, with a warning.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	dir := t.TempDir()
	tfs := filepath.Join(dir, "tmpfs")
	os.Mkdir(tfs, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", tfs).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", tfs).Run()
	run := filepath.Join(tfs, "run")
	code, _, stderr := lowrank(t, runArgs(t, run, "--max-steps", "200", "--save-every", "1", "--keep-last", "0", "--eval-every", "2")...)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if code != 1 || !strings.Contains(last, "no space left on device") || !strings.Contains(last, "newest checkpoint is") || strings.Contains(stderr, "goroutine") {
		t.Fatalf("exit %d, last line %q\n%s", code, last, stderr)
	}
	ck, _, err := checkpoints.LatestCheckpoint(run)
	if err != nil || ck == nil || !strings.Contains(last, ck.Dir) {
		t.Fatalf("newest checkpoint %v (%v), message %q", ck, err, last)
	}
	t.Logf("%s", last)
	moved := filepath.Join(dir, "moved")
	if out, err := exec.Command("cp", "-a", run, moved).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	code, out, stderr := lowrank(t, "train", "--resume", moved, "--max-steps", fmt.Sprint(ck.Manifest.Step+2), "--force", "--keep-last", "2")
	if code != 0 || !strings.Contains(out, "resumed from") {
		t.Errorf("resume on a disk with room: exit %d\n%s\n%s", code, out, stderr)
	}

	// A full cache folder: the run goes on uncached, and says so.
	cache := filepath.Join(dir, "cache")
	os.Mkdir(cache, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", cache).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", cache).Run()
	code, out, stderr = lowrank(t, runArgs(t, filepath.Join(dir, "uncached"), "--max-steps", "2", "--cache-dir", cache)...)
	if code != 0 || !strings.Contains(stderr, "loaded uncached") || !strings.Contains(stderr, "no space left on device") {
		t.Errorf("full cache folder: exit %d\n%s\n%s", code, out, stderr)
	}
}

func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill times seeded with %d", seed)
	return rand.New(rand.NewPCG(seed, 1))
}

// TestAdapterRemembers: an adapter trained over an nf4 base is evaluated
// over the same nf4 base without being told (its lowrank.json), and says
// so; --quant still overrides. inspect describes the run, a checkpoint and
// the adapter (JSON).
func TestAdapterRemembers(t *testing.T) {
	if testing.Short() {
		t.Skip("training processes: skipped with -short (the emulated arm64 run)")
	}
	run := filepath.Join(t.TempDir(), "run")
	if code, _, stderr := lowrank(t, runArgs(t, run, "--quant", "nf4", "--max-steps", "3", "--max-seq-len", "48")...); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	m, val := testassets.Path(t, "models/stories260K/hf"), testassets.Path(t, "datasets/wikisql/valid.parquet")
	loss := func(extra ...string) (float64, string) {
		code, out, stderr := lowrank(t, append([]string{"eval", "--model", m, "--adapter", filepath.Join(run, "adapter"), "--data", val, "--json"}, extra...)...)
		var r struct {
			Loss float64 `json:"loss"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("eval %v: exit %d\n%s\n%s", extra, code, out, stderr)
		}
		return r.Loss, stderr
	}
	plain, note := loss()
	nf4, _ := loss("--quant", "nf4", "--max-seq-len", "48")
	f32, _ := loss("--quant", "f32")
	if plain != nf4 || plain == f32 || !strings.Contains(note, "base held as nf4") || !strings.Contains(note, "max-seq-len 48") {
		t.Errorf("eval: %.6f without flags, %.6f with --quant nf4, %.6f over f32; note %q", plain, nf4, f32, note)
	}
	for _, c := range []struct{ path, key string }{
		{run, `"status": "complete"`},
		{filepath.Join(run, "checkpoints", "step-3"), `"intact": true`},
		{filepath.Join(run, "adapter"), `"quant": "nf4"`},
	} {
		code, out, stderr := lowrank(t, "inspect", c.path, "--json")
		var v map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil || !strings.Contains(out, c.key) {
			t.Errorf("inspect %s: exit %d\n%s\n%s", c.path, code, out, stderr)
		}
	}
}
