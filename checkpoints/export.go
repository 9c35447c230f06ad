package checkpoints

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/checkpoints/safetensors"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/x448/float16"
)

// GGUFType is an output type of a GGUF export (--quant): llama.cpp's file
// type number and the ggml type of its ordinary weights.
type GGUFType struct {
	Name  string
	FType uint32 // general.file_type (llama_ftype)
	Base  gguf.Type
	// KMix: the K-quant mixes that give some attention-value and FFN-down
	// layers more bits (Q4_K_M, Q5_K_M).
	KMix bool
}

// GGUFTypes are the output types, by --quant name.
var GGUFTypes = map[string]GGUFType{
	"f32":    {"f32", 0, gguf.TypeF32, false},
	"f16":    {"f16", 1, gguf.TypeF16, false},
	"bf16":   {"bf16", 32, gguf.TypeBF16, false},
	"q8_0":   {"q8_0", 7, gguf.TypeQ8_0, false},
	"q4_0":   {"q4_0", 2, gguf.TypeQ4_0, false},
	"q5_0":   {"q5_0", 8, gguf.TypeQ5_0, false},
	"q5_1":   {"q5_1", 9, gguf.TypeQ5_1, false},
	"q4_k_m": {"q4_k_m", 15, gguf.TypeQ4_K, true},
	"q5_k_m": {"q5_k_m", 17, gguf.TypeQ5_K, true},
	"q6_k":   {"q6_k", 18, gguf.TypeQ6_K, false},
}

