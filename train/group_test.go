package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

// hub is an in-process process group: goroutines as ranks, for testing the
// data-parallel logic without MPI (make test-mpi runs the real one).
type hub struct {
	mu        sync.Mutex
	cond      *sync.Cond
	size, n   int
	gen       int
	bufs      [][]byte
	out       []byte
	aborted   bool
	gathers   int
	lengthErr error
}

type member struct {
	h    *hub
	rank int
}

func newHub(size int) []Comm {
	h := &hub{size: size, bufs: make([][]byte, size)}
	h.cond = sync.NewCond(&h.mu)
	ms := make([]Comm, size)
	for r := range ms {
		ms[r] = member{h, r}
	}
	return ms
}

func (m member) Rank() int { return m.rank }
func (m member) Size() int { return m.h.size }
func (m member) Abort(int) {
	m.h.mu.Lock()
	m.h.aborted = true
	m.h.cond.Broadcast()
	m.h.mu.Unlock()
}

// AllToAll is an all-gather of the whole send buffers, each member taking
// its blocks.
func (m member) AllToAll(send, recv []byte) error {
	size := m.h.size
	if len(send)%size != 0 || len(recv) != len(send) {
		return fmt.Errorf("all-to-all: %d bytes to send and %d to receive over %d processes", len(send), len(recv), size)
	}
	all := make([]byte, size*len(send))
	if err := m.AllGather(send, all); err != nil {
		return err
	}
	block := len(send) / size
	for r := 0; r < size; r++ {
		copy(recv[r*block:(r+1)*block], all[r*len(send)+m.rank*block:])
	}
	return nil
}

func (m member) AllGather(send, recv []byte) error {
	h := m.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.aborted {
		return errors.New("the group was aborted")
	}
	gen := h.gen
	h.bufs[m.rank] = append([]byte(nil), send...)
	if h.n++; h.n == h.size {
		h.out = h.out[:0]
		for r, b := range h.bufs {
			if len(b) != len(send) && h.lengthErr == nil {
				h.lengthErr = fmt.Errorf("all-gather %d: rank %d sent %d bytes, rank %d %d", h.gathers, r, len(b), m.rank, len(send))
			}
			h.out = append(h.out, b...)
		}
		h.n, h.gen = 0, h.gen+1
		h.gathers++
		h.cond.Broadcast()
	} else {
		for h.gen == gen && !h.aborted {
			h.cond.Wait()
		}
	}
	if h.aborted {
		return errors.New("the group was aborted")
	}
	if h.lengthErr != nil {
		return h.lengthErr
	}
	copy(recv, h.out)
	return nil
}

// runGroup runs c as size ranks in goroutines (each its own Run, as mpirun
// starts them); setup may change a rank's configuration or context.
func runGroup(t *testing.T, c Config, o RunOptions, size int, setup func(rank int, c *Config) context.Context) ([]*Result, []error) {
	t.Helper()
	comms := newHub(size)
	res, errs := make([]*Result, size), make([]error, size)
	var wg sync.WaitGroup
	for r := 0; r < size; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr, or := c, o
			or.Comm = comms[r]
			ctx := context.Background()
			if setup != nil {
				if x := setup(r, &cr); x != nil {
					ctx = x
				}
			}
			res[r], errs[r] = Run(ctx, cr, or, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			if errs[r] != nil && !isGroupWide(errs[r]) {
				comms[r].Abort(1) // as the command does
			}
		}()
	}
	wg.Wait()
	if h := comms[0].(member).h; h.lengthErr != nil {
		t.Fatalf("ranks disagreed on a message's length: %v", h.lengthErr)
	}
	return res, errs
}

func isGroupWide(err error) bool {
	var ge *GroupError
	return errors.As(err, &ge) || errors.Is(err, ErrInterrupted) || errors.Is(err, ErrDiverged)
}

func groupConfig(t *testing.T) Config {
	c := Defaults()
	c.Model, c.Data, c.Val = testassets.Path(t, "models/stories260K/hf"), testassets.Path(t, "datasets/wikisql/train.parquet"), testassets.Path(t, "datasets/wikisql/valid.parquet")
	c.MaxSteps, c.BatchSize, c.GradAccum, c.MaxSeqLen, c.LR, c.EvalEvery, c.SaveEvery, c.LogEvery, c.Threads = 12, 2, 4, 64, 1e-3, 4, "4", 0, 1
	c.Dropout = 0.1 // masks drawn per global micro-batch: the same on any rank count
	return c
}

