package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/lowrank/lowrank/kernels"
)

// LoadOptions choose how base weights are held.
type LoadOptions struct {
	// Quant is the storage format of the projections ("" keeps each tensor's
	// stored dtype; GGUF Q8_0/Q4_0 tensors are then used as they are).
	Quant string
	// DoubleQuant quantizes NF4 block scales again (QLoRA's double quantization).
	DoubleQuant bool
	// GPTQ, with Quant q4_0 or nf4, quantizes the block projections by GPTQ
	// over calibration text instead of block by block. Loading then peaks at
	// the model's q8_0 size.
	GPTQ *GPTQOptions
	// CacheDir, with GPTQ, keeps GPTQ bases between loads ("": not kept):
	// a load with the same model files and options reads the base back.
	CacheDir string
}

// BaseOptions load a base as training holds it: in format quant (NF4 with
// QLoRA's double quantization) and, when gptqTokens > 0, by GPTQ over that
// many self-sampled tokens seeded by seed, then with gptqTune > 0 that many
// passes of tuning its scales (TuneOptions). train, eval, generate and
// inspect all load through it, so an adapter meets the weights it was
// trained on.
func BaseOptions(quant string, gptqTokens, gptqTune int, seed uint64) LoadOptions {
	o := LoadOptions{Quant: quant, DoubleQuant: quant == "nf4"}
	if gptqTokens > 0 {
		o.GPTQ = &GPTQOptions{Samples: gptqTokens, Seed: seed, Tune: TuneOptions{Epochs: gptqTune}}
	}
	return o
}

// source is one tensor as found in a file: viewed as a Weight without copying
// where lowrank has kernels for its type, else (K-quants) decoded row by row.
type source struct {
	name       string
	dtype      string
	rows, cols int
	w          *kernels.Weight            // nil when the type has no in-memory form
	decode     func(dst []float32, i int) // row i as fp32
}

func viewSource(name, dtype string, w *kernels.Weight) *source {
	return &source{name: name, dtype: dtype, rows: w.Rows, cols: w.Cols, w: w, decode: w.DecodeRow}
}

// tensorSource finds tensors by their Hugging Face name.
type tensorSource interface {
	get(hfName string) (*source, error) // error if absent
	has(hfName string) bool
	names() []string // every tensor, by Hugging Face name
	close() error
}

