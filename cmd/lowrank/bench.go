package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/lowrank/lowrank/internal/sysinfo"
	"github.com/lowrank/lowrank/kernels"
	"github.com/spf13/cobra"
)

func newBench() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure lowrank's speed on this machine",
	}
	c.AddCommand(newBenchKernels(), newBenchTrain())
	return c
}

func newBenchKernels() *cobra.Command {
	var (
		threads  int
		asJSON   bool
		kernel   string
		formats  string
		shapes   string
		perCase  time.Duration
		backward bool
	)
	c := &cobra.Command{
		Use:   "kernels",
		Short: "GFLOPS of the GEMM kernels per shape, product and weight format",
		Long: `Times the GEMM that every linear layer runs, on seeded random data:
the forward product X·Wᵀ with W stored as each format, and the backward
product dY·W, for the shapes a training step is made of. Each case is the
median of five rounds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs, err := parseFormats(formats)
			if err != nil {
				return usageError{cmd: "bench kernels", err: err}
			}
			sel, err := selectShapes(shapes)
			if err != nil {
				return usageError{cmd: "bench kernels", err: err}
			}
			if perCase <= 0 {
				return usageError{cmd: "bench kernels", err: fmt.Errorf("--time must be positive")}
			}
			// Several paths are timed side by side, case by case, so that the
			// machine's changing load falls on them alike.
			var pools []*kernels.Pool
			for _, name := range strings.Split(kernel, ",") {
				pool, err := kernels.NewPool(threads, strings.TrimSpace(name))
				if err != nil {
					return usageError{cmd: "bench kernels", err: err}
				}
				pools = append(pools, pool)
			}
			pool := pools[0]
			ops := []kernels.Op{kernels.Trans}
			if backward {
				ops = append(ops, kernels.NoTrans)
			}
			out := cmd.OutOrStdout()
			avail := kernels.Kernels()
			for _, p := range append(kernels.BF16Paths(), kernels.Int8Paths()...) {
				avail = append(avail, p.Name())
			}
			kw := len("kernel") // the kernel column's width
			for _, p := range pools {
				kw = max(kw, len(p.Kernel()))
			}
			if !asJSON {
				for _, p := range pools {
					fmt.Fprintf(out, "lowrank bench kernels: path %s, %d threads, %s/%s (available: %s)\n",
						p.Path(), p.Threads(), runtime.GOOS, runtime.GOARCH, strings.Join(avail, ", "))
				}
				fmt.Fprintf(out, "%-16s %5s %5s %5s  %-5s %-5s %-*s %2s  %15s %12s\n", "shape", "M", "N", "K", "op", "W", kw, "kernel", "th", "speed", "time")
			}
			var results []kernels.BenchResult
			for _, s := range sel {
				for _, op := range ops {
					for _, f := range fs {
						if f != kernels.F32 && (s.N < 32 || s.K < 32) {
							continue // LoRA factors are trainable fp32, never quantized
						}
						var first float64
						for i, p := range pools {
							r := kernels.Bench(p, s, op, f, perCase)
							results = append(results, r)
							if i == 0 {
								first = r.GFLOPS
							}
							if !asJSON {
								line := r.Row(kw)
								if i > 0 && first > 0 {
									line += fmt.Sprintf("  %.2f× %s", r.GFLOPS/first, pools[0].Kernel())
								}
								fmt.Fprintln(out, line)
							}
						}
					}
				}
			}
			rss := sysinfo.PeakRSS()
			if asJSON {
				var infos []kernels.PathInfo
				for _, p := range pools {
					infos = append(infos, p.Path().Info())
				}
				return writeJSON(out, map[string]any{
					"kernel": pool.Kernel(), "path": pool.Path().Info(), "paths": infos, "threads": pool.Threads(), "goos": runtime.GOOS, "goarch": runtime.GOARCH,
					"available_kernels": avail, "results": results, "peak_rss_bytes": rss,
				})
			}
			fmt.Fprintf(out, "peak RSS %.1f MiB\n", float64(rss)/(1<<20))
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&threads, "threads", 0, "worker threads (0: every CPU this process may use)")
	f.BoolVar(&asJSON, "json", false, "print results as JSON on stdout")
	f.StringVar(&kernel, "kernel", "", "kernel path: avx512, avx2, neon, go, a bf16 path (avx512-amx, avx512-bf16, go-bf16) or an int8 one (avx512-int8, avx2-vnni, avx2-int8, neon-int8, go-int8: forward products of q8_0, q4_0, nf4); several, comma-separated, are timed side by side (default: the best this CPU has; also LOWRANK_KERNEL)")
	f.StringVar(&formats, "formats", "f32,q8_0,q4_0,nf4", "weight formats to time, comma-separated")
	f.StringVar(&shapes, "shapes", "", "only shapes whose name contains one of these comma-separated words")
	f.DurationVar(&perCase, "time", 300*time.Millisecond, "time spent on each case")
	f.BoolVar(&backward, "backward", true, "also time the backward product dY·W")
	return c
}

func parseFormats(s string) ([]kernels.Format, error) {
	var fs []kernels.Format
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		f, err := kernels.ParseFormat(name)
		if err != nil {
			return nil, fmt.Errorf("--formats: %w", err)
		}
		fs = append(fs, f)
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("--formats: no format given")
	}
	return fs, nil
}

func selectShapes(s string) ([]kernels.BenchShape, error) {
	if strings.TrimSpace(s) == "" {
		return kernels.BenchShapes, nil
	}
	var out []kernels.BenchShape
	for _, sh := range kernels.BenchShapes {
		for _, w := range strings.Split(s, ",") {
			if w = strings.TrimSpace(w); w != "" && strings.Contains(sh.Name, w) {
				out = append(out, sh)
				break
			}
		}
	}
	if len(out) == 0 {
		var names []string
		for _, sh := range kernels.BenchShapes {
			names = append(names, sh.Name)
		}
		return nil, fmt.Errorf("--shapes %q matches none of: %s", s, strings.Join(names, "; "))
	}
	return out, nil
}
