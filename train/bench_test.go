package train

import (
	"fmt"
	"math"
	"testing"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
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

// BenchmarkCheckpoint times writing one checkpoint of the smollm2-135m
// shape with rank-8 adapters on every projection (adapter, AdamW moments,
// state, manifest: every file synced, hashed, renamed whole) and reading
// it back verified.
func BenchmarkCheckpoint(b *testing.B) {
	cfg := model.Presets["smollm2-135m"]
	s, err := benchSession(BenchConfig{Preset: "smollm2-135m", Batch: 1, Seq: 16, Rank: 8, Quant: "q8_0", Threads: 2}, cfg, kernels.Q8_0)
	if err != nil {
		b.Fatal(err)
	}
	t := s.NewTrainer()
	if _, err := t.Step(); err != nil {
		b.Fatal(err)
	}
	run := b.TempDir()
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ck, err := checkpoints.WriteCheckpoint(run, 1, nil, func(dir string) error {
			if err := checkpoints.WriteAdapterFiles(dir, s.Adapter, "m", nil); err != nil {
				return err
			}
			return t.writeState(dir)
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := checkpoints.OpenCheckpoint(ck.Dir); err != nil {
			b.Fatal(err)
		}
		bytes = 0
		for _, f := range ck.Manifest.Files {
			bytes += f.Bytes
		}
	}
	b.ReportMetric(float64(bytes)/(1<<20), "MiB")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/checkpoint")
}