// Load reads a model from a Hugging Face directory (config.json + safetensors)
// or a .gguf file and holds its projections in the chosen format, converting
// tensor by tensor and row by row, so loading never holds an fp32 copy of the
// model.
//
// path may also be a Hugging Face hub id (org/name[@revision]) of a model in
// the local hub cache.
func Load(path string, opts LoadOptions) (*Model, error) {
	local, err := hfcache.Resolve(path)
	if err != nil {
		return nil, fmt.Errorf("model %w", err)
	}
	m, err := load(local, opts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return m, nil
}

func load(path string, opts LoadOptions) (*Model, error) {
	var target *kernels.Format
	if opts.Quant != "" {
		f, err := kernels.ParseFormat(opts.Quant)
		if err != nil {
			return nil, err
		}
		target = &f
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no such file or directory")
	}
	if err != nil {
		return nil, err
	}
	var (
		cfg       *Config
		src       tensorSource
		permute   bool
		layersKey = "config.json: num_hidden_layers"
	)
	if st.IsDir() {
		raw, err := os.ReadFile(filepath.Join(path, "config.json"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no config.json: a Hugging Face model folder holds config.json beside its safetensors")
		}
		if err != nil {
			return nil, err
		}
		if cfg, err = ParseHFConfig(raw); err != nil {
			return nil, err
		}
		if src, err = openSafetensors(path); err != nil {
			return nil, err
		}
	} else {
		g, err := gguf.Open(path)
		if err != nil {
			return nil, err
		}
		if cfg, err = configFromGGUF(g); err != nil {
			g.Close()
			return nil, err
		}
		src = &ggufSource{g: g}
		permute = cfg.Arch == "llama" || cfg.Arch == "mistral"
		layersKey = cfg.Arch + ".block_count"
	}
	if err := checkLayers(cfg, src, layersKey); err != nil {
		src.close()
		return nil, err
	}
	var m *Model
	if opts.GPTQ != nil {
		if target == nil || (*target != kernels.Q4_0 && *target != kernels.NF4) {
			src.close()
			return nil, fmt.Errorf("GPTQ quantizes to q4_0 or nf4: choose one with --quant")
		}
		// Load at q8_0 to run the calibration text, then requantize layer by layer.
		q8 := kernels.Q8_0
		if m, err = build(cfg, src, &q8, LoadOptions{}, permute); err == nil {
			err = m.gptqCached(path, opts.CacheDir, src, *target, *opts.GPTQ, permute, opts.DoubleQuant)
		}
	} else {
		m, err = build(cfg, src, target, opts, permute)
	}
	if err != nil {
		src.close()
		return nil, err
	}
	m.Source = path
	m.close = src.close
	return m, nil
}

func build(cfg *Config, src tensorSource, target *kernels.Format, opts LoadOptions, permute bool) (*Model, error) {
	m := &Model{Config: *cfg}
	c := &m.Config
	var err error
	// Llama-3 GGUFs carry their rope scaling as per-frequency divisors.
	var factors []float32
	if gs, ok := src.(*ggufSource); ok && gs.hasRaw("rope_freqs.weight") {
		s, err := src.get("rope_freqs.weight")
		if err != nil {
			return nil, err
		}
		factors = make([]float32, s.rows*s.cols)
		s.decode(factors, 0)
	}
	// Embedding and head: a 4-bit format costs too much accuracy on the
	// vocabulary projections; like QLoRA, keep them at 8 bits or more.
	headFmt := target
	if target != nil && (*target == kernels.Q4_0 || *target == kernels.NF4) {
		q8 := kernels.Q8_0
		headFmt = &q8
	}
	if m.Embed, err = m.weight(src, HFEmbed, c.Vocab, c.Hidden, headFmt, opts, nil); err != nil {
		return nil, err
	}
	if m.Norm, err = m.vector(src, HFNorm, c.Hidden); err != nil {
		return nil, err
	}
	if !c.TieEmbeddings && src.has(HFHead) {
		if m.Head, err = m.weight(src, HFHead, c.Vocab, c.Hidden, headFmt, opts, nil); err != nil {
			return nil, err
		}
	} else {
		c.TieEmbeddings = true
		m.Head = m.Embed
	}
	// The embedding has confirmed the config's width: the sizes that follow
	// from it can be allocated.
	rope, err := autograd.NewRopeFactors(c.HeadDim, c.RopeTheta, min(c.MaxPos, ropeInitial), c.RopeScaling, factors, false)
	if err != nil {
		return nil, err
	}
	m.rope.Store(rope)
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	m.Blocks = make([]Block, c.Layers)
	for l := range m.Blocks {
		b := &m.Blocks[l]
		p := BlockPrefix(l)
		if b.AttnNorm, err = m.vector(src, p+AttnNorm, c.Hidden); err != nil {
			return nil, err
		}
		if b.MLPNorm, err = m.vector(src, p+MLPNorm, c.Hidden); err != nil {
			return nil, err
		}
		if c.QKNorm {
			if b.QNorm, err = m.vector(src, p+QNorm, c.HeadDim); err != nil {
				return nil, err
			}
			if b.KNorm, err = m.vector(src, p+KNorm, c.HeadDim); err != nil {
				return nil, err
			}
		}
		var qperm, kperm func(int) int
		if permute {
			qperm, kperm = ropePerm(c.Heads, c.HeadDim), ropePerm(c.KVHeads, c.HeadDim)
		}
		specs := []struct {
			dst       *Linear
			name      string
			out, in   int
			perm      func(int) int
			wantsBias bool
		}{
			{&b.Q, QProj, qd, c.Hidden, qperm, c.QKVBias},
			{&b.K, KProj, kvd, c.Hidden, kperm, c.QKVBias},
			{&b.V, VProj, kvd, c.Hidden, nil, c.QKVBias},
			{&b.O, OProj, c.Hidden, qd, nil, false},
			{&b.Gate, GateProj, c.Intermediate, c.Hidden, nil, false},
			{&b.Up, UpProj, c.Intermediate, c.Hidden, nil, false},
			{&b.Down, DownProj, c.Hidden, c.Intermediate, nil, false},
		}
		for _, s := range specs {
			f := &Frozen{Name: p + s.name}
			if f.W, err = m.weight(src, p+s.name+".weight", s.out, s.in, target, opts, s.perm); err != nil {
				return nil, err
			}
			if s.wantsBias {
				bt, err := m.vector(src, p+s.name+".bias", s.out)
				if err != nil {
					return nil, err
				}
				f.Bias = bt.Data
				if s.perm != nil {
					f.Bias = permuteVec(f.Bias, s.perm)
				}
			}
			*s.dst = f
		}
	}
	return m, nil
}

// checkLayers compares num_hidden_layers with the blocks the files hold,
// before anything is allocated per layer: more is an absurd number, fewer
// would silently drop layers.
func checkLayers(c *Config, src tensorSource, key string) error {
	held := 0
	for _, n := range src.names() {
		rest, ok := strings.CutPrefix(n, "model.layers.")
		if !ok {
			continue
		}
		i, _, _ := strings.Cut(rest, ".")
		if l, err := strconv.Atoi(i); err == nil && l >= 0 && l+1 > held {
			held = l + 1
		}
	}
	if held != c.Layers {
		unit := "layers"
		if held == 1 {
			unit = "layer"
		}
		return fmt.Errorf("%s is %d, the weights hold %d %s", key, c.Layers, held, unit)
	}
	return nil
}

// ropePerm maps a Hugging Face (rotate-half) row of Q or K to the row of the
// interleaved layout GGUF stores: within each head, HF row s·D/2 + i holds
// what GGUF keeps at 2i + s.
func ropePerm(heads, d int) func(int) int {
	return func(r int) int {
		h, j := r/d, r%d
		s, i := j/(d/2), j%(d/2)
		return h*d + 2*i + s
	}
}

func permuteVec(v []float32, perm func(int) int) []float32 {
	out := make([]float32, len(v))
	for i := range out {
		out[i] = v[perm(i)]
	}
	return out
}

// weight loads a (rows, cols) projection into format target (nil: as stored),
// taking HF row i from source row perm(i).
func (m *Model) weight(src tensorSource, name string, rows, cols int, target *kernels.Format, opts LoadOptions, perm func(int) int) (*kernels.Weight, error) {
	s, err := src.get(name)
	if err != nil {
		return nil, err
	}
	if s.rows != rows || s.cols != cols {
		return nil, fmt.Errorf("tensor %s has shape [%d %d], the config implies [%d %d]", name, s.rows, s.cols, rows, cols)
	}
	note := ""
	var f kernels.Format
	switch {
	case target != nil:
		f = *target
	case s.w != nil:
		f = s.w.Format
	default: // a K-quant with no kernel: the closest format that has one
		f = kernels.Q8_0
		note = fmt.Sprintf("%s has no in-memory kernel: re-quantized to q8_0", s.dtype)
	}
	var w *kernels.Weight
	switch {
	case s.w != nil && f == s.w.Format && perm == nil:
		w = s.w // used as stored, no copy
	case s.w != nil && f == s.w.Format && f != kernels.NF4:
		w, err = permuteRows(s.w, perm)
		if err != nil {
			return nil, err
		}
	default:
		w = kernels.QuantizeRows(f, rows, cols, func(i int, dst []float32) {
			j := i
			if perm != nil {
				j = perm(i)
			}
			s.decode(dst, j)
		})
		if f == kernels.NF4 && opts.DoubleQuant {
			w.DoubleQuantize()
		}
	}
	if w.Padded() {
		note = strings.TrimPrefix(note+"; ", "; ") + fmt.Sprintf("rows padded from %d to a whole %d-value block", cols, f.BlockSize())
	}
	m.Stored = append(m.Stored, StoredTensor{Name: name, Shape: [2]int{rows, cols}, From: s.dtype, Format: w.Format, As: w.Format.String(), Bytes: w.Bytes(), Note: note})
	return w, nil
}

// permuteRows copies a weight with its rows reordered, keeping its format.
func permuteRows(w *kernels.Weight, perm func(int) int) (*kernels.Weight, error) {
	raw, err := w.RawBytes()
	if err != nil {
		return nil, err
	}
	rb := len(raw) / w.Rows
	out := make([]byte, len(raw))
	for i := 0; i < w.Rows; i++ {
		copy(out[i*rb:(i+1)*rb], raw[perm(i)*rb:(perm(i)+1)*rb])
	}
	return kernels.WeightFromBytes(w.Format, w.Rows, w.Cols, out)
}

// vector loads a 1-D fp32 parameter (norm weight, bias) as a frozen tensor.
func (m *Model) vector(src tensorSource, name string, n int) (*autograd.Tensor, error) {
	s, err := src.get(name)
	if err != nil {
		return nil, err
	}
	if s.rows*s.cols != n {
		return nil, fmt.Errorf("tensor %s has %d values, the config implies %d", name, s.rows*s.cols, n)
	}
	v := make([]float32, n)
	for i := 0; i < s.rows; i++ {
		s.decode(v[i*s.cols:(i+1)*s.cols], i)
	}
	m.Stored = append(m.Stored, StoredTensor{Name: name, Shape: [2]int{1, n}, From: s.dtype, Format: kernels.F32, As: "f32", Bytes: int64(4 * n)})
	return autograd.Const(v, 1, n), nil
}

// --- safetensors ---

type stSource struct {
	dir    string
	files  []*safetensors.File
	byName map[string]*safetensors.File
}

func openSafetensors(dir string) (*stSource, error) {
	s := &stSource{dir: dir, byName: map[string]*safetensors.File{}}
	index := filepath.Join(dir, "model.safetensors.index.json")
	var shards []string
	if raw, err := os.ReadFile(index); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, fmt.Errorf("%s: %v", index, err)
		}
		seen := map[string]bool{}
		for _, f := range idx.WeightMap {
			if !seen[f] {
				seen[f] = true
				shards = append(shards, f)
			}
		}
		sort.Strings(shards)
	} else if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		shards = []string{"model.safetensors"}
	} else {
		return nil, fmt.Errorf("no model.safetensors or model.safetensors.index.json in %s", dir)
	}
	for _, sh := range shards {
		f, err := safetensors.Open(filepath.Join(dir, sh))
		if err != nil {
			s.close()
			return nil, err
		}
		s.files = append(s.files, f)
		for _, n := range f.Names() {
			s.byName[n] = f
		}
	}
	return s, nil
}

