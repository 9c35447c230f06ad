// Package mmap maps files read-only (safetensors weights, token stores), so
// that large files cost page cache the kernel can evict rather than heap.
package mmap
