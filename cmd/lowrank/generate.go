package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/lowrank/lowrank/autograd"
	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/kernels"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newGenerate() *cobra.Command {
	var (
		modelPath, prompt, quant string
		cacheDir                 string
		adapterDir               string
		maxTokens, topK, threads int
		gptqTokens, gptqTune     int
		temperature, topP        float64
		seed, gptqSeed           uint64
		asJSON                   bool
		chatFile, chatTemplate   string
		computeDType             string
	)
	c := &cobra.Command{
		Use:   "generate --model M [--prompt P | --chat CONV.json]",
		Short: "Generate text from a model",
		Long: `Generates text from a prompt (default: just the BOS token) with a KV cache.
--temperature 0 is greedy decoding. Only the generated text is printed.
--chat CONV.json renders a conversation (a JSON list of {role, content}) with the
model's chat template (or --chat-template, or the one the adapter was trained with)
and the assistant's header, and generates the reply: it stops at the template's
end-of-turn marker (not printed) or at EOS.
--quant nf4 double-quantizes the scales and --gptq-tokens/--gptq-tune/--gptq-seed
quantize by GPTQ, as training does: an adapter trained on such a base runs on the same
weights. With --adapter, the settings its lowrank.json records are used unless given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			// What the adapter's lowrank.json decides is said once the
			// command has worked: an error stays one line.
			var notes bytes.Buffer
			defer func() {
				if err == nil {
					io.Copy(cmd.ErrOrStderr(), &notes)
				}
			}()
			if modelPath == "" {
				return usageError{cmd: "generate", err: fmt.Errorf("--model is required")}
			}
			if chatFile != "" && cmd.Flags().Changed("prompt") {
				return usageError{cmd: "generate", err: fmt.Errorf("--prompt and --chat: give one (the conversation ends with the user's turn)")}
			}
			if err := useAdapterInfo(cmd, &notes, adapterDir, modelPath, map[string]string{"quant": "quant", "gptq_tokens": "gptq-tokens",
				"gptq_tune": "gptq-tune", "gptq_seed": "gptq-seed", "chat_template": "chat-template"}); err != nil {
				return err
			}
			switch {
			case !(temperature >= 0) || math.IsInf(temperature, 0):
				return usageError{cmd: "generate", err: fmt.Errorf("--temperature %g: want a finite number ≥ 0 (0: greedy)", temperature)}
			case !(topP >= 0 && topP <= 1):
				return usageError{cmd: "generate", err: fmt.Errorf("--top-p %g: want a number in [0, 1]", topP)}
			case maxTokens < 0 || topK < 0 || gptqTokens < 0 || gptqTune < 0:
				return usageError{cmd: "generate", err: fmt.Errorf("--max-tokens, --top-k, --gptq-tokens and --gptq-tune must not be negative")}
			}
			if gptqTokens > 0 && quant != "q4_0" && quant != "nf4" {
				return usageError{cmd: "generate", err: fmt.Errorf("--gptq-tokens needs --quant q4_0 or nf4")}
			}
			if gptqTune > 0 && gptqTokens == 0 {
				return usageError{cmd: "generate", err: fmt.Errorf("--gptq-tune needs --gptq-tokens")}
			}
			opts := model.BaseOptions(quant, gptqTokens, gptqTune, gptqSeed)
			opts.CacheDir = (&train.Config{CacheDir: cacheDir}).BaseCache()
			path, err := kernels.GeneratePath("", computeDType)
			if err != nil {
				return usageError{cmd: "generate", err: fmt.Errorf("--compute-dtype %s: %v", computeDType, strings.TrimPrefix(err.Error(), "kernels: "))}
			}
			pool := kernels.NewPoolOn(threads, path)
			tok, err := tokenizer.Load(modelPath)
			if err != nil {
				return err
			}
			if chatTemplate != "" {
				if err := tok.UseChatTemplate(chatTemplate); err != nil {
					return err
				}
			}
			m, err := model.Load(modelPath, opts)
			if err != nil {
				return err
			}
			defer m.Close()
			if computeDType == "int8" && !hasInt8Weights(m) {
				fmt.Fprintf(&notes, "note: --compute-dtype int8 computes with Q8_0, Q4_0 and NF4 weights; this base is held as %s, so its products stay f32 (--quant q8_0 holds it as Q8_0)\n", storedAs(m))
			}
			if adapterDir != "" {
				if _, err := checkpoints.LoadAdapter(adapterDir, m); err != nil {
					return err
				}
			}
			if tok.VocabSize() > m.Config.Vocab {
				return fmt.Errorf("%s: the tokenizer has %d tokens, the model's vocabulary %d: they do not belong together", modelPath, tok.VocabSize(), m.Config.Vocab)
			}
			var ids []int32
			stop := "" // the end-of-turn marker's text, with --chat
			if chatFile != "" {
				rendered, err := renderChatFile(tok, chatFile, true)
				if err != nil {
					return err
				}
				prompt = rendered
				ids = tok.Encode(rendered, false) // the template writes its own BOS
				if marker, _, eos, err := tok.TurnEnd(); err == nil && !eos {
					stop = marker
				}
			} else {
				ids = tok.Encode(prompt, true)
			}
			if len(ids) == 0 {
				ids = []int32{int32(m.Config.BOS)}
			}
			out := cmd.OutOrStdout()
			var gen []int32
			stream := tok.NewStreamDecoder(ids, true)
			var text strings.Builder
			printed := 0 // bytes of text written: the rest may be the start of the marker
			start := time.Now()
			emit := func(id int32) bool {
				if tok.EOS >= 0 && id == tok.EOS {
					return false // the tokenizer's EOS, where the config names another
				}
				gen = append(gen, id)
				text.WriteString(stream.Add(id))
				t := text.String()
				if stop != "" {
					if i := strings.Index(t, stop); i >= 0 {
						if !asJSON {
							io.WriteString(out, t[printed:i])
						}
						text.Reset()
						text.WriteString(t[:i])
						return false
					}
				}
				keep := len(t)
				for k := min(len(stop)-1, len(t)-printed); k > 0; k-- { // hold back a partial marker
					if strings.HasSuffix(t, stop[:k]) {
						keep = len(t) - k
						break
					}
				}
				if !asJSON {
					io.WriteString(out, t[printed:keep])
				}
				printed = keep
				return true
			}
			tp := autograd.NewTape(pool)
			if _, err := m.Generate(tp, ids, maxTokens, model.NewSampler(temperature, topK, topP, seed), emit); err != nil {
				return err
			}
			if t := text.String(); !asJSON && printed < len(t) {
				io.WriteString(out, t[printed:]) // ended on a partial marker: it was text
			}
			elapsed := time.Since(start).Seconds()
			if asJSON {
				return writeJSON(out, map[string]any{
					"prompt": prompt, "prompt_tokens": len(ids), "text": text.String(), "tokens": gen,
					"generated_tokens": len(gen), "tokens_per_second": float64(len(gen)) / elapsed,
				})
			}
			if f, ok := out.(*os.File); ok && isTerminal(f) {
				fmt.Fprintln(out)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&modelPath, "model", "", "model: Hugging Face directory, .gguf file, or hub name ORG/NAME[@REV][:TAG]")
	f.StringVar(&prompt, "prompt", "", "prompt text (default: start from BOS)")
	f.StringVar(&chatFile, "chat", "", "a conversation to reply to: JSON list of {role, content} (or {messages, tools}); stops at the end of the turn")
	f.StringVar(&chatTemplate, "chat-template", "", "with --chat: chatml, llama3, simple or a template file (default: the adapter's, else the model's)")
	f.StringVar(&adapterDir, "adapter", "", "PEFT adapter directory to apply")
	f.IntVar(&maxTokens, "max-tokens", 256, "tokens to generate at most")
	f.Float64Var(&temperature, "temperature", 0.8, "sampling temperature; 0 is greedy")
	f.IntVar(&topK, "top-k", 0, "sample among the k most likely tokens (0: all)")
	f.Float64Var(&topP, "top-p", 0.95, "nucleus sampling mass (1: off)")
	f.Uint64Var(&seed, "seed", 0, "random seed")
	f.StringVar(&quant, "quant", "", "hold weights as f32|f16|bf16|q8_0|q4_0|nf4 (default: as the adapter's lowrank.json says, else as stored)")
	f.IntVar(&gptqTokens, "gptq-tokens", 0, "with --quant q4_0/nf4: quantize by GPTQ over this many tokens sampled from the model (0: off)")
	f.IntVar(&gptqTune, "gptq-tune", 0, "with --gptq-tokens: passes tuning the block scales by distillation to the 8-bit model (0: off)")
	f.StringVar(&cacheDir, "cache-dir", "auto", "where GPTQ bases are kept between runs: auto ($LOWRANK_CACHE or ~/.cache/lowrank), off, or a directory")
	f.Uint64Var(&gptqSeed, "gptq-seed", 0, "seed of the GPTQ calibration samples (a training run's --seed)")
	f.IntVar(&threads, "threads", 0, "worker threads (0: every CPU this process may use)")
	f.StringVar(&computeDType, "compute-dtype", "auto", "the frozen base's products: f32, bf16, int8 (a Q8_0/Q4_0/NF4 base's forward products in int8 as llama.cpp computes them) or auto (int8 for each new token where the CPU has int8 dot instructions, and for the prompt too where the int8 path has a GEMM timed faster (AVX512_VNNI, AVX-VNNI, AVX2; not yet arm64's SDOT GEMM); else the prompt as train's auto)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// storedAs lists the formats m's matrices are held in: "f32" or "f16, f32".
func storedAs(m *model.Model) string {
	seen := map[string]bool{}
	var as []string
	for _, st := range m.Stored {
		if !seen[st.As] {
			seen[st.As] = true
			as = append(as, st.As)
		}
	}
	sort.Strings(as)
	return strings.Join(as, ", ")
}

// hasInt8Weights reports whether any of m's matrices is held in a format
// int8 computes with.
func hasInt8Weights(m *model.Model) bool {
	for _, st := range m.Stored {
		if st.Format == kernels.Q8_0 || st.Format == kernels.Q4_0 || st.Format == kernels.NF4 {
			return true
		}
	}
	return false
}
