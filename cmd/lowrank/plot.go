package main

import (
	"fmt"

	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newPlot() *cobra.Command {
	return &cobra.Command{
		Use:   "plot RUN",
		Short: "Render a run's training and validation loss and learning rate to RUN/loss.png",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := train.Plot(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
}
