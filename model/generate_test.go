package model

import (
	"testing"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/kernels"
)

// TestPromptMemory: feeding a prompt holds one block's activations, not
// every block's: the tape's arena after a 250-token prompt is the same for
// 2 blocks and for 8 (it grew with the depth before the blocks handed their
// memory on).
func TestPromptMemory(t *testing.T) {
	cfg := Presets["stories15m"]
	cfg.Vocab = 512
	prompt := make([]int32, 250)
	for i := range prompt {
		prompt[i] = int32(1 + i%500)
	}
	arena := map[int]int{}
	for _, layers := range []int{2, 8} {
		cfg.Layers = layers
		m, err := NewRandom(cfg, kernels.Q8_0, 5)
		if err != nil {
			t.Fatal(err)
		}
		tp := autograd.NewTape(nil)
		if _, err := m.Step(tp, m.NewCache(len(prompt)+1), prompt); err != nil {
			t.Fatal(err)
		}
		arena[layers] = tp.ArenaFloats()
	}
	t.Logf("arena after the prompt: %d floats with 2 blocks, %d with 8", arena[2], arena[8])
	if arena[8] > arena[2] {
		t.Errorf("the prompt's activation memory grows with depth: %d floats with 2 blocks, %d with 8", arena[2], arena[8])
	}
}
