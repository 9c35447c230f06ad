package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/lowrank/lowrank/model"
	"github.com/spf13/cobra"
)

func newInspect() *cobra.Command {
	var (
		asJSON bool
		quant  string
	)
	c := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Describe a model: architecture, sizes, and how each tensor is stored",
		Long: `Describes a model (a Hugging Face directory or a .gguf file): its architecture,
parameter count, and for every tensor its dtype in the file and the format it is held
in memory with --quant (default: as stored).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if st, err := os.Stat(path); err != nil {
				return err
			} else if !st.IsDir() && filepath.Ext(path) != ".gguf" {
				return fmt.Errorf("%s: inspect reads model directories and .gguf files (datasets and adapters come later)", path)
			}
			m, err := model.Load(path, model.LoadOptions{Quant: quant})
			if err != nil {
				return err
			}
			defer m.Close()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"path": path, "config": m.Config, "parameters": m.Params(), "weight_bytes": m.WeightBytes(), "tensors": m.Stored})
			}
			c := m.Config
			fmt.Fprintf(out, "%s: %s, %d layers, hidden %d, intermediate %d, %d heads (%d KV, dim %d), vocab %d, context %d\n",
				path, c.Arch, c.Layers, c.Hidden, c.Intermediate, c.Heads, c.KVHeads, c.HeadDim, c.Vocab, c.MaxPos)
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
	return c
}
