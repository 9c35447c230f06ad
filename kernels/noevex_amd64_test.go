//go:build amd64 && !noasm

package kernels

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAVX2NoEVEX: the functions of the AVX2 and AVX-VNNI assembly files
// (what the avx2 paths run) hold no EVEX-encoded instruction (an AVX-512
// one: its first byte 0x62), each file assembled by go tool asm and read
// back by go tool objdump. Go's assembler picks EVEX by itself for an operand only AVX-512
// has, as VPBROADCASTD from a general register once did in a decoder the
// AVX2 int8 paths share.
func TestAVX2NoEVEX(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH: go tool objdump reads the binary")
	}
	root, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	inc := filepath.Join(strings.TrimSpace(string(root)), "pkg", "include")
	var files []string
	for _, pat := range []string{"*avx2*_amd64.s", "*avxvnni*_amd64.s"} {
		f, _ := filepath.Glob(pat)
		files = append(files, f...)
	}
	if len(files) < 5 {
		t.Fatalf("found %d AVX2 assembly files", len(files))
	}
	insRe := regexp.MustCompile(`^\t0x([0-9a-f]{4}) \d{5} \(([^)]*)\)\t(\S+)`)
	hexRe := regexp.MustCompile(`^\t0x([0-9a-f]{4}) ((?:[0-9a-f]{2} )*[0-9a-f]{2})`)
	nfn, nins := 0, 0
	for _, f := range files {
		asm := exec.Command(goBin, "tool", "asm", "-S", "-I", inc, "-p", "kernels", "-o", filepath.Join(t.TempDir(), f+".o"), f)
		asm.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64")
		out, err := asm.CombinedOutput()
		if err != nil {
			t.Fatalf("go tool asm %s: %v: %.500s", f, err, out)
		}
		// The listing: per function its instructions (offset, source line,
		// mnemonic), then its bytes as a hex dump.
		type ins struct {
			off        int
			line, name string
		}
		var fn []ins
		code := map[int]byte{}
		check := func() {
			for _, in := range fn {
				if b, ok := code[in.off]; !ok {
					t.Fatalf("%s: no byte at %#x (%s)", f, in.off, in.line)
				} else if b == 0x62 {
					t.Errorf("%s: %s is EVEX-encoded (AVX-512)", in.line, in.name)
				}
			}
			fn, code = nil, map[int]byte{}
		}
		text := false
		for _, line := range strings.Split(string(out), "\n") {
			if line != "" && line[0] != '\t' { // a symbol: a function (STEXT) or data
				check()
				if text = strings.Contains(line, " STEXT "); text {
					nfn++
				}
				continue
			}
			if !text {
				continue
			}
			if m := insRe.FindStringSubmatch(line); m != nil {
				switch m[3] {
				case "TEXT", "FUNCDATA", "PCDATA":
					continue
				}
				off, _ := strconv.ParseInt(m[1], 16, 32)
				fn = append(fn, ins{int(off), m[2], m[3]})
				nins++
				continue
			}
			if m := hexRe.FindStringSubmatch(line); m != nil {
				off, _ := strconv.ParseInt(m[1], 16, 32)
				for k, h := range strings.Fields(m[2]) {
					v, _ := strconv.ParseUint(h, 16, 8)
					code[int(off)+k] = byte(v)
				}
			}
		}
		check()
	}
	if nins == 0 {
		t.Fatal("no instruction disassembled")
	}
	t.Logf("%d files, %d functions, %d instructions checked", len(files), nfn, nins)
}
