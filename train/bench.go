package train

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/internal/sysinfo"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
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
}

// BenchResult is what one benchmark measured.
type BenchResult struct {
	BenchConfig
	Kernel         string  `json:"kernel"`
	TokensPerSec   float64 `json:"tokens_per_second"`
	MsPerStep      float64 `json:"ms_per_step"` // median
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	WeightBytes    int64   `json:"weight_bytes"`
	ActivationsMiB float64 `json:"activations_mib"`
	TrainableParam int64   `json:"trainable_params"`
	Loss           float32 `json:"last_loss"`
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
	if c.Batch <= 0 || c.Seq <= 0 || c.Seq > cfg.MaxPos || c.Steps <= 0 || c.Rank <= 0 {
		return nil, fmt.Errorf("batch, steps and rank must be positive and seq in [1, %d]", cfg.MaxPos)
	}
	f, err := kernels.ParseFormat(c.Quant)
	if err != nil {
		return nil, err
	}
	pool, err := kernels.NewPool(c.Threads, "")
	if err != nil {
		return nil, err
	}
	m, err := model.NewRandom(cfg, f, 1)
	if err != nil {
		return nil, err
	}
	m.Checkpointing, m.CheckpointLayers = c.Checkpointing, c.CheckpointLayers
	ad, err := lora.Apply(m, lora.Config{Rank: c.Rank, Alpha: float64(2 * c.Rank), Seed: 1})
	if err != nil {
		return nil, err
	}
	ad.Training = true
	params := ad.Params()
	opt := NewAdamW(0)
	r := rand.New(rand.NewPCG(2, 3))
	n := c.Batch * c.Seq
	b := &model.Batch{B: c.Batch, T: c.Seq, IDs: make([]int32, n), Pos: make([]int32, n), Targets: make([]int32, n)}
	for i := range b.IDs {
		b.IDs[i] = int32(r.IntN(cfg.Vocab))
		b.Targets[i] = int32(r.IntN(cfg.Vocab))
		b.Pos[i] = int32(i % c.Seq)
	}
	tp := autograd.NewTape(pool)
	var last float32
	step := func() error {
		tp.Reset()
		ad.ZeroGrad()
		loss, _, err := m.Loss(tp, b, 0)
		if err != nil {
			return err
		}
		tp.Backward(loss)
		opt.Step(params, 1e-4, nil)
		last = loss.Data[0]
		ad.Step++
		return nil
	}
	for i := 0; i < c.Warmup; i++ {
		if err := step(); err != nil {
			return nil, err
		}
	}
	times := make([]float64, c.Steps)
	for i := range times {
		t0 := time.Now()
		if err := step(); err != nil {
			return nil, err
		}
		times[i] = time.Since(t0).Seconds()
	}
	sort.Float64s(times)
	med := times[len(times)/2]
	return &BenchResult{
		BenchConfig: c, Kernel: pool.Kernel(), TokensPerSec: float64(n) / med, MsPerStep: med * 1e3,
		PeakRSSBytes: sysinfo.PeakRSS(), WeightBytes: m.WeightBytes(), ActivationsMiB: float64(tp.ArenaFloats()) * 4 / (1 << 20),
		TrainableParam: ad.NumParams(), Loss: last,
	}, nil
}
