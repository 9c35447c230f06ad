package train

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the offline demo with a step cap: the model, data, run and
// merged directories appear and the validation loss falls.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("an end-to-end training run: skipped with -short (the emulated arm64 run); the native run does it")
	}
	dir := t.TempDir()
	r, err := Demo(context.Background(), dir, 0, 20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !(r.Result.BestValLoss < r.Result.BaseValLoss) {
		t.Errorf("validation loss %g → %g did not fall", r.Result.BaseValLoss, r.Result.BestValLoss)
	}
	if !strings.HasPrefix(r.Before, r.Prompt) || !strings.HasPrefix(r.After, r.Prompt) || r.Before == r.After {
		t.Errorf("greedy text before %q, after %q: want two different continuations of %q", r.Before, r.After, r.Prompt)
	}
	for _, p := range []string{"model/config.json", "model/tokenizer.json", "data/train.parquet", "run/adapter/adapter_model.safetensors", "run/metrics.jsonl", "merged/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("missing %s", p)
		}
	}
}
