package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

// inspectTraining describes a checkpoint, an adapter or a run folder; it
// reports false when path is none of them.
func inspectTraining(cmd *cobra.Command, path string, asJSON bool) (bool, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false, nil
	}
	out := cmd.OutOrStdout()
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(path, name)); return err == nil }
	switch {
	case exists(checkpoints.ManifestFile) || exists("trainer_state.json"):
		ci, err := train.InspectCheckpoint(path)
		if err != nil {
			return true, err
		}
		if asJSON {
			return true, writeJSON(out, ci)
		}
		printCheckpoint(out, ci, true)
		if !ci.Intact {
			return true, exitCode(1)
		}
		return true, nil
	case exists("adapter_config.json"):
		s, err := checkpoints.Summarize(path)
		if err != nil {
			return true, err
		}
		if asJSON {
			return true, writeJSON(out, s)
		}
		printAdapter(out, "adapter "+path, s)
		return true, nil
	case train.IsRun(path):
		ri, err := train.InspectRun(path)
		if err != nil {
			return true, err
		}
		if asJSON {
			return true, writeJSON(out, ri)
		}
		printRun(out, ri)
		return true, nil
	}
	return false, nil
}

func printAdapter(out io.Writer, title string, s *checkpoints.Summary) {
	kind := "LoRA"
	if s.DoRA {
		kind = "DoRA"
	}
	fmt.Fprintf(out, "%s: %s r=%d alpha=%g (scale %.4g%s), dropout %g, %d adapted projections (targets %s)\n",
		title, kind, s.Rank, s.Alpha, s.Scale, map[bool]string{true: ", rsLoRA", false: ""}[s.RSLoRA], s.Dropout, s.Layers, strings.Join(s.Targets, ", "))
	fmt.Fprintf(out, "  %d tensors, %d trainable values, %.2f MiB", s.Tensors, s.Values, float64(s.Bytes)/(1<<20))
	if len(s.Saved) > 0 {
		fmt.Fprintf(out, "; also trains %s", strings.Join(s.Saved, ", "))
	}
	fmt.Fprintln(out)
	switch i := s.Info; {
	case s.InfoError != "":
		fmt.Fprintf(out, "  lowrank.json: %s\n", s.InfoError)
	case i == nil:
		fmt.Fprintf(out, "  no lowrank.json (not written by lowrank): eval and generate use their defaults; base %q\n", s.Base)
	default:
		held := i.Quant
		if i.DoubleQuant {
			held += " (double-quantized scales)"
		}
		if g := i.GPTQ; g != nil {
			held += fmt.Sprintf(", GPTQ over %d tokens, seed %d", g.Tokens, g.Seed)
			if g.Tune > 0 {
				held += fmt.Sprintf(", scales tuned %d passes", g.Tune)
			}
		}
		fmt.Fprintf(out, "  trained %d steps over %s, base held as %s, max_seq_len %d", i.Step, i.Base.Path, held, i.MaxSeqLen)
		if i.ChatTemplateName != "" {
			fmt.Fprintf(out, ", chat template %s", i.ChatTemplateName)
		}
		fmt.Fprintf(out, "\n  base fingerprint %s\n", i.Base.Fingerprint)
	}
}

func fmtLoss(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f", *v)
}

