//go:build !unix

package hfcache

// freeSpace is unknown here: the download finds a full disk when it writes.
func freeSpace(string) int64 { return -1 }
