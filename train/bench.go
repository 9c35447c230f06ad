package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/lowrank/lowrank/augment"
	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/internal/sysinfo"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
)

// BenchConfig is one training benchmark: a preset architecture with seeded
// random weights built in memory (no files), rank-R adapters on every linear
// layer, and timed steps of forward + backward + AdamW.
type BenchConfig struct {
	Preset        string
	Batch, Seq    int
	Rank          int
	Quant         string
	Threads       int
	Warmup, Steps int
	Checkpointing bool
	// CheckpointLayers recomputes only the first this many blocks (0: all).
	CheckpointLayers int `json:",omitempty"`
	// MaxGradNorm clips the gradient as training does (0: off).
	MaxGradNorm float64 `json:",omitempty"`
	// NEFTuneAlpha > 0 adds NEFTune's embedding noise, as training does.
	NEFTuneAlpha float64 `json:",omitempty"`
	// TokenNoise > 0 builds every step's batch afresh from examples whose
	// first half is a prompt, through token dropout and replacement at
	// this probability (augment.Tokens), as a training run's batches are.
	TokenNoise float64 `json:",omitempty"`
	// ComputeDType is the frozen base's products' type (Config.ComputeDType).
	ComputeDType string `json:",omitempty"`
	// GradAccum micro-batches of Batch×Seq per step (0: 1), shared out over
	// Comm's processes as training does.
	GradAccum int  `json:",omitempty"`
	Comm      Comm `json:"-"`
}

// BenchResult is what one benchmark measured.
type BenchResult struct {
	BenchConfig
	Kernel         string  `json:"kernel"`
	Path           string  `json:"kernel_path"`
	TokensPerSec   float64 `json:"tokens_per_second"`
	MsPerStep      float64 `json:"ms_per_step"` // median
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	WeightBytes    int64   `json:"weight_bytes"`
	ActivationsMiB float64 `json:"activations_mib"`
	TrainableParam int64   `json:"trainable_params"`
	Loss           float32 `json:"last_loss"`
	// With several processes: their number, and the median step's
	// gradient exchange (bytes each process received, milliseconds, and
	// the share of the step).
	Ranks       int     `json:"ranks,omitempty"`
	CommBytes   int64   `json:"comm_bytes,omitempty"`
	CommMs      float64 `json:"comm_ms,omitempty"`
	CommWaitMs  float64 `json:"comm_wait_ms,omitempty"` // for the slowest rank (not communication)
	CommPercent float64 `json:"comm_percent,omitempty"` // of the median step's time
}

// Bench runs the benchmark.
func Bench(c BenchConfig) (*BenchResult, error) {
	cfg, ok := model.Presets[c.Preset]
	if !ok {
		var names []string
		for n := range model.Presets {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown preset %q (have %v)", c.Preset, names)
	}
	if !(c.NEFTuneAlpha >= 0) || math.IsInf(c.NEFTuneAlpha, 0) || !(c.TokenNoise >= 0 && c.TokenNoise < 1) {
		return nil, fmt.Errorf("neftune-noise-alpha must be finite and ≥ 0, token-noise in [0, 1)")
	}
	if c.Batch <= 0 || c.Seq <= 0 || c.Seq > cfg.MaxPos || c.Steps <= 0 || c.Rank <= 0 {
		return nil, fmt.Errorf("batch, steps and rank must be positive and seq in [1, %d]", cfg.MaxPos)
	}
	f, err := kernels.ParseFormat(c.Quant)
	if err != nil {
		return nil, err
	}
	s, err := benchSession(c, cfg, f)
	if err != nil {
		return nil, err
	}
	if c.Comm != nil {
		s.Comm = c.Comm
	}
	t := s.NewTrainer()
	var last float64
	var comm commStats
	step := func() error {
		r, err := t.Step()
		last, comm = r.Loss, r.Comm
		return err
	}
	for i := 0; i < c.Warmup; i++ {
		if err := step(); err != nil {
			return nil, err
		}
	}
	type timed struct {
		secs float64
		comm commStats
	}
	times := make([]timed, c.Steps)
	for i := range times {
		t0 := time.Now()
		if err := step(); err != nil {
			return nil, err
		}
		times[i] = timed{time.Since(t0).Seconds(), comm}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].secs < times[j].secs })
	med := times[len(times)/2]
	n := c.Batch * c.Seq * s.Config.GradAccum
	r := &BenchResult{
		BenchConfig: c, Kernel: s.Pool.Kernel(), Path: s.Pool.Path().ID(), TokensPerSec: float64(n) / med.secs, MsPerStep: med.secs * 1e3,
		PeakRSSBytes: sysinfo.PeakRSS(), WeightBytes: s.Model.WeightBytes(), ActivationsMiB: float64(s.tape().ArenaFloats()) * 4 / (1 << 20),
		TrainableParam: s.Adapter.NumParams(), Loss: float32(last),
	}
	if size := s.comm().Size(); size > 1 {
		r.Ranks, r.CommBytes, r.CommMs, r.CommWaitMs, r.CommPercent = size, med.comm.Bytes, med.comm.Secs*1e3, med.comm.Wait*1e3, 100*med.comm.Secs/med.secs
	}
	return r, nil
}

