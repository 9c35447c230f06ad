package train

import "testing"

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
