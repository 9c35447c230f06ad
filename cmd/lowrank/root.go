package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank/internal/mpi"
	"github.com/lowrank/lowrank/internal/sysinfo"

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
		return usageError{cmd: commandName(c), err: err}
	})
	// Every command's --threads is bounded by the CPUs this process may use
	// (train also checks what its config file or checkpoint says), but for
	// one whose threads are another machine's (sweep --emit).
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		// Only train (and its benchmark) runs as one job over several ranks; anything else
		// started so would run as many times, side by side.
		if rank, size, by := mpi.Launched(); size > 1 && commandName(c) != "train" && commandName(c) != "bench train" {
			if rank != 0 {
				return exitCode(1) // rank 0 says it
			}
			return fmt.Errorf("%s started %d ranks, but only lowrank train runs across ranks: run lowrank %s as one process", by, size, commandName(c))
		}
		if f := c.Flags().Lookup("threads"); f != nil && f.Changed && c.Annotations["threads"] != "elsewhere" {
			n, err := strconv.Atoi(f.Value.String())
			if err != nil {
				return usageError{cmd: commandName(c), err: fmt.Errorf("--threads %q is not an integer", f.Value.String())}
			}
			if err := sysinfo.CheckThreads(n); err != nil {
				return usageError{cmd: commandName(c), err: err}
			}
		}
		return nil
	}
	root.AddCommand(newBench(), newGenerate(), newTokenize(), newInspect(), newMerge(), newExport(), newTrain(), newDemo(), newEval(), newPlot(), newPull(), newSweep())
	usageArgs(root)
	return root
}

// usageArgs makes a wrong number of arguments a usage error (exit 2, and
// where --help is), as a bad flag is, in every command.
func usageArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usageError{cmd: commandName(c), err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// commandName is c's path without the program's name ("bench train").
func commandName(c *cobra.Command) string { return strings.TrimPrefix(c.CommandPath(), "lowrank ") }
