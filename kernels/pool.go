package kernels

import (
	"runtime"
	"sync"
	"time"
)

// Pool runs GEMMs on a fixed number of workers on one Path. Calls on one
// Pool are serialized; use several Pools for concurrent independent work.
// The zero Pool is not usable: call NewPool.
type Pool struct {
	mu      sync.Mutex
	threads int
	path    *Path
	mk      *microKernel  // path.mk
	ws      []*workspace  // one per worker; ws[0] is the caller's
	jobs    []chan job    // jobs[i] feeds worker i (i ≥ 1), started lazily
	done    chan struct{} // one token per finished job

	sub         []*Pool    // single-threaded pools for side-by-side small GEMMs (Workers)
	i8x         []int8Unit // int8 paths: the quantized rows of X
	i8q         []byte     // int8 GEMM: X's rows quantized into regions
	args        gemmArgs   // the call in progress: held here so that no call allocates
	lastWorkers int        // workers that received work in the last call (for tests)
	lastDot     bool       // the last call ran in dot-product form (for tests)
	lastOuter   bool       // the last call ran in outer-product form (for tests)
	lastGemv    bool       // the last call ran as one row against W's rows (for tests)
}

type job struct {
	g              *gemmArgs
	i0, i1, j0, j1 int
	fn             func(w, lo, hi int) // Parallel's work on [i0, i1), instead of g
}

// minParallelFlops is the size below which a GEMM runs on the calling goroutine:
// handing work to a worker costs a microsecond or so.
const minParallelFlops = 1 << 18

// spinWait is how long a worker waiting for its next job, and a caller
// waiting for its workers, poll before sleeping. A training step hands out
// thousands of jobs of 50 to 100 µs (a LoRA factor's product, a norm, a
// block's gradient clearing), one after another; a sleeping goroutine's
// thread took about as long as the job to wake, so on 2 threads the caller
// waited for its worker about as long as it worked (smollm2-135m, bf16:
// 0.27 s of a 2.3 s step). Polling costs a core only while work is coming.
const spinWait = 100 * time.Microsecond

// recv returns the next value from ch, polling it for up to spinWait
// (yielding to other goroutines now and then) before blocking.
func recv[T any](ch chan T) T {
	var start time.Time
	for i := 0; ; i++ {
		select {
		case v := <-ch:
			return v
		default:
		}
		if i%64 != 63 {
			continue
		}
		if start.IsZero() {
			start = time.Now()
		} else if time.Since(start) > spinWait {
			return <-ch
		}
		runtime.Gosched()
	}
}

// NewPool returns a Pool with the given worker count (≤ 0 means GOMAXPROCS)
// on the named path ("" : the one LOWRANK_KERNEL names, else the best this
// CPU has; see ChoosePath).
func NewPool(threads int, path string) (*Pool, error) {
	pa, err := ChoosePath(path)
	if err != nil {
		return nil, err
	}
	return NewPoolOn(threads, pa), nil
}

// NewPoolOn returns a Pool with the given worker count (≤ 0 means
// GOMAXPROCS) on path.
func NewPoolOn(threads int, path *Path) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, path: path, mk: path.mk}
	p.ws = make([]*workspace, threads)
	p.ws[0] = newWorkspace(path)
	return p
}

// Threads reports the pool's worker count.
func (p *Pool) Threads() int { return p.threads }

// Path is the code the pool runs.
func (p *Pool) Path() *Path { return p.path }

// Kernel reports the name of the pool's path.
func (p *Pool) Kernel() string { return p.path.Name() }

var (
	defaultOnce sync.Once
	defaultPool *Pool
)

// Default returns the process-wide pool (GOMAXPROCS workers, the path
// LOWRANK_KERNEL names or the best). An unknown LOWRANK_KERNEL falls back to
// the best path.
func Default() *Pool {
	defaultOnce.Do(func() {
		p, err := NewPool(0, "")
		if err != nil {
			p = NewPoolOn(0, paths()[0])
		}
		defaultPool = p
	})
	return defaultPool
}

// Gemm runs C = alpha·op(A)·op(B) + beta·C on the Default pool.
func Gemm(c Mat, alpha float32, a Mat, ta Op, b Mat, tb Op, beta float32) {
	Default().Gemm(c, alpha, a, ta, b, tb, beta)
}

// GemmW runs C = alpha·op(A)·op(W) + beta·C on the Default pool.
func GemmW(c Mat, alpha float32, a Mat, ta Op, w *Weight, tw Op, beta float32) {
	Default().GemmW(c, alpha, a, ta, w, tw, beta)
}

func (p *Pool) worker(i int) {
	ws := p.ws[i]
	for {
		j := recv(p.jobs[i])
		if j.fn != nil {
			j.fn(i, j.i0, j.i1)
		} else {
			ws.do(j)
		}
		p.done <- struct{}{}
	}
}

// wait collects the tokens of n finished jobs.
func (p *Pool) wait(n int) {
	for range n {
		recv(p.done)
	}
}

func (ws *workspace) do(j job) {
	mk := ws.path.mk
	if j.g.int8 && j.g.i8gemm {
		if j.g.i8quant {
			ws.quantRowsGemm(j.g, j.i0, j.i1)
		} else {
			ws.runInt8Gemm(j.g, j.j0, j.j1)
		}
		return
	}
	if j.g.int8 {
		if j.g.i8quant {
			ws.runInt8Quant(j.g, j.i0, j.i1)
		} else {
			ws.runInt8(j.g, j.j0, j.j1)
		}
		return
	}
	if j.g.gemv {
		ws.runGemv(mk.dot, j.g, j.j0, j.j1)
		return
	}
	if j.g.dot {
		ws.runDot(mk.dot, j.g, j.i0, j.i1)
		return
	}
	if j.g.outer {
		ws.runOuter(mk.outer, j.g, j.j0, j.j1)
		return
	}
	ws.run(j.g, j.i0, j.i1, j.j0, j.j1)
}

