package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lowrank/lowrank/kernels"
)

// Comm is the group of processes one run trains in, data-parallel: each
// takes its stride of the global micro-batch order (rank r the micro-
// batches r, r+size, …) and the adapter gradients of every micro-batch are
// summed in global order (gatherGrads), so the result does not depend on
// the number of processes. Local is one process; internal/mpi provides
// MPI (built with -tags mpi).
type Comm interface {
	Rank() int
	Size() int
	// AllGather gives every process every process's send (all of one
	// length), in rank order, in recv (size × len(send)).
	AllGather(send, recv []byte) error
	// AllToAll sends block d of send (size equal blocks) to process d and
	// receives, as block r of recv, process r's block for this one.
	AllToAll(send, recv []byte) error
	// Abort ends every process of the group (after an error on one).
	Abort(code int)
}

// Local is a run in one process.
type Local struct{}

func (Local) Rank() int { return 0 }
func (Local) Size() int { return 1 }
func (Local) AllGather(send, recv []byte) error {
	copy(recv, send)
	return nil
}
func (Local) AllToAll(send, recv []byte) error {
	copy(recv, send)
	return nil
}
func (Local) Abort(int) {}

// checkShare refuses a process count that does not divide grad_accum: the
// processes take equal shares of a step's micro-batches (their messages
// are of one length).
func checkShare(gradAccum, size int) error {
	if gradAccum%size == 0 {
		return nil
	}
	return fmt.Errorf("--grad-accum %d over %d ranks: each rank takes an equal share of a step's micro-batches, so the rank count must divide --grad-accum (for example --grad-accum %d)", gradAccum, size, (gradAccum/size+1)*size)
}

// commStats are what a step spent talking to the other processes.
type commStats struct {
	Bytes int64   // received per step
	Secs  float64 // exchanging the gradients, once every process is there
	Wait  float64 // waiting for the slowest process to finish its micro-batches
}

