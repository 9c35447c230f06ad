package train

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/lowrank/lowrank/augment"
	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/data"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
)

// Session is the setup that training, evaluation, a dry run and the
// training benchmark share, done once: the kernel path and its pool, the
// tokenizer, the base model, the adapter, the data and its batch order.
// Close releases it.
type Session struct {
	Config Config
	Log    *slog.Logger
	// Comm is the group of processes training together (nil: this one).
	Comm    Comm
	Pool    *kernels.Pool
	Tok     *tokenizer.Tokenizer // nil for the benchmark's model built in memory
	Model   *model.Model
	Adapter *lora.Adapter // nil when evaluating the base alone
	Data    *data.Dataset // the training (or evaluated) examples; nil for the benchmark
	Val     []*data.Example
	// Batches is the training order: micro-batch g is batch g mod PerEpoch
	// of epoch g / PerEpoch, a pure function of (seed, epoch, index).
	Batches  *data.Batcher
	PerEpoch int // micro-batches per epoch
	Prints   Fingerprints
	// fixed, for the benchmark: every micro-batch is this one.
	fixed   *data.Batch
	tp      *autograd.Tape
	closers []io.Closer
}

// Fingerprints identify what a run trained on, for resume checks and the
// adapter's lowrank.json.
type Fingerprints struct {
	Base      string `json:"base"`      // SHA-256 of the model files (model.Fingerprint)
	Tokenizer string `json:"tokenizer"` // vocabulary, merges, special tokens and chat template
	Data      string `json:"data"`      // the training data's token-cache key: its bytes, tokenizer and rendering options
	Val       string `json:"val,omitempty"`
	Kernel    string `json:"kernel_path"` // kernels.Path.ID
}

// Close releases the model's and the data's memory maps.
func (s *Session) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i].Close())
	}
	s.closers = nil
	return errors.Join(errs...)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// OpenSession does a training run's setup: everything in Session, the
