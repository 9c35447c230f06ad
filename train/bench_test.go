package train

import (
	"math"
	"testing"
)

// BenchmarkTrainStep is `lowrank bench train` in go test form.
func BenchmarkTrainStep(b *testing.B) {
	for _, preset := range []string{"stories15m"} {
		b.Run(preset, func(b *testing.B) {
			r, err := Bench(BenchConfig{Preset: preset, Batch: 4, Seq: 256, Rank: 8, Quant: "q8_0", Threads: 1, Warmup: 1, Steps: b.N})
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
