package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lowrank/lowrank/train"
)

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws one line, redrawn in place with a carriage return:
// step, a bar, epoch, loss, learning rate, tokens/s, elapsed and ETA. Log
// lines written through it (its Write) appear above the bar.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	width int // bar cells
	line  string
	last  time.Time
}

func newProgressBar(w io.Writer) *progressBar { return &progressBar{w: w, width: 24} }

// Step redraws the bar for p, at most ten times a second except for the last step.
func (b *progressBar) Step(p train.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.line = formatProgress(p, b.width) // the latest, also for redraws after log lines
	now := time.Now()
	if p.Step != p.Total && now.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = now
	fmt.Fprint(b.w, "\r\033[K"+b.line)
	if p.Step == p.Total {
		fmt.Fprintln(b.w)
		b.line = ""
	}
}

// Write prints log text above the bar: clear the bar's line, write, redraw.
func (b *progressBar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.line != "" {
		fmt.Fprint(b.w, "\r\033[K")
	}
	n, err := b.w.Write(p)
	if b.line != "" {
		fmt.Fprint(b.w, b.line)
	}
	return n, err
}

// Finish ends the bar's line (an interrupted or failed run).
func (b *progressBar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.line != "" {
		fmt.Fprintln(b.w)
		b.line = ""
	}
}

func formatProgress(p train.Progress, width int) string {
	frac := float64(p.Step) / float64(max(p.Total, 1))
	full := int(frac * float64(width))
	bar := strings.Repeat("█", full) + strings.Repeat("░", width-full)
	return fmt.Sprintf("step %d/%d %s %3.0f%% | epoch %.2f | loss %.4f | lr %.2e | %.0f tok/s | %s<%s",
		p.Step, p.Total, bar, 100*frac, p.Epoch, p.Loss, p.LR, p.TokensPerS, clock(p.Elapsed), clock(p.ETA))
}

// clock formats a duration as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// dropSteps is a slog handler that leaves out the per-step lines the
// progress bar shows instead.
type dropSteps struct{ slog.Handler }

func (d dropSteps) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "step" {
		return nil
	}
	return d.Handler.Handle(ctx, r)
}

func (d dropSteps) WithAttrs(a []slog.Attr) slog.Handler { return dropSteps{d.Handler.WithAttrs(a)} }
func (d dropSteps) WithGroup(g string) slog.Handler      { return dropSteps{d.Handler.WithGroup(g)} }
