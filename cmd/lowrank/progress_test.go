package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lowrank/lowrank/train"
)

func TestProgressBar(t *testing.T) {
	p := train.Progress{Step: 30, Total: 120, Epoch: 0.75, Loss: 1.23456, LR: 2e-4, TokensPerS: 1520.4,
		Elapsed: 75 * time.Second, ETA: 3*time.Hour + 25*time.Second}
	got := formatProgress(p, 8)
	want := "step 30/120 ██░░░░░░  25% | epoch 0.75 | loss 1.2346 | lr 2.00e-04 | 1520 tok/s | 1:15<3:00:25"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	// Log lines go above the bar: clear the line, print, redraw the latest state.
	var out bytes.Buffer
	b := newProgressBar(&out)
	log := slog.New(dropSteps{slog.NewTextHandler(b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})})
	b.Step(train.Progress{Step: 1, Total: 3, Loss: 2})
	b.Step(train.Progress{Step: 2, Total: 3, Loss: 1.5}) // within 100 ms: not drawn, but remembered
	log.Info("step", "step", 2)                          // the bar replaces step lines
	log.Info("eval", "val_loss", "1.4")
	b.Step(train.Progress{Step: 3, Total: 3, Loss: 1})
	s := out.String()
	if strings.Contains(s, "msg=step") {
		t.Errorf("step log line printed under a progress bar:\n%q", s)
	}
	evalAt := strings.Index(s, "level=INFO msg=eval val_loss=1.4\n")
	if evalAt < 0 || !strings.HasPrefix(s[evalAt+len("level=INFO msg=eval val_loss=1.4\n"):], "step 2/3") {
		t.Errorf("eval line not printed above a redrawn bar (step 2):\n%q", s)
	}
	if !strings.HasSuffix(s, "\r\033[Kstep 3/3 "+strings.Repeat("█", 24)+" 100% | epoch 0.00 | loss 1.0000 | lr 0.00e+00 | 0 tok/s | 0:00<0:00\n") {
		t.Errorf("last step not drawn and ended with a newline:\n%q", s)
	}
}
