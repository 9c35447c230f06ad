//go:build arm64 && !noasm && !linux && !darwin

package kernels

// hasBF16: not read on this OS; the bf16 kernels stay off.
func hasBF16() bool { return false }
