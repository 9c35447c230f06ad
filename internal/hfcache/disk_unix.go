//go:build unix

package hfcache

import "golang.org/x/sys/unix"

// freeSpace is the bytes an unprivileged writer may still use on the disk
// holding dir (-1: unknown).
func freeSpace(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
