package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// ErrInterrupted is returned (wrapped) when the context was cancelled: the
// run saved a checkpoint and its adapter first.
var ErrInterrupted = errors.New("interrupted")

// Result summarizes a run.
type Result struct {
	Steps       int     `json:"steps"`
	Total       int     `json:"total_steps"`
	FinalLoss   float64 `json:"final_loss"`
	BaseValLoss float64 `json:"base_val_loss,omitempty"`
	BestValLoss float64 `json:"best_val_loss,omitempty"`
	Adapter     string  `json:"adapter"`
	// Checkpoint is the newest checkpoint the run wrote (or resumed from).
	Checkpoint string `json:"checkpoint,omitempty"`
	// ResumedFrom is the checkpoint the run continued from, if it did.
	ResumedFrom string `json:"resumed_from,omitempty"`
	// StoppedEarly is set when early stopping ended the run before its last step.
	StoppedEarly bool `json:"stopped_early,omitempty"`
	// AlreadyDone is set when a resumed run had nothing left to do.
	AlreadyDone bool `json:"already_done,omitempty"`
}

// Progress is the state after one optimizer step, for progress displays.
type Progress struct {
	Step, Total        int
	Epoch              float64 // epochs done, fractional (as HF Trainer logs it)
	Loss, LR, GradNorm float64
	TokensPerS         float64
	Elapsed, ETA       time.Duration
}

// RunOptions say how a run treats an existing run folder.
type RunOptions struct {
	// Resume continues a run: "auto" (resume the run in Config.Out if it
	// has a checkpoint, else start it), a run folder (its newest valid
	// checkpoint) or a checkpoint folder RUN/checkpoints/step-N.
	Resume string
	// Force accepts settings that differ from the checkpoint's (recorded
	// in the log and in config.yaml).
	Force bool
	// NoLock skips the run folder's lock (filesystems without locks).
	NoLock bool
	// Comm is the group of processes the run trains in, data-parallel (nil:
	// this one). Every process calls Run with the same settings; rank 0
	// owns the run folder (lock, logs, checkpoints, adapters), which the
	// others read a checkpoint from when resuming (a shared filesystem).
	Comm Comm
}

// Schedule returns the learning rate at step (0-based) of total: linear warm-up
// to lr, then constant, linear or cosine decay to minRatio·lr.
func Schedule(kind string, lr float64, step, warmup, total int, minRatio float64) float64 {
	if warmup > 0 && step < warmup {
		return lr * float64(step+1) / float64(warmup)
	}
	if kind == "constant" || total <= warmup {
		return lr
	}
	p := float64(step-warmup) / float64(max(1, total-warmup))
	p = min(1, max(0, p))
	floor := lr * minRatio
	if kind == "linear" {
		return floor + (lr-floor)*(1-p)
	}
	return floor + (lr-floor)*0.5*(1+math.Cos(math.Pi*p))
}

