package sysinfo

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeCgroups points the readers at a cgroup tree made of files.
func fakeCgroups(t *testing.T, self string, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, "fs", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "self"), []byte(self), 0o644)
	oldP, oldR := procCgroup, cgroupRoot
	procCgroup, cgroupRoot = filepath.Join(dir, "self"), filepath.Join(dir, "fs")
	t.Cleanup(func() { procCgroup, cgroupRoot = oldP, oldR })
}

func TestCgroupLimits(t *testing.T) {
	for _, c := range []struct {
		name      string
		self      string
		files     map[string]string
		mem       int64
		cpus      int
		memFound  bool
		cpusFound bool
	}{
		{name: "v2, limit on a parent", self: "0::/a/b\n", files: map[string]string{
			"a/memory.max": "1073741824\n", "a/b/memory.max": "max\n", "a/b/cpu.max": "150000 100000\n", "a/cpu.max": "max 100000\n"},
			mem: 1 << 30, memFound: true, cpus: 2, cpusFound: true},
		{name: "v2, no limits", self: "0::/a\n", files: map[string]string{"a/memory.max": "max\n", "a/cpu.max": "max 100000\n"}},
		{name: "v1, the innermost limit", self: "4:memory:/job/7\n2:cpu,cpuacct:/job\n", files: map[string]string{
			"memory/job/7/memory.limit_in_bytes": "536870912\n", "memory/memory.limit_in_bytes": "9223372036854771712\n",
			"cpu/job/cpu.cfs_quota_us": "100000\n", "cpu/job/cpu.cfs_period_us": "100000\n"},
			mem: 1 << 29, memFound: true, cpus: 1, cpusFound: true},
		{name: "v1, unlimited", self: "4:memory:/\n2:cpu:/\n", files: map[string]string{
			"memory/memory.limit_in_bytes": "9223372036854771712\n", "cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeCgroups(t, c.self, c.files)
			if m, ok := cgroupMemory(); m != c.mem || ok != c.memFound {
				t.Errorf("memory %d (%v), want %d (%v)", m, ok, c.mem, c.memFound)
			}
			if n, ok := cgroupCPUQuota(); n != c.cpus || ok != c.cpusFound {
				t.Errorf("CPUs %d (%v), want %d (%v)", n, ok, c.cpus, c.cpusFound)
			}
		})
	}
}

func TestCheckThreads(t *testing.T) {
	fakeCgroups(t, "0::/\n", nil)
	n, _ := CPUs()
	if n != runtime.NumCPU() {
		t.Fatalf("CPUs %d without a quota, want NumCPU %d", n, runtime.NumCPU())
	}
	for _, ok := range []int{0, 1, n} {
		if err := CheckThreads(ok); err != nil {
			t.Errorf("%d threads refused: %v", ok, err)
		}
	}
	for _, bad := range []int{-1, n + 1, 100000} {
		if err := CheckThreads(bad); err == nil || !strings.Contains(err.Error(), "--threads") {
			t.Errorf("%d threads: %v", bad, err)
		}
	}
	if m, _ := Memory(); runtime.GOOS == "linux" && m <= 0 {
		t.Errorf("no physical memory on Linux")
	}
}
