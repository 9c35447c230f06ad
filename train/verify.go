package train

import (
	"fmt"
	"math"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// VerifyRow is one model's loss on the verification data.
type VerifyRow struct {
	What       string  `json:"what"`
	Loss       float64 `json:"loss"`
	Perplexity float64 `json:"perplexity"`
}

// VerifyReport is export --verify's table, and the largest difference
// between the merged weights in memory and those written.
type VerifyReport struct {
	Rows       []VerifyRow `json:"rows"`
	Tokens     int         `json:"supervised_tokens"`
	MaxDiff    float64     `json:"max_weight_diff"`
	MaxDiffRel float64     `json:"max_weight_diff_rel"` // MaxDiff / the largest |weight| of that tensor
	MaxDiffIn  string      `json:"max_weight_diff_tensor"`
}

// VerifyExport evaluates, on dataPath rendered as c says, the base (held in
// f32), the base with the adapter unmerged, the merged model in memory
// (fp32), and the written model read back at f32 (so a K-quant file is
// decoded, not re-quantized), and compares the written weights with the
// in-memory merge. written is the exported file or folder (a merged GGUF or
// safetensors folder; a PEFT folder is read back as an adapter).
func VerifyExport(basePath, adapterDir, written, format, dataPath string, c Config) (*VerifyReport, error) {
	tok, err := tokenizer.Load(basePath)
	if err != nil {
		return nil, err
	}
	if c.ChatTemplate != "" {
		if err := tok.UseChatTemplate(c.ChatTemplate); err != nil {
			return nil, err
		}
	}
	f32 := model.LoadOptions{Quant: "f32"}
	m, err := model.Load(basePath, f32)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	rep := &VerifyReport{}
	eval := func(what string, mm *model.Model) error {
		r, err := EvaluateLoaded(mm, tok, dataPath, c)
		if err != nil {
			return fmt.Errorf("verify (%s): %w", what, err)
		}
		rep.Rows, rep.Tokens = append(rep.Rows, VerifyRow{What: what, Loss: r.Loss, Perplexity: r.Perplexity}), r.Tokens
		return nil
	}
	if err := eval("base", m); err != nil {
		return nil, err
	}
	if adapterDir != "" {
		ad, err := checkpoints.LoadAdapter(adapterDir, m)
		if err != nil {
			return nil, err
		}
		if err := eval("base + adapter", m); err != nil {
			return nil, err
		}
		if format == "peft" {
			back, err := model.Load(basePath, f32)
			if err != nil {
				return nil, err
			}
			defer back.Close()
			if _, err := checkpoints.LoadAdapter(written, back); err != nil {
				return nil, fmt.Errorf("verify: the written adapter: %w", err)
			}
			return rep, eval("base + written adapter", back)
		}
		ad.Merge(nil)
		if err := eval("merged in memory (fp32)", m); err != nil {
			return nil, err
		}
	}
	back, err := model.Load(written, f32)
	if err != nil {
		return nil, fmt.Errorf("verify: the written model: %w", err)
	}
	defer back.Close()
	if err := eval("written file, read back", back); err != nil {
		return nil, err
	}
	mine, theirs := m.Entries(), back.Entries()
	if len(mine) != len(theirs) {
		return nil, fmt.Errorf("verify: the written model has %d tensors, the merge %d", len(theirs), len(mine))
	}
	for i, e := range mine {
		a, b := values(e), values(theirs[i])
		if len(a) != len(b) || e.HF != theirs[i].HF {
			return nil, fmt.Errorf("verify: tensor %s does not match %s", e.HF, theirs[i].HF)
		}
		var d, scale float64
		for j := range a {
			d = math.Max(d, math.Abs(float64(a[j])-float64(b[j])))
			scale = math.Max(scale, math.Abs(float64(a[j])))
		}
		if d > rep.MaxDiff {
			rep.MaxDiff, rep.MaxDiffIn, rep.MaxDiffRel = d, e.HF, d/math.Max(scale, 1e-30)
		}
	}
	return rep, nil
}

func values(e model.Entry) []float32 {
	if e.W == nil {
		return e.Vec
	}
	return e.W.Dequantize().Data
}