// Run trains an adapter as c says, writing the run folder c.Out; o says
// whether it continues a run there. log receives progress lines; onStep,
// when not nil, is called after every step (a progress bar). Cancelling ctx
// stops after the current step, saving a checkpoint and the adapter.
//
// With a group (o.Comm), every process returns the same error together (a
// *GroupError, or ErrInterrupted, or ErrDiverged in one) but for a failed
// write of rank 0's, which only it returns: the caller then ends the
// group (Comm.Abort), whose other processes would wait for it.
func Run(ctx context.Context, c Config, o RunOptions, log *slog.Logger, onStep func(Progress)) (_ *Result, err error) {
	cm := o.Comm
	if cm == nil {
		cm = Local{}
	}
	inLoop := false
	if cm.Size() > 1 {
		// Before the loop every error is every process's: either agreed
		// (agree) or decided by what they all have (the settings, the
		// checkpoint).
		defer func() {
			var ge *GroupError
			if err != nil && !inLoop && !errors.As(err, &ge) {
				err = &GroupError{Rank: cm.Rank(), Err: err}
			}
		}()
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := trainsIn(c.ComputeDType); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkShare(c.GradAccum, cm.Size()); err != nil {
		return nil, err
	}
	lead := cm.Rank() == 0
	run := filepath.Clean(c.Out)
	// Rank 0 owns the folder and chooses between a fresh start and a
	// resume; the others learn its choice (or its error).
	var rd *runDir
	var ck *checkpoints.Checkpoint
	if lead {
		rd, ck, err = openRun(run, c, o, log)
		if rd != nil {
			defer rd.Close()
		}
	}
	if ck, err = shareChoice(cm, ck, err); err != nil {
		return nil, err
	}

	// A resume checks the settings before loading anything.
	var ts *trainerState
	var forced []Change
	if ck != nil {
		was, err := readCheckpointConfig(ck)
		if err == nil {
			ts, err = readState(ck)
		}
		if err = agree(cm, err); err != nil {
			return nil, err
		}
		if forced = configChanges(was, &c); len(forced) > 0 && !o.Force {
			return nil, fmt.Errorf("resume from %s: settings differ from the checkpoint's: %s; pass --force to continue with the new values", ck.Dir, joinChanges(forced))
		}
		if ts.State.Done() && len(forced) == 0 { // nothing to load
			r := &runner{t: &Trainer{State: ts.State}, res: &Result{Adapter: filepath.Join(run, "adapter"), Checkpoint: ck.Dir, ResumedFrom: ck.Dir, AlreadyDone: true}}
			r.fillResult()
			log.Info("the run is already complete", "checkpoint", ck.Dir, "step", ts.State.Step, "of", ts.State.Total, "stopped", ts.State.Stopped)
			return r.res, nil
		}
	}

	s, err := OpenSession(c, log)
	if s != nil {
		defer s.Close()
	}
	if err = agree(cm, err); err != nil {
		return nil, err
	}
	s.Comm = cm
	if err := sameInputs(cm, s.Prints, func(r int, k string) {
		log.Warn("a rank runs another kernel path: its gradients round differently, so the result depends on where ranks run", "rank", r, "kernel", k, "rank_0", s.Prints.Kernel)
	}); err != nil {
		return nil, err
	}
	if cm.Size() > 1 {
		log.Info("data-parallel", "ranks", cm.Size(), "micro_batches_per_rank", c.GradAccum/cm.Size(), "grad_accum", c.GradAccum)
	}
	c.MaxSeqLen = s.Config.MaxSeqLen // 0 resolved by the model's context
	t := s.NewTrainer()
	res := &Result{Adapter: filepath.Join(run, "adapter")}
	if ck != nil {
		pc := printChanges(ts.Fingerprints, s.Prints)
		if len(pc) > 0 && !o.Force {
			return nil, fmt.Errorf("resume from %s: what the run trains on changed: %s; pass --force to continue anyway", ck.Dir, joinChanges(pc))
		}
		forced = append(forced, pc...)
		err := t.restore(ck, ts)
		if err = agree(cm, err); err != nil {
			return nil, err
		}
		if t.State.PerEpoch != s.PerEpoch && len(forced) == 0 {
			return nil, fmt.Errorf("resume from %s: %d micro-batches per epoch, the checkpoint's run had %d", ck.Dir, s.PerEpoch, t.State.PerEpoch)
		}
		if len(forced) > 0 { // the new settings define the rest of the run
			t.State.PerEpoch, t.State.Total, t.State.Stopped = s.PerEpoch, s.TotalSteps(), ""
			log.Warn("resume --force: settings changed", "step", t.State.Step, "changes", joinChanges(forced))
		}
		if ts.Fingerprints.Kernel != s.Prints.Kernel {
			log.Warn("resuming on another kernel path: the run continues, but not bit for bit as it would have", "checkpoint", ts.Fingerprints.Kernel, "now", s.Prints.Kernel)
		}
		res.ResumedFrom, res.Checkpoint = ck.Dir, ck.Dir
	}
	// Rank 0 writes the folder; the others write nothing (a nil writer).
	var mw *metricsWriter
	if lead {
		err = func() error {
			if ck != nil {
				if err := setAside(run, ck.Manifest.Step, log); err != nil {
					return err
				}
				log.Info("resumed", "checkpoint", ck.Dir, "step", t.State.Step, "of", t.State.Total, "epoch", fmt.Sprintf("%.2f", t.State.Epoch()))
			}
			var err error
			if mw, err = rd.openMetrics(t.State.Step, ck != nil); err != nil {
				return err
			}
			cfgText := c.YAML()
			if ck != nil {
				cfgText += resumeNotes(filepath.Join(run, configFile), t.State.Step, forced)
			}
			return checkpoints.WriteFileAtomic(filepath.Join(run, configFile), []byte(cfgText))
		}()
	}
	if err = agree(cm, err); err != nil {
		return nil, err
	}
	r := &runner{t: t, s: s, c: &c, run: run, res: res, mw: mw, log: log, lastSaved: -1, lead: lead, group: cm.Size() > 1}
	if ck != nil {
		r.lastSaved = t.State.Step
	}
	inLoop = true
	return r.loop(ctx, onStep)
}

// shareChoice gives every process rank 0's choice of checkpoint (nil: a
// fresh start) or its error, which every process then returns.
func shareChoice(cm Comm, ck *checkpoints.Checkpoint, err error) (*checkpoints.Checkpoint, error) {
	if cm.Size() == 1 {
		return ck, err
	}
	msg := []byte{0}
	switch {
	case err != nil:
		msg = append([]byte{'E'}, err.Error()...)
	case ck != nil:
		msg = append([]byte{'C'}, ck.Dir...)
	}
	if cm.Rank() != 0 {
		msg = nil
	}
	all, gerr := allGatherBytes(cm, msg)
	if gerr != nil {
		return nil, gerr
	}
	m := all[0]
	switch {
	case cm.Rank() == 0 && err != nil:
		return nil, &GroupError{Rank: 0, Err: err}
	case len(m) > 0 && m[0] == 'E':
		return nil, &GroupError{Rank: 0, Err: errors.New(string(m[1:]))}
	case len(m) > 0 && m[0] == 'C':
		if cm.Rank() == 0 {
			return ck, agree(cm, nil)
		}
		// The others read the same checkpoint: the run folder is on a
		// filesystem every rank sees.
		c, err := checkpoints.OpenCheckpoint(string(m[1:]))
		if err != nil {
			err = fmt.Errorf("%v (rank 0 resumes from it: every rank needs to see the run folder, on a shared filesystem)", err)
		}
		return c, agree(cm, err)
	}
	return nil, agree(cm, nil)
}

// openRun opens the run folder (rank 0's) and finds what a run continues
// from: nil for a fresh start (an earlier run's files removed when
// --overwrite or --resume auto says so).
func openRun(run string, c Config, o RunOptions, log *slog.Logger) (*runDir, *checkpoints.Checkpoint, error) {
	resumeCkpt := ""
	if o.Resume != "" && o.Resume != "auto" {
		var r string
		r, resumeCkpt = ResumeTarget(o.Resume)
		if r != run {
			return nil, nil, fmt.Errorf("--resume %s continues the run in %s, but --out is %s", o.Resume, r, c.Out)
		}
	}
	rd, removed, err := openRunDir(run, o.NoLock)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range removed {
		log.Info("removed what a killed run left", "path", p)
	}

	// What is in the folder decides between a fresh start and a resume.
	var ck *checkpoints.Checkpoint
	files, foreign, err := rd.contents()
	if err != nil {
		return rd, nil, err
	}
	warn := func(e error) { log.Warn("skipping a damaged checkpoint", "problem", e.Error()) }
	switch {
	case o.Resume == "":
		if len(files) > 0 && !c.Overwrite {
			return rd, nil, fmt.Errorf("run folder %s already holds a run (%s): continue it with --resume %s, or start again with --overwrite (removes its files)", run, describeRun(run, files), run)
		}
		if foreign && !c.Overwrite {
			return rd, nil, fmt.Errorf("run folder %s is not empty and holds no lowrank run: choose a new or empty --out (or pass --overwrite to write beside its files)", run)
		}
		if len(files) > 0 {
			log.Info("--overwrite: removing the previous run", "folder", run, "had", describeRun(run, files))
			if err := rd.clear(); err != nil {
				return rd, nil, err
			}
		}
	case o.Resume == "auto":
		if ck, err = findCheckpoint(run, "", warn); err != nil {
			return rd, nil, err
		}
		if ck == nil && len(files) > 0 {
			// A run killed before its first checkpoint left only its start:
			// begin again. Anything more is not auto's to remove.
			steps, _ := checkpoints.ListCheckpoints(run)
			for _, f := range files {
				if f != "config.yaml" && f != "metrics.jsonl" && (f != "checkpoints" || len(steps) > 0) {
					return rd, nil, fmt.Errorf("--resume auto: run folder %s holds a run (%s) but no checkpoint to continue from: resume or remove it by hand, or start again with --overwrite", run, describeRun(run, files))
				}
			}
			log.Info("--resume auto: no checkpoint yet, starting the run again", "folder", run)
			if err := rd.clear(); err != nil {
				return rd, nil, err
			}
		} else if ck == nil && foreign {
			return rd, nil, fmt.Errorf("run folder %s is not empty and holds no lowrank run: choose a new or empty --out", run)
		}
	default:
		if ck, err = findCheckpoint(run, resumeCkpt, warn); err != nil {
			return rd, nil, err
		}
		if ck == nil {
			return rd, nil, noCheckpoint(run)
		}
	}

	return rd, ck, nil
}

// setAside moves the checkpoints newer than the one a run resumes from out
// of its way: damaged ones (skipped) to checkpoints/damaged-step-N, intact
// ones (a later state the user chose not to continue) to
// checkpoints/abandoned-step-N. Left in place, they would be taken for this
// run's newest by the next resume and by pruning. Nothing is deleted.
func setAside(run string, step int, log *slog.Logger) error {
	steps, err := checkpoints.ListCheckpoints(run)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if s <= step {
			continue
		}
		from := checkpoints.StepDir(run, s)
		kind := "abandoned"
		if _, err := checkpoints.OpenCheckpoint(from); err != nil {
			kind = "damaged"
		}
		to := filepath.Join(filepath.Dir(from), fmt.Sprintf("%s-step-%d", kind, s))
		for i := 2; ; i++ {
			if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
				break
			}
			to = filepath.Join(filepath.Dir(from), fmt.Sprintf("%s-step-%d.%d", kind, s, i))
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
		log.Warn("a checkpoint newer than the one resumed from is set aside", "from", from, "to", to)
	}
	return nil
}

