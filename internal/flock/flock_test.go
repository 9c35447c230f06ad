package flock

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAcquire: a second holder is refused naming the first (pid, host); the
// lock is free again once released, and once its holder is killed.
func TestAcquire(t *testing.T) {
	p := filepath.Join(t.TempDir(), ".lock")
	l, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(p) // a second open file description: flock refuses it
	var he *HeldError
	if !errors.As(err, &he) || he.Holder.PID != os.Getpid() || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("second acquire: %v", err)
	}
	l.Close()
	l2, err := Acquire(p)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Close()

	// Another process holds it (this test binary as a helper), then is
	// killed: it is named while it lives, and the kernel releases its lock.
	if testing.Short() {
		t.Skip("a helper process: skipped with -short (the emulated arm64 run)")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperHold$")
	cmd.Env = append(os.Environ(), "FLOCK_HOLD="+p)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	io.ReadFull(out, buf) // "held"
	_, err = Acquire(p)
	if !errors.As(err, &he) || he.Holder.PID != cmd.Process.Pid {
		t.Fatalf("held by the helper (pid %d): %v", cmd.Process.Pid, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l3, err := Acquire(p)
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l3.Close()
}

// TestHelperHold is the helper process of TestAcquire: it takes the lock,
// says so and waits to be killed.
func TestHelperHold(t *testing.T) {
	p := os.Getenv("FLOCK_HOLD")
	if p == "" {
		t.Skip("helper process of TestAcquire")
	}
	if _, err := Acquire(p); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("held")
	time.Sleep(time.Minute)
}
