package kernels

import "sync"

// Parallel calls fn(w, lo, hi) for contiguous ranges [lo, hi) that cover
// [0, n), one range per worker w (at most the pool's thread count, and no
// range shorter than minChunk). The split depends only on n, minChunk and the
// thread count, and each index belongs to one range, so results are
// deterministic when fn writes only the outputs of its own range.
// It must not be called from inside another Parallel or GEMM of the same pool.
func (p *Pool) Parallel(n, minChunk int, fn func(w, lo, hi int)) {
	workers := min(p.threads, max(1, n/max(1, minChunk)))
	if workers <= 1 || n <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var wg sync.WaitGroup
	per, extra := n/workers, n%workers
	lo := 0
	for w := 0; w < workers; w++ {
		hi := lo + per
		if w < extra {
			hi++
		}
		if w == workers-1 {
			fn(w, lo, hi) // the caller takes the last range
			break
		}
		wg.Add(1)
		go func(w, lo, hi int) {
			defer wg.Done()
			fn(w, lo, hi)
		}(w, lo, hi)
		lo = hi
	}
	wg.Wait()
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
