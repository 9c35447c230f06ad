package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/train"
)

// taskCount is the number of tasks of the sweep the last sweepTask read
// (for the log line).
var taskCount int

// sweepTask is the task of the sweep file configFile that this process
// runs: --task-index, else $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX;
// nil when configFile is not a sweep (and no --task-index asks for one).
func sweepTask(cmd *cobra.Command, configFile string, index int) (*train.SweepTask, error) {
	if configFile == "" {
		if cmd.Flags().Changed("task-index") {
			return nil, usageError{cmd: "train", err: fmt.Errorf("--task-index needs a sweep file as --config")}
		}
		return nil, nil
	}
	sw, err := train.ReadSweep(configFile, train.Defaults())
	if errors.Is(err, train.ErrNotSweep) {
		if cmd.Flags().Changed("task-index") {
			return nil, usageError{cmd: "train", err: fmt.Errorf("--task-index %d: %s is not a sweep file (it has no sweep: section)", index, configFile)}
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !cmd.Flags().Changed("task-index") {
		index = -1
		for _, env := range []string{"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"} {
			if v := os.Getenv(env); v != "" {
				i, err := strconv.Atoi(v)
				if err != nil {
					return nil, fmt.Errorf("$%s=%q: not a task index", env, v)
				}
				index = i
				break
			}
		}
		if index < 0 {
			return nil, usageError{cmd: "train", err: fmt.Errorf("%s is a sweep of %d runs: pick one with --task-index I (0 to %d; Slurm arrays and Kubernetes Indexed Jobs set it), or see them with lowrank sweep %s --list", configFile, len(sw.Tasks), len(sw.Tasks)-1, configFile)}
		}
	}
	taskCount = len(sw.Tasks)
	t, err := sw.Task(index)
	if err != nil {
		return nil, usageError{cmd: "train", err: err}
	}
	return t, nil
}

func newSweep() *cobra.Command {
	var (
		list, summary, asJSON           bool
		emit, output, plotFile          string
		parallel, threads               int
		timeLimit, mem, partition, name string
		image, pvc, mount               string
		grace                           int
	)
	c := &cobra.Command{
		Use:   "sweep FILE --list | --emit slurm|k8s | --summary",
		Short: "Expand a sweep file into runs; emit a Slurm array or Kubernetes Indexed Job; summarize the results",
		Long: `A sweep file is a run configuration (as train --config takes it) with a sweep:
section that expands it into several runs:

  sweep:
    list:                      # one run per entry, its keys set together
      - {data: customer-a.parquet}
      - {data: customer-b.parquet}
    grid:                      # every combination, the last key varying fastest
      lr: [1e-4, 3e-4]
      rank: [8, 16]

With both, each list entry is combined with every grid point. Task I runs into OUT/task-I
with lowrank train --config FILE --task-index I, which resumes an interrupted task and
skips a finished one; under a Slurm array or a Kubernetes Indexed Job the index comes from
$SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX.

--list prints the tasks. --emit slurm writes an sbatch array script (--array=0-(N-1)%P,
--cpus-per-task from --threads, --requeue, --open-mode=append, --signal=B:TERM@120 so that a
task checkpoints before it is killed or requeued); --emit k8s an Indexed Job with the sweep
file in a ConfigMap and OUT on a persistent volume. --summary lists every task's state
(done, running, failed, missing), steps, final and best validation loss and tokens/s, and
draws their losses into one plot.`,
		Args:        cobra.ExactArgs(1),
		Annotations: map[string]string{"threads": "elsewhere"}, // the cluster's CPUs, not this machine's
		RunE: func(cmd *cobra.Command, args []string) error {
			modes := 0
			for _, on := range []bool{list, emit != "", summary} {
				if on {
					modes++
				}
			}
			if modes != 1 {
				return usageError{cmd: "sweep", err: fmt.Errorf("give one of --list, --emit slurm|k8s, --summary")}
			}
			sw, err := train.ReadSweep(args[0], train.Defaults())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case list:
				if asJSON {
					return writeJSON(out, sw)
				}
				fmt.Fprintf(out, "%s: %d tasks into %s\n", sw.Path, len(sw.Tasks), sw.Out)
				for _, t := range sw.Tasks {
					fmt.Fprintf(out, "%4d  %-*s  %s\n", t.Index, taskDirWidth(sw), t.Out, t.Label())
				}
				return nil
			case summary:
				rows, err := sw.Summary()
				if err != nil {
					return err
				}
				var plotted []string
				for _, r := range rows {
					if r.Steps > 0 {
						plotted = append(plotted, r.Out)
					}
				}
				if plotFile == "" {
					plotFile = filepath.Join(sw.Out, "sweep-loss.png")
				}
				if len(plotted) > 0 && plotFile != "none" {
					if err := train.PlotRuns(plotFile, plotted...); err != nil {
						return err
					}
				} else {
					plotFile = ""
				}
				if asJSON {
					return writeJSON(out, map[string]any{"file": sw.Path, "out": sw.Out, "tasks": rows, "plot": plotFile})
				}
				writeSummary(out, rows)
				if plotFile != "" {
					fmt.Fprintf(out, "plot: %s\n", plotFile)
				}
				return nil
			}
			var script string
			o := emitOptions{parallel: parallel, threads: threads, time: timeLimit, mem: mem, partition: partition, name: name,
				image: image, pvc: pvc, mount: mount, grace: grace}
			switch emit {
			case "slurm":
				script, err = emitSlurm(sw, o)
			case "k8s", "kubernetes":
				script, err = emitK8s(sw, o)
			default:
				return usageError{cmd: "sweep", err: fmt.Errorf("--emit %q: want slurm or k8s", emit)}
			}
			if err != nil {
				return usageError{cmd: "sweep", err: err}
			}
			if output == "" || output == "-" {
				_, err := io.WriteString(out, script)
				return err
			}
			mode := os.FileMode(0o644)
			if emit == "slurm" {
				mode = 0o755
			}
			if err := atomicfile.WriteFile(output, []byte(script)); err != nil {
				return err
			}
			return os.Chmod(output, mode)
		},
	}
	f := c.Flags()
	f.BoolVar(&list, "list", false, "print the tasks the file expands to")
	f.StringVar(&emit, "emit", "", "write a job for every task: slurm (an sbatch array script) or k8s (an Indexed Job manifest)")
	f.BoolVar(&summary, "summary", false, "every task's state and results, and a plot of their losses")
	f.BoolVar(&asJSON, "json", false, "with --list or --summary: print JSON")
	f.StringVarP(&output, "output", "o", "", "with --emit: write the job to this file (default: stdout)")
	f.StringVar(&plotFile, "plot", "", "with --summary: the comparison plot's file (default OUT/sweep-loss.png; none: no plot)")
	f.IntVar(&parallel, "parallel", 0, "with --emit: tasks running at once (default: all)")
	f.IntVar(&threads, "threads", 0, "with --emit: threads per task, its CPUs (default: the file's threads, else 4)")
	f.StringVar(&timeLimit, "time", "", "with --emit slurm: each task's time limit (sbatch --time, e.g. 4:00:00)")
	f.StringVar(&mem, "mem", "", "with --emit: each task's memory (slurm --mem, e.g. 8G; k8s a quantity, e.g. 8Gi)")
	f.StringVar(&partition, "partition", "", "with --emit slurm: the partition (sbatch --partition)")
	f.StringVar(&name, "job-name", "", "with --emit: the job's name (default lowrank- and the file's name)")
	f.StringVar(&image, "image", "", "with --emit k8s: the container image holding lowrank (required)")
	f.StringVar(&pvc, "pvc", "lowrank-runs", "with --emit k8s: the persistent volume claim holding the data, models and OUT")
	f.StringVar(&mount, "mount", "/work", "with --emit k8s: where the volume is mounted, the tasks' working directory")
	f.IntVar(&grace, "grace", 300, "with --emit k8s: seconds between SIGTERM and the kill (a checkpoint is saved in between)")
	return c
}

func taskDirWidth(sw *train.Sweep) int {
	w := 0
	for _, t := range sw.Tasks {
		w = max(w, len(t.Out))
	}
	return w
}

func writeSummary(w io.Writer, rows []train.TaskSummary) {
	f := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.4f", *v)
	}
	fmt.Fprintf(w, "%4s  %-7s  %11s  %9s  %9s  %8s  %s\n", "task", "state", "steps", "final val", "best val", "tokens/s", "settings")
	counts := map[string]int{}
	for _, r := range rows {
		steps := fmt.Sprint(r.Steps)
		if r.Total > 0 {
			steps = fmt.Sprintf("%d/%d", r.Steps, r.Total)
		}
		tps := "-"
		if r.TokensPerS > 0 {
			tps = fmt.Sprintf("%.0f", r.TokensPerS)
		}
		fmt.Fprintf(w, "%4d  %-7s  %11s  %9s  %9s  %8s  %s\n", r.Index, r.State, steps, f(r.FinalVal), f(r.BestVal), tps, r.Settings)
		counts[r.State]++
	}
	fmt.Fprintf(w, "%d tasks: %d done, %d running, %d failed, %d missing\n", len(rows), counts["done"], counts["running"], counts["failed"], counts["missing"])
}
