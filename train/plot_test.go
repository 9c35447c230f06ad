package train

import (
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for s := 1; s <= 30; s++ {
		fmt.Fprintf(&b, `{"step":%d,"loss":%g,"lr":%g}`+"\n", s, 3.0/float64(s), Schedule("cosine", 1e-3, s-1, 3, 30, 0.1))
		if s%10 == 0 {
			fmt.Fprintf(&b, `{"step":%d,"val_loss":%g}`+"\n", s, 3.2/float64(s))
		}
	}
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(b.String()), 0o644)
	out, err := Plot(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 400 {
		t.Fatalf("not a usable PNG: %v", err)
	}
	if _, err := Plot(t.TempDir()); err == nil || !strings.Contains(err.Error(), "metrics.jsonl") {
		t.Errorf("missing metrics: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte("{bad\n"), 0o644)
	if _, err := Plot(dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad metrics: %v", err)
	}
}

func TestSchedule(t *testing.T) {
	if lr := Schedule("cosine", 1, 0, 0, 10, 0.1); lr != 1 {
		t.Errorf("cosine step 0: %g", lr)
	}
	if lr := Schedule("cosine", 1, 9, 0, 10, 0.1); lr < 0.1 || lr > 0.15 {
		t.Errorf("cosine near the end: %g", lr)
	}
	if lr := Schedule("linear", 1, 5, 0, 10, 0); lr != 0.5 {
		t.Errorf("linear midway: %g", lr)
	}
	if lr := Schedule("constant", 2, 0, 4, 10, 0); lr != 0.5 {
		t.Errorf("warm-up step 0 of 4: %g", lr)
	}
}