// adapter freshly initialized or read from c.Adapter.
func OpenSession(c Config, log *slog.Logger) (*Session, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	for _, p := range append(data.SplitPaths(c.Data), c.Val) {
		if p != "" {
			if err := data.CheckPath(p); err != nil {
				return nil, err
			}
		}
	}
	s, err := newSession(c, log)
	if err != nil {
		return nil, err
	}
	err = s.loadBase(c.ModelOptions())
	if err == nil {
		err = s.attach(c.Adapter, true)
	}
	if err == nil {
		err = s.checkMemory()
	}
	if err == nil {
		s.logModel()
		err = s.loadData(true)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func newSession(c Config, log *slog.Logger) (*Session, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	path, err := kernels.PathFor("", c.ComputeDType)
	if err != nil {
		return nil, fmt.Errorf("compute_dtype %s: %s", c.ComputeDType, strings.TrimPrefix(err.Error(), "kernels: "))
	}
	pool := kernels.NewPoolOn(c.Threads, path)
	return &Session{Config: c, Log: log, Pool: pool, Prints: Fingerprints{Kernel: pool.Path().ID()}}, nil
}

// setup loads the tokenizer and base (opts), attaches an adapter (read from
// adapterDir, or fresh when adapterDir is "" and fresh is set; none
// otherwise) and loads the data (with its validation set when withVal).
func (s *Session) setup(opts model.LoadOptions, adapterDir string, fresh, withVal bool) error {
	if err := s.loadBase(opts); err != nil {
		return err
	}
	if err := s.attach(adapterDir, fresh); err != nil {
		return err
	}
	return s.loadData(withVal)
}

// resolveMaxSeqLen gives a max_seq_len of 0 its value: DefaultMaxSeqLen, or
// the model's context where that is shorter.
func (s *Session) resolveMaxSeqLen() {
	if s.Config.MaxSeqLen == 0 {
		s.Config.MaxSeqLen = min(DefaultMaxSeqLen, s.Model.Config.MaxPos)
	}
}

func (s *Session) loadBase(opts model.LoadOptions) error {
	c := &s.Config
	tok, err := tokenizer.Load(c.Model)
	if err != nil {
		return err
	}
	if c.ChatTemplate != "" {
		if err := tok.UseChatTemplate(c.ChatTemplate); err != nil {
			return err
		}
	}
	s.Tok = tok
	s.Prints.Tokenizer = tok.Fingerprint()
	m, err := model.Load(c.Model, opts)
	if err != nil {
		return err
	}
	s.Model = m
	s.closers = append(s.closers, m)
	if tok.VocabSize() > m.Config.Vocab {
		return fmt.Errorf("%s: the tokenizer has %d tokens, the model's vocabulary %d: they do not belong together", c.Model, tok.VocabSize(), m.Config.Vocab)
	}
	s.resolveMaxSeqLen()
	if c.MaxSeqLen > m.Config.MaxPos {
		return fmt.Errorf("max_seq_len %d is beyond the model's context of %d tokens (max_position_embeddings of %s)", c.MaxSeqLen, m.Config.MaxPos, c.Model)
	}
	if c.CheckpointLayers > m.Config.Layers {
		return fmt.Errorf("checkpoint_layers %d is beyond the model's %d layers (use --activation-checkpointing to recompute all)", c.CheckpointLayers, m.Config.Layers)
	}
	m.Checkpointing, m.CheckpointLayers = c.Checkpointing, c.CheckpointLayers
	if s.Prints.Base, err = model.Fingerprint(c.Model); err != nil {
		return err
	}
	if bc := m.BaseCache; bc != nil {
		if bc.Hit {
			s.Log.Info("GPTQ base read from the cache", "file", bc.File)
		} else if bc.Ignored == "" {
			s.Log.Info("GPTQ base stored in the cache", "file", bc.File)
		}
		if bc.Ignored != "" {
			s.Log.Warn("GPTQ cache", "ignored", bc.Ignored)
		}
	}
	if r := m.Tuned; r != nil {
		s.Log.Info("GPTQ scales tuned", "epochs", r.Epochs, "calibration_kl_before", fmt.Sprintf("%.4f", r.Before), "calibration_kl_after", fmt.Sprintf("%.4f", r.After))
	}
	return nil
}

// attach puts the adapter on the base: read from dir, or fresh (c's LoRA
// settings) when dir is "" and fresh is set.
func (s *Session) attach(dir string, fresh bool) error {
	c, m := &s.Config, s.Model
	var err error
	switch {
	case dir != "":
		if s.Adapter, err = checkpoints.LoadAdapter(dir, m); err != nil {
			return err
		}
	case fresh:
		var targets []string
		for _, t := range strings.Split(c.Targets, ",") {
			if t = strings.TrimSpace(t); t != "" {
				targets = append(targets, t)
			}
		}
		s.Adapter, err = lora.Apply(m, lora.Config{Rank: c.Rank, Alpha: c.Alpha, Dropout: c.Dropout, Targets: targets,
			RSLoRA: c.RSLoRA, DoRA: c.DoRA, Init: c.Init, Seed: c.Seed, LoRAPlusRatio: c.LoRAPlusRatio, EveryTarget: true})
		if err != nil {
			return err
		}
	default:
		return nil
	}
	s.Adapter.Config.Seed, s.Adapter.Config.LoRAPlusRatio = c.Seed, c.LoRAPlusRatio
	return nil
}

// logModel says what the base is and how it is held.
func (s *Session) logModel() {
	c, m := &s.Config, s.Model
	var trainable int64
	if s.Adapter != nil {
		trainable = s.Adapter.NumParams()
	}
	s.Log.Info("model", "path", c.Model, "params", m.Params(), "weights_MiB", m.WeightBytes()>>20,
		"stored_as_"+c.Quant, StoredSummary(m, c.Quant), "trainable", trainable, "kernel_path", s.Pool.Path().ID())
	wider := map[string][]string{} // matrices a format could not hold, by what they are held as
	for _, st := range m.Stored {
		if st.As != c.Quant && st.Shape[0] > 1 {
			wider[st.As] = append(wider[st.As], st.Name)
		}
	}
	for _, as := range slices.Sorted(maps.Keys(wider)) {
		names := wider[as]
		if len(names) > 4 {
			names = append(names[:4:4], fmt.Sprintf("and %d more", len(names)-4))
		}
		s.Log.Info("not stored as "+c.Quant, "as", as, "tensors", strings.Join(names, ", "))
	}
}

// loadOptions are how c renders data.
func (c *Config) loadOptions(tok *tokenizer.Tokenizer) (data.LoadOptions, error) {
	cols, err := data.ParseColumns(c.Columns)
	if err != nil {
		return data.LoadOptions{}, err
	}
	return data.LoadOptions{Columns: cols, Threads: c.Threads, Seed: c.Seed, CacheDir: c.TokenCache(), TextUnit: c.TextUnit, Split: c.Split,
		Render: data.RenderOptions{TrainOnInputs: c.TrainOnInputs, Truncation: c.Truncation, MaxSeqLen: c.MaxSeqLen + 1, EOS: tok.EOS, KeepLongText: c.TextWindows}}, nil
}

// loadData reads the training data, and with withVal the validation data
// (--val, the validation shards beside the training ones, or a seeded
// fraction of the training examples), and sets up the batch order.
func (s *Session) loadData(withVal bool) error {
	c := &s.Config
	lo, err := c.loadOptions(s.Tok)
	if err != nil {
		return err
	}
	if withVal && c.Val == "" {
		lo.ValFraction = c.ValFraction
	}
	plain := lo // validation and evaluation data: never augmented
	if withVal {
		if lo, err = TextVariants(c, lo); err != nil {
			return err
		}
	}
	paths := data.SplitPaths(c.Data)
	if f := strings.TrimSpace(strings.Split(c.DataFormats, ";")[0]); f != "" && len(paths) == 1 {
		lo.Format, plain.Format = data.Format(f), data.Format(f)
	}
	var ds *data.Dataset
	if len(paths) == 1 {
		if ds, err = data.Load(paths[0], s.Tok, lo); err != nil {
			return err
		}
		s.closers = append(s.closers, closerFunc(ds.Close))
	} else if ds, err = s.loadMixture(paths, lo, withVal); err != nil {
		return err
	}
	s.Data = ds
	s.Prints.Data = ds.Key
	if ds.CacheWarning != "" {
		s.Log.Warn("token cache", "path", c.Data, "problem", ds.CacheWarning)
	}
	if withVal {
		s.Val = ds.Val
		valPath := c.Val
		if valPath == "" && c.ValFraction == 0 && len(paths) == 1 {
			if split := data.ValidationSplit(c.Data); split != "" {
				valPath, lo.Split = c.Data, split // the validation shards beside the training ones
				s.Log.Info("validation", "path", c.Data, "split", split)
			}
		}
		if valPath != "" {
			vlo := plain
			vlo.ValFraction, vlo.Split = 0, "" // --val: all of it
			if valPath == c.Data {
				vlo.Split = lo.Split
			}
			vds, err := data.Load(valPath, s.Tok, vlo)
			if err != nil {
				return err
			}
			s.closers = append(s.closers, closerFunc(vds.Close))
			s.Val = vds.Train
			s.Prints.Val = vds.Key
		}
	}
	s.Log.Info("data", "path", c.Data, "format", ds.Format, "examples", len(ds.Train), "val", len(s.Val), "tokens", ds.Tokens, "supervised", ds.Supervised, "from_cache", ds.FromCache)
	for _, reason := range slices.Sorted(maps.Keys(ds.Dropped)) {
		s.Log.Warn("rows dropped", "count", ds.Dropped[reason], "reason", reason)
	}
	if ds.Truncated > 0 {
		s.Log.Warn("examples truncated", "count", ds.Truncated, "of", len(ds.Train)+len(ds.Val), "max_seq_len", c.MaxSeqLen, "truncation", c.Truncation)
	}
	if ds.Format == data.FormatChat || ds.Format == data.FormatShareGPT {
		s.logTurnEnd()
	}
	if c.TextWindows {
		// Long documents were kept whole for the windows; what is not
		// augmented (validation, an evaluation) sees their start.
		s.Val = data.Heads(s.Val, c.MaxSeqLen+1)
	}
	s.Batches = &data.Batcher{Examples: ds.Train, T: c.MaxSeqLen, B: c.BatchSize, Pack: c.Pack, Pad: padID(s.Model, s.Tok), Seed: c.Seed, Variants: ds.Variants}
	if ds.Variants != nil {
		s.Log.Info("text augmentation: each epoch of a cycle trains on its own variant of every row", "variants", lo.Variants,
			"word_swap", c.TextWordSwap, "word_delete", c.TextWordDelete, "char_noise", c.TextCharNoise, "fields", c.TextFields, "system_prompts", c.SystemPrompts)
	}
	switch {
	case withVal: // a training session: its data is augmented as configured
		noise, err := s.tokenNoise(ds.Train)
		if err != nil {
			return err
		}
		var window data.Transform
		if c.TextWindows {
			window = (&augment.Window{Seed: c.Seed, N: c.MaxSeqLen + 1}).Transform()
			s.Batches.Windows = true
			long := 0
			for _, e := range ds.Train {
				if len(e.IDs) > c.MaxSeqLen+1 {
					long++
				}
			}
			s.Log.Info("text windows: each epoch trains on a random window of the longer documents", "documents", long, "of", len(ds.Train), "window", c.MaxSeqLen+1)
		}
		s.Batches.Transform = augment.Chain(window, noise)
		if noise != nil && ds.Format == data.FormatText && !c.AugmentAnswers {
			s.Log.Warn("token augmentation acts on prompt tokens, and text data has none: set augment_answers to noise the text itself")
		}
	case c.TextWindows:
		s.Batches.Examples = data.Heads(ds.Train, c.MaxSeqLen+1) // not training: the documents' start
	}
	s.PerEpoch, err = s.Batches.Steps()
	return err
}

// TextVariants sets lo to render the text- and template-level variants c
// configures (none when it configures neither).
func TextVariants(c *Config, lo data.LoadOptions) (data.LoadOptions, error) {
	var text, tmpl func(epoch, index int, r data.Row) data.Row
	var keys []string
	if c.TextWordSwap != 0 || c.TextWordDelete != 0 || c.TextCharNoise != 0 {
		fields, err := augment.ParseFields(c.TextFields)
		if err != nil {
			return lo, err
		}
		t := &augment.Text{Seed: c.Seed, WordSwap: c.TextWordSwap, WordDelete: c.TextWordDelete, CharNoise: c.TextCharNoise, Fields: fields}
		text, keys = t.Vary, append(keys, t.Key())
	}
	if c.SystemPrompts != "" {
		prompts, err := readPrompts(c.SystemPrompts)
		if err != nil {
			return lo, err
		}
		t := &augment.Template{Seed: c.Seed, Prompts: prompts}
		tmpl, keys = t.Vary, append(keys, t.Key())
	}
	if text == nil && tmpl == nil {
		return lo, nil
	}
	lo.Variants = c.TextVariants
	if lo.Variants == 0 {
		lo.Variants = min(max(c.Epochs, 1), 16)
	}
	lo.Vary, lo.VaryKey = augment.Vary(tmpl, text), strings.Join(keys, "; ")
	return lo, nil
}

// readPrompts reads a file of paraphrases, one per line.
func readPrompts(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("system_prompts: %w", err)
	}
	var out []string
	for i, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if strings.Contains(line, "%s") {
			return nil, fmt.Errorf("system_prompts: %s line %d: a paraphrase may not hold %%s", path, i+1)
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("system_prompts: %s has no paraphrase (one per line)", path)
	}
	return out, nil
}

// loadMixture loads several datasets, each in its own format (and, with
// withVal and no --val, each with its validation split or fraction), and
// combines them: concatenated, or sampled as a mixture with data_weights.
// The log gives each one's share of examples and supervised tokens.
func (s *Session) loadMixture(paths []string, lo data.LoadOptions, withVal bool) (*data.Dataset, error) {
	c := &s.Config
	var parts []*data.Dataset
	var own, formats []string // each dataset's column mapping and format, if it has them
	if c.DataColumns != "" {
		own = strings.Split(c.DataColumns, ";")
	}
	if c.DataFormats != "" {
		formats = strings.Split(c.DataFormats, ";")
	}
	for i, p := range paths {
		lo := lo
		if i < len(own) && strings.TrimSpace(own[i]) != "" {
			cols, err := data.ParseColumns(own[i])
			if err != nil {
				return nil, err
			}
			lo.Columns = cols
		}
		if i < len(formats) && strings.TrimSpace(formats[i]) != "" {
			lo.Format = data.Format(strings.TrimSpace(formats[i]))
		}
		ds, err := data.Load(p, s.Tok, lo)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, closerFunc(ds.Close))
		if withVal && c.Val == "" && c.ValFraction == 0 {
			if split := data.ValidationSplit(p); split != "" {
				vlo := lo
				vlo.Split, vlo.Variants, vlo.Vary = split, 0, nil // validation: never augmented
				vds, err := data.Load(p, s.Tok, vlo)
				if err != nil {
					return nil, err
				}
				s.closers = append(s.closers, closerFunc(vds.Close))
				ds.Val = append(ds.Val, vds.Train...)
			}
		}
		parts = append(parts, ds)
	}
	weights, err := data.ParseWeights(c.DataWeights)
	if err != nil {
		return nil, err
	}
	ds, shares, err := data.Combine(parts, paths, weights, c.MixStop, c.Seed)
	if err != nil {
		return nil, err
	}
	for i, sh := range shares {
		s.Log.Info("dataset", "n", i+1, "path", sh.Path, "format", sh.Format, "weight", sh.Weight, "examples", sh.Examples,
			"share_examples", fmt.Sprintf("%.1f%%", 100*float64(sh.Examples)/float64(len(ds.Train))),
			"supervised", sh.Supervised, "share_supervised", fmt.Sprintf("%.1f%%", 100*float64(sh.Supervised)/float64(max(ds.Supervised, 1))))
	}
	return ds, nil
}

