package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank/internal/mpi"
	"github.com/lowrank/lowrank/internal/sysinfo"
	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newTrain() *cobra.Command {
	var (
		configFile, logFormat string
		dryRun, asJSON        bool
		noProgress            bool
		resume                string
		force, noLock         bool
		taskIndex             int
	)
	flagVals := map[string]*string{}
	c := &cobra.Command{
		Use:   "train --model M --data D --out RUN [--config run.yaml] [flags] | --resume RUN|RUN/checkpoints/step-N|auto [--force]",
		Short: "Fine-tune a LoRA adapter",
		Long: `Trains a LoRA adapter on a model's frozen (quantized) base. Settings come from
the defaults, then --config (YAML or JSON with the flag names as keys: lists for targets,
a map for columns, data as a list of paths or of {path, weight}, augment as a list of
transforms such as "- neftune: {alpha: 5}", "- token_dropout: 0.1"), then flags.

The run folder gets config.yaml, metrics.jsonl, adapter/ and best/ (PEFT layout, with
lowrank.json: how the base was held), and checkpoints/step-N/: the adapter, optimizer
and trainer state, written every --save-every steps (or epoch), at the end, on Ctrl-C or
SIGTERM and when training diverges; --keep-last N keeps the newest N and the best.

A folder that holds a run is never overwritten: --resume RUN continues it from its newest
intact checkpoint (exactly as if it had not stopped; its config.yaml gives the settings,
flags override the ones that do not change the result, such as --threads; others need
--force), --resume RUN/checkpoints/step-N from that one, --resume auto (for schedulers)
resumes --out if it has a checkpoint and starts it otherwise; --overwrite starts again.
One process at a time owns a run folder (a lock on RUN/.lock).

Started by mpirun or srun --mpi=pmix as N ranks (the MPI build: make build-mpi), one run
trains data-parallel: each rank takes its share of every step's --grad-accum micro-batches
(N must divide it) and the gradients are summed in one fixed order, so the adapter is the
one a single process writes, bit for bit. Rank 0 logs and writes the run folder, which
every rank must see (a shared filesystem) to resume; a signal to any rank stops all of them
after the same step, with a checkpoint; --resume works on any rank count dividing --grad-accum.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := train.Defaults()
			if resume != "" && resume != "auto" {
				if cmd.Flags().Changed("out") {
					if run, _ := train.ResumeTarget(resume); filepath.Clean(*flagVals["out"]) != run {
						return usageError{cmd: "train", err: fmt.Errorf("--resume %s continues the run in %s: leave out --out, or give that folder", resume, run)}
					}
				}
				base, err := train.ResumeConfig(resume)
				if err != nil {
					return err
				}
				cfg = *base
			}
			task, err := sweepTask(cmd, configFile, taskIndex)
			if err != nil {
				return err
			}
			switch {
			case task != nil:
				// A sweep's task: its own folder, resumed if it was
				// interrupted, skipped if it is done (--resume auto).
				if cmd.Flags().Changed("out") {
					return usageError{cmd: "train", err: fmt.Errorf("--out: a sweep's task %d runs into %s (the sweep file's out/task-%d)", task.Index, task.Out, task.Index)}
				}
				if resume != "" && resume != "auto" {
					return usageError{cmd: "train", err: fmt.Errorf("--resume %s: a sweep's task resumes its own folder (%s) by itself", resume, task.Out)}
				}
				cfg, resume = task.Config, "auto"
				fmt.Fprintf(cmd.ErrOrStderr(), "lowrank: sweep %s task %d of %d (%s) in %s\n", configFile, task.Index, taskCount, task.Label(), task.Out)
			case configFile != "":
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
			if err := sysinfo.CheckThreads(cfg.Threads); err != nil {
				if !cmd.Flags().Changed("threads") { // from --config or the checkpoint's settings
					err = fmt.Errorf("%v (the run's configuration says so; --threads overrides it)", err)
				}
				return usageError{cmd: "train", err: err}
			}
			if logFormat != "json" && logFormat != "text" {
				return usageError{cmd: "train", err: fmt.Errorf("--log-format %q: want text or json", logFormat)}
			}
			// Started by mpirun (or srun) as several ranks: one data-parallel
			// run, logged by rank 0 (the others log only errors).
			var g *group
			if !dryRun {
				var err error
				if g, err = joinGroup(); err != nil {
					return err
				}
			}
			// On a terminal: a progress bar, with the other log lines above it.
			// Otherwise (or --no-progress, or JSON logs): a log line every --log-every steps.
			var bar *progressBar
			var onStep func(train.Progress)
			var h slog.Handler
			opts := &slog.HandlerOptions{}
			if g != nil && g.rank != 0 {
				opts.Level = slog.LevelError
			}
			switch {
			case logFormat == "json":
				h = slog.NewJSONHandler(os.Stderr, opts)
			case !noProgress && isTerminal(os.Stderr) && os.Getenv("TERM") != "dumb" && (g == nil || g.rank == 0):
				bar = newProgressBar(os.Stderr)
				onStep = bar.Step
				h = dropSteps{slog.NewTextHandler(bar, opts)}
			default:
				h = slog.NewTextHandler(os.Stderr, opts)
			}
			log := slog.New(h)
			var comm train.Comm
			if g != nil {
				comm = g.comm
				if g.rank != 0 {
					log = log.With("rank", g.rank)
				} else {
					log.Info("MPI", "ranks", g.size, "library", mpi.Library())
				}
			}
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
			res, err := train.Run(cmd.Context(), cfg, train.RunOptions{Resume: resume, Force: force, NoLock: noLock, Comm: comm}, log, onStep)
			if bar != nil {
				bar.Finish()
			}
			if g != nil {
				if err = g.end(err); g.rank != 0 {
					return err // rank 0 reports the run
				}
			}
			if errors.Is(err, train.ErrInterrupted) {
				fmt.Fprintf(os.Stderr, "lowrank: %v\ncontinue with: lowrank train --resume %s\n", err, cfg.Out)
				return exitCode(130)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, res)
			}
			if res.AlreadyDone {
				fmt.Fprintf(out, "the run in %s is already complete (%d of %d steps%s): nothing to do\nadapter: %s\n", cfg.Out, res.Steps, res.Total, map[bool]string{true: ", stopped early", false: ""}[res.StoppedEarly], res.Adapter)
				return nil
			}
			if res.ResumedFrom != "" {
				fmt.Fprintf(out, "resumed from %s; ", res.ResumedFrom)
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
	f.StringVar(&configFile, "config", "", "run configuration (YAML or JSON; unknown or repeated keys are errors naming the line); flags override it")
	f.StringVar(&logFormat, "log-format", "text", "log lines on stderr: text or json")
	f.BoolVar(&dryRun, "dry-run", false, "print the resolved configuration, parameter counts, memory estimate and dataset size, then exit")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar on a terminal: a log line every --log-every steps instead")
	f.StringVar(&resume, "resume", "", "continue a run: RUN (its newest intact checkpoint), RUN/checkpoints/step-N, or auto (--out's if it has a checkpoint, else start it)")
	f.BoolVar(&force, "force", false, "with --resume: accept settings or data that differ from the checkpoint's (recorded in the log and config.yaml)")
	f.BoolVar(&noLock, "no-lock", false, "do not lock the run folder (filesystems without file locks; make sure only one run uses it)")
	f.IntVar(&taskIndex, "task-index", -1, "with a sweep file as --config: run its task I into OUT/task-I, resuming it if interrupted (default: $SLURM_ARRAY_TASK_ID, then $JOB_COMPLETION_INDEX)")
	// One flag per configuration field, named like its key with hyphens.
	defaults := train.Defaults()
	v := reflect.ValueOf(defaults)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		name := strings.ReplaceAll(key, "_", "-")
		flagVals[name] = configFlag(f, name, fmt.Sprint(v.Field(i).Interface()), flagHelp[key])
	}
	return c
}

// configFlag defines flag name (a train.Config key with hyphens) with the
// field's type, default def and help, and returns where its text is kept.
func configFlag(f *pflag.FlagSet, name, def, help string) *string {
	kind := reflect.String
	t := reflect.TypeFor[train.Config]()
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("json"), ",")[0] == underscore(name) {
			kind = t.Field(i).Type.Kind()
		}
	}
	fv := &fieldValue{kind: kind, s: def, list: name == "data"}
	f.Var(fv, name, help)
	if kind == reflect.Bool {
		f.Lookup(name).NoOptDefVal = "true"
	}
	return &fv.s
}

// fieldValue is a configuration field's flag: kept as the text given (the
// config's Set parses it after --config and a checkpoint's settings), but
// checked as it is parsed and shown in --help with the field's real type.
type fieldValue struct {
	kind reflect.Kind
	s    string
	list bool // repeated flags join their values with commas (--data A --data B)
	set  bool
}

func (v *fieldValue) String() string { return v.s }

func (v *fieldValue) Set(s string) error {
	var err error
	switch v.kind {
	case reflect.Int:
		_, err = strconv.Atoi(s)
	case reflect.Uint64:
		_, err = strconv.ParseUint(s, 10, 64)
	case reflect.Float64:
		_, err = strconv.ParseFloat(s, 64)
	case reflect.Bool:
		_, err = strconv.ParseBool(s)
	}
	if err != nil {
		return fmt.Errorf("%q is not a %s", s, v.Type())
	}
	if v.list && v.set {
		s = v.s + "," + s
	}
	v.s, v.set = s, true
	return nil
}

func (v *fieldValue) Type() string {
	switch v.kind {
	case reflect.Int:
		return "int"
	case reflect.Uint64:
		return "uint"
	case reflect.Float64:
		return "float"
	case reflect.Bool:
		return "bool"
	}
	return "string"
}

var flagHelp = map[string]string{
	"model":                    "base model: Hugging Face directory, .gguf file, or hub name ORG/NAME[@REV][:TAG] (downloaded into the Hugging Face cache when missing)",
	"data":                     "training data: .parquet/.jsonl/.json/.csv/.tsv/.txt file, glob, directory or hub dataset hf://datasets/ORG/NAME[@REV]; repeat the flag (or separate with commas) for several datasets, concatenated or mixed by --data-weights",
	"data_weights":             "sample the --data datasets as a mixture with these probabilities, one per dataset (e.g. 0.7,0.3; normalized); empty: concatenate them",
	"mix_stop":                 "a mixture ends when the first dataset runs out (first_exhausted) or once every one has been used whole (all_exhausted)",
	"data_columns":             "each --data dataset's own column mapping, in order, separated by ; (an empty one: --columns), e.g. 'prompt=q,completion=a;'",
	"data_formats":             "each --data dataset's format instead of the detected one, in order, separated by ; (an empty one: detected), e.g. 'chat;'",
	"val":                      "validation data (default: --val-fraction of --data, or the dataset's validation split)",
	"out":                      "run directory",
	"adapter":                  "start from this PEFT adapter instead of a fresh one",
	"seed":                     "seed of every random draw: initialization, data order, dropout",
	"quant":                    "base weights held as f32|f16|bf16|q8_0|q4_0|nf4",
	"gptq_tokens":              "with q4_0/nf4: quantize the base by GPTQ over this many tokens sampled from the model (0: off; e.g. 4096)",
	"gptq_tune":                "with gptq-tokens: passes tuning the block scales by distillation to the 8-bit model over the same tokens (0: off; e.g. 2)",
	"rank":                     "LoRA rank r (at most the narrowest adapted projection's width)",
	"alpha":                    "LoRA alpha: the update is scaled by alpha/r (alpha/√r with --rslora)",
	"dropout":                  "LoRA dropout on the adapters' inputs, in [0, 1)",
	"targets":                  "modules to adapt: names (q_proj,v_proj), globs, re:REGEX, or all-linear",
	"rslora":                   "rank-stabilized scaling alpha/√r",
	"dora":                     "DoRA: weight-decomposed LoRA (a trainable magnitude per output row)",
	"init":                     "adapter initialization: default (PEFT's), gaussian or pissa",
	"loraplus_ratio":           "LoRA+: train B at this multiple of the learning rate (0: off; e.g. 16)",
	"optimizer":                "adamw or sgd",
	"lr":                       "peak learning rate",
	"lr_schedule":              "constant, linear or cosine (after the warm-up)",
	"warmup_steps":             "optimizer steps of linear warm-up from 0",
	"min_lr_ratio":             "cosine and linear schedules end at this fraction of --lr, in [0, 1]",
	"weight_decay":             "decoupled weight decay (AdamW) or L2 (SGD)",
	"momentum":                 "SGD momentum, in [0, 1)",
	"max_grad_norm":            "clip the global gradient norm to this (0: no clipping)",
	"batch_size":               "sequences per micro-batch",
	"grad_accum":               "micro-batches per optimizer step",
	"max_seq_len":              "tokens per sequence (at most the model's context)",
	"epochs":                   "passes over the training data (with --max-steps 0)",
	"max_steps":                "optimizer steps; overrides --epochs when positive",
	"eval_every":               "evaluate every N steps (and at the end; 0: only at the end)",
	"early_stopping_patience":  "stop after this many evaluations without improvement (0: off)",
	"early_stopping_threshold": "improvement smaller than this does not count (early stopping)",
	"val_fraction":             "hold out this fraction of --data for validation when there is no --val",
	"pack":                     "pack several examples per sequence",
	"train_on_inputs":          "supervise prompts and user turns too",
	"chat_template":            "chatml, llama3, simple or a template file (default: the tokenizer's)",
	"columns":                  "column mapping, e.g. prompt=question,completion=answer",
	"text_unit":                ".txt/.md files: one example per blank-line block, or per file",
	"split":                    "the split of a dataset folder or hf://datasets/ repository to train on (default: train where there is one)",
	"neftune_noise_alpha":      "NEFTune: uniform noise in ±alpha/√(T·hidden) on the input embeddings in training (0: off; TRL suggests 5)",
	"token_dropout":            "drop each prompt token with this probability, a fresh draw every epoch (never BOS or special tokens)",
	"token_replace":            "replace each prompt token with this probability by one drawn from --token-replace-from",
	"token_replace_from":       "replacement tokens: vocab (uniform over the vocabulary's ordinary tokens) or data (the training data's token frequencies)",
	"augment_answers":          "token dropout and replacement on answer (supervised) tokens too; their targets stay the original text",
	"text_windows":             "text data: keep documents longer than max-seq-len whole and train each epoch on a random window of them, not always their start",
	"text_word_swap":           "EDA random swap: each word of a prompt field swaps with another with this probability, a new variant each epoch",
	"text_word_delete":         "EDA random deletion: each word of a prompt field is deleted with this probability (one word is always kept)",
	"text_char_noise":          "each letter or digit of a prompt field is swapped, dropped, doubled or case-flipped with this probability",
	"text_fields":              "text-level noise on prompt (prompt, instruction, input, user and system messages), all (answers too), or a list such as instruction,user",
	"text_variants":            "text-level variants rendered per row, cycled over the epochs (0: the run's epochs, at most 16)",
	"system_prompts":           "a file of system-prompt paraphrases, one per line: each variant samples one as a chat row's system message (an Alpaca row's preamble)",
	"truncation":               "examples over max-seq-len: keep-answer (drop the prompt's start, then the answer's end) or right",
	"threads":                  "worker threads (0: every CPU this process may use)",
	"compute_dtype":            "the frozen base's products (X·Wᵀ, dY·W): f32, bf16 (operands rounded to bfloat16, fp32 accumulation: QLoRA's compute dtype) or auto (the fastest this CPU has that meets the quality gates: bf16 on AMX and on AMD's AVX512_BF16, else f32); int8 is for eval and generate only",
	"activation_checkpointing": "recompute blocks in backward (less memory)",
	"checkpoint_layers":        "recompute only the first N blocks (memory between none and all; implies activation checkpointing)",
	"log_every":                "a log line every N steps when there is no progress bar",
	"cache_dir":                "token and GPTQ base cache: auto ($LOWRANK_CACHE or ~/.cache/lowrank), off, or a directory",
	"save_every":               "write a checkpoint every N steps, or epoch (0: only at the end, on a signal and when training diverges)",
	"keep_last":                "keep the newest N checkpoints and the best by validation loss (0: all)",
	"overwrite":                "start again in a folder that holds a run, removing its files",
	"memory_limit":             "refuse a run whose memory estimate is above this: auto (the cgroup's limit, else physical memory), off, or a size such as 8GiB",
}
