package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/lowrank/lowrank/internal/testassets"
)

// TestMain lets a test re-run this binary as lowrank itself (a real process
// to send signals to): LOWRANK_TEST_MAIN=1 makes it run the command line.
// Otherwise it runs the tests.
func TestMain(m *testing.M) {
	if os.Getenv("LOWRANK_TEST_MAIN") == "1" {
		if os.Getenv("LOWRANK_TEST_HUB") == "1" {
			hfcache.Hub = hubClient // downloads on, as main sets them
		}
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(testassets.RunWithTempCache(m)) // the token cache in a temporary directory
}

// TestSIGTERM: a training process sent SIGTERM finishes its step, saves a
// valid adapter, says how to continue from it, and exits 130.
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("a training process: skipped with -short (the emulated arm64 run)")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data.txt")
	var b strings.Builder
	for i := 0; i < 200; i++ {
		b.WriteString("Zorb the robot counted the stars and painted the clouds blue.\n\n")
	}
	os.WriteFile(data, []byte(b.String()), 0o644)
	runDir := filepath.Join(dir, "run")
	cmd := exec.Command(os.Args[0], "train", "--model", testassets.Path(t, "models/stories260K/hf"), "--data", data,
		"--max-steps", "100000", "--batch-size", "2", "--max-seq-len", "32", "--out", runDir, "--log-every", "1")
	cmd.Env = append(os.Environ(), "LOWRANK_TEST_MAIN=1")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	stepped, done := make(chan struct{}), make(chan struct{})
	go func() { // copy stderr, saying when the first step line arrives
		defer close(done)
		sc := bufio.NewScanner(pipe)
		first := true
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			if first && strings.Contains(sc.Text(), "msg=step") {
				close(stepped)
				first = false
			}
		}
	}()
	select {
	case <-stepped:
	case <-time.After(60 * time.Second):
		t.Error("no step within 60 s")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-done
	err = cmd.Wait()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	out := stderr.String()
	if code != 130 || !strings.Contains(out, "lowrank train --resume "+runDir) || strings.Contains(out, "goroutine") {
		t.Fatalf("exit %d (%v), stderr:\n%s", code, err, out)
	}
	f, err := safetensors.Open(filepath.Join(runDir, "adapter", "adapter_model.safetensors"))
	if err != nil {
		t.Fatalf("adapter after SIGTERM: %v", err)
	}
	defer f.Close()
	if len(f.Names()) == 0 {
		t.Error("empty adapter")
	}
}
