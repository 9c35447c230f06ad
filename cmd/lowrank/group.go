package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/lowrank/lowrank/internal/mpi"
	"github.com/lowrank/lowrank/train"
)

// group is the MPI process group a train runs in (data-parallel), when an
// MPI launcher started it as several ranks.
type group struct {
	comm       *mpi.Comm
	rank, size int
}

// joinGroup joins the group mpirun (or srun, or the MPI Operator) started
// this process in; nil when it runs alone. A binary built without MPI
// refuses to run as one of several ranks: each would train alone, all of
// them into the same folder.
func joinGroup() (*group, error) {
	rank, size, by := mpi.Launched()
	if size <= 1 {
		return nil, nil
	}
	if !mpi.Available {
		return nil, fmt.Errorf("started as rank %d of %d by %s, but this lowrank is built without MPI, so each rank would train alone: build the MPI one with make build-mpi (needs Open MPI's libopenmpi-dev and a C compiler), or start one process", rank, size, by)
	}
	c, err := mpi.Init()
	if err != nil {
		return nil, err
	}
	groupRank.Store(int32(c.Rank()) + 1)
	return &group{comm: c, rank: c.Rank(), size: c.Size()}, nil
}

// end finishes the group after train.Run returned err: when every rank
// returns together (success, an interrupt, an error they share) they leave
// the group; an error of this rank's alone is printed and ends every rank
// (MPI_Abort), since the others would wait for it. It returns the error
// this process reports: nil on ranks other than 0 when rank 0 reports it.
func (g *group) end(err error) error {
	if g == nil {
		return err
	}
	var ge *train.GroupError
	if err != nil && !errors.As(err, &ge) && !errors.Is(err, train.ErrInterrupted) && !errors.Is(err, train.ErrDiverged) {
		fmt.Fprintf(os.Stderr, "lowrank: rank %d of %d: %v; ending every rank\n", g.rank, g.size, err)
		g.comm.Abort(1)
		return exitCode(1)
	}
	if ferr := g.comm.Finalize(); ferr != nil && err == nil {
		err = ferr
	}
	if g.rank != 0 && err != nil { // rank 0 says it
		if errors.Is(err, train.ErrInterrupted) {
			return exitCode(130)
		}
		return exitCode(1)
	}
	return err
}
