//go:build !unix

package mmap

import "os"

// Map reads path into memory (no mapping on this platform).
func Map(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	return b, func() error { return nil }, err
}
