// Command testsummary reads `go test -json` on stdin and prints what `go
// test` prints (each package's result, the output of failing tests), then
// every skipped test with its reason, so that a run says what it did not
// check and why. It exits 1 when anything failed or did not build.
//
//	go test -json ./... | go run ./internal/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of test2json's stream.
type event struct {
	Action     string
	Package    string
	ImportPath string // build output
	Test       string
	Output     string
}

type skip struct{ pkg, test, reason string }

func main() {
	failed, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func summarize(in io.Reader, out io.Writer) (failed bool, err error) {
	output := map[string][]string{} // package + test → its lines
	var skips []skip
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			fmt.Fprintln(out, sc.Text()) // not JSON: go vet's or the build's own words
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "build-fail":
			failed = true
		case "output":
			if e.Test == "" {
				// The package's own lines: ok/FAIL/? results, and a panic's trace.
				if t := strings.TrimSpace(e.Output); t != "PASS" && t != "FAIL" && !strings.HasPrefix(t, "=== ") {
					fmt.Fprint(out, e.Output)
				}
				continue
			}
			output[key] = append(output[key], e.Output)
		case "fail":
			failed = true
			if e.Test != "" {
				fmt.Fprint(out, strings.Join(output[key], ""))
			}
			delete(output, key)
		case "skip":
			if e.Test != "" {
				skips = append(skips, skip{e.Package, e.Test, reason(output[key])})
			}
			delete(output, key)
		case "pass":
			delete(output, key)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	if len(skips) > 0 {
		// Subtests skipped with their parent are the parent's skip.
		sort.Slice(skips, func(i, j int) bool {
			if skips[i].pkg != skips[j].pkg {
				return skips[i].pkg < skips[j].pkg
			}
			return skips[i].test < skips[j].test
		})
		byReason := map[string]int{}
		for _, s := range skips {
			byReason[s.reason]++
		}
		fmt.Fprintf(out, "\n%d tests skipped:\n", len(skips))
		for _, s := range skips {
			fmt.Fprintf(out, "  SKIP %s %s: %s\n", strings.TrimPrefix(s.pkg, "github.com/lowrank/lowrank/"), s.test, s.reason)
		}
		reasons := make([]string, 0, len(byReason))
		for r := range byReason {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if a, b := byReason[reasons[i]], byReason[reasons[j]]; a != b {
				return a > b
			}
			return reasons[i] < reasons[j]
		})
		fmt.Fprintln(out, "by reason:")
		for _, r := range reasons {
			fmt.Fprintf(out, "  %3d  %s\n", byReason[r], r)
		}
	}
	return failed, nil
}

// reason is what a skipped test said: its log lines without the harness's.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		if _, msg, ok := strings.Cut(t, ": "); ok && strings.Contains(t[:len(t)-len(msg)], ".go:") {
			t = msg // "file_test.go:12: reason" → "reason"
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " / ")
}