// resumeNotes are config.yaml's comment lines that record forced changes:
// the previous file's, and this resume's.
func resumeNotes(path string, step int, forced []Change) string {
	var b strings.Builder
	if raw, err := os.ReadFile(path); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "# resumed at step ") {
				b.WriteString(line + "\n")
			}
		}
	}
	if len(forced) > 0 {
		fmt.Fprintf(&b, "# resumed at step %d with --force: %s\n", step, joinChanges(forced))
	}
	return b.String()
}

// runner is one run's loop and its saves.
type runner struct {
	t         *Trainer
	s         *Session
	c         *Config
	run       string
	res       *Result
	mw        *metricsWriter
	log       *slog.Logger
	lastSaved int // step of the newest checkpoint on disk (-1: none)
	// lead: this process writes the run folder (rank 0, or the only one);
	// group: it trains with others, which decide with it when to stop.
	lead, group bool
}

func (r *runner) loop(ctx context.Context, onStep func(Progress)) (*Result, error) {
	t, st, c, log := r.t, &r.t.State, r.c, r.log
	res := r.res
	defer r.fillResult()
	if st.Done() {
		res.AlreadyDone = true
		log.Info("the run is already complete", "step", st.Step, "of", st.Total, "stopped", st.Stopped)
		return res, nil
	}
	if len(r.s.Val) > 0 && st.Step == 0 {
		vl, _, err := t.Evaluate()
		if err != nil {
			return nil, err
		}
		if err := r.mw.write(map[string]any{"step": 0, "val_loss": vl, "val_ppl": math.Exp(vl)}); err != nil {
			return r.fail(err)
		}
		log.Info("eval", "step", 0, "val_loss", fmt.Sprintf("%.4f", vl))
	}
	every, _ := c.saveEvery()
	start, elapsed0, first := time.Now(), st.Elapsed, st.Step
	// A group stops together: after the step in which any of its processes
	// was asked to (the step's all-gather tells them all).
	t.StopRequested = func() bool { return ctx.Err() != nil }
	for !st.Done() {
		if ctx.Err() != nil && !r.group { // before the first step, or after a save
			return r.interrupted()
		}
		before := st.Micro
		sr, err := t.Step()
		if errors.Is(err, ErrDiverged) {
			return r.diverged(err)
		}
		if err != nil {
			return nil, err
		}
		st.Elapsed = elapsed0 + time.Since(start).Seconds()
		tps := float64(st.Tokens) / max(st.Elapsed, 1e-9)
		line := map[string]any{"step": st.Step, "epoch": st.Epoch(), "loss": sr.Loss, "lr": sr.LR, "grad_norm": sr.GradNorm,
			"tokens": st.Tokens, "tokens_per_s": tps, "elapsed_s": st.Elapsed}
		if r.group { // what the step's all-gather received, and its time
			line["comm_bytes"], line["comm_s"], line["comm_wait_s"] = sr.Comm.Bytes, sr.Comm.Secs, sr.Comm.Wait
		}
		if err := r.mw.write(line); err != nil {
			return r.fail(err)
		}
		stop := ctx.Err() != nil
		if r.group {
			stop = sr.Stop
		}
		// The ETA follows this process's pace (a resumed run's earlier steps
		// may have run on another machine).
		perStep := time.Since(start).Seconds() / float64(max(st.Step-first, 1))
		eta := time.Duration(perStep * float64(st.Total-st.Step) * float64(time.Second))
		if onStep != nil {
			onStep(Progress{Step: st.Step, Total: st.Total, Epoch: st.Epoch(), Loss: sr.Loss, LR: sr.LR, GradNorm: sr.GradNorm,
				TokensPerS: tps, Elapsed: time.Duration(st.Elapsed * float64(time.Second)), ETA: eta})
		}
		if c.LogEvery > 0 && (st.Step%c.LogEvery == 0 || st.Step == 1 || st.Step == st.Total) {
			log.Info("step", "step", st.Step, "of", st.Total, "epoch", fmt.Sprintf("%.2f", st.Epoch()), "loss", fmt.Sprintf("%.4f", sr.Loss), "lr", fmt.Sprintf("%.2e", sr.LR),
				"grad_norm", fmt.Sprintf("%.3f", sr.GradNorm), "tokens_per_s", fmt.Sprintf("%.0f", tps), "eta", eta.Round(time.Second))
		}
		var evalLoss *float64
		if len(r.s.Val) > 0 && ((c.EvalEvery > 0 && st.Step%c.EvalEvery == 0) || st.Step == st.Total) {
			vl, best, err := t.Evaluate()
			if err != nil {
				return nil, err
			}
			evalLoss = &vl
			if err := r.mw.write(map[string]any{"step": st.Step, "val_loss": vl, "val_ppl": math.Exp(vl)}); err != nil {
				return r.fail(err)
			}
			log.Info("eval", "step", st.Step, "val_loss", fmt.Sprintf("%.4f", vl))
			if best {
				if err := r.saveAdapter("best"); err != nil {
					return r.fail(err)
				}
			}
			if c.EarlyStoppingPatience > 0 && st.Stale >= c.EarlyStoppingPatience && st.Step < st.Total {
				log.Info("early stopping", "step", st.Step, "evaluations_without_improvement", st.Stale, "best_val_loss", fmt.Sprintf("%.4f", *st.BestValLoss))
				st.Stopped = "early stopping"
			}
		}
		due := every > 0 && st.Step%every == 0 || every < 0 && before/int64(st.PerEpoch) != st.Micro/int64(st.PerEpoch)
		if due || st.Done() || stop {
			if err := r.checkpoint(evalLoss); err != nil {
				return r.fail(err)
			}
		}
		if stop {
			return r.interrupted()
		}
	}
	if err := r.saveAdapter("adapter"); err != nil {
		return r.fail(err)
	}
	return res, nil
}

