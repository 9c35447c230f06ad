package data

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lowrank/lowrank/internal/sysinfo"
	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/parquet-go/parquet-go"
)

var (
	bigOnce sync.Once
	bigPath string
	bigRows int
)

// bigParquet writes (once per run) a Parquet file of ≥ 100 MB of text rows in
// several row groups, large enough to defeat caches.
func bigParquet(b *testing.B) string {
	bigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lowrank-bench-")
		if err != nil {
			b.Fatal(err)
		}
		bigPath = filepath.Join(dir, "big.parquet")
		f, err := os.Create(bigPath)
		if err != nil {
			b.Fatal(err)
		}
		type row struct {
			Text string `parquet:"text"`
		}
		w := parquet.NewGenericWriter[row](f, parquet.MaxRowsPerRowGroup(200_000), parquet.Compression(&parquet.Uncompressed))
		r := rand.New(rand.NewPCG(1, 2))
		words := strings.Fields("the quick brown fox jumps over lazy dog once upon a time there was little girl named Lily she loved to play outside in park")
		batch := make([]row, 1000)
		size := 0
		for size < 110<<20 {
			for i := range batch {
				var sb strings.Builder
				for k := 0; k < 8+r.IntN(40); k++ {
					sb.WriteString(words[r.IntN(len(words))])
					sb.WriteByte(' ')
				}
				batch[i].Text = sb.String()
				size += sb.Len()
			}
			if _, err := w.Write(batch); err != nil {
				b.Fatal(err)
			}
			bigRows += len(batch)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	})
	return bigPath
}

// BenchmarkParquetRead reports rows/s reading the text column of a ≥ 100 MB file.
func BenchmarkParquetRead(b *testing.B) {
	path := bigParquet(b)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(path, "")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			if _, err := s.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			n++
		}
		s.Close()
		if n != bigRows {
			b.Fatalf("%d rows, want %d", n, bigRows)
		}
	}
	b.ReportMetric(float64(bigRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(sysinfo.PeakRSS())/(1<<20), "peakRSS_MiB")
}

// BenchmarkLoadEndToEnd reports tokens/s for read + render + tokenize of
// c4_demo (uncached) with the Llama-3 tokenizer, on 1 and 2 threads.
func BenchmarkLoadEndToEnd(b *testing.B) {
	tok, err := tokenizer.Load(testassets.Path(b, "tokenizers/llama3"))
	if err != nil {
		b.Fatal(err)
	}
	path := testassets.Path(b, "datasets/llamafactory/c4_demo.jsonl")
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", th), func(b *testing.B) {
			tokens := 0
			for i := 0; i < b.N; i++ {
				ds, err := Load(path, tok.Clone(), LoadOptions{Threads: th})
				if err != nil {
					b.Fatal(err)
				}
				tokens += ds.Tokens
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
