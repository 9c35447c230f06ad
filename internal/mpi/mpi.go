//go:build mpi

// Package mpi is a run's process group over MPI (Open MPI through cgo), for
// data-parallel training: built only with -tags mpi (make build-mpi), so
// that the default binary stays static and cgo-free.
package mpi

/*
#cgo pkg-config: ompi-c
#include <stdlib.h>
#include <mpi.h>

// Open MPI's handlers for SIGSEGV and friends would take over the Go
// runtime's (set without SA_ONSTACK): leave them to Go.
static int lr_init(int *provided) {
	setenv("OMPI_MCA_opal_signal", "", 0);
	int err = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (err != MPI_SUCCESS) return err;
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static int lr_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int lr_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int lr_allgather(void *send, int n, void *recv) {
	return MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD);
}
static int lr_alltoall(void *send, int n, void *recv) {
	return MPI_Alltoall(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD);
}
static int lr_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int lr_finalize(void) { return MPI_Finalize(); }
static void lr_error(int code, char *buf) {
	int n = 0;
	if (MPI_Error_string(code, buf, &n) != MPI_SUCCESS) n = 0;
	buf[n] = 0;
}
static int lr_version(char *buf) {
	int n = 0;
	MPI_Get_library_version(buf, &n);
	buf[n] = 0;
	return n;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"
)

// Comm is MPI_COMM_WORLD. Its methods are called from one goroutine at a
// time (MPI_THREAD_SERIALIZED).
type Comm struct {
	rank, size int
	mu         sync.Mutex
}

var (
	once    sync.Once
	world   *Comm
	initErr error
)

// Available reports that this binary is built with MPI.
const Available = true

// Init joins the process group mpirun (or srun, or the MPI Operator)
// started; a process started alone is a group of one.
func Init() (*Comm, error) {
	once.Do(func() {
		var provided C.int
		if rc := C.lr_init(&provided); rc != C.MPI_SUCCESS {
			initErr = fmt.Errorf("MPI_Init: %s", errorString(rc))
			return
		}
		if provided < C.MPI_THREAD_SERIALIZED {
			initErr = errors.New("MPI_Init: this MPI library does not allow calls from more than one thread (MPI_THREAD_SERIALIZED)")
			return
		}
		var r, s C.int
		if rc := C.lr_rank(&r); rc != C.MPI_SUCCESS {
			initErr = fmt.Errorf("MPI_Comm_rank: %s", errorString(rc))
			return
		}
		if rc := C.lr_size(&s); rc != C.MPI_SUCCESS {
			initErr = fmt.Errorf("MPI_Comm_size: %s", errorString(rc))
			return
		}
		world = &Comm{rank: int(r), size: int(s)}
	})
	return world, initErr
}

func (c *Comm) Rank() int { return c.rank }
func (c *Comm) Size() int { return c.size }

// AllGather gives every process every process's send, in rank order.
func (c *Comm) AllGather(send, recv []byte) error {
	if len(recv) != len(send)*c.size {
		return fmt.Errorf("all-gather: %d bytes to receive for %d sent by %d processes", len(recv), len(send), c.size)
	}
	if len(send) > math.MaxInt32 {
		return fmt.Errorf("all-gather: %d bytes from each process, more than MPI's count of 2³¹−1", len(send))
	}
	if len(send) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc := C.lr_allgather(unsafe.Pointer(&send[0]), C.int(len(send)), unsafe.Pointer(&recv[0])); rc != C.MPI_SUCCESS {
		return fmt.Errorf("MPI_Allgather: %s", errorString(rc))
	}
	return nil
}

// AllToAll sends block d of send (size equal blocks) to process d and
// receives process r's block for this one as block r of recv.
func (c *Comm) AllToAll(send, recv []byte) error {
	if len(send)%c.size != 0 || len(recv) != len(send) {
		return fmt.Errorf("all-to-all: %d bytes to send and %d to receive over %d processes", len(send), len(recv), c.size)
	}
	block := len(send) / c.size
	if block > math.MaxInt32 {
		return fmt.Errorf("all-to-all: %d bytes for each process, more than MPI's count of 2³¹−1", block)
	}
	if block == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc := C.lr_alltoall(unsafe.Pointer(&send[0]), C.int(block), unsafe.Pointer(&recv[0])); rc != C.MPI_SUCCESS {
		return fmt.Errorf("MPI_Alltoall: %s", errorString(rc))
	}
	return nil
}

// Abort ends every process of the group.
func (c *Comm) Abort(code int) {
	C.lr_abort(C.int(code))
}

// Finalize leaves the group (at the end of a run that ended normally).
func (c *Comm) Finalize() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc := C.lr_finalize(); rc != C.MPI_SUCCESS {
		return fmt.Errorf("MPI_Finalize: %s", errorString(rc))
	}
	return nil
}

// Library is the MPI library's own version line.
func Library() string {
	buf := make([]byte, C.MPI_MAX_LIBRARY_VERSION_STRING+1)
	n := C.lr_version((*C.char)(unsafe.Pointer(&buf[0])))
	s := string(buf[:n])
	if i := strings.IndexAny(s, ",\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func errorString(rc C.int) string {
	buf := make([]byte, C.MPI_MAX_ERROR_STRING+1)
	C.lr_error(rc, (*C.char)(unsafe.Pointer(&buf[0])))
	return C.GoString((*C.char)(unsafe.Pointer(&buf[0])))
}