func adapterBytes(t *testing.T, run, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(run, name, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGroupExact: 2 and 4 ranks taking strides of grad_accum 4 end with the
// adapter (and the best one, chosen by the validation loss each rank
// computes a share of) one process writes, bit for bit; only rank 0 writes.
func TestGroupExact(t *testing.T) {
	if testing.Short() {
		t.Skip("training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	c := groupConfig(t)
	c.Out = t.TempDir()
	ref, err := Run(context.Background(), c, RunOptions{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{2, 4} {
		c.Out = t.TempDir()
		res, errs := runGroup(t, c, RunOptions{}, size, nil)
		for r, err := range errs {
			if err != nil {
				t.Fatalf("%d ranks: rank %d: %v", size, r, err)
			}
			if res[r].FinalLoss != ref.FinalLoss || res[r].BestValLoss != ref.BestValLoss {
				t.Errorf("%d ranks: rank %d: loss %v, best %v; one process: %v, %v", size, r, res[r].FinalLoss, res[r].BestValLoss, ref.FinalLoss, ref.BestValLoss)
			}
		}
		for _, name := range []string{"adapter", "best"} {
			if !bytes.Equal(adapterBytes(t, c.Out, name), adapterBytes(t, filepath.Dir(ref.Adapter), name)) {
				t.Errorf("%d ranks: %s differs from one process's with grad_accum 4", size, name)
			}
		}
		m, err := os.ReadFile(filepath.Join(c.Out, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		// Every step line records the gradient exchange.
		if n := strings.Count(string(m), `"comm_bytes"`); n != c.MaxSteps {
			t.Errorf("%d ranks: %d step lines with comm_bytes, want %d", size, n, c.MaxSteps)
		}
	}
}

// TestGroupStop: a signal to one rank stops every rank after the same
// step (rank 0 saves it); resuming on another rank count ends as one
// uninterrupted process does.
func TestGroupStop(t *testing.T) {
	if testing.Short() {
		t.Skip("training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	c := groupConfig(t)
	c.Out = t.TempDir()
	if _, err := Run(context.Background(), c, RunOptions{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := adapterBytes(t, c.Out, "adapter")
	c.Out = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	c2 := c
	_, errs := runGroup(t, c2, RunOptions{}, 4, func(rank int, c *Config) context.Context {
		if rank != 2 {
			return nil
		}
		// Rank 2 alone is told to stop, a few steps in.
		return stopAfter(ctx, cancel, 5)
	})
	for r, err := range errs {
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("rank %d: %v, want interrupted", r, err)
		}
	}
	ck, err := findCheckpoint(c.Out, "", nil)
	if err != nil || ck == nil {
		t.Fatalf("no checkpoint after the stop: %v", err)
	}
	if ck.Manifest.Step < 1 || ck.Manifest.Step >= c.MaxSteps {
		t.Fatalf("stopped at step %d", ck.Manifest.Step)
	}
	_, errs = runGroup(t, c, RunOptions{Resume: c.Out}, 2, nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("resume on 2 ranks: rank %d: %v", r, err)
		}
	}
	if !bytes.Equal(adapterBytes(t, c.Out, "adapter"), want) {
		t.Error("stopped on 4 ranks and resumed on 2: the adapter differs from an uninterrupted run's")
	}
}

// stopAfter is a context cancelled after its Err has been asked n times
// (a few per step).
func stopAfter(parent context.Context, cancel context.CancelFunc, n int) context.Context {
	return &countingCtx{Context: parent, cancel: cancel, left: n}
}

type countingCtx struct {
	context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	left   int
}

func (c *countingCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left--; c.left < 0 {
		c.cancel()
	}
	return c.Context.Err()
}

// TestGroupErrors: a rank that cannot start, or trains on other data,
// makes every rank return the same error naming it; settings the rank
// count cannot divide are refused before anything is loaded.
func TestGroupErrors(t *testing.T) {
	c := groupConfig(t)
	c.Out = t.TempDir()
	_, errs := runGroup(t, c, RunOptions{}, 2, func(rank int, c *Config) context.Context {
		if rank == 1 {
			c.Model = filepath.Join(t.TempDir(), "missing")
		}
		return nil
	})
	for r, err := range errs {
		var ge *GroupError
		if !errors.As(err, &ge) || ge.Rank != 1 || !strings.Contains(err.Error(), "rank 1: ") || !strings.Contains(err.Error(), "missing") {
			t.Errorf("rank %d: %v; want rank 1's error about its missing model", r, err)
		}
	}
	other := filepath.Join(t.TempDir(), "other.jsonl")
	if err := os.WriteFile(other, []byte(strings.Repeat(`{"text": "Once upon a time there was a cat."}`+"\n", 50)), 0o666); err != nil {
		t.Fatal(err)
	}
	c.Out = t.TempDir()
	_, errs = runGroup(t, c, RunOptions{}, 2, func(rank int, c *Config) context.Context {
		if rank == 1 {
			c.Data = other
		}
		return nil
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "rank 1: it does not train on what rank 0 does: data") {
			t.Errorf("rank %d: %v; want rank 1's other data refused", r, err)
		}
	}
	c.Out = t.TempDir()
	_, errs = runGroup(t, c, RunOptions{}, 3, nil)
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "rank count must divide --grad-accum") {
			t.Errorf("rank %d of 3 with grad_accum 4: %v", r, err)
		}
	}
	if entries, _ := os.ReadDir(c.Out); len(entries) != 0 {
		t.Errorf("a refused run wrote %d entries into its folder", len(entries))
	}
}

// TestGroupStepErrors: a process whose micro-batch fails, before the
// token count or during the gradients, makes every process's step fail
// with its error; a stop asked by one is every one's.
func TestGroupStepErrors(t *testing.T) {
	type out struct {
		err  error
		stop bool
		dst  []float32
	}
	run := func(f func(cm Comm, rank int) out) []out {
		comms := newHub(2)
		res := make([]out, 2)
		var wg sync.WaitGroup
		for r := range res {
			wg.Add(1)
			go func() { defer wg.Done(); res[r] = f(comms[r], r) }()
		}
		wg.Wait()
		return res
	}
	res := run(func(cm Comm, rank int) out {
		var failed error
		if rank == 1 {
			failed = errors.New("batch 7: data.parquet: bad page")
		}
		_, err := sumInt64(cm, 10, failed)
		return out{err: err}
	})
	for r, o := range res {
		var ge *GroupError
		if !errors.As(o.err, &ge) || ge.Rank != 1 || o.err.Error() != "rank 1: batch 7: data.parquet: bad page" {
			t.Errorf("token count, rank %d: %v", r, o.err)
		}
	}
	var bufs [2]commBufs
	res = run(func(cm Comm, rank int) out {
		var failed error
		if rank == 0 {
			failed = errors.New("token 9999 out of range")
		}
		dst := make([]float32, 3)
		slabs := [][]float32{{1, 2, 3}, {4, 5, 6}}
		_, _, stop, _, err := gatherGrads(cm, dst, slabs, []float64{1, 2}, [][2]int64{{1, 1}, {1, 1}}, 4, rank == 1, failed, &bufs[rank])
		return out{err: err, stop: stop, dst: dst}
	})
	for r, o := range res {
		if o.err == nil || !strings.HasPrefix(o.err.Error(), map[int]string{0: "token 9999", 1: "its micro-batches failed"}[r]) {
			t.Errorf("gradients, rank %d: %v", r, o.err)
		}
	}
	res = run(func(cm Comm, rank int) out {
		dst := make([]float32, 1)
		// Rank r holds global micro-batches r and r+2: 1, 10 on rank 0, 100, 1000 on rank 1.
		slabs := [][]float32{{float32([]int{1, 100}[rank])}, {float32([]int{10, 1000}[rank])}}
		_, _, stop, _, err := gatherGrads(cm, dst, slabs, []float64{0, 0}, [][2]int64{{1, 1}, {1, 1}}, 4, rank == 1, nil, &bufs[rank])
		return out{err: err, stop: stop, dst: dst}
	})
	for r, o := range res {
		if o.err != nil || !o.stop || o.dst[0] != 1111 {
			t.Errorf("rank %d: sum %v, stop %v, err %v; want 1111, a stop asked by rank 1, no error", r, o.dst, o.stop, o.err)
		}
	}
}

// TestGatherGradsOrder: the reduce-scatter sums every element in global
// micro-batch order, bit for bit the sequential sum, for parameter counts
// the process count does not divide (and fewer parameters than processes).
func TestGatherGradsOrder(t *testing.T) {
	for _, tc := range []struct{ size, total, n int }{{3, 6, 1001}, {2, 4, 7}, {4, 8, 3}, {3, 3, 64}} {
		r := rand.New(rand.NewPCG(uint64(tc.n), 9))
		all := make([][]float32, tc.total) // global micro-batch i's gradient
		for i := range all {
			all[i] = make([]float32, tc.n)
			for k := range all[i] {
				all[i][k] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(8)-4)))
			}
		}
		want := make([]float32, tc.n)
		for i, g := range all {
			for k, v := range g {
				if i == 0 {
					want[k] = v
				} else {
					want[k] += v
				}
			}
		}
		comms := newHub(tc.size)
		got := make([][]float32, tc.size)
		errs := make([]error, tc.size)
		var wg sync.WaitGroup
		for rank := 0; rank < tc.size; rank++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				per := tc.total / tc.size
				slabs := make([][]float32, per)
				for j := range slabs {
					slabs[j] = all[rank+j*tc.size]
				}
				got[rank] = make([]float32, tc.n)
				var bufs commBufs
				_, _, _, _, errs[rank] = gatherGrads(comms[rank], got[rank], slabs, make([]float64, per), make([][2]int64, per), tc.total, false, nil, &bufs)
			}()
		}
		wg.Wait()
		for rank := range got {
			if errs[rank] != nil {
				t.Fatal(errs[rank])
			}
			for k := range want {
				if math.Float32bits(got[rank][k]) != math.Float32bits(want[k]) {
					t.Fatalf("%+v: rank %d, element %d: %g, want %g", tc, rank, k, got[rank][k], want[k])
				}
			}
		}
	}
}