func printCheckpoint(out io.Writer, ci *train.CheckpointInfo, files bool) {
	if !ci.Intact {
		fmt.Fprintf(out, "checkpoint %s: DAMAGED: %s\n", ci.Dir, ci.Problem)
		return
	}
	s := ci.State
	fmt.Fprintf(out, "checkpoint %s: intact (format version %d, %d files verified), written %s\n", ci.Dir, ci.Version, len(ci.Files), ci.Created)
	fmt.Fprintf(out, "  step %d of %d, epoch %.2f, %d tokens (%d supervised), loss %.4f", s.Step, s.Total, s.Epoch(), s.Tokens, s.Supervised, s.Loss)
	if s.BestValLoss != nil {
		fmt.Fprintf(out, "; validation: last %s at step %d, best %s at step %d, base %s", fmtLoss(s.ValLoss), s.ValStep, fmtLoss(s.BestValLoss), s.BestStep, fmtLoss(s.BaseValLoss))
	}
	if s.Stopped != "" {
		fmt.Fprintf(out, "; stopped: %s", s.Stopped)
	}
	fmt.Fprintln(out)
	if c := ci.Config; c != nil {
		fmt.Fprintf(out, "  model %s (%s), data %s; rank %d, alpha %g, %s lr %g %s, batch %d×%d, grad_accum %d, seed %d\n",
			c.Model, c.Quant, c.Data, c.Rank, c.Alpha, ci.Optimizer, c.LR, c.LRSchedule, c.BatchSize, c.MaxSeqLen, c.GradAccum, c.Seed)
	}
	if f := ci.Fingerprints; f != nil {
		fmt.Fprintf(out, "  fingerprints: base %s, tokenizer %s, data %s; kernel path %s\n", f.Base, short(f.Tokenizer), short(f.Data), f.Kernel)
	}
	if !files {
		return
	}
	what := map[string]string{
		"adapter_config.json": "PEFT adapter config", "adapter_model.safetensors": "adapter weights (PEFT names)",
		"lowrank.json": "how the base was held", "optimizer.safetensors": ci.Optimizer + " state by parameter name",
		"trainer_state.json": "step, data cursor, losses, early stopping, fingerprints", "config.yaml": "the resolved configuration",
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  file\tbytes\tholds")
	for _, f := range ci.Files {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", f.Name, f.Bytes, what[f.Name])
	}
	tw.Flush()
}

func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

func printRun(out io.Writer, ri *train.RunInfo) {
	fmt.Fprintf(out, "run %s: %s", ri.Dir, ri.Status)
	if ri.Newest != nil {
		fmt.Fprintf(out, ", step %d of %d", ri.Step, ri.Total)
	}
	if ri.LockedBy != "" {
		fmt.Fprintf(out, "; held by %s", ri.LockedBy)
	}
	fmt.Fprintln(out)
	if c := ri.Config; c != nil {
		fmt.Fprintf(out, "  model %s (%s), data %s; rank %d, alpha %g, lr %g %s, batch %d×%d, grad_accum %d, seed %d\n",
			c.Model, c.Quant, c.Data, c.Rank, c.Alpha, c.LR, c.LRSchedule, c.BatchSize, c.MaxSeqLen, c.GradAccum, c.Seed)
	}
	m := ri.Metrics
	fmt.Fprintf(out, "  metrics.jsonl: %d lines up to step %d; last loss %s; validation last %s, best %s (step %d)", m.Lines, m.LastStep, fmtLoss(m.LastLoss), fmtLoss(m.LastValLoss), fmtLoss(m.BestValLoss), m.BestValStep)
	if m.Damaged > 0 {
		fmt.Fprintf(out, "; %d damaged lines", m.Damaged)
	}
	fmt.Fprintln(out)
	if len(ri.Checkpoints) == 0 {
		fmt.Fprintln(out, "  no checkpoints")
	}
	for _, ci := range ri.Checkpoints {
		if !ci.Intact {
			fmt.Fprintf(out, "  checkpoint step %d: DAMAGED: %s\n", ci.Step, ci.Problem)
			continue
		}
		fmt.Fprintf(out, "  checkpoint step %d: intact, loss %.4f", ci.Step, ci.State.Loss)
		if ci.State.ValStep == ci.Step && ci.State.ValLoss != nil {
			fmt.Fprintf(out, ", validation %.4f", *ci.State.ValLoss)
		}
		fmt.Fprintln(out)
	}
	for _, a := range []struct {
		name string
		s    *checkpoints.Summary
	}{{"adapter/", ri.Adapter}, {"best/", ri.Best}} {
		if a.s != nil {
			step := -1
			if a.s.Info != nil {
				step = a.s.Info.Step
			}
			fmt.Fprintf(out, "  %s: r=%d, %d tensors, step %d\n", a.name, a.s.Rank, a.s.Tensors, step)
		}
	}
}
