//go:build !linux && !darwin

package atomicfile

import "errors"

// exchange is not available here: WriteDir moves the old folder aside.
func exchange(a, b string) error { return errors.ErrUnsupported }
