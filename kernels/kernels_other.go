//go:build noasm || !(amd64 || arm64)

package kernels

func available() []*microKernel { return []*microKernel{goKernel} }
