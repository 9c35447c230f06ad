//go:build !mpi

package mpi

import "errors"

// Available reports that this binary is built with MPI (make build-mpi).
const Available = false

// Comm is not built in this binary.
type Comm struct{}

// Init fails: this binary is built without MPI.
func Init() (*Comm, error) {
	return nil, errors.New("this lowrank is built without MPI: build it with make build-mpi (Open MPI's libopenmpi-dev and a C compiler)")
}

func (*Comm) Rank() int                         { return 0 }
func (*Comm) Size() int                         { return 1 }
func (*Comm) AllGather(send, recv []byte) error { return errors.New("built without MPI") }
func (*Comm) AllToAll(send, recv []byte) error  { return errors.New("built without MPI") }
func (*Comm) Abort(int)                         {}
func (*Comm) Finalize() error                   { return nil }

// Library names no MPI library.
func Library() string { return "" }
