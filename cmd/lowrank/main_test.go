package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
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

// TestGenerateStories260K: the README's generate example reproduces llama2.c's
// greedy text byte for byte from the HF directory and both GGUF files.
func TestGenerateStories260K(t *testing.T) {
	want, err := os.ReadFile(testassets.Path(t, "models/stories260K/expected_greedy_200.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"hf", "tinyllamas-stories-260k-f32.gguf", "stories260K-f32-v3.gguf"} {
		code, out, errOut := capture(t, "generate", "--model", testassets.Path(t, "models/stories260K/"+m), "--max-tokens", "200", "--temperature", "0")
		if code != 0 || out != string(want) {
			t.Errorf("%s: exit %d %s\n got  %q\n want %q", m, code, errOut, out[:min(len(out), 100)], want[:100])
		}
	}
	code, _, errOut := capture(t, "generate", "--model", "/no/such/model")
	if code != 1 || !strings.Contains(errOut, "/no/such/model") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("missing model: exit %d, %q", code, errOut)
	}
}

func TestInspectDataset(t *testing.T) {
	code, out, errOut := capture(t, "inspect", testassets.Path(t, "datasets/llamafactory/identity.parquet"), "--model", testassets.Path(t, "tokenizers/qwen3"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Format string `json:"format"`
		Rows   int    `json:"rows"`
		Tokens struct {
			Coverage float64 `json:"mask_coverage"`
		} `json:"tokens"`
		Example string `json:"example"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Format != "alpaca" || rep.Rows != 91 || rep.Tokens.Coverage <= 0.3 || rep.Tokens.Coverage >= 0.7 || !strings.Contains(rep.Example, "[") {
		t.Errorf("report %+v", rep)
	}
	code, _, errOut = capture(t, "inspect", testassets.Path(t, "parquet-testing/bad_data/ARROW-GH-41321.parquet"))
	if code != 1 || !strings.Contains(errOut, "ARROW-GH-41321.parquet") || strings.Contains(errOut, "goroutine") {
		t.Errorf("bad parquet: exit %d, %q", code, errOut)
	}
}