// benchSession is the benchmark's session: a preset model with seeded
// random weights in format f, rank-R adapters on every projection, and one
// fixed batch of random tokens that every step trains on, through the same
// Trainer.Step as a run (AdamW at a constant 1e-4, clipping as configured).
func benchSession(c BenchConfig, cfg model.Config, f kernels.Format) (*Session, error) {
	rc := Defaults()
	rc.Threads, rc.Rank, rc.Alpha, rc.Seed = c.Threads, c.Rank, float64(2*c.Rank), 1
	rc.ComputeDType = c.ComputeDType
	rc.LR, rc.LRSchedule, rc.MaxGradNorm, rc.BatchSize, rc.MaxSeqLen = 1e-4, "constant", c.MaxGradNorm, c.Batch, c.Seq
	rc.Checkpointing, rc.CheckpointLayers, rc.Quant = c.Checkpointing, c.CheckpointLayers, c.Quant
	rc.GradAccum = max(c.GradAccum, 1)
	if c.Comm != nil {
		if err := checkShare(rc.GradAccum, c.Comm.Size()); err != nil {
			return nil, err
		}
	}
	if err := trainsIn(rc.ComputeDType); err != nil {
		return nil, err
	}
	s, err := newSession(rc, nil)
	if err != nil {
		return nil, err
	}
	if s.Model, err = model.NewRandom(cfg, f, 1); err != nil {
		return nil, err
	}
	s.Model.Checkpointing, s.Model.CheckpointLayers = c.Checkpointing, c.CheckpointLayers
	if err := s.attach("", true); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(2, 3))
	n := c.Batch * c.Seq
	b := &data.Batch{B: c.Batch, T: c.Seq, IDs: make([]int32, n), Pos: make([]int32, n), Targets: make([]int32, n), Supervised: n}
	for i := range b.IDs {
		b.IDs[i] = int32(r.IntN(cfg.Vocab))
		b.Targets[i] = int32(r.IntN(cfg.Vocab))
		b.Pos[i] = int32(i % c.Seq)
	}
	s.fixed, s.PerEpoch = b, 1
	s.Config.NEFTuneAlpha = c.NEFTuneAlpha
	if c.TokenNoise > 0 {
		examples := make([]*data.Example, c.Batch)
		for i := range examples {
			ex := &data.Example{IDs: make([]int32, c.Seq+1), Mask: make([]bool, c.Seq+1)}
			for j := range ex.IDs {
				ex.IDs[j], ex.Mask[j] = int32(r.IntN(cfg.Vocab)), j > c.Seq/2
			}
			examples[i] = ex
		}
		draw, err := augment.UniformSampler(cfg.Vocab, nil)
		if err != nil {
			return nil, err
		}
		tn := &augment.Tokens{Seed: 1, Dropout: c.TokenNoise, Replace: c.TokenNoise, Draw: draw}
		s.Batches = &data.Batcher{Examples: examples, T: c.Seq, B: c.Batch, Seed: 1, Transform: tn.Transform()}
		s.fixed = nil
	}
	return s, nil
}
