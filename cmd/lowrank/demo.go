package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newDemo() *cobra.Command {
	var out string
	var threads int
	c := &cobra.Command{
		Use:   "demo [--out DIR]",
		Short: "Run the whole job offline: make a small model and a dataset, fine-tune, evaluate, merge",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			graceful.Store(true)
			defer graceful.Store(false)
			r, err := train.Demo(cmd.Context(), out, threads, 0, log)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "\nlowrank demo: fine-tuned a 4-layer Llama (seeded weights, byte-level tokenizer, q8_0 base) on %s\n", r.Train)
			fmt.Fprintf(w, "  validation loss %.3f before → %.3f after (%d steps, %.0f%% lower)\n", r.Result.BaseValLoss, r.Result.BestValLoss, r.Result.Steps, 100*(1-r.Result.BestValLoss/r.Result.BaseValLoss))
			before := r.Before
			if len(before) > 100 {
				before = before[:100] + "…"
			}
			fmt.Fprintf(w, "  greedy text from %q, before: %q\n", r.Prompt, before)
			fmt.Fprintf(w, "  greedy text from %q, after:  %q\n", r.Prompt, r.After)
			fmt.Fprintf(w, "  model:   %s\n  run:     %s (config.yaml, metrics.jsonl, adapter/, best/, checkpoints/)\n  merged:  %s (Hugging Face directory)\n", r.Model, r.Run, r.Merged)
			fmt.Fprintf(w, "next: %s generate --model %s --adapter %s --prompt %q --temperature 0 --max-tokens %d\n", selfName(), r.Model, filepath.Join(r.Run, "adapter"), r.Prompt, train.DemoSampleTokens)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "demo", "directory for the demo's model, data and run")
	c.Flags().IntVar(&threads, "threads", 0, "worker threads (0: every CPU this process may use)")
	return c
}

// selfName is how to run this binary again: bin/lowrank as make builds it,
// or lowrank when it is on the PATH.
func selfName() string {
	exe, err := os.Executable()
	if err != nil {
		return "lowrank"
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
			if !strings.Contains(rel, string(filepath.Separator)) {
				rel = "." + string(filepath.Separator) + rel
			}
			return rel
		}
	}
	if p, err := exec.LookPath("lowrank"); err == nil && p == exe {
		return "lowrank"
	}
	return exe
}
