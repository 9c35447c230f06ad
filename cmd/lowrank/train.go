package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newTrain() *cobra.Command {
	var (
		configFile, logFormat string
		dryRun, asJSON        bool
		noProgress            bool
	)
	flagVals := map[string]*string{}
	c := &cobra.Command{
		Use:   "train --model M --data D --out RUN [--config run.yaml] [flags]",
		Short: "Fine-tune a LoRA adapter",
		Long: `Trains a LoRA adapter on a model's frozen (quantized) base. Settings come from
the defaults, then --config (JSON or flat YAML with the flag names as keys), then flags.
The run directory gets config.yaml, metrics.jsonl, adapter/ and best/ (PEFT layout).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := train.Defaults()
			if configFile != "" {
				if err := train.ReadConfigFile(&cfg, configFile); err != nil {
					return err
				}
			}
			var setErr error
			cmd.Flags().Visit(func(f *pflagFlag) {
				if v, ok := flagVals[f.Name]; ok && setErr == nil {
					setErr = cfg.Set(strings.ReplaceAll(f.Name, "-", "_"), *v)
				}
			})
			if setErr != nil {
				return usageError{cmd: "train", err: setErr}
			}
			if err := cfg.Validate(); err != nil {
				return usageError{cmd: "train", err: err}
			}
			// On a terminal: a progress bar, with the other log lines above it.
			// Otherwise (or --no-progress, or JSON logs): a log line every --log-every steps.
			var bar *progressBar
			var onStep func(train.Progress)
			var h slog.Handler
			switch logFormat {
			case "json":
				h = slog.NewJSONHandler(os.Stderr, nil)
			case "text":
				if !noProgress && isTerminal(os.Stderr) && os.Getenv("TERM") != "dumb" {
					bar = newProgressBar(os.Stderr)
					onStep = bar.Step
					h = dropSteps{slog.NewTextHandler(bar, nil)}
				} else {
					h = slog.NewTextHandler(os.Stderr, nil)
				}
			default:
				return usageError{cmd: "train", err: fmt.Errorf("--log-format %q: want text or json", logFormat)}
			}
			log := slog.New(h)
			if dryRun {
				rep, err := train.DryRun(cfg)
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), rep)
				return nil
			}
			graceful.Store(true)
			defer graceful.Store(false)
			res, err := train.Run(cmd.Context(), cfg, log, onStep)
			if bar != nil {
				bar.Finish()
			}
			if errors.Is(err, train.ErrInterrupted) {
				fmt.Fprintf(os.Stderr, "lowrank: %v\n(exact resume from checkpoints is not implemented yet: start again from the adapter with --adapter %s)\n", err, res.Adapter)
				return exitCode(130)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, res)
			}
			fmt.Fprintf(out, "trained %d steps; final loss %.4f", res.Steps, res.FinalLoss)
			if res.BaseValLoss > 0 {
				fmt.Fprintf(out, "; validation loss %.4f → best %.4f (%.1f%% lower)", res.BaseValLoss, res.BestValLoss, 100*(1-res.BestValLoss/res.BaseValLoss))
			}
			fmt.Fprintf(out, "\nadapter: %s\n", res.Adapter)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&configFile, "config", "", "run configuration (JSON or flat YAML); flags override it")
	f.StringVar(&logFormat, "log-format", "text", "log lines on stderr: text or json")
	f.BoolVar(&dryRun, "dry-run", false, "print the resolved configuration, parameter counts, memory estimate and dataset size, then exit")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar on a terminal: a log line every --log-every steps instead")
	// One flag per configuration field, named like its key with hyphens.
	defaults := train.Defaults()
	v := reflect.ValueOf(defaults)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		name := strings.ReplaceAll(key, "_", "-")
		s := new(string)
		flagVals[name] = s
		def := fmt.Sprint(v.Field(i).Interface())
		f.StringVar(s, name, def, flagHelp[key])
		if v.Field(i).Kind() == reflect.Bool {
			f.Lookup(name).NoOptDefVal = "true"
		}
	}
	return c
}

var flagHelp = map[string]string{
	"model": "Hugging Face model directory or .gguf file", "data": "training data: .parquet/.jsonl/.json/.txt file, glob or directory",
	"val": "validation data (default: --val-fraction of --data)", "out": "run directory", "adapter": "start from this PEFT adapter",
	"quant": "base weights as f32|f16|bf16|q8_0|q4_0|nf4", "gptq_tokens": "with q4_0/nf4: quantize the base by GPTQ over this many tokens sampled from the model (0: off; e.g. 4096)",
	"gptq_tune": "with gptq-tokens: passes tuning the block scales by distillation to the 8-bit model over the same tokens (0: off; e.g. 2)",
	"targets":   "modules: names, globs, or all-linear",
	"optimizer": "adamw or sgd", "lr_schedule": "constant, linear or cosine",
	"grad_accum": "micro-batches per optimizer step", "max_seq_len": "tokens per sequence", "pack": "pack several examples per sequence",
	"train_on_inputs": "supervise prompts and user turns too", "chat_template": "chatml, llama3, simple or a template file",
	"columns": "column mapping, e.g. prompt=question,completion=answer", "text_unit": ".txt/.md files: one example per blank-line block, or per file",
	"cache_dir":  "token and GPTQ base cache: auto ($LOWRANK_CACHE or ~/.cache/lowrank), off, or a directory",
	"truncation": "examples over max-seq-len: keep-answer (drop the prompt's start, then the answer's end) or right", "activation_checkpointing": "recompute blocks in backward (less memory)",
	"checkpoint_layers":        "recompute only the first N blocks (memory between none and all; implies activation checkpointing)",
	"early_stopping_patience":  "stop after this many evaluations without improvement (0: off)",
	"early_stopping_threshold": "improvement smaller than this does not count (early stopping)",
	"eval_every":               "evaluate every N steps (and at the end)", "log_every": "a log line every N steps when there is no progress bar",
}
