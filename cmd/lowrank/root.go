package main

import (
	"strings"

	"github.com/spf13/cobra"
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "lowrank",
		Short:         "Fine-tune small language models with LoRA / QLoRA on a CPU",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{cmd: strings.TrimPrefix(c.CommandPath(), "lowrank "), err: err}
	})
	root.AddCommand(newBench(), newGenerate(), newTokenize(), newInspect(), newMerge(), newExport(), newTrain(), newDemo(), newEval(), newPlot())
	return root
}
