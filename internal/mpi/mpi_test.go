//go:build mpi

package mpi

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain leaves the group after the tests: a rank that called MPI_Init
// and exits without MPI_Finalize is an abnormal end to mpirun.
func TestMain(m *testing.M) {
	code := m.Run()
	if world != nil {
		if err := world.Finalize(); err != nil {
			println(err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// TestAllGather runs in every rank under mpirun (TestUnderMpirun starts
// it) and alone as a group of one.
func TestAllGather(t *testing.T) {
	c, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	if want := os.Getenv("LOWRANK_MPI_TEST_SIZE"); want != "" && want != string(rune('0'+c.Size())) {
		t.Fatalf("size %d, want %s", c.Size(), want)
	}
	// Uneven message lengths across calls, one of them large.
	for _, n := range []int{1, 7, 3 << 20} {
		send := make([]byte, n)
		for i := range send {
			send[i] = byte(c.Rank()*31 + i)
		}
		recv := make([]byte, n*c.Size())
		if err := c.AllGather(send, recv); err != nil {
			t.Fatal(err)
		}
		for r := 0; r < c.Size(); r++ {
			for i := 0; i < n; i++ {
				if recv[r*n+i] != byte(r*31+i) {
					t.Fatalf("n=%d: byte %d from rank %d is %d, want %d", n, i, r, recv[r*n+i], byte(r*31+i))
				}
			}
		}
	}
	// All-to-all: rank r's block d is (r, d, i); rank d receives block r from each r.
	for _, block := range []int{1, 5, 1 << 20} {
		send := make([]byte, block*c.Size())
		for d := 0; d < c.Size(); d++ {
			for i := 0; i < block; i++ {
				send[d*block+i] = byte(c.Rank()*17 + d*5 + i)
			}
		}
		recv := make([]byte, len(send))
		if err := c.AllToAll(send, recv); err != nil {
			t.Fatal(err)
		}
		for r := 0; r < c.Size(); r++ {
			for i := 0; i < block; i++ {
				if want := byte(r*17 + c.Rank()*5 + i); recv[r*block+i] != want {
					t.Fatalf("block %d: byte %d from rank %d is %d, want %d", block, i, r, recv[r*block+i], want)
				}
			}
		}
	}
	if err := c.AllGather(make([]byte, 4), make([]byte, 3)); err == nil {
		t.Fatal("a receive buffer of the wrong length was accepted")
	}
	if !strings.Contains(Library(), "MPI") {
		t.Errorf("library version %q", Library())
	}
}

// TestUnderMpirun starts this test binary as 3 ranks.
func TestUnderMpirun(t *testing.T) {
	if os.Getenv("LOWRANK_MPI_TEST_SIZE") != "" {
		t.Skip("inside mpirun")
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not installed (apt-get install openmpi-bin)")
	}
	cmd := exec.Command(mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "3", os.Args[0], "-test.run", "^TestAllGather$", "-test.v")
	cmd.Env = append(os.Environ(), "LOWRANK_MPI_TEST_SIZE=3")
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Count(out, []byte("--- PASS: TestAllGather")) != 3 {
		t.Fatalf("mpirun -np 3: %v\n%s", err, out)
	}
}
