//go:build arm64 && !noasm && darwin

package kernels

import "golang.org/x/sys/unix"

// hasBF16 reports FEAT_BF16 (BFDOT: Apple M2 on) from sysctl, which
// golang.org/x/sys/cpu does not read.
func hasBF16() bool {
	v, err := unix.SysctlUint32("hw.optional.arm.FEAT_BF16")
	return err == nil && v != 0
}
