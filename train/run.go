package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// ErrInterrupted is returned (wrapped) when the context was cancelled: the
// adapter trained so far has been saved.
var ErrInterrupted = errors.New("interrupted")

// Result summarizes a run.
type Result struct {
	Steps       int     `json:"steps"`
	FinalLoss   float64 `json:"final_loss"`
	BaseValLoss float64 `json:"base_val_loss,omitempty"`
	BestValLoss float64 `json:"best_val_loss,omitempty"`
	Adapter     string  `json:"adapter"`
	// StoppedEarly is set when early stopping ended the run before its last step.
	StoppedEarly bool `json:"stopped_early,omitempty"`
}

// Progress is the state after one optimizer step, for progress displays.
type Progress struct {
	Step, Total        int
	Epoch              float64 // epochs done, fractional (as HF Trainer logs it)
	Loss, LR, GradNorm float64
	TokensPerS         float64
	Elapsed, ETA       time.Duration
}

// Schedule returns the learning rate at step (0-based) of total: linear warm-up
// to lr, then constant, linear or cosine decay to minRatio·lr.
func Schedule(kind string, lr float64, step, warmup, total int, minRatio float64) float64 {
	if warmup > 0 && step < warmup {
		return lr * float64(step+1) / float64(warmup)
	}
	if kind == "constant" || total <= warmup {
		return lr
	}
	p := float64(step-warmup) / float64(max(1, total-warmup))
	p = min(1, max(0, p))
	floor := lr * minRatio
	if kind == "linear" {
		return floor + (lr-floor)*(1-p)
	}
	return floor + (lr-floor)*0.5*(1+math.Cos(math.Pi*p))
}