// tokenNoise is the configured token-level augmentation (nil: none).
func (s *Session) tokenNoise(train []*data.Example) (data.Transform, error) {
	t, err := TokenNoise(&s.Config, s.Tok, s.Model.Config.IsEOS, train)
	if t != nil {
		c := &s.Config
		s.Log.Info("token augmentation", "dropout", c.TokenDropout, "replace", c.TokenReplace, "from", c.TokenReplaceFrom, "answers", c.AugmentAnswers)
	}
	return t, err
}

// TokenNoise is the token-level augmentation c configures over a dataset's
// training examples (nil when there is none): never on the tokenizer's
// added tokens (special ones among them), BOS and EOS, nor on ids eos reports.
func TokenNoise(c *Config, tok *tokenizer.Tokenizer, eos func(int) bool, train []*data.Example) (data.Transform, error) {
	if c.TokenDropout == 0 && c.TokenReplace == 0 {
		return nil, nil
	}
	v := tok.VocabSize()
	protected := make([]bool, v)
	for id := range protected {
		i := int32(id)
		protected[id] = tok.IsAdded(i) || i == tok.BOS || i == tok.EOS || (eos != nil && eos(id))
	}
	t := &augment.Tokens{Seed: c.Seed, Dropout: c.TokenDropout, Replace: c.TokenReplace, Answers: c.AugmentAnswers, Protected: protected}
	if c.TokenReplace > 0 {
		var err error
		if c.TokenReplaceFrom == "data" {
			t.Draw, err = augment.FrequencySampler(train, v, protected)
		} else {
			t.Draw, err = augment.UniformSampler(v, protected)
		}
		if err != nil {
			return nil, err
		}
	}
	return t.Transform(), nil
}

