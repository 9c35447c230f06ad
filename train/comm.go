package train

import (
	"encoding/binary"
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
	Secs  float64 // in the all-gathers
}

// gatherGrads all-gathers the per-micro-batch gradient slabs (slabs[j]:
// global micro-batch rank + j·size of the step) and the losses and token
// counts, and sums the gradients into dst in global order:
// dst = ((g0 + g1) + g2) + … whatever the process count.
func gatherGrads(cm Comm, dst []float32, slabs [][]float32, losses []float64, counts [][2]int64, total int) (loss float64, tokens, supervised int64, st commStats, err error) {
	size := cm.Size()
	if size == 1 { // one process: the slabs are all here, summed in order
		for i, g := range slabs {
			if i == 0 {
				copy(dst, g)
			} else {
				kernels.Add(dst, dst, g)
			}
			loss += losses[i]
			tokens, supervised = tokens+counts[i][0], supervised+counts[i][1]
		}
		return loss, tokens, supervised, st, nil
	}
	per := len(slabs)
	n := len(dst)
	// One message per process: its slabs, then its losses and counts.
	rec := per * (4*n + 8 + 16)
	send := make([]byte, rec)
	o := 0
	for j := range slabs {
		for _, v := range slabs[j] {
			binary.LittleEndian.PutUint32(send[o:], math.Float32bits(v))
			o += 4
		}
	}
	for j := 0; j < per; j++ {
		binary.LittleEndian.PutUint64(send[o:], math.Float64bits(losses[j]))
		binary.LittleEndian.PutUint64(send[o+8:], uint64(counts[j][0]))
		binary.LittleEndian.PutUint64(send[o+16:], uint64(counts[j][1]))
		o += 24
	}
	recv := make([]byte, size*rec)
	t0 := time.Now()
	if err := cm.AllGather(send, recv); err != nil {
		return 0, 0, 0, st, fmt.Errorf("gathering the gradients: %w", err)
	}
	st = commStats{Bytes: int64(len(recv)), Secs: time.Since(t0).Seconds()}
	// Global micro-batch i is process i%size's slab i/size.
	for i := 0; i < total; i++ {
		r, j := i%size, i/size
		base := r * rec
		g := recv[base+j*4*n : base+(j+1)*4*n]
		if i == 0 {
			for k := range dst {
				dst[k] = math.Float32frombits(binary.LittleEndian.Uint32(g[4*k:]))
			}
		} else {
			for k := range dst {
				dst[k] += math.Float32frombits(binary.LittleEndian.Uint32(g[4*k:]))
			}
		}
		m := recv[base+per*4*n+j*24:]
		loss += math.Float64frombits(binary.LittleEndian.Uint64(m))
		tokens += int64(binary.LittleEndian.Uint64(m[8:]))
		supervised += int64(binary.LittleEndian.Uint64(m[16:]))
	}
	return loss, tokens, supervised, st, nil
}

// sumInt64 is v summed over the group (every process gets the sum).
func sumInt64(cm Comm, v int64) (int64, error) {
	send := binary.LittleEndian.AppendUint64(nil, uint64(v))
	recv := make([]byte, 8*cm.Size())
	if err := cm.AllGather(send, recv); err != nil {
		return 0, fmt.Errorf("summing the step's tokens: %w", err)
	}
	var s int64
	for r := 0; r < cm.Size(); r++ {
		s += int64(binary.LittleEndian.Uint64(recv[8*r:]))
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