func (r *runner) fillResult() {
	st, res := &r.t.State, r.res
	res.Steps, res.Total, res.FinalLoss = st.Step, st.Total, st.Loss
	if st.BaseValLoss != nil {
		res.BaseValLoss = *st.BaseValLoss
	}
	if st.BestValLoss != nil && !math.IsInf(*st.BestValLoss, 0) {
		res.BestValLoss = *st.BestValLoss
	}
	res.StoppedEarly = st.Stopped == "early stopping"
}

// info is the lowrank.json of every adapter the run writes.
func (r *runner) info() *checkpoints.AdapterInfo {
	s, c := r.s, r.c
	i := &checkpoints.AdapterInfo{Quant: c.Quant, DoubleQuant: c.ModelOptions().DoubleQuant, MaxSeqLen: c.MaxSeqLen,
		Step: r.t.State.Step, KernelPath: s.Prints.Kernel}
	if c.GPTQTokens > 0 {
		i.GPTQ = &checkpoints.GPTQInfo{Tokens: c.GPTQTokens, Tune: c.GPTQTune, Seed: c.Seed}
	}
	if c.ChatTemplate != "" {
		i.ChatTemplate, i.ChatTemplateName = s.Tok.ChatTemplate(), c.ChatTemplate
	}
	i.Base.Path, i.Base.Fingerprint = c.Model, s.Prints.Base
	return i
}