var stFormat = map[safetensors.Dtype]kernels.Format{safetensors.F32: kernels.F32, safetensors.F16: kernels.F16, safetensors.BF16: kernels.BF16}

func (s *stSource) has(name string) bool { _, ok := s.byName[name]; return ok }

func (s *stSource) names() []string {
	var names []string
	for n := range s.byName {
		names = append(names, n)
	}
	return names
}

func (s *stSource) get(name string) (*source, error) {
	f, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("tensor %s is missing from the safetensors files", name)
	}
	t, _ := f.Tensor(name)
	fm, ok := stFormat[t.Dtype]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %s has dtype %s (supported: F32, F16, BF16)", f.Path, name, t.Dtype)
	}
	rows, cols := 1, 1
	switch len(t.Shape) {
	case 1:
		cols = t.Shape[0]
	case 2:
		rows, cols = t.Shape[0], t.Shape[1]
	default:
		return nil, fmt.Errorf("%s: tensor %s has shape %v, want 1 or 2 dimensions", f.Path, name, t.Shape)
	}
	w, err := kernels.WeightFromBytes(fm, rows, cols, t.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %s: %v", f.Path, name, err)
	}
	return viewSource(name, string(t.Dtype), w), nil
}

func (s *stSource) close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// --- GGUF ---

