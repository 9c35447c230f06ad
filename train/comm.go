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
// gathered and summed in global order, so the result does not depend on
// the number of processes. Local is one process; internal/mpi provides
// MPI (built with -tags mpi).
type Comm interface {
	Rank() int
	Size() int
	// AllGather gives every process every process's send (all of one
	// length), in rank order, in recv (size × len(send)).
	AllGather(send, recv []byte) error
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
func (Local) Abort(int) {}

// commStats are what a step spent talking to the other processes.
type commStats struct {
	Bytes int64   // all-gathered (received) per step
	Secs  float64 // in the gradients' all-gather, once every process is there
	Wait  float64 // waiting for the slowest process to finish its micro-batches
}

// gatherGrads all-gathers the per-micro-batch gradient slabs (slabs[j]:
// global micro-batch rank + j·size of the step) and the losses and token
// counts, and sums the gradients into dst in global order:
// dst = ((g0 + g1) + g2) + … whatever the process count. stop is this
// process's wish to stop after the step (a signal); stopAll is whether any
// process of the group has it, so that all stop after the same step.
// send and recv are buffers kept from step to step.
// failed is this process's error computing its micro-batches (sent as a
// flag: every process then returns an error).
func gatherGrads(cm Comm, dst []float32, slabs [][]float32, losses []float64, counts [][2]int64, total int, stop bool, failed error, send, recv *[]byte) (loss float64, tokens int64, stopAll bool, st commStats, err error) {
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
	// One message per process: its slabs, then its losses and counts, then
	// its stop flag.
	rec := per*(4*n+24) + 8
	if len(*send) != rec {
		*send, *recv = make([]byte, rec), make([]byte, size*rec)
	}
	sb, rb := *send, *recv
	o := 0
	for j := range slabs {
		for _, v := range slabs[j] {
			binary.LittleEndian.PutUint32(sb[o:], math.Float32bits(v))
			o += 4
		}
	}
	for j := 0; j < per; j++ {
		binary.LittleEndian.PutUint64(sb[o:], math.Float64bits(losses[j]))
		binary.LittleEndian.PutUint64(sb[o+8:], uint64(counts[j][0]))
		binary.LittleEndian.PutUint64(sb[o+16:], uint64(counts[j][1]))
		o += 24
	}
	flag := uint64(0)
	if stop {
		flag |= 1
	}
	if failed != nil {
		flag |= 2
	}
	binary.LittleEndian.PutUint64(sb[o:], flag)
	// A barrier first (an all-gather of 8 bytes), so that the time the
	// gradients' all-gather takes is the transfer, not the wait for the
	// slowest process.
	t0 := time.Now()
	if err := cm.AllGather(make([]byte, 8), make([]byte, 8*size)); err != nil {
		return 0, 0, false, st, fmt.Errorf("gathering the gradients: %w", err)
	}
	t1 := time.Now()
	if err := cm.AllGather(sb, rb); err != nil {
		return 0, 0, false, st, fmt.Errorf("gathering the gradients: %w", err)
	}
	st = commStats{Bytes: int64(len(rb)), Secs: time.Since(t1).Seconds(), Wait: t1.Sub(t0).Seconds()}
	for r := 0; r < size; r++ {
		if binary.LittleEndian.Uint64(rb[r*rec+rec-8:])&2 == 0 {
			continue
		}
		if r == cm.Rank() {
			return 0, 0, false, st, &GroupError{Rank: r, Err: failed}
		}
		return 0, 0, false, st, &GroupError{Rank: r, Err: errors.New("its micro-batches failed (its own message says why)")}
	}
	// Global micro-batch i is process i%size's slab i/size.
	for i := 0; i < total; i++ {
		r, j := i%size, i/size
		base := r * rec
		g := rb[base+j*4*n : base+(j+1)*4*n]
		if i == 0 {
			for k := range dst {
				dst[k] = math.Float32frombits(binary.LittleEndian.Uint32(g[4*k:]))
			}
		} else {
			for k := range dst {
				dst[k] += math.Float32frombits(binary.LittleEndian.Uint32(g[4*k:]))
			}
		}
		m := rb[base+per*4*n+j*24:]
		loss += math.Float64frombits(binary.LittleEndian.Uint64(m))
		tokens += int64(binary.LittleEndian.Uint64(m[8:]))
	}
	for r := 0; r < size; r++ {
		stopAll = stopAll || binary.LittleEndian.Uint64(rb[r*rec+rec-8:])&1 != 0
	}
	return loss, tokens, stopAll, st, nil
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