// gatherGrads sums the per-micro-batch gradient slabs of every process
// (slabs[j]: global micro-batch rank + j·size of the step) into dst in
// global order, dst = ((g0 + g1) + g2) + … whatever the process count, and
// the losses and token counts with them. stop is this process's wish to
// stop after the step (a signal); stopAll is whether any process of the
// group has it, so that all stop after the same step. failed is this
// process's error computing its micro-batches (sent as a flag: every
// process then returns an error).
//
// With several processes it is a reduce-scatter in that fixed order, then
// an all-gather: process d owns the d-th of size chunks of the parameters,
// receives every micro-batch's gradient for its chunk (an all-to-all), sums
// them in global order, and the summed chunks are all-gathered. Each
// process receives about (grad_accum/size + 1) slabs' bytes a step, against
// grad_accum for gathering every slab whole; the sum is the same, element
// by element. bufs are buffers kept from step to step.
func gatherGrads(cm Comm, dst []float32, slabs [][]float32, losses []float64, counts [][2]int64, total int, stop bool, failed error, bufs *commBufs) (loss float64, tokens int64, stopAll bool, st commStats, err error) {
	size := cm.Size()
	if size == 1 { // one process: the slabs are all here, summed in order
		for i, g := range slabs {
			if i == 0 {
				copy(dst, g)
			} else {
				kernels.Add(dst, dst, g)
			}
			loss += losses[i]
			tokens += counts[i][0]
		}
		return loss, tokens, stop, st, nil
	}
	per := len(slabs)
	n := len(dst)
	chunk := (n + size - 1) / size
	// First every process's losses, counts and flags: it is also the
	// barrier after which the gradients' transfer is timed.
	meta := per*24 + 8
	bufs.grow(size, meta, per, chunk)
	mb := bufs.meta
	for j := 0; j < per; j++ {
		binary.LittleEndian.PutUint64(mb[24*j:], math.Float64bits(losses[j]))
		binary.LittleEndian.PutUint64(mb[24*j+8:], uint64(counts[j][0]))
		binary.LittleEndian.PutUint64(mb[24*j+16:], uint64(counts[j][1]))
	}
	flag := uint64(0)
	if stop {
		flag |= 1
	}
	if failed != nil {
		flag |= 2
	}
	binary.LittleEndian.PutUint64(mb[per*24:], flag)
	t0 := time.Now()
	if err := cm.AllGather(mb, bufs.metaAll); err != nil {
		return 0, 0, false, st, fmt.Errorf("gathering the gradients: %w", err)
	}
	t1 := time.Now()
	for r := 0; r < size; r++ {
		f := binary.LittleEndian.Uint64(bufs.metaAll[r*meta+meta-8:])
		stopAll = stopAll || f&1 != 0
		if f&2 == 0 {
			continue
		}
		if r == cm.Rank() {
			return 0, 0, false, st, &GroupError{Rank: r, Err: failed}
		}
		return 0, 0, false, st, &GroupError{Rank: r, Err: errors.New("its micro-batches failed (its own message says why)")}
	}
	for i := 0; i < total; i++ {
		m := bufs.metaAll[(i%size)*meta+(i/size)*24:]
		loss += math.Float64frombits(binary.LittleEndian.Uint64(m))
		tokens += int64(binary.LittleEndian.Uint64(m[8:]))
	}
	// The all-to-all: block d holds this process's slabs' chunk d. (The
	// gradients travel as the float32s in memory: every platform lowrank
	// runs on is little-endian.)
	sb := bufs.send
	for d := 0; d < size; d++ {
		lo, hi := min(d*chunk, n), min((d+1)*chunk, n)
		for j, g := range slabs {
			copy(sb[(d*per+j)*chunk:], g[lo:hi])
		}
	}
	if err := cm.AllToAll(f32Bytes(sb), f32Bytes(bufs.recv)); err != nil {
		return 0, 0, false, st, fmt.Errorf("gathering the gradients: %w", err)
	}
	// This process's chunk, summed in global micro-batch order: global
	// micro-batch i is process i%size's slab i/size. (kernels.Add adds
	// element by element: the same sums as a scalar loop.)
	part := bufs.part
	for i := 0; i < total; i++ {
		g := bufs.recv[((i%size)*per+i/size)*chunk:][:chunk]
		if i == 0 {
			copy(part, g)
		} else {
			kernels.Add(part, part, g)
		}
	}
	if err := cm.AllGather(f32Bytes(part), f32Bytes(bufs.all)); err != nil {
		return 0, 0, false, st, fmt.Errorf("gathering the gradients: %w", err)
	}
	copy(dst, bufs.all[:n])
	st = commStats{Bytes: int64(len(bufs.metaAll) + 4*len(bufs.recv) + 4*len(bufs.all)), Secs: time.Since(t1).Seconds(), Wait: t1.Sub(t0).Seconds()}
	return loss, tokens, stopAll, st, nil
}

// commBufs are a step's messages, kept from step to step.
type commBufs struct {
	meta, metaAll []byte
	send, recv    []float32 // the all-to-all's: size blocks of per·chunk
	part, all     []float32 // this process's summed chunk; every one's
}

func (b *commBufs) grow(size, meta, per, chunk int) {
	if len(b.meta) == meta && len(b.send) == size*per*chunk && len(b.part) == chunk {
		return
	}
	b.meta, b.metaAll = make([]byte, meta), make([]byte, size*meta)
	b.send, b.recv = make([]float32, size*per*chunk), make([]float32, size*per*chunk)
	b.part, b.all = make([]float32, chunk), make([]float32, size*chunk)
}

