package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/spf13/cobra"
)

func newMerge() *cobra.Command {
	var modelPath, adapterDir, out, dtype string
	var asJSON, overwrite bool
	c := &cobra.Command{
		Use:   "merge --model M --adapter A --out DIR [--dtype f16|bf16|f32]",
		Short: "Fold a LoRA adapter into its base model and write a Hugging Face model directory",
		Long: `Computes W + s·B·A in fp32 for every adapted projection, from the base's original
weights (or, for a quantized GGUF base, its dequantized weights, and says so), and writes
config.json, the tokenizer files and model.safetensors in --dtype to --out. An existing
--out is refused; --overwrite replaces an earlier merge once the new one is complete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || adapterDir == "" || out == "" {
				return usageError{cmd: "merge", err: fmt.Errorf("--model, --adapter and --out are required")}
			}
			if strings.EqualFold(filepath.Ext(out), ".gguf") {
				return usageError{cmd: "merge", err: fmt.Errorf("--out %s: merge writes a Hugging Face folder; for a GGUF file use: lowrank export --model %s --adapter %s --format gguf --quant f16 --out %s", out, modelPath, adapterDir, out)}
			}
			if err := checkOut(cmd.ErrOrStderr(), "merge", "safetensors", out, overwrite); err != nil {
				return err
			}
			m, err := model.Load(modelPath, model.LoadOptions{}) // stored dtype: the original weights
			if err != nil {
				return err
			}
			defer m.Close()
			ad, err := checkpoints.LoadAdapter(adapterDir, m)
			if err != nil {
				return err
			}
			src, err := hfcache.Resolve(modelPath) // a hub id's folder in the cache
			if err != nil {
				return fmt.Errorf("model %w", err)
			}
			o := checkpoints.MergeOptions{Dtype: dtype, Src: src}
			if st, err := os.Stat(src); err == nil && !st.IsDir() {
				// GGUF: the config from its metadata, the tokenizer files from its vocabulary.
				if o.Tokenizer, err = tokenizer.Load(src); err != nil {
					return err
				}
				o.Src = ""
			}
			if info, err := checkpoints.ReadAdapterInfo(adapterDir); err != nil {
				return err
			} else if info != nil {
				o.ChatTemplate = info.ChatTemplate
			}
			rep, err := checkpoints.WriteMergedWith(out, m, ad, o)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "merged %d adapted layers into %s (%s, from %s): %d tensors, %.1f MiB\n",
				rep.Merged, out, rep.Dtype, rep.BaseFrom, rep.Tensors, float64(rep.Bytes)/(1<<20))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&modelPath, "model", "", "base model: Hugging Face directory, .gguf file, or hub name ORG/NAME[@REV][:TAG]")
	f.StringVar(&adapterDir, "adapter", "", "PEFT adapter directory")
	f.StringVar(&out, "out", "", "output directory")
	f.StringVar(&dtype, "dtype", "f16", "dtype of the merged weights: f16, bf16 or f32")
	f.BoolVar(&overwrite, "overwrite", false, "replace an existing --out (an earlier merge)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}
