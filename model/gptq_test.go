package model

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

// rawWeights is every block projection's decoded values, as bytes.
func rawWeights(m *Model) []byte {
	var b bytes.Buffer
	for l := range m.Blocks {
		for _, lin := range m.Blocks[l].Linears() {
			w := (*lin).Frozen().W
			dec := make([]float32, w.Cols)
			for i := 0; i < w.Rows; i++ {
				w.DecodeRow(dec, i)
				for _, v := range dec {
					b.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
				}
			}
		}
	}
	return b.Bytes()
}

// TestGPTQLoad: loading by GPTQ is deterministic for a seed, reports what it
// did, takes calibration text too, and refuses what it cannot do with a
// message that says why.
func TestGPTQLoad(t *testing.T) {
	dir := testassets.Path(t, "models/stories260K/hf")
	raw := rawWeights
	load := func(o LoadOptions) *Model {
		m, err := Load(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	samples := 512
	if testing.Short() {
		samples = 48 // sampling token by token is slow under emulation
	}
	a := load(LoadOptions{Quant: "nf4", GPTQ: &GPTQOptions{Samples: samples, Seed: 3}})
	b := load(LoadOptions{Quant: "nf4", GPTQ: &GPTQOptions{Samples: samples, Seed: 3}})
	c := load(LoadOptions{Quant: "nf4", GPTQ: &GPTQOptions{Samples: samples, Seed: 4}})
	plain := load(LoadOptions{Quant: "nf4"})
	if !bytes.Equal(raw(a), raw(b)) {
		t.Error("two GPTQ loads with the same seed differ")
	}
	if bytes.Equal(raw(a), raw(c)) || bytes.Equal(raw(a), raw(plain)) {
		t.Error("GPTQ with another seed, or no GPTQ, gave the same weights")
	}
	gptq := 0
	for _, s := range a.Stored {
		if strings.HasPrefix(s.Note, "GPTQ") {
			gptq++
			if s.As != "nf4" {
				t.Errorf("%s: GPTQ but stored as %s", s.Name, s.As)
			}
		}
	}
	if want := 7 * len(a.Blocks); gptq != want {
		t.Errorf("%d tensors noted as GPTQ, want the %d block projections", gptq, want)
	}
	if a.WeightBytes() != plain.WeightBytes() {
		t.Errorf("GPTQ weights take %d bytes, plain nf4 %d", a.WeightBytes(), plain.WeightBytes())
	}
	// Given calibration text (here 300 tokens of one id pattern) instead of samples.
	ids := make([]int32, 300)
	for i := range ids {
		ids[i] = int32(1 + i%200)
	}
	load(LoadOptions{Quant: "q4_0", GPTQ: &GPTQOptions{Tokens: ids, Window: 128}})

	for _, c := range []struct {
		path string
		opts LoadOptions
		want string
	}{
		{dir, LoadOptions{Quant: "q8_0", GPTQ: &GPTQOptions{Samples: 10}}, "q4_0 or nf4"},
		{dir, LoadOptions{GPTQ: &GPTQOptions{Samples: 10}}, "q4_0 or nf4"},
		{dir, LoadOptions{Quant: "nf4", GPTQ: &GPTQOptions{Tokens: []int32{5, 99999}}}, "outside the vocabulary"},
		{dir, LoadOptions{Quant: "nf4", GPTQ: &GPTQOptions{}}, "calibration tokens"},
		{testassets.Path(t, "models/rand-tiny64/rand-tiny64-Q4_0.gguf"), LoadOptions{Quant: "q4_0", GPTQ: &GPTQOptions{Samples: 10}}, "stored as Q4_0"},
	} {
		_, err := Load(c.path, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%s, quant %q, GPTQ %+v): error %v, want one mentioning %q", c.path, c.opts.Quant, *c.opts.GPTQ, err, c.want)
		}
	}
}
