//go:build arm64 && !noasm && linux

package kernels

import "golang.org/x/sys/unix"

// hasBF16 reports FEAT_BF16 (BFDOT) from the auxiliary vector's HWCAP2
// (HWCAP2_BF16), which golang.org/x/sys/cpu does not read.
func hasBF16() bool {
	const atHWCAP2, hwcap2BF16 = 26, 1 << 14
	auxv, err := unix.Auxv()
	if err != nil {
		return false
	}
	for _, kv := range auxv {
		if kv[0] == atHWCAP2 {
			return kv[1]&hwcap2BF16 != 0
		}
	}
	return false
}
