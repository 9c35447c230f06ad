package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newBenchTrain() *cobra.Command {
	var c train.BenchConfig
	var asJSON bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Training throughput: forward + backward + AdamW on a model built in memory",
		Long: `Builds a model of a preset shape with seeded random weights in memory (no files),
attaches rank-r LoRA adapters to every linear layer, runs warm-up steps, then times
steps of forward + backward + AdamW, the training loop's own step (clipping included when
--max-grad-norm is set). Prints tokens/s, the median ms per step and the
process's peak RSS. Presets: smollm2-135m, stories15m, tinyllama-1.1b. Started by mpirun
(the MPI build, make build-mpi) as several ranks, the ranks share each step's --grad-accum
micro-batches as lowrank train does, and it reports the gradient exchange's bytes and time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			// Under mpirun (the MPI build): the step's gradient exchange is timed too.
			g, err := joinGroup()
			if err != nil {
				return err
			}
			if g != nil {
				c.Comm = g.comm
			}
			r, err := train.Bench(c)
			if g != nil {
				if err = g.end(err); g.rank != 0 {
					return err // rank 0 reports
				}
			}
			if err != nil {
				return usageError{cmd: "bench train", err: err}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, r)
			}
			fmt.Fprintf(out, "%s  batch %d×%d  rank %d  %s  path %s, %d threads  checkpointing %v\n",
				c.Preset, c.Batch, c.Seq, c.Rank, c.Quant, r.Path, c.Threads, c.Checkpointing)
			fmt.Fprintf(out, "%.1f tokens/s   %.0f ms/step (median of %d)   peak RSS %.0f MiB   weights %.0f MiB   trainable %d\n",
				r.TokensPerSec, r.MsPerStep, c.Steps, float64(r.PeakRSSBytes)/(1<<20), float64(r.WeightBytes)/(1<<20), r.TrainableParam)
			if r.Ranks > 1 {
				fmt.Fprintf(out, "%d ranks, grad-accum %d: gradient exchange %.1f MiB received per rank per step, %.1f ms (%.2f%% of the step; %.0f ms waiting for the slowest rank before it)\n",
					r.Ranks, max(c.GradAccum, 1), float64(r.CommBytes)/(1<<20), r.CommMs, r.CommPercent, r.CommWaitMs)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Preset, "preset", "smollm2-135m", "architecture: smollm2-135m, stories15m, tinyllama-1.1b")
	f.IntVar(&c.Batch, "batch", 4, "sequences per step")
	f.IntVar(&c.Seq, "seq", 256, "tokens per sequence")
	f.IntVar(&c.Rank, "rank", 8, "LoRA rank")
	f.StringVar(&c.Quant, "quant", "q8_0", "base weight format: f32|f16|bf16|q8_0|q4_0|nf4")
	f.IntVar(&c.Threads, "threads", 0, "worker threads (0: every CPU this process may use)")
	f.StringVar(&c.ComputeDType, "compute-dtype", "auto", "the frozen base's products: f32, bf16 or auto (see lowrank train --help)")
	f.IntVar(&c.GradAccum, "grad-accum", 1, "micro-batches of --batch × --seq per step (shared out over the ranks under mpirun, with the MPI build)")
	f.IntVar(&c.Warmup, "warmup", 1, "untimed steps first")
	f.IntVar(&c.Steps, "steps", 3, "timed steps")
	f.BoolVar(&c.Checkpointing, "activation-checkpointing", false, "recompute each block in backward (less memory)")
	f.IntVar(&c.CheckpointLayers, "checkpoint-layers", 0, "recompute only the first N blocks (memory between none and all; implies --activation-checkpointing)")
	f.Float64Var(&c.MaxGradNorm, "max-grad-norm", 0, "clip the gradient norm, as training does (0: off, training's default)")
	f.Float64Var(&c.NEFTuneAlpha, "neftune-noise-alpha", 0, "add NEFTune's embedding noise, as training does (0: off)")
	f.Float64Var(&c.TokenNoise, "token-noise", 0, "build every batch afresh through token dropout and replacement at this probability on its prompt half (0: one fixed batch)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run (model building included) to this file, for go tool pprof")
	return cmd
}