// logTurnEnd says what ends an assistant turn (supervised, so that the
// model learns to stop), warning when the template's marker is not one
// token of the vocabulary.
func (s *Session) logTurnEnd() {
	marker, n, eos, err := s.Tok.TurnEnd()
	switch {
	case err != nil:
		s.Log.Warn("chat template", "problem", err.Error())
	case marker == "":
		s.Log.Warn("chat turns have no end marker and the model no EOS: a fine-tuned model may not learn to stop")
	case eos:
		s.Log.Info("chat turns end with the model's EOS (the template has no end-of-turn marker)", "eos", marker)
	case n > 1:
		s.Log.Warn("the chat template's end-of-turn marker is not one token of this vocabulary: the model learns to write it piece by piece (generate --chat stops on its text)", "marker", marker, "tokens", n)
	default:
		s.Log.Info("chat turns end with", "marker", marker)
	}
}

// Batch returns global micro-batch g of the training order.
func (s *Session) Batch(g int64) (*data.Batch, error) {
	if s.fixed != nil {
		return s.fixed, nil
	}
	return s.Batches.At(int(g/int64(s.PerEpoch)), int(g%int64(s.PerEpoch)))
}

// TotalSteps is the number of optimizer steps c asks for over this data:
// max_steps, else epochs × micro-batches per epoch / grad_accum (at least 1).
func (s *Session) TotalSteps() int {
	c := &s.Config
	if c.MaxSteps > 0 {
		return c.MaxSteps
	}
	return max(1, c.Epochs*s.PerEpoch/c.GradAccum)
}

