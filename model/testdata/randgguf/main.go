// Command randgguf writes a model of a preset's shape (model.Presets) with
// seeded random weights as a GGUF file that llama.cpp loads, its vocabulary
// copied from a vocab-only GGUF (llama.cpp's ggml-vocab-*.gguf): the file
// both lowrank and llama.cpp generate from in the side-by-side generation
// benchmark (model/testdata/generate_side_by_side.sh).
//
//	go run ./model/testdata/randgguf -preset smollm2-135m -type q8_0 \
//	    -vocab ../shared/assets/tokenizers/llama.cpp-vocab/ggml-vocab-starcoder.gguf -o /tmp/smollm2.gguf
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
)

func main() {
	preset := flag.String("preset", "smollm2-135m", "model shape (model.Presets)")
	typ := flag.String("type", "q8_0", "GGUF tensor type")
	vocab := flag.String("vocab", "", "vocab-only GGUF whose tokenizer.* metadata is copied (its size must be the preset's vocabulary)")
	out := flag.String("o", "", "output file")
	seed := flag.Uint64("seed", 1, "weight seed")
	flag.Parse()
	if err := run(*preset, *typ, *vocab, *out, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "randgguf:", err)
		os.Exit(1)
	}
}

func run(preset, typ, vocab, out string, seed uint64) error {
	cfg, ok := model.Presets[preset]
	if !ok {
		return fmt.Errorf("no preset %q", preset)
	}
	if vocab == "" || out == "" {
		return fmt.Errorf("-vocab and -o are required")
	}
	t, err := checkpoints.ParseGGUFType(typ)
	if err != nil {
		return err
	}
	vf, err := gguf.Open(vocab)
	if err != nil {
		return err
	}
	defer vf.Close()
	var kvs []gguf.KV
	for _, kv := range vf.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			kvs = append(kvs, kv)
		}
		if kv.Key == "tokenizer.ggml.tokens" {
			if n := len(kv.Value.([]string)); n != cfg.Vocab {
				return fmt.Errorf("%s has %d tokens, %s %d", vocab, n, preset, cfg.Vocab)
			}
		}
	}
	m, err := model.NewRandom(cfg, kernels.F32, seed)
	if err != nil {
		return err
	}
	rep, err := checkpoints.WriteGGUF(out, m, nil, checkpoints.GGUFOptions{Type: t, Name: preset + "-random", TokenizerKV: kvs})
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d tensors, %d bytes\n", out, rep.Tensors, rep.Bytes)
	return nil
}
