package train

import (
	"fmt"
	"math"

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
	c.Model, c.Data, c.Val, c.ValFraction = modelPath, dataPath, "", 0
	s, err := newSession(c, nil)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.setup(c.ModelOptions(), adapterDir, false, false); err != nil {
		return nil, err
	}
	return s.evaluate(dataPath)
}

// EvaluateLoaded is Evaluate over a model already in memory (with whatever
// adapter it carries, merged or not) and its tokenizer: the data rendered
// as c says. The model stays the caller's.
func EvaluateLoaded(m *model.Model, tok *tokenizer.Tokenizer, dataPath string, c Config) (*EvalResult, error) {
	c.Data, c.Val, c.ValFraction = dataPath, "", 0
	s, err := newSession(c, nil)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	s.Model, s.Tok = m, tok
	s.resolveMaxSeqLen()
	if err := s.loadData(false); err != nil {
		return nil, err
	}
	return s.evaluate(dataPath)
}

// evaluate is the loss over the session's whole dataset.
func (s *Session) evaluate(dataPath string) (*EvalResult, error) {
	l, n, err := s.EvalLoss(s.Data.Train)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no supervised tokens to evaluate", dataPath)
	}
	if math.IsNaN(l) || math.IsInf(l, 0) {
		return nil, fmt.Errorf("the loss on %s is %g: the model's weights (or the adapter's) hold non-finite values", dataPath, l)
	}
	return &EvalResult{Loss: l, Perplexity: math.Exp(l), Tokens: n, Examples: len(s.Data.Train)}, nil
}
