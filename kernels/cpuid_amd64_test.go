//go:build amd64 && !noasm && linux

package kernels

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestCPUVendor: CPUID's vendor string is the one Linux reports, and auto
// picks the VDPBF16PS path exactly where it runs at full rate (AMD), AMX
// aside.
func TestCPUVendor(t *testing.T) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		t.Skipf("no /proc/cpuinfo: %v", err)
	}
	defer f.Close()
	var linux string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "vendor_id" {
			linux = strings.TrimSpace(v)
			break
		}
	}
	if v := cpuVendor(); v != linux {
		t.Fatalf("CPUID vendor %q, /proc/cpuinfo %q", v, linux)
	}
	if vdpbf16psFullRate() != (linux == "AuthenticAMD") {
		t.Fatalf("full rate %v on %s", vdpbf16psFullRate(), linux)
	}
	if os.Getenv("LOWRANK_KERNEL") != "" {
		return // auto starts from the path it names
	}
	auto := must(PathFor("", "auto"))
	switch {
	case amxTiles() && cpu.X86.HasAMXBF16:
		if auto != avx512AMXPath {
			t.Errorf("AMX: auto is %s", auto.Name())
		}
	case cpu.X86.HasAVX512BF16 && linux == "AuthenticAMD":
		if auto != avx512BF16Path {
			t.Errorf("AMD with AVX512_BF16: auto is %s", auto.Name())
		}
	case auto.bf16 != nil:
		t.Errorf("%s: auto is %s", linux, auto.Name())
	}
}
