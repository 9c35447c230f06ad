package kernels

// Parallel calls fn(w, lo, hi) for contiguous ranges [lo, hi) that cover
// [0, n), one range per worker w (at most the pool's thread count, and no
// range shorter than minChunk), on the pool's workers (the caller's
// goroutine is worker 0). The split depends only on n, minChunk and the
// thread count, and each index belongs to one range, so results are
// deterministic when fn writes only the outputs of its own range.
// Like Gemm it holds the pool: fn must not call the same pool's Parallel,
// Gemm or GemmW (a Workers pool's are fine).
func (p *Pool) Parallel(n, minChunk int, fn func(w, lo, hi int)) {
	workers := min(p.threads, max(1, n/max(1, minChunk)))
	if workers <= 1 || n <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startWorkers()
	per, extra := n/workers, n%workers
	bound := func(w int) int { return w*per + min(w, extra) }
	for w := 1; w < workers; w++ {
		p.jobs[w] <- job{fn: fn, i0: bound(w), i1: bound(w + 1)}
	}
	fn(0, 0, bound(1))
	p.wait(workers - 1)
}

// Workers returns one single-threaded pool per worker of p, on p's path,
// for independent small GEMMs run side by side (e.g. one per attention head).
func (p *Pool) Workers() []*Pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sub == nil {
		p.sub = make([]*Pool, p.threads)
		for i := range p.sub {
			p.sub[i] = &Pool{threads: 1, path: p.path, mk: p.mk, ws: []*workspace{newWorkspace(p.path)}}
		}
	}
	return p.sub
}
