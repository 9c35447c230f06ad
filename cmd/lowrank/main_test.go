package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// capture runs the command line with stdout and stderr redirected.
func capture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	done := make(chan [2]string)
	go func() {
		var a, b bytes.Buffer
		ch := make(chan struct{})
		go func() { io.Copy(&b, re); close(ch) }()
		io.Copy(&a, ro)
		<-ch
		done <- [2]string{a.String(), b.String()}
	}()
	code = run(args)
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = oldOut, oldErr
	out := <-done
	return code, out[0], out[1]
}

func TestBenchKernelsJSON(t *testing.T) {
	code, out, errOut := capture(t, "bench", "kernels", "--shapes", "512", "--formats", "f32,q4_0", "--time", "20ms", "--threads", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		Kernel  string `json:"kernel"`
		Threads int    `json:"threads"`
		Results []struct {
			Shape  string  `json:"shape"`
			Format string  `json:"format"`
			Op     string  `json:"op"`
			GFLOPS float64 `json:"gflops"`
		} `json:"results"`
		PeakRSS int64 `json:"peak_rss_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if res.Threads != 1 || len(res.Results) != 4 || res.PeakRSS <= 0 {
		t.Fatalf("unexpected result: %+v", res)
	}
	for _, r := range res.Results {
		if r.GFLOPS <= 0 || r.Shape != "512x512x512" {
			t.Errorf("bad row %+v", r)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "kernels", "--bogus"},
		{"bench", "kernels", "--formats", "q5_k"},
		{"bench", "kernels", "--kernel", "sse9"},
		{"bench", "kernels", "--shapes", "nothing-matches"},
	} {
		code, _, errOut := capture(t, args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != 2 || !strings.HasPrefix(lines[0], "lowrank: ") || strings.Contains(errOut, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}
