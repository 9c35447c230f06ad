// Package atomicfile writes files so that a reader sees the old file or the
// whole new one, never a part: through a temporary file in the same
// directory, synced, then renamed over the destination. A full disk or a
// crash mid-write leaves the destination as it was.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write creates path with the bytes fill writes. On any error the temporary
// file is removed and path is untouched; the error is returned unwrapped for
// the caller to name the file.
func Write(path string, fill func(f *os.File) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
