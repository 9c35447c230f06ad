package main

import (
	"fmt"

	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newPlot() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "plot RUN [RUN...] [-o FILE]",
		Short: "Render training and validation loss and the learning rate to a PNG",
		Long: `Renders a run's metrics.jsonl to RUN/loss.png: training loss, validation loss and
the learning rate. With several runs, draws them together (one colour per run;
validation dashed) into -o (default loss-compare.png).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" && len(args) == 1 {
				p, err := train.Plot(args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), p)
				return nil
			}
			if out == "" {
				out = "loss-compare.png"
			}
			if err := train.PlotRuns(out, args...); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	c.Flags().StringVarP(&out, "out", "o", "", "PNG to write (default: RUN/loss.png for one run, loss-compare.png for several)")
	return c
}