func (r *runner) saveAdapter(name string) error {
	if !r.lead {
		return nil
	}
	return checkpoints.SaveAdapter(filepath.Join(r.run, name), r.s.Adapter, r.c.Model, r.info())
}

// checkpoint writes the state at the current step (metrics synced first,
// so that the lines it covers are on disk), then prunes old checkpoints.
func (r *runner) checkpoint(valLoss *float64) error {
	st := &r.t.State
	if r.lastSaved == st.Step {
		return nil
	}
	if !r.lead { // rank 0 writes it
		r.lastSaved, r.res.Checkpoint = st.Step, checkpoints.StepDir(r.run, st.Step)
		return nil
	}
	if err := r.mw.sync(); err != nil {
		return err
	}
	ck, err := checkpoints.WriteCheckpoint(r.run, st.Step, valLoss, func(dir string) error {
		if err := checkpoints.WriteAdapterFiles(dir, r.s.Adapter, r.c.Model, r.info()); err != nil {
			return err
		}
		return r.t.writeState(dir)
	})
	if err != nil {
		return err
	}
	r.lastSaved, r.res.Checkpoint = st.Step, ck.Dir
	removed, err := checkpoints.PruneCheckpoints(r.run, r.c.KeepLast)
	for _, d := range removed {
		r.log.Debug("removed an old checkpoint", "path", d)
	}
	return err
}