// EvalLoss is the mean next-token loss over the supervised tokens of
// examples, in batches as training forms them (no dropout, no gradients).
func (s *Session) EvalLoss(examples []*data.Example) (loss float64, tokens int, err error) {
	if len(examples) == 0 {
		return math.NaN(), 0, nil
	}
	if ad := s.Adapter; ad != nil {
		was := ad.Training
		ad.Training = false
		defer func() { ad.Training = was }()
	}
	c := &s.Config
	vb := &data.Batcher{Examples: examples, T: c.MaxSeqLen, B: c.BatchSize, Pack: c.Pack, Pad: padID(s.Model, s.Tok), Seed: 1}
	steps, err := vb.Steps()
	if err != nil {
		return 0, 0, err
	}
	tp := s.tape()
	tp.SetNoGrad(true)
	defer tp.SetNoGrad(false)
	// With several processes each takes its stride of the batches; the
	// per-batch sums are gathered and added in batch order, as one process
	// adds them: the same loss, bit for bit, on any process count.
	cm := s.comm()
	size, rank := cm.Size(), cm.Rank()
	per := (steps + size - 1) / size
	sums, counts := make([]float64, per), make([]int, per)
	var failed error
	for i := rank; i < steps && failed == nil; i += size {
		b, err := vb.At(0, i)
		if err == nil {
			tp.Reset()
			var l *autograd.Tensor
			var k int
			if l, k, err = s.Model.Loss(tp, toModel(b), 0); err == nil {
				sums[i/size], counts[i/size] = float64(l.Data[0])*float64(k), k
			}
		}
		failed = err
	}
	// (A process that failed still tells the others, which would wait for
	// its sums otherwise.)
	if err := agree(cm, failed); err != nil {
		return 0, 0, err
	}
	if size > 1 {
		send := make([]byte, 16*per)
		for j := range per {
			binary.LittleEndian.PutUint64(send[16*j:], math.Float64bits(sums[j]))
			binary.LittleEndian.PutUint64(send[16*j+8:], uint64(counts[j]))
		}
		recv := make([]byte, 16*per*size)
		if err := cm.AllGather(send, recv); err != nil {
			return 0, 0, fmt.Errorf("gathering the validation loss: %w", err)
		}
		sums, counts = make([]float64, steps), make([]int, steps)
		for i := range steps {
			m := recv[16*((i%size)*per+i/size):]
			sums[i], counts[i] = math.Float64frombits(binary.LittleEndian.Uint64(m)), int(binary.LittleEndian.Uint64(m[8:]))
		}
	}
	var sum float64
	for i := range sums {
		sum += sums[i]
		tokens += counts[i]
	}
	return sum / float64(max(tokens, 1)), tokens, nil
}
