package checkpoints

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lowrank/lowrank/internal/sysinfo"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// BenchmarkExportRSS: a merged export of the smollm2-135m shape (a base of
// seeded random weights held in f16, a rank-8 adapter on every projection)
// streams tensor by tensor. Run each case alone, so that the process's peak
// RSS is the export's: go test -run '^$' -bench 'ExportRSS/gguf-q8_0' -benchtime 1x ./checkpoints.
// It reports the peak and the bound it must stay under: the stored base,
// plus three times its largest fp32 tensor, plus 64 MiB.
func BenchmarkExportRSS(b *testing.B) {
	for _, c := range []struct{ name, format, quant string }{
		{"gguf-q8_0", "gguf", "q8_0"}, {"gguf-q4_k_m", "gguf", "q4_k_m"}, {"safetensors-f16", "safetensors", "f16"},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := model.Presets["smollm2-135m"]
			m, err := model.NewRandom(cfg, kernels.F16, 1)
			if err != nil {
				b.Fatal(err)
			}
			ad, err := lora.Apply(m, lora.Config{Rank: 8, Alpha: 16, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			for _, l := range ad.Layers {
				for i := range l.B.Data {
					l.B.Data[i] = 0.01
				}
			}
			tok, err := byteTokenizer(b, cfg.Vocab)
			if err != nil {
				b.Fatal(err)
			}
			var largest int64
			for _, e := range m.Entries() {
				largest = max(largest, int64(e.Rows*e.Cols)*4)
			}
			dir := b.TempDir()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out := filepath.Join(dir, fmt.Sprintf("out%d", i))
				if c.format == "gguf" {
					t, _ := ParseGGUFType(c.quant)
					_, err = WriteGGUF(out+".gguf", m, ad, GGUFOptions{Type: t, Tokenizer: tok})
				} else {
					_, err = WriteMergedWith(out, m, ad, MergeOptions{Dtype: c.quant, Tokenizer: tok})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			bound := m.WeightBytes() + 3*largest + 64<<20
			b.ReportMetric(float64(sysinfo.PeakRSS())/(1<<20), "peakRSS_MiB")
			b.ReportMetric(float64(bound)/(1<<20), "bound_MiB")
			b.ReportMetric(float64(m.WeightBytes())/(1<<20), "base_MiB")
		})
	}
}

// byteTokenizer is a byte-level vocabulary padded to n pieces.
func byteTokenizer(b *testing.B, n int) (*tokenizer.Tokenizer, error) {
	b.Helper()
	return tokenizer.NewByteLevel(n)
}
