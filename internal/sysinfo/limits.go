package sysinfo

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// CPUs returns how many CPUs this process may use: the CPUs its affinity
// mask allows (runtime.NumCPU), lowered by a cgroup CPU quota (cpu.max, or
// cpu.cfs_quota_us under cgroup v1) rounded up, and what limits it.
func CPUs() (int, string) {
	n, why := runtime.NumCPU(), "CPU affinity"
	if q, ok := cgroupCPUQuota(); ok && q < n {
		n, why = q, "the cgroup's CPU quota"
	}
	return n, why
}

// CheckThreads refuses a worker count above CPUs(): each worker holds its
// own packing buffers, and more workers than CPUs only slow a run down.
// 0 (all the CPUs) is always accepted.
func CheckThreads(n int) error {
	limit, why := CPUs()
	switch {
	case n < 0:
		return fmt.Errorf("--threads %d must not be negative (0: every CPU this process may use)", n)
	case n > limit:
		return fmt.Errorf("--threads %d: this process may use %d CPUs (%s); more threads only slow it down", n, limit, why)
	}
	return nil
}

// Memory returns how many bytes this process may use: the cgroup's memory
// limit (memory.max, or memory.limit_in_bytes under cgroup v1) when there
// is one, else the physical memory; 0 when neither is known.
func Memory() (int64, string) {
	phys := physicalMemory()
	if lim, ok := cgroupMemory(); ok && (phys == 0 || lim < phys) {
		return lim, "the cgroup's memory limit"
	}
	return phys, "physical memory"
}

// Where cgroups are read (variables for the tests).
var (
	procCgroup = "/proc/self/cgroup"
	cgroupRoot = "/sys/fs/cgroup"
)

// cgroupDirs returns, for the given cgroup v1 controller, the directories of
// this process's cgroup and its ancestors, innermost first, for v2 and v1.
func cgroupDirs(controller string) (v2, v1 []string) {
	raw, err := os.ReadFile(procCgroup)
	if err != nil {
		return nil, nil
	}
	up := func(root, p string) []string {
		var dirs []string
		for p = filepath.Clean("/" + p); ; p = filepath.Dir(p) {
			dirs = append(dirs, filepath.Join(root, p))
			if p == "/" {
				return dirs
			}
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = up(cgroupRoot, parts[2])
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				v1 = up(filepath.Join(cgroupRoot, controller), parts[2])
			}
		}
	}
	return v2, v1
}

// readInt reads a file holding one integer ("max" is unlimited: false).
func readInt(path string) (int64, bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	return n, err == nil
}

// unlimited is the smallest value cgroups use to mean no limit (v1 writes
// the largest page-aligned int64).
const unlimited = 1 << 62

func cgroupMemory() (int64, bool) {
	v2, v1 := cgroupDirs("memory")
	best, found := int64(0), false
	take := func(n int64, ok bool) {
		if ok && n > 0 && n < unlimited && (!found || n < best) {
			best, found = n, true
		}
	}
	for _, d := range v2 {
		take(readInt(filepath.Join(d, "memory.max")))
	}
	for _, d := range v1 {
		take(readInt(filepath.Join(d, "memory.limit_in_bytes")))
	}
	return best, found
}

func cgroupCPUQuota() (int, bool) {
	v2, v1 := cgroupDirs("cpu")
	best, found := 0, false
	take := func(quota, period int64) {
		if quota <= 0 || period <= 0 {
			return
		}
		n := int((quota + period - 1) / period)
		if !found || n < best {
			best, found = n, true
		}
	}
	for _, d := range v2 {
		raw, err := os.ReadFile(filepath.Join(d, "cpu.max"))
		if f := strings.Fields(string(raw)); err == nil && len(f) == 2 {
			q, errq := strconv.ParseInt(f[0], 10, 64) // "max": no quota
			p, errp := strconv.ParseInt(f[1], 10, 64)
			if errq == nil && errp == nil {
				take(q, p)
			}
		}
	}
	for _, d := range v1 {
		q, okq := readInt(filepath.Join(d, "cpu.cfs_quota_us"))
		p, okp := readInt(filepath.Join(d, "cpu.cfs_period_us"))
		if okq && okp {
			take(q, p)
		}
	}
	return best, found
}
