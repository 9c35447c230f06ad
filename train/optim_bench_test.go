package train

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/lora"
)

// BenchmarkOptimizer times one optimizer step, with the check that the
// update stays finite, over 4.9M parameters in 420 tensors (smollm2-135m,
// rank 8, every projection): it runs once per training step.
func BenchmarkOptimizer(b *testing.B) {
	const tensors, size = 420, 11700
	r := rand.New(rand.NewPCG(1, 2))
	vals, grads := make([]float32, tensors*size), make([]float32, tensors*size)
	for i := range vals {
		vals[i], grads[i] = float32(r.NormFloat64()*0.02), float32(r.NormFloat64()*1e-3)
	}
	ps := make([]lora.Param, tensors)
	for i := range ps {
		off := i * size
		ps[i] = lora.Param{Name: fmt.Sprint(i), Off: off, LRScale: 1,
			T: &autograd.Tensor{Data: vals[off : off+size], Grad: grads[off : off+size], Rows: 1, Cols: size}}
	}
	for _, o := range []Optimizer{NewAdamW(0.01), &SGD{Momentum: 0.9}} {
		for _, check := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/check=%v", o.Name(), check), func(b *testing.B) {
				b.SetBytes(int64(len(vals) * 4))
				for range b.N {
					if check && !o.Finite(ps, 1e-4) {
						b.Fatal("not finite")
					}
					o.Step(ps, 1e-4)
				}
			})
		}
	}
}