// fail ends the run after a failed save or write, keeping what is on disk:
// it tries once more to save the state as a checkpoint, then says where
// the newest one is.
func (r *runner) fail(cause error) (*Result, error) {
	st := &r.t.State
	if r.lastSaved != st.Step {
		if err := r.checkpoint(nil); err != nil {
			r.log.Debug("checkpoint after a failed save", "error", err)
		}
	}
	if r.res.Checkpoint == "" {
		return nil, fmt.Errorf("%v; the run stopped at step %d of %d, before any checkpoint was written", cause, st.Step, st.Total)
	}
	return nil, fmt.Errorf("%v; the run stopped at step %d of %d; its newest checkpoint is %s (continue with: lowrank train --resume %s)", cause, st.Step, st.Total, r.res.Checkpoint, r.run)
}

// saveState writes the checkpoint at the current step (unless it is on
// disk already) and the adapter, before the run ends early.
func (r *runner) saveState() error {
	if err := r.checkpoint(nil); err != nil {
		return err
	}
	if err := r.saveAdapter("adapter"); err != nil {
		return err
	}
	r.fillResult()
	return nil
}

// interrupted saves and says where.
func (r *runner) interrupted() (*Result, error) {
	if err := r.saveState(); err != nil {
		return r.fail(err)
	}
	st := &r.t.State
	return r.res, fmt.Errorf("%w at step %d of %d: checkpoint %s", ErrInterrupted, st.Step, st.Total, r.res.Checkpoint)
}

