// Package atomicfile writes files and folders so that a reader sees the old
// one or the whole new one, never a part: through a temporary file (or
// folder) beside the destination, synced, then renamed over it. A full disk
// or a crash mid-write leaves the destination as it was; what a killed
// process leaves is a ".tmp-*" entry, which RemoveTemps clears.
//
// Files are created with mode 0666 and folders 0777 less the umask, as
// os.Create and os.Mkdir make them.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temporary file and folder.
const TempPrefix = ".tmp-"

// tempName is a fresh temporary name in dir for base.
func tempName(dir, base string) string {
	var b [6]byte
	rand.Read(b[:])
	return filepath.Join(dir, TempPrefix+base+"-"+hex.EncodeToString(b[:]))
}

// create makes a new temporary file in dir (mode 0666 less the umask).
func create(dir, base string) (*os.File, error) {
	for {
		f, err := os.OpenFile(tempName(dir, base), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
}

// Write creates path with the bytes fill writes. On any error the temporary
// file is removed and path is untouched; the error is returned unwrapped for
// the caller to name the file.
func Write(path string, fill func(f *os.File) error) (err error) {
	tmp, err := create(filepath.Dir(path), filepath.Base(path))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			renamePath(&err, tmp.Name(), path) // name the file the caller asked for
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
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteFile writes data to path atomically (Write).
func WriteFile(path string, data []byte) error {
	return Write(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteDir makes the folder dir whole or not at all: fill writes the files
// into a fresh temporary folder beside it, which is synced and renamed to
// dir. An existing dir is replaced: exchanged with the new one in one step
// where the system can (Linux renameat2, macOS renamex_np), else moved
// aside first (RecoverDir puts it back if a crash falls between the two
// renames); the old folder is removed once the new one is in place.
func WriteDir(dir string, fill func(tmp string) error) (err error) {
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if err := os.MkdirAll(parent, 0o777); err != nil {
		return err
	}
	tmp := tempName(parent, base)
	if err := os.Mkdir(tmp, 0o777); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			renamePath(&err, tmp, dir) // name the files the caller asked for
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = SyncDir(tmp); err != nil {
		return err
	}
	if _, serr := os.Lstat(dir); errors.Is(serr, fs.ErrNotExist) {
		if err = os.Rename(tmp, dir); err != nil {
			return err
		}
		return SyncDir(parent)
	}
	if exchangeFn(tmp, dir) == nil { // tmp now holds the old folder
		if err = SyncDir(parent); err != nil {
			return err
		}
		return os.RemoveAll(tmp)
	}
	old := filepath.Join(parent, TempPrefix+"old-"+base)
	os.RemoveAll(old)
	if err = os.Rename(dir, old); err != nil {
		return err
	}
	if err = os.Rename(tmp, dir); err != nil {
		os.Rename(old, dir)
		return err
	}
	if err = SyncDir(parent); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// RemoveDir removes a folder so that no reader ever sees part of it: it is
// renamed to a temporary name first (which RemoveTemps clears if a kill
// falls during the removal). A missing folder is not an error.
func RemoveDir(dir string) error {
	tmp := tempName(filepath.Dir(dir), "del-"+filepath.Base(dir))
	if err := os.Rename(dir, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(tmp)
}

// renamed is an error whose message names the final path where the
// underlying one names the temporary (a file, or a folder's files).
type renamed struct {
	msg string
	err error
}

func (r *renamed) Error() string { return r.msg }
func (r *renamed) Unwrap() error { return r.err }

// renamePath makes *err name final instead of tmp.
func renamePath(err *error, tmp, final string) {
	if msg := (*err).Error(); strings.Contains(msg, tmp) {
		*err = &renamed{msg: strings.ReplaceAll(msg, tmp, final), err: *err}
	}
}

// exchangeFn is exchange, or (tests) a stand-in that fails.
var exchangeFn = exchange

// RecoverDir puts back a folder that WriteDir moved aside when a crash fell
// between its two renames (systems without an atomic exchange): if dir is
// missing and its old copy is there, the old copy is renamed back.
func RecoverDir(dir string) error {
	old := filepath.Join(filepath.Dir(dir), TempPrefix+"old-"+filepath.Base(dir))
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	return os.Rename(old, dir)
}

// SyncDir flushes a folder's entries (a rename into it) to disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return err
}

// RemoveTemps removes the temporary files and folders that killed writers
// left in dir and returns what it removed. A folder WriteDir had moved aside
// is put back where the new one never arrived (RecoverDir), else removed.
// Only a process that owns dir (holds its lock) may call it: another
// writer's live temporaries would go.
func RemoveTemps(dir string) ([]string, error) {
	return removeTemps(dir, func(string) bool { return true })
}

// RemoveTempsOf removes what killed writers of path alone left beside it:
// its temporary files or folders, and a moved-aside old copy (put back
// where the new one never arrived). For a writer that owns path but not its
// folder, such as an export; a concurrent writer of the same path would
// lose its temporary and fail.
func RemoveTempsOf(path string) ([]string, error) {
	base := filepath.Base(filepath.Clean(path))
	return removeTemps(filepath.Dir(filepath.Clean(path)), func(name string) bool {
		return strings.HasPrefix(name, TempPrefix+base+"-") || name == TempPrefix+"old-"+base ||
			strings.HasPrefix(name, TempPrefix+"del-"+base+"-")
	})
}

func removeTemps(dir string, match func(string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, TempPrefix) || !match(name) {
			continue
		}
		p := filepath.Join(dir, name)
		if base, ok := strings.CutPrefix(name, TempPrefix+"old-"); ok {
			if err := RecoverDir(filepath.Join(dir, base)); err != nil {
				return removed, err
			}
			if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
				continue // put back
			}
		}
		if err := os.RemoveAll(p); err != nil {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}