// Run trains an adapter as c says, writing the run directory. log receives
// progress lines; onStep, when not nil, is called after every step (a
// progress bar). Cancelling ctx stops after the current step, saving the adapter.
func Run(ctx context.Context, c Config, log *slog.Logger, onStep func(Progress)) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	pool, err := kernels.NewPool(c.Threads, "")
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(c.Model)
	if err != nil {
		return nil, err
	}
	if c.ChatTemplate != "" {
		if err := tok.UseChatTemplate(c.ChatTemplate); err != nil {
			return nil, err
		}
	}
	m, err := model.Load(c.Model, c.ModelOptions())
	if err != nil {
		return nil, err
	}
	defer m.Close()
	m.Checkpointing, m.CheckpointLayers = c.Checkpointing, c.CheckpointLayers
	var ad *lora.Adapter
	if c.Adapter != "" {
		if ad, err = checkpoints.LoadAdapter(c.Adapter, m); err != nil {
			return nil, err
		}
	} else {
		ad, err = lora.Apply(m, lora.Config{Rank: c.Rank, Alpha: c.Alpha, Dropout: c.Dropout, Targets: strings.Split(c.Targets, ","),
			RSLoRA: c.RSLoRA, DoRA: c.DoRA, Init: c.Init, Seed: c.Seed, LoRAPlusRatio: c.LoRAPlusRatio})
		if err != nil {
			return nil, err
		}
	}
	ad.Config.Seed, ad.Config.LoRAPlusRatio = c.Seed, c.LoRAPlusRatio
	log.Info("model", "path", c.Model, "params", m.Params(), "weights_MiB", m.WeightBytes()>>20,
		"stored_as_"+c.Quant, StoredSummary(m, c.Quant), "trainable", ad.NumParams())
	if bc := m.BaseCache; bc != nil {
		if bc.Hit {
			log.Info("GPTQ base read from the cache", "file", bc.File)
		} else if bc.Ignored == "" {
			log.Info("GPTQ base stored in the cache", "file", bc.File)
		}
		if bc.Ignored != "" {
			log.Warn("GPTQ cache", "ignored", bc.Ignored)
		}
	}
	if r := m.Tuned; r != nil {
		log.Info("GPTQ scales tuned", "epochs", r.Epochs, "calibration_kl_before", fmt.Sprintf("%.4f", r.Before), "calibration_kl_after", fmt.Sprintf("%.4f", r.After))
	}
	wider := map[string][]string{} // matrices a format could not hold, by what they are held as
	for _, s := range m.Stored {
		if s.As != c.Quant && s.Shape[0] > 1 {
			wider[s.As] = append(wider[s.As], s.Name)
		}
	}
	for _, as := range slices.Sorted(maps.Keys(wider)) {
		names := wider[as]
		if len(names) > 4 {
			names = append(names[:4:4], fmt.Sprintf("and %d more", len(names)-4))
		}
		log.Info("not stored as "+c.Quant, "as", as, "tensors", strings.Join(names, ", "))
	}

	cols, err := data.ParseColumns(c.Columns)
	if err != nil {
		return nil, err
	}
	lo := data.LoadOptions{Columns: cols, Threads: c.Threads, Seed: c.Seed, CacheDir: c.TokenCache(), TextUnit: c.TextUnit,
		Render: data.RenderOptions{TrainOnInputs: c.TrainOnInputs, Truncation: c.Truncation, MaxSeqLen: c.MaxSeqLen + 1, EOS: tok.EOS}}
	if c.Val == "" {
		lo.ValFraction = c.ValFraction
	}
	ds, err := data.Load(c.Data, tok, lo)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	val := ds.Val
	valPath := c.Val
	if valPath == "" && c.ValFraction == 0 {
		if split := data.ValidationSplit(c.Data); split != "" {
			valPath, lo.Split = c.Data, split // the validation shards beside the training ones
			log.Info("validation", "path", c.Data, "split", split)
		}
	}
	if valPath != "" {
		lo.ValFraction = 0
		vds, err := data.Load(valPath, tok, lo)
		if err != nil {
			return nil, err
		}
		defer vds.Close()
		val = vds.Train
	}
	log.Info("data", "path", c.Data, "format", ds.Format, "examples", len(ds.Train), "val", len(val), "tokens", ds.Tokens, "supervised", ds.Supervised, "from_cache", ds.FromCache)
	for _, reason := range slices.Sorted(maps.Keys(ds.Dropped)) {
		log.Warn("dropped examples", "count", ds.Dropped[reason], "reason", reason)
	}

	batcher := &data.Batcher{Examples: ds.Train, T: c.MaxSeqLen, B: c.BatchSize, Pack: c.Pack, Pad: padID(m, tok), Seed: c.Seed}
	perEpoch, err := batcher.Steps()
	if err != nil {
		return nil, err
	}
	total := c.MaxSteps
	if total <= 0 {
		total = max(1, c.Epochs*perEpoch/c.GradAccum)
	}
	var opt Optimizer = NewAdamW(c.WeightDecay)
	if c.Optimizer == "sgd" {
		opt = &SGD{Momentum: c.Momentum, WeightDecay: c.WeightDecay}
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	if err := checkpoints.WriteFileAtomic(filepath.Join(c.Out, "config.yaml"), []byte(c.YAML())); err != nil {
		return nil, err
	}
	metrics, err := os.Create(filepath.Join(c.Out, "metrics.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	defer metrics.Close()
	enc := json.NewEncoder(metrics)
	save := func(dir string) error { return checkpoints.SaveAdapter(filepath.Join(c.Out, dir), ad, c.Model) }

	tp := autograd.NewTape(pool)
	evaluate := func() (float64, error) {
		if len(val) == 0 {
			return math.NaN(), nil
		}
		ad.Training = false
		defer func() { ad.Training = true }()
		vb := &data.Batcher{Examples: val, T: c.MaxSeqLen, B: c.BatchSize, Pack: c.Pack, Pad: batcher.Pad, Seed: 1}
		steps, err := vb.Steps()
		if err != nil {
			return 0, err
		}
		var sum float64
		var n int
		for i := 0; i < steps; i++ {
			b, err := vb.Next()
			if err != nil {
				return 0, err
			}
			tp.Reset()
			tp.SetNoGrad(true)
			loss, k, err := m.Loss(tp, toModel(b), 0)
			tp.SetNoGrad(false)
			if err != nil {
				return 0, err
			}
			sum += float64(loss.Data[0]) * float64(k)
			n += k
		}
		return sum / float64(max(n, 1)), nil
	}
	res := &Result{Adapter: filepath.Join(c.Out, "adapter"), BestValLoss: math.Inf(1)}
	if len(val) > 0 {
		if res.BaseValLoss, err = evaluate(); err != nil {
			return nil, err
		}
		res.BestValLoss = res.BaseValLoss
		enc.Encode(map[string]any{"step": 0, "val_loss": res.BaseValLoss, "val_ppl": math.Exp(res.BaseValLoss)})
		log.Info("eval", "step", 0, "val_loss", fmt.Sprintf("%.4f", res.BaseValLoss))
	}
	ad.Training = true
	params, scales := ad.Params(), ad.LRScales()
	start := time.Now()
	tokens := 0
	stale := 0 // evaluations since the validation loss last improved (early stopping)
	for step := 0; step < total; step++ {
		// One optimizer step over grad_accum micro-batches, the loss normalized by
		// their total supervised tokens.
		micro := make([]*data.Batch, c.GradAccum)
		sup := 0
		for i := range micro {
			if micro[i], err = batcher.Next(); err != nil {
				return nil, err
			}
			sup += micro[i].Supervised
		}
		ad.ZeroGrad()
		var stepLoss float64
		for _, b := range micro {
			tp.Reset()
			loss, _, err := m.Loss(tp, toModel(b), float32(max(sup, 1)))
			if err != nil {
				return nil, err
			}
			tp.Backward(loss)
			stepLoss += float64(loss.Data[0])
			tokens += b.B * b.T
		}
		gnorm := globalNorm(params)
		if math.IsNaN(stepLoss) || math.IsInf(stepLoss, 0) || math.IsNaN(gnorm) || math.IsInf(gnorm, 0) {
			if err := save("adapter"); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("step %d: loss %g, gradient norm %g: training diverged (lower --lr?); the last good adapter is in %s", step+1, stepLoss, gnorm, res.Adapter)
		}
		if c.MaxGradNorm > 0 && gnorm > c.MaxGradNorm {
			f := float32(c.MaxGradNorm / gnorm)
			for _, p := range params {
				kernels.Scale(p.Grad, f)
			}
		}
		lr := Schedule(c.LRSchedule, c.LR, step, c.WarmupSteps, total, c.MinLRRatio)
		opt.Step(params, lr, scales)
		ad.Step++
		res.Steps, res.FinalLoss = step+1, stepLoss
		el := time.Since(start).Seconds()
		epoch := float64((step+1)*c.GradAccum) / float64(perEpoch)
		enc.Encode(map[string]any{"step": step + 1, "epoch": epoch, "loss": stepLoss, "lr": lr, "grad_norm": gnorm,
			"tokens": tokens, "tokens_per_s": float64(tokens) / el, "elapsed_s": el})
		eta := time.Duration(el / float64(step+1) * float64(total-step-1) * float64(time.Second))
		if onStep != nil {
			onStep(Progress{Step: step + 1, Total: total, Epoch: epoch, Loss: stepLoss, LR: lr, GradNorm: gnorm,
				TokensPerS: float64(tokens) / el, Elapsed: time.Since(start), ETA: eta})
		}
		if c.LogEvery > 0 && ((step+1)%c.LogEvery == 0 || step == 0 || step+1 == total) {
			log.Info("step", "step", step+1, "of", total, "epoch", fmt.Sprintf("%.2f", epoch), "loss", fmt.Sprintf("%.4f", stepLoss), "lr", fmt.Sprintf("%.2e", lr),
				"grad_norm", fmt.Sprintf("%.3f", gnorm), "tokens_per_s", fmt.Sprintf("%.0f", float64(tokens)/el), "eta", eta.Round(time.Second))
		}
		if len(val) > 0 && ((c.EvalEvery > 0 && (step+1)%c.EvalEvery == 0) || step+1 == total) {
			vl, err := evaluate()
			if err != nil {
				return nil, err
			}
			enc.Encode(map[string]any{"step": step + 1, "val_loss": vl, "val_ppl": math.Exp(vl)})
			log.Info("eval", "step", step+1, "val_loss", fmt.Sprintf("%.4f", vl))
			if vl < res.BestValLoss-c.EarlyStoppingThreshold {
				stale = 0
			} else {
				stale++
			}
			if vl < res.BestValLoss {
				res.BestValLoss = vl
				if err := save("best"); err != nil {
					return nil, err
				}
			}
			if c.EarlyStoppingPatience > 0 && stale >= c.EarlyStoppingPatience && step+1 < total {
				log.Info("early stopping", "step", step+1, "evaluations_without_improvement", stale, "best_val_loss", fmt.Sprintf("%.4f", res.BestValLoss))
				res.StoppedEarly = true
				break
			}
		}
		if ctx.Err() != nil {
			if err := save("adapter"); err != nil {
				return nil, err
			}
			return res, fmt.Errorf("%w at step %d of %d: the adapter so far is in %s", ErrInterrupted, step+1, total, res.Adapter)
		}
	}
	if err := save("adapter"); err != nil {
		return nil, err
	}
	if math.IsInf(res.BestValLoss, 1) {
		res.BestValLoss = 0
	}
	return res, nil
}

// StoredSummary says what share of the base weights' parameters is held in
// format as: "96.2% of parameters (35/47 tensors)".
func StoredSummary(m *model.Model, as string) string {
	var n, all int64
	k := 0
	for _, s := range m.Stored {
		e := int64(s.Shape[0]) * int64(s.Shape[1])
		all += e
		if s.As == as {
			n += e
			k++
		}
	}
	return fmt.Sprintf("%.1f%% of parameters (%d/%d tensors)", 100*float64(n)/float64(max(all, 1)), k, len(m.Stored))
}

func padID(m *model.Model, tok *tokenizer.Tokenizer) int32 {
	if m.Config.Pad >= 0 {
		return int32(m.Config.Pad)
	}
	if tok.EOS >= 0 {
		return tok.EOS
	}
	return 0
}

func toModel(b *data.Batch) *model.Batch {
	return &model.Batch{B: b.B, T: b.T, IDs: b.IDs, Pos: b.Pos, Seg: b.Seg, Targets: b.Targets}
}

func globalNorm(ps []*autograd.Tensor) float64 {
	var s float64
	for _, p := range ps {
		for _, g := range p.Grad {
			s += float64(g) * float64(g)
		}
	}
	return math.Sqrt(s)
}
