package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/lowrank/lowrank/tokenizer"
	"github.com/spf13/cobra"
)

func newTokenize() *cobra.Command {
	var (
		modelPath string
		asJSON    bool
		noSpecial bool
	)
	c := &cobra.Command{
		Use:   "tokenize --model M [--json] [--no-special] TEXT|-",
		Short: "Print the token ids of a text",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if modelPath == "" {
				return usageError{cmd: "tokenize", err: fmt.Errorf("--model is required")}
			}
			text := args[0]
			if text == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				text = string(b)
			}
			tok, err := tokenizer.Load(modelPath)
			if err != nil {
				return err
			}
			ids := tok.Encode(text, !noSpecial)
			out := cmd.OutOrStdout()
			if asJSON {
				pieces := make([]string, len(ids))
				for i, id := range ids {
					pieces[i] = tok.Piece(id)
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"ids": ids, "pieces": pieces, "count": len(ids)})
			}
			s := make([]string, len(ids))
			for i, id := range ids {
				s[i] = fmt.Sprint(id)
			}
			fmt.Fprintln(out, strings.Join(s, " "))
			return nil
		},
	}
	c.Flags().StringVar(&modelPath, "model", "", "model directory, tokenizer directory or .gguf file")
	c.Flags().BoolVar(&asJSON, "json", false, "print ids and pieces as JSON")
	c.Flags().BoolVar(&noSpecial, "no-special", false, "do not add BOS/EOS")
	return c
}
