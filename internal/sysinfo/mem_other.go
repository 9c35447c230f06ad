//go:build !linux && !darwin

package sysinfo

// physicalMemory is not known on this system: no memory check.
func physicalMemory() int64 { return 0 }
