//go:build noasm || !(amd64 || arm64)

package kernels

func available() []*microKernel { return []*microKernel{goKernel} }

// transposeBlocks: no SIMD transpose here; transposeRows does every column.
func transposeBlocks(dst []float32, rows [][]float32, w int, alpha float32) int { return 0 }