// diverged keeps the last finite state (the failed step changed nothing)
// as a checkpoint and the adapter, and says how to continue.
func (r *runner) diverged(cause error) (*Result, error) {
	if err := r.saveState(); err != nil {
		return r.fail(err)
	}
	st := &r.t.State
	if r.group { // every process diverges at the same step
		cause = &GroupError{Rank: 0, Err: cause}
	}
	return nil, fmt.Errorf("%w (lower --lr?); the last finite state, step %d, is in %s; continue from it with: lowrank train --resume %s --lr %s --force (or from an earlier checkpoint: --resume %s/step-N)",
		cause, st.Step, r.res.Checkpoint, r.run, strconv.FormatFloat(r.c.LR/10, 'g', 3, 64), checkpoints.CheckpointsDir(r.run))
}

// StoredSummary says what share of the base weights' parameters is held in
// format as: "96.2% of parameters (35/47 tensors)".
func StoredSummary(m *model.Model, as string) string {
	var n, all int64
	k := 0
	for _, s := range m.Stored {
		e := int64(s.Shape[0]) * int64(s.Shape[1])
		all += e
		if s.As == as {
			n += e
			k++
		}
	}
	return fmt.Sprintf("%.1f%% of parameters (%d/%d tensors)", 100*float64(n)/float64(max(all, 1)), k, len(m.Stored))
}

func padID(m *model.Model, tok *tokenizer.Tokenizer) int32 {
	if m.Config.Pad >= 0 {
		return int32(m.Config.Pad)
	}
	if tok != nil && tok.EOS >= 0 {
		return tok.EOS
	}
	return 0
}

func toModel(b *data.Batch) *model.Batch {
	return &model.Batch{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos, Seg: b.Seg, Targets: b.Targets}
}

func jsonIndent(v any) ([]byte, error) {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(raw, '\n'), nil
}

// f32Bytes views float32 values as little-endian bytes (no copy).
func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// trainsIn refuses a compute dtype training has no backward pass for.
func trainsIn(computeDType string) error {
	if computeDType == "int8" {
		return fmt.Errorf("compute_dtype int8: int8 computes the forward products of eval and generate only; train in f32, bf16 or auto")
	}
	return nil
}
