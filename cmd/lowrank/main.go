// Command lowrank fine-tunes small language models with LoRA / QLoRA on a CPU.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lowrank/lowrank/internal/hfcache"
)

func main() {
	// A hub id missing from the cache is downloaded, as transformers'
	// from_pretrained does (the tests, which call run, never download).
	hfcache.Hub = hubClient
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the exit code. Errors are printed
// as one line; a panic is turned into one line too, never a stack trace.
func run(args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "lowrank: internal error: %v (please report it)\n", r)
			code = 3
		}
	}()
	root := newRoot()
	root.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		saving := false
		var first time.Time
		for sig := range sigs {
			switch {
			case !graceful.Load():
			case !saving:
				// The first SIGINT or SIGTERM: finish the step and save.
				saving, first = true, time.Now()
				switch groupRank.Load() {
				case 0: // alone
					fmt.Fprintln(os.Stderr, "lowrank: interrupted: finishing the current step and saving a checkpoint (Ctrl-C again to quit at once)")
				case 1: // rank 0 (the other ranks got the signal too: rank 0 says it)
					fmt.Fprintln(os.Stderr, "lowrank: interrupted: every rank finishes the current step, then rank 0 saves a checkpoint; if a rank died, they cannot: mpirun ends them and the run continues from its newest checkpoint with --resume (Ctrl-C again to quit at once)")
				}
				cancel()
				continue
			case sig == syscall.SIGTERM:
				// Schedulers repeat SIGTERM before their SIGKILL: the save goes on.
				fmt.Fprintln(os.Stderr, "lowrank: SIGTERM again: still saving (Ctrl-C quits at once)")
				continue
			case time.Since(first) < 100*time.Millisecond:
				// The same Ctrl-C delivered twice (to the process and its
				// group, as timeout(1) does): no person presses twice this fast.
				continue
			}
			fmt.Fprintln(os.Stderr, "lowrank: interrupted")
			os.Exit(130)
		}
	}()
	if err := root.ExecuteContext(ctx); err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "lowrank: %v (see lowrank %s --help)\n", err, ue.cmd)
			return 2
		}
		fmt.Fprintf(os.Stderr, "lowrank: %v\n", err)
		return 1
	}
	return 0
}

// usageError is a bad flag or argument: exit code 2 and a pointer to --help.
type usageError struct {
	cmd string
	err error
}

func (u usageError) Error() string { return u.err.Error() }
