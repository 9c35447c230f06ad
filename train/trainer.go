package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/kernels"
)

// State is everything a run's future depends on besides its configuration,
// data and adapter values: a checkpoint saves it, a resumed run continues
// from it bit for bit. Every random draw of training is a function of the
// seed and these counters (dropout of (seed, micro-batch, layer), the batch
// order of (seed, epoch, index)), never of a generator's hidden position.
type State struct {
	Step int `json:"step"` // optimizer steps done (the schedule's position)
	// Micro is the data cursor: micro-batches consumed. The next one is
	// batch Micro mod PerEpoch of epoch Micro / PerEpoch.
	Micro    int64 `json:"micro_batches"`
	PerEpoch int   `json:"micro_batches_per_epoch"`
	// Total is the run's optimizer steps, fixed at step 0 (the LR schedule's
	// length); only a forced change of what it follows from changes it.
	Total      int   `json:"total_steps"`
	Tokens     int64 `json:"tokens"`            // positions computed (padding included)
	Supervised int64 `json:"supervised_tokens"` // targets trained on
	// Loss is the last step's loss (normalized by its supervised tokens).
	Loss float64 `json:"loss"`
	// BaseValLoss is the validation loss before training; BestValLoss the
	// lowest since (+Inf: none yet), at BestStep; ValLoss the last one.
	BaseValLoss *float64 `json:"base_val_loss,omitempty"`
	BestValLoss *float64 `json:"best_val_loss,omitempty"`
	BestStep    int      `json:"best_step,omitempty"`
	ValLoss     *float64 `json:"val_loss,omitempty"`
	ValStep     int      `json:"val_step,omitempty"`
	// Stale counts evaluations since the best improved by more than the
	// threshold (early stopping's patience).
	Stale int `json:"stale_evaluations"`
	// Stopped says why the run ended before Total ("early stopping"), "" otherwise.
	Stopped string `json:"stopped,omitempty"`
	// Elapsed is the training time so far in seconds (throughput across resumes).
	Elapsed float64 `json:"elapsed_s"`
}

// Done reports whether the run has nothing left to do.
func (s *State) Done() bool { return s.Step >= s.Total || s.Stopped != "" }

// Epoch is the fractional number of epochs done, as HF Trainer logs it.
func (s *State) Epoch() float64 { return float64(s.Micro) / float64(max(s.PerEpoch, 1)) }

// Trainer steps a session's adapter: forward and backward over GradAccum
// micro-batches, clipping, the optimizer, the schedule. Its State and
// optimizer state are all it carries between steps.
type Trainer struct {
	S     *Session
	State State
	Opt   Optimizer
	micro []*data.Batch
	slabs [][]float32 // this process's micro-batches' gradients (GradAccum > 1 or several processes)
	// StopRequested, when set, says whether this process wants the run to
	// stop after the current step (a signal); with several processes the
	// step tells every one whether any does (StepResult.Stop).
	StopRequested func() bool
	bufs          commBufs // the step's messages to the other processes
}

// NewTrainer returns a trainer at step 0 of s.
func (s *Session) NewTrainer() *Trainer {
	c := &s.Config
	var opt Optimizer = NewAdamW(c.WeightDecay)
	if c.Optimizer == "sgd" {
		opt = &SGD{Momentum: c.Momentum, WeightDecay: c.WeightDecay}
	}
	return &Trainer{S: s, Opt: opt, State: State{PerEpoch: s.PerEpoch, Total: s.TotalSteps()}}
}

// tape is the session's tape: one arena of activations, reused by every
// step and evaluation.
func (s *Session) tape() *autograd.Tape {
	if s.tp == nil {
		s.tp = autograd.NewTape(s.Pool)
	}
	return s.tp
}

// StepResult is what one optimizer step measured.
type StepResult struct {
	Loss, GradNorm, LR float64
	Tokens, Supervised int
	Comm               commStats // with several processes: the step's gradient exchange
	// Stop: some process of the group asked to stop after this step
	// (StopRequested), decided together so that all stop after the same one.
	Stop bool
}

// ErrDiverged is returned (wrapped) by Step when the loss or the gradient is
// not finite; the adapter, optimizer and State are those before the step.
var ErrDiverged = errors.New("training diverged")

// LR is the learning rate of the next step.
func (t *Trainer) LR() float64 {
	c := &t.S.Config
	return Schedule(c.LRSchedule, c.LR, t.State.Step, c.WarmupSteps, t.State.Total, c.MinLRRatio)
}

// neftuneKey separates NEFTune's draws from every other seeded draw.
const neftuneKey = 0x6e656674756e65

