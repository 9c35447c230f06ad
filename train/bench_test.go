package train

import (
	"fmt"
	"math"
	"testing"
)

// BenchmarkTrainStep is `lowrank bench train` in go test form.
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct {
		preset string
		ckpt   bool
		th     int
	}{{"stories15m", false, 1}, {"smollm2-135m", true, 2}} {
		b.Run(fmt.Sprintf("%s/ckpt=%v/t%d", c.preset, c.ckpt, c.th), func(b *testing.B) {
			r, err := Bench(BenchConfig{Preset: c.preset, Batch: 4, Seq: 256, Rank: 8, Quant: "q8_0", Threads: c.th, Warmup: 1, Steps: b.N, Checkpointing: c.ckpt})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.TokensPerSec, "tokens/s")
			b.ReportMetric(float64(r.PeakRSSBytes)/(1<<20), "peakRSS_MiB")
		})
	}
}

// TestThreadDeterminism: a training step gives bitwise-identical loss and
// adapter gradients on 1, 2 and 3 threads.
func TestThreadDeterminism(t *testing.T) {
	if testing.Short() {
		t.Skip("an end-to-end training run: skipped with -short (the emulated arm64 run); the native run does it")
	}
	var ref []float32
	for _, th := range []int{1, 2, 3} {
		r, err := Bench(BenchConfig{Preset: "stories15m", Batch: 2, Seq: 64, Rank: 4, Quant: "nf4", Threads: th, Steps: 2})
		if err != nil {
			t.Fatal(err)
		}
		got := []float32{r.Loss}
		if ref == nil {
			ref = got
			continue
		}
		if math.Float32bits(got[0]) != math.Float32bits(ref[0]) {
			t.Fatalf("%d threads: loss after 3 AdamW steps %v, 1 thread %v", th, got[0], ref[0])
		}
	}
}
