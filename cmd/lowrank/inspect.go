package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newInspect() *cobra.Command {
	var (
		asJSON                                  bool
		quant, modelPath, columns, chatTemplate string
		textUnit                                string
		maxSeqLen                               int
		trainOnInputs                           bool
		augmentFile                             string
		samples, epoch                          int
	)
	c := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Describe a model, dataset, adapter, run folder or checkpoint",
		Long: `Describes what PATH is:
  a model (a Hugging Face directory or a .gguf file): its architecture, parameter count,
    and for every tensor its dtype in the file and the format it is held in memory with
    --quant (default: as stored);
  a dataset (.parquet, .jsonl, .json, .csv, .tsv, .txt, a glob or a folder of shards): rows, columns,
    format, and with --model token counts, mask coverage and a rendered example;
  an adapter folder (adapter_config.json): rank, alpha, targets, tensors, and from its
    lowrank.json how the base was held in training;
  a run folder (train --out): status, steps, checkpoints (each verified), adapters, losses;
  a checkpoint (RUN/checkpoints/step-N): whether it is intact, its state, settings and files.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if _, err := os.Stat(path); err != nil && !strings.ContainsAny(path, "*?[") {
				// A hub id in the local cache, as every other command takes it.
				local, err := hfcache.Resolve(path)
				if err != nil {
					return err
				}
				path = local
			}
			if handled, err := inspectTraining(cmd, path, asJSON); handled {
				return err
			}
			if isDataset(path) {
				return inspectData(cmd, path, modelPath, columns, chatTemplate, textUnit, maxSeqLen, trainOnInputs, asJSON, augmentFile, samples, epoch)
			}
			if st, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: no such file or directory", path)
			} else if err != nil {
				return err
			} else if !st.IsDir() && filepath.Ext(path) != ".gguf" {
				return fmt.Errorf("%s: inspect reads model directories, .gguf files and datasets (.parquet, .jsonl, .json, .csv, .tsv, .txt)", path)
			}
			m, err := model.Load(path, model.BaseOptions(quant, 0, 0, 0)) // as training holds it
			if err != nil {
				return err
			}
			defer m.Close()
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, map[string]any{"path": path, "name": args[0], "config": m.Config, "parameters": m.Params(), "weight_bytes": m.WeightBytes(), "tensors": m.Stored})
			}
			c := m.Config
			fmt.Fprintf(out, "%s: %s, %d layers, hidden %d, intermediate %d, %d heads (%d KV, dim %d), vocab %d, context %d\n",
				args[0], c.Arch, c.Layers, c.Hidden, c.Intermediate, c.Heads, c.KVHeads, c.HeadDim, c.Vocab, c.MaxPos)
			fmt.Fprintf(out, "parameters %d; weights in memory %.1f MiB; tied embeddings %v; BOS %d, EOS %v\n",
				m.Params(), float64(m.WeightBytes())/(1<<20), c.TieEmbeddings, c.BOS, c.EOS)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "tensor\tshape\tfile\tmemory\tbytes\tnote")
			for _, s := range m.Stored {
				fmt.Fprintf(tw, "%s\t%d×%d\t%s\t%s\t%d\t%s\n", s.Name, s.Shape[0], s.Shape[1], s.From, s.As, s.Bytes, s.Note)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	c.Flags().StringVar(&quant, "quant", "", "show storage with this format: f32|f16|bf16|q8_0|q4_0|nf4")
	c.Flags().StringVar(&modelPath, "model", "", "for a dataset: the model whose tokenizer renders it (token statistics, masks)")
	c.Flags().StringVar(&columns, "columns", "", "for a dataset: column mapping, e.g. prompt=question,completion=answer")
	c.Flags().StringVar(&chatTemplate, "chat-template", "", "for a chat dataset: chatml, llama3, simple or a template file")
	c.Flags().IntVar(&maxSeqLen, "max-seq-len", 0, "for a dataset: truncate examples to this many tokens")
	c.Flags().BoolVar(&trainOnInputs, "train-on-inputs", false, "for a dataset: supervise prompts too")
	c.Flags().StringVar(&textUnit, "text-unit", "block", "for .txt/.md files: one example per blank-line block, or per file")
	c.Flags().StringVar(&augmentFile, "augment", "", "for a dataset: a run config (its token_dropout, token_replace… keys): show examples as loaded and as training sees them")
	c.Flags().IntVar(&samples, "samples", 3, "with --augment: how many examples")
	c.Flags().IntVar(&epoch, "epoch", 0, "with --augment: the epoch whose variants to show (each epoch draws new ones)")
	return c
}

// isDataset says whether path is a dataset file, glob or directory (a
// directory with config.json is a model).
func isDataset(path string) bool {
	if strings.ContainsAny(path, "*?[") {
		return true
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet", ".jsonl", ".json", ".csv", ".tsv", ".txt", ".md":
		return true
	}
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	// A folder with model files is a model, config.json or not (its absence
	// is then the model's error).
	for _, f := range []string{"config.json", "tokenizer.json", "model.safetensors", "model.safetensors.index.json"} {
		if _, err := os.Stat(filepath.Join(path, f)); err == nil {
			return false
		}
	}
	return true
}

func inspectData(cmd *cobra.Command, path, modelPath, columns, chatTemplate, textUnit string, maxSeqLen int, trainOnInputs, asJSON bool, augmentFile string, samples, epoch int) error {
	cols, err := data.ParseColumns(columns)
	if err != nil {
		return usageError{cmd: "inspect", err: err}
	}
	var tok *tokenizer.Tokenizer
	opts := data.RenderOptions{TrainOnInputs: trainOnInputs, MaxSeqLen: maxSeqLen, EOS: -1}
	if modelPath != "" {
		if tok, err = tokenizer.Load(modelPath); err != nil {
			return err
		}
		if chatTemplate != "" {
			if err := tok.UseChatTemplate(chatTemplate); err != nil {
				return err
			}
		}
		opts.EOS = tok.EOS
	}
	if augmentFile != "" {
		if tok == nil {
			return usageError{cmd: "inspect", err: fmt.Errorf("--augment needs --model (its tokenizer renders the examples)")}
		}
		return inspectAugment(cmd, path, tok, data.LoadOptions{Columns: cols, Render: opts, TextUnit: textUnit}, augmentFile, samples, epoch)
	}
	rep, err := data.Inspect(path, tok, data.LoadOptions{Columns: cols, Render: opts, TextUnit: textUnit})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(out, rep)
	}
	fmt.Fprintf(out, "%s: %d rows, columns %v, format %s\n", rep.Path, rep.Rows, rep.Columns, rep.Format)
	if rep.Tokens == nil && tok == nil {
		fmt.Fprintln(out, "(give --model to see token counts, mask coverage and a rendered example)")
		return nil
	}
	if rep.Tokens == nil {
		if len(rep.Dropped) > 0 {
			return fmt.Errorf("%s: no row renders to a trainable sequence as format %s: %s", path, rep.Format, data.DroppedSummary(rep.Dropped))
		}
		return fmt.Errorf("%s: no row renders to a trainable sequence", path)
	}
	t := rep.Tokens
	fmt.Fprintf(out, "tokens: %d in %d examples; length min %d, median %d, p95 %d, max %d; truncated %d\n", t.Total, t.Examples, t.Min, t.Median, t.P95, t.Max, t.Truncated)
	fmt.Fprintf(out, "mask coverage: %.1f%% of tokens supervised (%d)\n", 100*t.Coverage, t.Supervised)
	if len(rep.Dropped) > 0 {
		fmt.Fprintln(out, data.DroppedSummary(rep.Dropped))
	}
	switch te := rep.TurnEnd; {
	case te == nil:
	case te.EOS:
		fmt.Fprintf(out, "turns end with the model's EOS %s (supervised; the template has no end-of-turn marker)\n", te.Marker)
	case te.Tokens > 1:
		fmt.Fprintf(out, "turns end with %s (supervised), which this vocabulary writes in %d tokens: the model learns to write it piece by piece\n", te.Marker, te.Tokens)
	default:
		fmt.Fprintf(out, "turns end with %s (supervised, one token)\n", te.Marker)
	}
	fmt.Fprintf(out, "first example (supervised tokens in [brackets]):\n%s\n", rep.Example)
	return nil
}

// inspectAugment shows the first samples examples of a dataset as loaded
// and as epoch epoch of a run configured by file (its token_dropout,
// token_replace… keys) sees them, supervised tokens in [brackets].
func inspectAugment(cmd *cobra.Command, path string, tok *tokenizer.Tokenizer, lo data.LoadOptions, file string, samples, epoch int) error {
	cfg := train.Defaults()
	if err := train.ReadConfigFile(&cfg, file); err != nil {
		return err
	}
	check := cfg
	check.Model, check.Data, check.Out = "-", path, "-" // only the augmentation settings matter here
	if err := check.Validate(); err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	if samples <= 0 || epoch < 0 {
		return usageError{cmd: "inspect", err: fmt.Errorf("--samples must be positive and --epoch not negative")}
	}
	vlo, err := train.TextVariants(&cfg, lo)
	if err != nil {
		return err
	}
	ds, err := data.Load(path, tok, vlo)
	if err != nil {
		return err
	}
	defer ds.Close()
	t, err := train.TokenNoise(&cfg, tok, nil, ds.Train)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "%s as epoch %d of a run with %s sees it: text word_swap %g, word_delete %g, char_noise %g on %s fields; token_dropout %g, token_replace %g from %s, augment_answers %v",
		path, epoch, file, cfg.TextWordSwap, cfg.TextWordDelete, cfg.TextCharNoise, cfg.TextFields, cfg.TokenDropout, cfg.TokenReplace, cfg.TokenReplaceFrom, cfg.AugmentAnswers)
	if cfg.NEFTuneAlpha > 0 {
		fmt.Fprintf(out, "; NEFTune α=%g adds embedding noise in training (not shown)", cfg.NEFTuneAlpha)
	}
	fmt.Fprintln(out, "\n(supervised tokens in [brackets])")
	for i := 0; i < min(samples, len(ds.Train)); i++ {
		ex := ds.Train[i]
		fmt.Fprintf(out, "\nexample %d, as loaded:\n%s\n", i, data.Show(tok, ex))
		aug := ex
		if ds.Variants != nil {
			aug = ds.Variants[i][epoch%len(ds.Variants[i])]
		}
		if t != nil {
			aug = t(epoch, i, aug)
		}
		if t == nil && ds.Variants == nil {
			fmt.Fprintln(out, "(no text- or token-level transform configured)")
			continue
		}
		fmt.Fprintf(out, "example %d, epoch %d (%d tokens; %d as loaded):\n%s\n", i, epoch, len(aug.IDs), len(ex.IDs), data.Show(tok, aug))
	}
	return nil
}