// Step runs one optimizer step over the next GradAccum micro-batches, the
// loss normalized by their total supervised tokens.
func (t *Trainer) Step() (StepResult, error) {
	s, c, st := t.S, &t.S.Config, &t.State
	ad := s.Adapter
	cm := s.comm()
	size, rank := cm.Size(), cm.Rank()
	var r StepResult
	if err := checkShare(c.GradAccum, size); err != nil {
		return r, err
	}
	// This process's micro-batches: its stride of the step's global order.
	t.micro = t.micro[:0]
	var localSup int64
	var failed error
	for i := rank; i < c.GradAccum; i += size {
		b, err := s.Batch(st.Micro + int64(i))
		if err != nil {
			failed = err
			break
		}
		t.micro = append(t.micro, b)
		localSup += int64(b.Supervised)
	}
	total := localSup // the step's supervised tokens, every process's
	if size > 1 {
		var err error
		if total, err = sumInt64(cm, localSup, failed); err != nil {
			return r, err
		}
	} else if failed != nil {
		return r, failed
	}
	r.Supervised = int(total)
	// One micro-batch in one process: its gradient is the step's. Otherwise
	// each micro-batch's gradient is kept apart and they are summed in
	// global order (gatherGrads), so that the sum's rounding does not depend
	// on how many processes computed them.
	separate := c.GradAccum > 1 || size > 1
	if separate && len(t.slabs) != len(t.micro) {
		t.slabs = make([][]float32, len(t.micro))
		for j := range t.slabs {
			t.slabs[j] = make([]float32, len(ad.Grads()))
		}
	}
	losses := make([]float64, len(t.micro))
	counts := make([][2]int64, len(t.micro))
	ad.Training = true
	ad.ZeroGrad()
	tp := s.tape()
	for j, b := range t.micro {
		i := rank + j*size                      // the global micro-batch index within the step
		ad.Micro = uint64(st.Micro) + uint64(i) // dropout masks of this micro-batch
		if separate {
			ad.ZeroGrad()
		}
		tp.Reset()
		mb := toModel(b)
		if c.NEFTuneAlpha > 0 { // NEFTune: ±α/√(L·d), L the row length as fed
			mb.Noise = float32(c.NEFTuneAlpha / math.Sqrt(float64(b.T)*float64(s.Model.Config.Hidden)))
			mb.NoiseKey = [2]uint64{c.Seed ^ neftuneKey, uint64(ad.Micro)}
		}
		loss, _, err := s.Model.Loss(tp, mb, float32(max(r.Supervised, 1)))
		if err != nil {
			if size == 1 {
				return r, err
			}
			failed = err // the others learn of it in the gather below
			break
		}
		tp.Backward(loss)
		losses[j], counts[j] = float64(loss.Data[0]), [2]int64{int64(b.B * b.T), int64(b.Supervised)}
		if separate {
			copy(t.slabs[j], ad.Grads())
		}
	}
	stop := t.StopRequested != nil && t.StopRequested()
	if separate {
		loss, tokens, stopAll, cs, err := gatherGrads(cm, ad.Grads(), t.slabs, losses, counts, c.GradAccum, stop, failed, &t.bufs)
		if err != nil {
			return r, err
		}
		r.Loss, r.Tokens, r.Stop, r.Comm = loss, int(tokens), stopAll, cs
	} else {
		r.Loss, r.Tokens, r.Stop = losses[0], int(counts[0][0]), stop
	}
	r.GradNorm = norm(ad.Grads())
	if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) || math.IsNaN(r.GradNorm) || math.IsInf(r.GradNorm, 0) {
		return r, fmt.Errorf("step %d: loss %g, gradient norm %g: %w", st.Step+1, r.Loss, r.GradNorm, ErrDiverged)
	}
	if c.MaxGradNorm > 0 && r.GradNorm > c.MaxGradNorm {
		kernels.Scale(ad.Grads(), float32(c.MaxGradNorm/r.GradNorm))
	}
	r.LR = t.LR()
	if !t.Opt.Finite(ad.Params(), r.LR) {
		return r, fmt.Errorf("step %d: at learning rate %g the update would make the adapter non-finite: %w", st.Step+1, r.LR, ErrDiverged)
	}
	t.Opt.Step(ad.Params(), r.LR)
	st.Step++
	st.Micro += int64(c.GradAccum)
	st.Tokens += int64(r.Tokens)
	st.Supervised += int64(r.Supervised)
	st.Loss = r.Loss
	return r, nil
}

// norm is the 2-norm of every gradient (the slab, in order: deterministic).
func norm(g []float32) float64 {
	var s float64
	for _, v := range g {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// Evaluate computes the validation loss and updates the best loss and
// early stopping's count; it reports whether this evaluation is a new best.
func (t *Trainer) Evaluate() (loss float64, best bool, err error) {
	s, c, st := t.S, &t.S.Config, &t.State
	loss, _, err = s.EvalLoss(s.Val)
	if err != nil {
		return 0, false, err
	}
	v := loss
	st.ValLoss, st.ValStep = &v, st.Step
	if st.Step == 0 { // the base: what training must beat
		b, bb := loss, loss
		st.BaseValLoss, st.BestValLoss = &b, &bb
		return loss, false, nil
	}
	bestSoFar := math.Inf(1)
	if st.BestValLoss != nil {
		bestSoFar = *st.BestValLoss
	}
	if loss < bestSoFar-c.EarlyStoppingThreshold {
		st.Stale = 0
	} else {
		st.Stale++
	}
	if loss < bestSoFar {
		b := loss
		st.BestValLoss, st.BestStep, best = &b, st.Step, true
	}
	return loss, best, nil
}
