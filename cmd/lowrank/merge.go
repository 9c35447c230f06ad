package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/model"
	"github.com/spf13/cobra"
)

func newMerge() *cobra.Command {
	var modelPath, adapterDir, out, dtype string
	var asJSON bool
	c := &cobra.Command{
		Use:   "merge --model M --adapter A --out DIR [--dtype f16|bf16|f32]",
		Short: "Fold a LoRA adapter into its base model and write a Hugging Face model directory",
		Long: `Computes W + s·B·A in fp32 for every adapted projection, from the base's original
weights (or, for a quantized GGUF base, its dequantized weights, and says so), and writes
config.json, the tokenizer files and model.safetensors in --dtype to --out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || adapterDir == "" || out == "" {
				return usageError{cmd: "merge", err: fmt.Errorf("--model, --adapter and --out are required")}
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
			src := modelPath
			if st, err := os.Stat(modelPath); err == nil && !st.IsDir() {
				src = "" // GGUF: config from metadata, no tokenizer files to copy
			}
			rep, err := checkpoints.WriteMerged(out, m, ad, src, dtype)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "merged %d adapted layers into %s (%s, from %s): %d tensors, %.1f MiB\n",
				rep.Merged, out, rep.Dtype, rep.BaseFrom, rep.Tensors, float64(rep.Bytes)/(1<<20))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&modelPath, "model", "", "base model: Hugging Face directory or .gguf file")
	f.StringVar(&adapterDir, "adapter", "", "PEFT adapter directory")
	f.StringVar(&out, "out", "", "output directory")
	f.StringVar(&dtype, "dtype", "f16", "dtype of the merged weights: f16, bf16 or f32")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}