// GGUFTypeNames lists the output types.
func GGUFTypeNames() string {
	names := make([]string, 0, len(GGUFTypes))
	for n := range GGUFTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ParseGGUFType returns the output type named s, or an error naming the list
// (nf4, which GGUF has no type for, included).
func ParseGGUFType(s string) (GGUFType, error) {
	t, ok := GGUFTypes[strings.ToLower(s)]
	if !ok {
		return GGUFType{}, fmt.Errorf("--quant %q: a GGUF export is one of %s", s, GGUFTypeNames())
	}
	return t, nil
}

func quantized(t gguf.Type) bool {
	return t != gguf.TypeF32 && t != gguf.TypeF16 && t != gguf.TypeBF16
}

func blockOf(t gguf.Type) uint64 {
	v, _, _ := t.BlockSize()
	return uint64(v)
}

// typeChooser picks each tensor's type as llama.cpp's llama-quantize does
// for the same file type: norms and biases F32; the output projection (or
// the embedding, when tied) Q6_K unless the type is Q8_0, or Q8_0 where its
// rows are not whole blocks; with the K_M mixes, Q6_K for the attention
// value and FFN down projections of the first and last eighth of the layers
// and every third one between; a type whose block does not divide a row
// falls back (Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0, then F16).
type typeChooser struct {
	t            GGUFType
	layers, v, d int // layer count; attention-value and FFN-down tensors seen
	tied         bool
}

func useMoreBits(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }

func (c *typeChooser) choose(name string, rows, cols int) gguf.Type {
	if rows == 1 || !strings.HasSuffix(name, ".weight") || strings.HasSuffix(name, "_norm.weight") {
		return gguf.TypeF32
	}
	t := c.t.Base
	if !quantized(t) {
		return t
	}
	switch {
	case name == "output.weight" || c.tied && name == "token_embd.weight":
		if uint64(cols)%blockOf(t) != 0 {
			t = gguf.TypeQ8_0
		} else if t != gguf.TypeQ8_0 {
			t = gguf.TypeQ6_K
		}
	case strings.HasSuffix(name, ".attn_v.weight"):
		if c.t.KMix && useMoreBits(c.v, c.layers) {
			t = gguf.TypeQ6_K
		}
		c.v++
	case strings.HasSuffix(name, ".ffn_down.weight"):
		if c.t.KMix && useMoreBits(c.d, c.layers) {
			t = gguf.TypeQ6_K
		}
		c.d++
	}
	if uint64(cols)%blockOf(t) != 0 {
		switch t {
		case gguf.TypeQ4_K:
			t = gguf.TypeQ5_0
		case gguf.TypeQ5_K:
			t = gguf.TypeQ5_1
		case gguf.TypeQ6_K:
			t = gguf.TypeQ8_0
		}
		if uint64(cols)%blockOf(t) != 0 {
			t = gguf.TypeF16
		}
	}
	return t
}

// encodeRows writes rows×cols values, row(i, dst) giving row i, as type t.
func encodeRows(w io.Writer, t gguf.Type, rows, cols int, row func(i int, dst []float32)) error {
	var f kernels.Format
	switch t {
	case gguf.TypeF32:
		return writeFloatRows(w, safetensors.F32, rows, cols, row)
	case gguf.TypeF16:
		return writeFloatRows(w, safetensors.F16, rows, cols, row)
	case gguf.TypeBF16:
		return writeFloatRows(w, safetensors.BF16, rows, cols, row)
	case gguf.TypeQ8_0:
		f = kernels.Q8_0
	case gguf.TypeQ4_0:
		f = kernels.Q4_0
	default:
		_, bb, _ := t.BlockSize()
		return writeRows(w, rows, cols, cols/int(blockOf(t))*bb, row, func(dst []byte, x []float32) error { return gguf.Quantize(t, dst, x) })
	}
	q := kernels.QuantizeRows(f, rows, cols, row) // the quantized tensor, not an fp32 copy
	raw, err := q.RawBytes()
	if err != nil {
		return err
	}
	_, err = w.Write(raw)
	return err
}

// writeRows writes rows rows of cols values, row(i, x) giving row i in fp32
// and enc encoding it into size bytes, through one buffer of each.
func writeRows(w io.Writer, rows, cols, size int, row func(i int, x []float32), enc func(dst []byte, x []float32) error) error {
	x, buf := make([]float32, cols), make([]byte, size)
	for i := 0; i < rows; i++ {
		row(i, x)
		if err := enc(buf, x); err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// writeFloatRows writes rows as little-endian floats of type dt (F32, F16
// or BF16, rounded to nearest even).
func writeFloatRows(w io.Writer, dt safetensors.Dtype, rows, cols int, row func(i int, x []float32)) error {
	return writeRows(w, rows, cols, cols*dt.Size(), row, func(dst []byte, x []float32) error {
		switch dt {
		case safetensors.F32:
			for i, v := range x {
				binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
			}
		case safetensors.BF16:
			for i, v := range x {
				binary.LittleEndian.PutUint16(dst[2*i:], kernels.F32ToBF16(v))
			}
		case safetensors.F16:
			for i, v := range x {
				binary.LittleEndian.PutUint16(dst[2*i:], float16.Fromfloat32(v).Bits())
			}
		default:
			return fmt.Errorf("%s is not a float type", dt)
		}
		return nil
	})
}

// merger folds an adapter's layers into the base's weights, one tensor at
// a time, in fp32.
type merger struct {
	adapted map[*model.Frozen]*lora.Linear
	merged  int
}

func newMerger(ad *lora.Adapter) *merger {
	mg := &merger{adapted: map[*model.Frozen]*lora.Linear{}}
	if ad != nil {
		for _, l := range ad.Layers {
			mg.adapted[l.Base] = l
		}
	}
	return mg
}

// rows returns a function giving entry e's rows in fp32, in Hugging Face's
// row order, with the adapter's delta added to an adapted projection's
// weight. Only an adapted weight is decoded whole (to add s·B·A); the
// others are decoded a row at a time as asked, so an export holds no fp32
// copy of the embedding or the head.
func (mg *merger) rows(e model.Entry) func(i int, dst []float32) {
	switch {
	case e.W == nil:
		return func(_ int, dst []float32) { copy(dst, e.Vec) }
	case e.Layer != nil && mg.adapted[e.Layer] != nil:
		w := e.W.Dequantize()
		mg.adapted[e.Layer].MergeInto(w)
		mg.merged++
		return func(i int, dst []float32) { copy(dst, w.Row(i)) }
	}
	return func(i int, dst []float32) { e.W.DecodeRow(dst, i) }
}

// baseFrom says what a merge starts from.
func baseFrom(m *model.Model) string {
	for _, s := range m.Stored {
		if s.From != "F32" && s.From != "F16" && s.From != "BF16" {
			return "dequantized " + s.From + " weights (the file holds no unquantized copy)"
		}
	}
	return "original weights"
}

// ExportReport says what an export wrote.
type ExportReport struct {
	Path     string         `json:"path"`
	Format   string         `json:"format"`
	Quant    string         `json:"quant,omitempty"`
	Merged   int            `json:"merged_layers"`
	BaseFrom string         `json:"base_from,omitempty"`
	Tensors  int            `json:"tensors"`
	Bytes    int64          `json:"bytes"`
	Types    map[string]int `json:"types,omitempty"` // tensors by the type written
	// Changed lists the tensors written at another type than the file's
	// own, and why ("output.weight: Q6_K (output projection)").
	Changed []string `json:"changed_types,omitempty"`
}

// GGUFOptions say how WriteGGUF writes a model.
type GGUFOptions struct {
	Type GGUFType
	Name string // general.name
	// Tokenizer gives the vocabulary metadata, unless TokenizerKV (the
	// base's own GGUF metadata, copied as it is) is set.
	Tokenizer   *tokenizer.Tokenizer
	TokenizerKV []gguf.KV
	// ChatTemplate, when set, replaces the vocabulary's chat template (the
	// one the adapter was trained with).
	ChatTemplate string
}

// WriteGGUF writes m with ad folded in (nil: the base as it is) as a GGUF v3
// file that llama.cpp loads: the architecture's metadata and the
// vocabulary as llama.cpp's converter writes them, each tensor merged in
// fp32, permuted to llama.cpp's Q/K layout where the architecture has one,
// and quantized as llama-quantize would for o.Type, one tensor at a time.
func WriteGGUF(path string, m *model.Model, ad *lora.Adapter, o GGUFOptions) (*ExportReport, error) {
	c := &m.Config
	w := gguf.NewWriter()
	arch, err := c.GGUFMetadata()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	w.SetKV(arch[0]) // general.architecture first, as llama.cpp writes it
	if o.Name != "" {
		w.Set("general.name", o.Name)
	}
	for _, kv := range arch[1:] {
		w.SetKV(kv)
	}
	w.Set("general.file_type", o.Type.FType)
	if quantized(o.Type.Base) {
		w.Set("general.quantization_version", uint32(2))
	}
	vocab := o.TokenizerKV
	if vocab == nil {
		if o.Tokenizer == nil {
			return nil, fmt.Errorf("export: no tokenizer for the GGUF vocabulary")
		}
		if vocab, err = o.Tokenizer.GGUFMetadata(); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	for _, kv := range vocab {
		w.SetKV(kv)
	}
	if c.Pad >= 0 {
		w.Set("tokenizer.ggml.padding_token_id", uint32(c.Pad))
	}
	if o.ChatTemplate != "" {
		w.Set("tokenizer.chat_template", o.ChatTemplate)
	}
	rep := &ExportReport{Path: path, Format: "gguf", Quant: o.Type.Name, BaseFrom: baseFrom(m), Types: map[string]int{}}
	if factors, err := c.RopeFreqFactors(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	} else if factors != nil {
		w.AddTensor("rope_freqs.weight", gguf.TypeF32, []uint64{uint64(len(factors))}, func(out io.Writer) error {
			return encodeRows(out, gguf.TypeF32, 1, len(factors), func(_ int, dst []float32) { copy(dst, factors) })
		})
		rep.Types["F32"]++
	}
	mg := newMerger(ad)
	ch := &typeChooser{t: o.Type, layers: c.Layers, tied: c.TieEmbeddings}
	for _, e := range m.Entries() {
		e := e
		t := ch.choose(e.GGUF, e.Rows, e.Cols)
		rep.Types[t.String()]++
		if t != o.Type.Base && e.Rows > 1 {
			rep.Changed = append(rep.Changed, fmt.Sprintf("%s: %s", e.GGUF, t))
		}
		dims := []uint64{uint64(e.Cols), uint64(e.Rows)}
		if e.Rows == 1 {
			dims = dims[:1]
		}
		var from []int // GGUF row (or, for a bias, element) i holds HF's from[i]
		if e.Heads > 0 && c.PermutesQK() {
			n := e.Rows
			if e.Rows == 1 {
				n = e.Cols
			}
			from = inversePerm(c.GGUFRow(e.Heads), n)
		}
		err := w.AddTensor(e.GGUF, t, dims, func(out io.Writer) error {
			row := mg.rows(e)
			return encodeRows(out, t, e.Rows, e.Cols, func(i int, dst []float32) {
				switch {
				case from != nil && e.Rows == 1: // a bias: its elements permuted
					v := make([]float32, len(dst))
					row(0, v)
					for j := range dst {
						dst[j] = v[from[j]]
					}
				case from != nil:
					row(from[i], dst)
				default:
					row(i, dst)
				}
			})
		})
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	if err := writeFile(w, path, rep); err != nil {
		return nil, err
	}
	rep.Merged = mg.merged
	return rep, nil
}

// inversePerm returns, for each GGUF row, the Hugging Face row it holds.
func inversePerm(perm func(int) int, n int) []int {
	inv := make([]int, n)
	for i := 0; i < n; i++ {
		inv[perm(i)] = i
	}
	return inv
}

// WriteGGUFLoRA writes ad as a llama.cpp LoRA adapter (GGUF: general.type
// "adapter", adapter.type "lora", general.architecture the base's) for the
// GGUF of m's base: for each adapted projection blk.N.NAME.weight.lora_a
// (ne [in, r]) and .lora_b (ne [r, out]), in F32, B's rows in the base GGUF's
// Q/K layout. llama.cpp scales a module by alpha / (its rank, read from
// lora_b): where every module's scale is α/r for one α, that α is written;
// otherwise (rsLoRA, per-module alpha) each module's scale is folded into B
// and adapter.lora.alpha is 0, which llama.cpp reads as "no scaling".
// What llama.cpp cannot apply is refused with the reason: DoRA magnitudes
// and trained norms or biases (export a merged model instead).
func WriteGGUFLoRA(path string, m *model.Model, ad *lora.Adapter) (*ExportReport, error) {
	c := &m.Config
	if ad == nil || len(ad.Layers) == 0 {
		return nil, fmt.Errorf("export: a GGUF LoRA needs an adapter (--adapter)")
	}
	if ad.Config.DoRA {
		return nil, fmt.Errorf("export: a DoRA adapter has per-row magnitudes, which llama.cpp's LoRA format cannot hold: export a merged model (--format gguf) instead")
	}
	if len(ad.Extras) > 0 {
		names := make([]string, len(ad.Extras))
		for i, e := range ad.Extras {
			names[i] = e.Name
		}
		return nil, fmt.Errorf("export: the adapter also trains %s (modules_to_save), which a llama.cpp LoRA cannot carry: export a merged model (--format gguf) instead", strings.Join(names, ", "))
	}
	if _, err := c.GGUFMetadata(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	alpha := float32(ad.Layers[0].Alpha)
	fold := false
	for _, l := range ad.Layers {
		if float64(l.Alpha) != float64(alpha) || l.Scale != float32(l.Alpha/float64(l.Rank)) {
			fold = true
		}
	}
	w := gguf.NewWriter()
	w.Set("general.architecture", c.Arch)
	w.Set("general.type", "adapter")
	w.Set("adapter.type", "lora")
	if fold {
		alpha = 0
	}
	w.Set("adapter.lora.alpha", alpha)
	rep := &ExportReport{Path: path, Format: "gguf-lora", Types: map[string]int{}}
	for _, l := range ad.Layers {
		l := l
		name := model.GGUFName(l.Base.Name + ".weight")
		heads := 0
		switch {
		case strings.HasSuffix(l.Base.Name, "."+model.QProj):
			heads = c.Heads
		case strings.HasSuffix(l.Base.Name, "."+model.KProj):
			heads = c.KVHeads
		}
		var from []int
		if heads > 0 && c.PermutesQK() {
			from = inversePerm(c.GGUFRow(heads), l.B.Rows)
		}
		scale := float32(1)
		if fold {
			scale = l.Scale
		}
		if err := w.AddTensor(name+".lora_a", gguf.TypeF32, []uint64{uint64(l.A.Cols), uint64(l.A.Rows)}, func(out io.Writer) error {
			return encodeRows(out, gguf.TypeF32, l.A.Rows, l.A.Cols, func(i int, dst []float32) { copy(dst, l.A.Row(i)) })
		}); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if err := w.AddTensor(name+".lora_b", gguf.TypeF32, []uint64{uint64(l.B.Cols), uint64(l.B.Rows)}, func(out io.Writer) error {
			return encodeRows(out, gguf.TypeF32, l.B.Rows, l.B.Cols, func(i int, dst []float32) {
				if from != nil {
					i = from[i]
				}
				for j, v := range l.B.Row(i) {
					dst[j] = scale * v
				}
			})
		}); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		rep.Types["F32"] += 2
		rep.Merged++
	}
	if err := writeFile(w, path, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// writeFile writes the GGUF file and counts what it holds into rep.
func writeFile(w *gguf.Writer, path string, rep *ExportReport) error {
	for _, ti := range w.Tensors() {
		s, _ := ti.Size()
		rep.Bytes += int64(s)
	}
	rep.Tensors = len(w.Tensors())
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}
