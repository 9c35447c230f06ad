package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/spf13/cobra"
)

func newPull() *cobra.Command {
	return &cobra.Command{
		Use:   "pull ORG/NAME[@REVISION]",
		Short: "Download a model from the Hugging Face hub into the local cache",
		Long: `Downloads what training needs of a hub model (config, generation config, tokenizer
files and chat template, safetensors weights and index; never .bin, .pt, ONNX or GGUF
copies) into the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or
~/.cache/huggingface/hub) in the layout the Python tools use, so that --model ORG/NAME
works offline afterwards, here and in transformers. Files in the cache already are not
downloaded again; an interrupted download resumes; every file is verified against the
hub's hash before it is used. HF_TOKEN (or HF_TOKEN_PATH, or $HF_HOME/token) for private
and gated models, HF_ENDPOINT for a mirror; HF_HUB_OFFLINE=1 never touches the network.
Prints the snapshot directory.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, rev, _ := strings.Cut(args[0], "@")
			c := hfcache.NewClient()
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			c.Log = log.Info
			snap, err := c.Pull(cmd.Context(), id, rev)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), snap)
			return nil
		},
	}
}
