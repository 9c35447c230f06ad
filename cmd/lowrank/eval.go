package main

import (
	"bytes"
	"fmt"
	"io"

	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newEval() *cobra.Command {
	var modelPath, adapterDir string
	dataPath := new(string)
	var asJSON bool
	c := &cobra.Command{
		Use:   "eval --model M [--adapter A] --data D [--json]",
		Short: "Loss and perplexity of a model (and adapter) on a dataset",
		Long: `Prints the mean next-token loss and perplexity over the supervised tokens of a
dataset, rendered exactly as training renders it. With --adapter, the settings its
lowrank.json records (the base's quantization and GPTQ, the chat template, max-seq-len)
are used unless given as flags, and a base whose files differ from the one the adapter
was trained on is warned about.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			// What the adapter's lowrank.json decides is said once the
			// command has worked: an error stays one line.
			var notes bytes.Buffer
			defer func() {
				if err == nil {
					io.Copy(cmd.ErrOrStderr(), &notes)
				}
			}()
			if modelPath == "" || *dataPath == "" {
				return usageError{cmd: "eval", err: fmt.Errorf("--model and --data are required")}
			}
			cfg := train.Defaults()
			cfg.Quant = "" // the stored dtype
			if err := useAdapterInfo(cmd, &notes, adapterDir, modelPath, map[string]string{"quant": "quant", "gptq_tokens": "gptq-tokens",
				"gptq_tune": "gptq-tune", "gptq_seed": "seed", "chat_template": "chat-template", "max_seq_len": "max-seq-len"}); err != nil {
				return err
			}
			for _, name := range []string{"quant", "gptq-tokens", "gptq-tune", "seed", "cache-dir", "max-seq-len", "batch-size", "threads", "columns", "chat-template", "train-on-inputs", "pack", "split", "compute-dtype"} {
				if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
					if err := cfg.Set(underscore(name), f.Value.String()); err != nil {
						return usageError{cmd: "eval", err: err}
					}
				}
			}
			if cfg.GPTQTune > 0 && cfg.GPTQTokens == 0 {
				return usageError{cmd: "eval", err: fmt.Errorf("--gptq-tune needs --gptq-tokens")}
			}
			r, err := train.Evaluate(modelPath, adapterDir, *dataPath, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "loss %.4f  perplexity %.3f  (%d supervised tokens in %d examples)\n", r.Loss, r.Perplexity, r.Tokens, r.Examples)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&modelPath, "model", "", "model: Hugging Face directory, .gguf file, or hub name ORG/NAME[@REV][:TAG]")
	f.StringVar(&adapterDir, "adapter", "", "PEFT adapter directory")
	dataPath = configFlag(f, "data", "", "dataset file, glob or directory; repeat the flag (or separate with commas) for several, concatenated")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	configFlag(f, "quant", "", "hold base weights as f32|f16|bf16|q8_0|q4_0|nf4 (default: as the adapter's lowrank.json says, else as stored)")
	configFlag(f, "gptq-tokens", "0", "with --quant q4_0/nf4: quantize by GPTQ over this many tokens sampled from the model (0: off)")
	configFlag(f, "gptq-tune", "0", "with --gptq-tokens: passes tuning the block scales by distillation to the 8-bit model (0: off)")
	configFlag(f, "seed", "0", "seed of the GPTQ calibration samples")
	configFlag(f, "cache-dir", "auto", "token and GPTQ base cache: auto ($LOWRANK_CACHE or ~/.cache/lowrank), off, or a directory")
	configFlag(f, "max-seq-len", "0", "tokens per sequence (0: 512, or the model's context if shorter)")
	configFlag(f, "batch-size", "4", "sequences per batch")
	configFlag(f, "threads", "0", "worker threads (0: every CPU this process may use)")
	configFlag(f, "columns", "", "column mapping, e.g. prompt=question,completion=answer")
	configFlag(f, "split", "", "the split of a dataset folder or hf://datasets/ repository (default: train where there is one; in a folder, validation also finds files named valid, val or dev)")
	configFlag(f, "compute-dtype", "auto", "the frozen base's products: f32, bf16, int8 (a Q8_0/Q4_0/NF4 base's forward products in int8 as llama.cpp's inference computes them: its loss; about 2.1–2.4× f32's speed where the CPU has AVX512_VNNI or AVX-VNNI (its products about 3×), about 1.35–1.45× on AVX2; on arm64 SDOT, not timed) or auto (see lowrank train --help)")
	configFlag(f, "chat-template", "", "chatml, llama3, simple or a template file")
	configFlag(f, "train-on-inputs", "false", "count prompt tokens too")
	configFlag(f, "pack", "false", "pack several examples per sequence")
	return c
}

func underscore(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c == '-' {
			out[i] = '_'
		}
	}
	return string(out)
}
