// Package flock holds a run folder's lock: an flock(2) on a file, which the
// kernel releases when the process ends however it ends (no stale lock
// after SIGKILL). The file records the holder's pid, host and start time so
// that a refused process can name it.
package flock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrUnsupported is returned when the filesystem cannot lock files.
var ErrUnsupported = errors.New("this filesystem does not support file locks")

// Lock is a held lock; Close releases it.
type Lock struct {
	f *os.File
}

// Holder is who holds a lock, as its file says.
type Holder struct {
	PID   int
	Host  string
	Since time.Time
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another process (it has not written its pid yet)"
	}
	s := fmt.Sprintf("pid %d on host %s", h.PID, h.Host)
	if !h.Since.IsZero() {
		s += " since " + h.Since.Format(time.RFC3339)
	}
	return s
}

// HeldError says that another process holds the lock.
type HeldError struct {
	Path   string
	Holder Holder
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by %s", e.Path, e.Holder)
}

// Acquire takes the lock on path (created if missing) without waiting: a
// *HeldError when another process holds it, an error wrapping
// ErrUnsupported when the filesystem has no locks.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w (%v)", path, ErrUnsupported, err)
	}
	if held {
		raw, _ := os.ReadFile(path)
		f.Close()
		return nil, &HeldError{Path: path, Holder: parse(string(raw))}
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid %d\nhost %s\nsince %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(info), 0)
	}
	return &Lock{f: f}, nil
}

// Close releases the lock (the file stays: removing it would race with a
// process opening it).
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	unlock(l.f)
	err := l.f.Close()
	l.f = nil
	return err
}

func parse(s string) Holder {
	var h Holder
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "pid":
			h.PID, _ = strconv.Atoi(v)
		case "host":
			h.Host = v
		case "since":
			h.Since, _ = time.Parse(time.RFC3339, v)
		}
	}
	return h
}
