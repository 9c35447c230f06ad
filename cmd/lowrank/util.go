package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/spf13/pflag"
)

type pflagFlag = pflag.Flag

// graceful is set while a command handles Ctrl-C itself (train): the first
// signal cancels its context instead of exiting.
var graceful atomic.Bool

// exitCode is an error that only sets the exit code (the message was printed).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
