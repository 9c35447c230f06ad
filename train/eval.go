package train

import (
	"fmt"
	"math"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// EvalResult is a model's loss on a dataset.
type EvalResult struct {
	Loss       float64 `json:"loss"`
	Perplexity float64 `json:"perplexity"`
	Tokens     int     `json:"supervised_tokens"`
	Examples   int     `json:"examples"`
}

// Evaluate computes the mean next-token loss over the supervised tokens of a
// dataset, with an optional PEFT adapter, rendered exactly as training would.
func Evaluate(modelPath, adapterDir, dataPath string, c Config) (*EvalResult, error) {
	pool, err := kernels.NewPool(c.Threads, "")
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(modelPath)
	if err != nil {
		return nil, err
	}
	if c.ChatTemplate != "" {
		if err := tok.UseChatTemplate(c.ChatTemplate); err != nil {
			return nil, err
		}
	}
	m, err := model.Load(modelPath, c.ModelOptions())
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if adapterDir != "" {
		if _, err := checkpoints.LoadAdapter(adapterDir, m); err != nil {
			return nil, err
		}
	}
	cols, err := data.ParseColumns(c.Columns)
	if err != nil {
		return nil, err
	}
	ds, err := data.Load(dataPath, tok, data.LoadOptions{Columns: cols, Threads: c.Threads, CacheDir: c.TokenCache(), TextUnit: c.TextUnit,
		Render: data.RenderOptions{TrainOnInputs: c.TrainOnInputs, Truncation: c.Truncation, MaxSeqLen: c.MaxSeqLen + 1, EOS: tok.EOS}})
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	b := &data.Batcher{Examples: ds.Train, T: c.MaxSeqLen, B: c.BatchSize, Pack: c.Pack, Pad: padID(m, tok), Seed: 1}
	steps, err := b.Steps()
	if err != nil {
		return nil, err
	}
	tp := autograd.NewTape(pool)
	tp.SetNoGrad(true)
	var sum float64
	var n int
	for i := 0; i < steps; i++ {
		bt, err := b.Next()
		if err != nil {
			return nil, err
		}
		tp.Reset()
		loss, k, err := m.Loss(tp, toModel(bt), 0)
		if err != nil {
			return nil, err
		}
		sum += float64(loss.Data[0]) * float64(k)
		n += k
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no supervised tokens to evaluate", dataPath)
	}
	l := sum / float64(n)
	return &EvalResult{Loss: l, Perplexity: math.Exp(l), Tokens: n, Examples: len(ds.Train)}, nil
}