// sumInt64 is v summed over the group (every process gets the sum), or
// the error of the lowest rank that had one (failed: this process's), on
// every process.
func sumInt64(cm Comm, v int64, failed error) (int64, error) {
	send := binary.LittleEndian.AppendUint64(nil, uint64(v))
	if failed != nil { // (NUL-ended: even an empty message marks it)
		send = append(append(send, failed.Error()...), 0)
	}
	all, err := allGatherBytes(cm, send)
	if err != nil {
		return 0, fmt.Errorf("summing the step's tokens: %w", err)
	}
	var s int64
	for r, m := range all {
		switch {
		case len(m) > 8 && r == cm.Rank():
			return 0, &GroupError{Rank: r, Err: failed}
		case len(m) > 8:
			return 0, &GroupError{Rank: r, Err: errors.New(string(m[8 : len(m)-1]))}
		}
		s += int64(binary.LittleEndian.Uint64(m))
	}
	return s, nil
}

// comm is the session's group (Local unless set).
func (s *Session) comm() Comm {
	if s.Comm == nil {
		return Local{}
	}
	return s.Comm
}

// GroupError is an error every process of the group returns: rank Rank's,
// which the others learnt from it (so that it is printed once, by rank 0,
// and every process exits together instead of waiting on the failed one).
type GroupError struct {
	Rank int
	Err  error
}

func (e *GroupError) Error() string {
	if e.Rank == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("rank %d: %v", e.Rank, e.Err)
}

func (e *GroupError) Unwrap() error { return e.Err }

// allGatherBytes gives every process every process's b (of any length),
// in rank order.
func allGatherBytes(cm Comm, b []byte) ([][]byte, error) {
	size := cm.Size()
	lens := make([]byte, 8*size)
	if err := cm.AllGather(binary.LittleEndian.AppendUint64(nil, uint64(len(b))), lens); err != nil {
		return nil, err
	}
	n := 0
	for r := 0; r < size; r++ {
		n = max(n, int(binary.LittleEndian.Uint64(lens[8*r:])))
	}
	send := make([]byte, n)
	copy(send, b)
	recv := make([]byte, n*size)
	if err := cm.AllGather(send, recv); err != nil {
		return nil, err
	}
	out := make([][]byte, size)
	for r := range out {
		out[r] = recv[r*n : r*n+int(binary.LittleEndian.Uint64(lens[8*r:]))]
	}
	return out, nil
}

// agree tells every process of the group whether any of them failed: each
// gets the error of the lowest failing rank (its own on that rank), as a
// GroupError, or nil when none did. With one process it is err.
func agree(cm Comm, err error) error {
	if cm.Size() == 1 {
		return err
	}
	msg := []byte{}
	if err != nil {
		msg = append([]byte(err.Error()), 0) // non-empty even for an empty message
	}
	all, gerr := allGatherBytes(cm, msg)
	if gerr != nil {
		return gerr
	}
	for r, m := range all {
		if len(m) == 0 {
			continue
		}
		if r == cm.Rank() {
			return &GroupError{Rank: r, Err: err}
		}
		return &GroupError{Rank: r, Err: errors.New(string(m[:len(m)-1]))}
	}
	return nil
}

// sameInputs checks that every process trains on what rank 0 does: the
// same base, tokenizer and data (a rank on another machine with other
// files would make every step's gradient a mixture). A different kernel
// path (another CPU) only changes rounding: it is logged.
func sameInputs(cm Comm, p Fingerprints, warn func(rank int, kernel string)) error {
	if cm.Size() == 1 {
		return nil
	}
	b, _ := json.Marshal(p)
	all, err := allGatherBytes(cm, b)
	if err != nil {
		return err
	}
	var lead Fingerprints
	if err := json.Unmarshal(all[0], &lead); err != nil {
		return err
	}
	for r := 1; r < len(all); r++ {
		var q Fingerprints
		if err := json.Unmarshal(all[r], &q); err != nil {
			return err
		}
		if d := printChanges(lead, q); len(d) > 0 {
			return &GroupError{Rank: r, Err: fmt.Errorf("it does not train on what rank 0 does: %s (every rank needs the same files)", joinChanges(d))}
		}
		if q.Kernel != lead.Kernel && cm.Rank() == 0 {
			warn(r, q.Kernel)
		}
	}
	return nil
}
