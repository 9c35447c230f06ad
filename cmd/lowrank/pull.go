package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/spf13/cobra"
)

func newPull() *cobra.Command {
	var split string
	cmd := &cobra.Command{
		Use:   "pull ORG/NAME[@REVISION][:TAG] | hf://datasets/ORG/NAME[@REVISION][/FOLDER]",
		Short: "Download a model or a dataset from the Hugging Face hub into the local cache",
		Long: `Downloads what training needs of a hub model (config, generation config, tokenizer
files and chat template, safetensors weights and index; never .bin, .pt, ONNX or GGUF
copies) into the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or
~/.cache/huggingface/hub) in the layout the Python tools use, so that --model ORG/NAME
works offline afterwards, here and in transformers.

ORG/NAME:TAG downloads one GGUF file of the repository instead: TAG is its quantization
as llama.cpp's -hf reads it (ORG/NAME:Q4_K_M for name-Q4_K_M.gguf) or its file name.

hf://datasets/ORG/NAME downloads a dataset's Parquet files for --split and its
validation split (from the hub's Parquet conversion, refs/convert/parquet, when the
repository is not stored as Parquet; @~parquet/CONFIG picks a configuration of it).
--data takes the same name.

Files in the cache already are not downloaded again; an interrupted download resumes;
every file is verified against the hub's hash before it is used. HF_TOKEN (or
HF_TOKEN_PATH, or $HF_HOME/token) for private and gated repositories, HF_ENDPOINT for
a mirror; HF_HUB_OFFLINE=1 never touches the network. Prints the local path.`,
		Example: `  lowrank pull HuggingFaceTB/SmolLM2-135M-Instruct
  lowrank pull bartowski/SmolLM2-135M-Instruct-GGUF:Q8_0
  lowrank pull hf://datasets/tatsu-lab/alpaca`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			c := hubClient()
			if hfcache.IsDatasetRef(ref) {
				id, rev, sub, err := hfcache.ParseDatasetRef(ref)
				if err != nil {
					return err
				}
				if split == "" {
					split = "train"
				}
				root, _, err := c.PullDataset(cmd.Context(), id, rev, sub, split)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), root)
				return nil
			}
			id, rev, tag, ok := hfcache.ParseRef(ref)
			if !ok {
				return fmt.Errorf("%q is not a hub name: want ORG/NAME[@REVISION][:TAG] or hf://datasets/ORG/NAME", ref)
			}
			var out string
			var err error
			if tag != "" {
				out, err = c.PullGGUF(cmd.Context(), id, rev, tag)
			} else {
				out, err = c.Pull(cmd.Context(), id, rev)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&split, "split", "", "a dataset's split to download, with its validation split (default train)")
	return cmd
}

// hubClient is a hub client configured from the environment, with a
// progress line on a terminal and log lines otherwise.
func hubClient() *hfcache.Client {
	c := hfcache.NewClient()
	if isTerminal(os.Stderr) {
		t := &barWriter{w: os.Stderr}
		c.Log = slog.New(slog.NewTextHandler(t, nil)).Info
		c.Progress = t.progress
		return c
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c.Log = log.Info
	var last time.Time
	c.Progress = func(p hfcache.Progress) {
		if !p.Finished && time.Since(last) >= 15*time.Second {
			last = time.Now()
			log.Info("downloading", "repo", p.Repo, "files", fmt.Sprintf("%d/%d", p.Done, p.Files), "bytes", p.Bytes, "of", p.Total)
		}
	}
	return c
}

// barWriter keeps one progress line at the bottom of a terminal: a log
// line written through it clears the bar, and the bar is drawn again below.
type barWriter struct {
	mu  sync.Mutex
	w   io.Writer
	bar string
}

func (t *barWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprint(t.w, "\r\033[K")
	n, err := t.w.Write(p)
	if t.bar != "" {
		fmt.Fprint(t.w, t.bar)
	}
	return n, err
}

func (t *barWriter) progress(p hfcache.Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bar = formatPull(p)
	fmt.Fprint(t.w, "\r\033[K"+t.bar)
	if p.Finished {
		fmt.Fprintln(t.w)
		t.bar = ""
	}
}

// formatPull is a pull's progress line: files, bytes, a bar.
func formatPull(p hfcache.Progress) string {
	const width = 24
	frac := 0.0
	if p.Total > 0 {
		frac = min(1, float64(p.Bytes)/float64(p.Total))
	}
	n := int(frac * width)
	return fmt.Sprintf("%s [%s%s] %3.0f%% %s / %s, %d/%d files", p.Repo, strings.Repeat("=", n), strings.Repeat(" ", width-n),
		100*frac, hfcache.SizeString(p.Bytes), hfcache.SizeString(p.Total), p.Done, p.Files)
}
