//go:build noasm || !(amd64 || arm64)

package kernels

func paths() []*Path { return []*Path{goPath} }

func bf16Twins() []*Path { return []*Path{goBF16Path} }

func int8Twins() []*Path { return []*Path{goInt8Path} }

func int8EmuTwins() []*Path { return nil }
