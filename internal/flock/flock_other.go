//go:build !unix

package flock

import (
	"errors"
	"os"
)

func tryLock(f *os.File) (bool, error) { return false, errors.ErrUnsupported }

func unlock(f *os.File) {}
