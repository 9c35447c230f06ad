//go:build amd64 && !noasm && !linux

package kernels

// amxPermit: AMX is used on Linux only (other systems grant the tile state
// differently, and lowrank has not been run there with it).
func amxPermit() bool { return false }