func (p *Pool) startWorkers() {
	if p.jobs != nil {
		return
	}
	p.jobs = make([]chan job, p.threads)
	p.done = make(chan struct{}, p.threads)
	for i := 1; i < p.threads; i++ {
		p.ws[i] = newWorkspace(p.path)
		p.jobs[i] = make(chan job, 1)
		go p.worker(i)
	}
}

// run splits C into contiguous ranges of whole register tiles along the
// dimension that has more tiles per worker, one range per worker.
func (p *Pool) run(args gemmArgs) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.args = args
	g := &p.args
	p.lastDot, p.lastOuter, p.lastGemv = false, false, false
	defer func() { p.args = gemmArgs{} }() // drop references to the caller's slices
	if g.m == 0 || g.n == 0 {
		p.lastWorkers = 0
		return
	}
	if g.int8 {
		if p.path.i8.gemm != nil && g.m >= int8GemmMinRows {
			g.i8gemm = true
			p.runInt8Gemm(g)
			return
		}
		p.runInt8(g)
		return
	}
	mr, nr := p.mk.mr, p.mk.nr
	if g.bf16 {
		// Fewer rows than the bf16 tile (generation's one token at a time)
		// stay in fp32: such a product reads the weight once, and packing it
		// for the tiles costs more than it saves (smollm2-135m q8_0
		// generation: 43 → 13 tokens/s).
		if bmr, _, _, _, _ := p.path.bf16.geom(p.mk); g.m < bmr {
			g.bf16 = false
		}
	}
	if g.bf16 {
		g.swapNarrow(p.mk.nr) // the packed form only
		mr, nr, _, _, _ = p.path.bf16.geom(p.mk)
	} else if g.useGemv(p.mk) {
		g.gemv, p.lastGemv = true, true
		mr, nr = 1, 8
	} else if g.useDot(p.mk, len(p.ws[0].bpack)) {
		g.dot, p.lastDot = true, true
		g.packDot(p.ws[0].bpack) // shared, read-only while the workers run
		mr, nr = 3, g.n
	} else {
		g.swapNarrow(p.mk.nr)
		if g.useOuter(p.mk, len(p.ws[0].bpack)) {
			g.outer, p.lastOuter = true, true
			g.packOuter(p.ws[0].bpack) // shared, read-only while the workers run
			mr, nr = g.m, 16
		}
	}
	mt, nt := (g.m+mr-1)/mr, (g.n+nr-1)/nr
	workers := p.threads
	if float64(g.m)*float64(g.n)*float64(max(g.k, 1)) < minParallelFlops {
		workers = 1
	}
	splitM := g.dot || !g.outer && (mt >= nt || nt < workers)
	if splitM {
		p.fanOut(g, workers, mt, mr, true)
	} else {
		p.fanOut(g, workers, nt, nr, false)
	}
}

// fanOut runs g on at most workers workers (the caller's goroutine one of
// them), splitting C's rows (splitM) or columns into contiguous ranges of
// whole tiles of size, tiles in all.
func (p *Pool) fanOut(g *gemmArgs, workers, tiles, size int, splitM bool) {
	workers = min(workers, tiles)
	p.lastWorkers = workers
	if workers <= 1 {
		j := job{g: g, i0: 0, i1: g.m, j0: 0, j1: g.n}
		if splitM {
			j.i1 = min(g.m, tiles*size)
		} else {
			j.j1 = min(g.n, tiles*size)
		}
		p.ws[0].do(j)
		return
	}
	p.startWorkers()
	per, extra := tiles/workers, tiles%workers
	start := 0
	var mine job
	for w := 0; w < workers; w++ {
		cnt := per
		if w < extra {
			cnt++
		}
		j := job{g: g, i0: 0, i1: g.m, j0: 0, j1: g.n}
		if splitM {
			j.i0, j.i1 = start*size, min(g.m, (start+cnt)*size)
		} else {
			j.j0, j.j1 = start*size, min(g.n, (start+cnt)*size)
		}
		start += cnt
		if w == 0 {
			mine = j
			continue
		}
		p.jobs[w] <- j
	}
	p.ws[0].do(mine)
	p.wait(workers - 1)
}

// runInt8 runs an int8 product in blocks of int8RowBlock rows of X (the
// quantized rows' memory bounded): each block's rows quantized (split by
// rows), then the dots (split by W's rows, in whole kernel tiles).
func (p *Pool) runInt8(g *gemmArgs) {
	u := int8Units(g.b.w)
	rows := min(g.m, int8RowBlock)
	if cap(p.i8x) < rows*u {
		p.i8x = make([]int8Unit, rows*u)
	}
	workers := p.threads
	if float64(g.m)*float64(g.n)*float64(g.k) < minParallelFlops {
		workers = 1
	}
	for r0 := 0; r0 < g.m; r0 += int8RowBlock {
		g.i8r0, g.i8m = r0, min(int8RowBlock, g.m-r0)
		g.i8x = p.i8x[:g.i8m*u]
		qw := workers
		if g.i8m*g.k < 1<<14 { // a few microseconds: not worth waking workers
			qw = 1
		}
		g.i8quant = true
		p.fanOut(g, qw, g.i8m, 1, true)
		g.i8quant = false
		p.fanOut(g, workers, (g.n+int8Rows-1)/int8Rows, int8Rows, false)
	}
}