type ggufSource struct{ g *gguf.File }

var ggufFormat = map[gguf.Type]kernels.Format{
	gguf.TypeF32: kernels.F32, gguf.TypeF16: kernels.F16, gguf.TypeBF16: kernels.BF16,
	gguf.TypeQ8_0: kernels.Q8_0, gguf.TypeQ4_0: kernels.Q4_0,
}

func (s *ggufSource) has(hf string) bool { _, ok := s.g.Tensor(GGUFName(hf)); return ok }

func (s *ggufSource) names() []string {
	names := s.g.TensorNames()
	for i, n := range names {
		names[i] = HFName(n)
	}
	return names
}

func (s *ggufSource) hasRaw(name string) bool { _, ok := s.g.Tensor(name); return ok }

func (s *ggufSource) get(hf string) (*source, error) {
	name := GGUFName(hf)
	ti, ok := s.g.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("tensor %s (%s) is missing from the GGUF file", name, hf)
	}
	cols, rows := int(ti.Dims[0]), 1
	if len(ti.Dims) == 2 {
		rows = int(ti.Dims[1])
	} else if len(ti.Dims) != 1 {
		return nil, fmt.Errorf("tensor %s has %d dimensions", name, len(ti.Dims))
	}
	fm, viewable := ggufFormat[ti.Type]
	if !viewable && !dequantizable[ti.Type] {
		return nil, fmt.Errorf("tensor %s has type %s, which lowrank cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)", name, ti.Type)
	}
	raw, err := s.g.ReadTensor(ti)
	if err != nil {
		return nil, err
	}
	if viewable {
		w, err := kernels.WeightFromBytes(fm, rows, cols, raw)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %v", name, err)
		}
		return viewSource(name, ti.Type.String(), w), nil
	}
	rowBytes := len(raw) / rows
	return &source{name: name, dtype: ti.Type.String(), rows: rows, cols: cols, decode: func(dst []float32, i int) {
		// The size was checked when the tensor was read; a failure here is a bug.
		if err := gguf.Dequantize(ti.Type, dst[:cols], raw[i*rowBytes:(i+1)*rowBytes]); err != nil {
			panic(err)
		}
	}}, nil
}

// dequantizable are GGUF types decoded at load (no in-memory kernel).
var dequantizable = map[gguf.Type]bool{gguf.TypeQ4_K: true, gguf.TypeQ5_K: true, gguf.TypeQ6_K: true, gguf.TypeQ5_0: true, gguf.TypeQ5_1: true}

func (s *ggufSource) close() error { return s.g.Close() }
