package checkpoints

import "github.com/x448/float16"

func f16(h uint16) float32 { return float16.Frombits(h).Float32() }
