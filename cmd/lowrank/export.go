package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/checkpoints/gguf"
	"github.com/lowrank/lowrank/internal/atomicfile"
	"github.com/lowrank/lowrank/internal/hfcache"
	"github.com/lowrank/lowrank/lora"
	"github.com/lowrank/lowrank/model"
	"github.com/lowrank/lowrank/tokenizer"
	"github.com/lowrank/lowrank/train"
	"github.com/spf13/cobra"
)

func newExport() *cobra.Command {
	var modelPath, adapterDir, format, out, quant, dtype, mergeBase, verify string
	var asJSON, ollama, overwrite bool
	c := &cobra.Command{
		Use:   "export --model M [--adapter A] --format peft|safetensors|gguf|gguf-lora --out PATH [--quant T]",
		Short: "Write a merged model or an adapter for llama.cpp, Ollama, transformers or PEFT",
		Long: `Writes what an inference server loads:
  gguf        a merged GGUF v3 file for llama.cpp and Ollama (without --adapter: the base
              converted). --quant f32|f16|bf16|q8_0|q4_0|q5_0|q5_1|q4_k_m|q5_k_m|q6_k, each
              tensor's type chosen as llama-quantize chooses it (the list of tensors written at
              another type is printed). The vocabulary is the base GGUF's, or written from the
              tokenizer as llama.cpp's converter writes it; the chat template the adapter was
              trained with (lowrank.json) goes in.
  gguf-lora   a llama.cpp LoRA adapter, to load beside the base GGUF (llama.cpp --lora);
              --ollama also writes a Modelfile (FROM the base GGUF, ADAPTER the file).
  safetensors a merged Hugging Face folder (= merge), --dtype f16|bf16|f32.
  peft        the adapter as PEFT writes it.
Merges are computed in fp32 from the base's original weights; --merge-base trained merges
onto the base as training held it (quantized, as lowrank.json records), which is what a
QLoRA adapter has actually seen. An existing --out is refused before anything is loaded;
--overwrite replaces it, once the new export is complete, if it is an export of the same
kind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || out == "" || format == "" {
				return usageError{cmd: "export", err: fmt.Errorf("--model, --format and --out are required")}
			}
			var gt checkpoints.GGUFType
			switch format {
			case "gguf":
				var err error
				if gt, err = checkpoints.ParseGGUFType(quant); err != nil {
					return usageError{cmd: "export", err: err}
				}
			case "gguf-lora", "peft":
				if adapterDir == "" {
					return usageError{cmd: "export", err: fmt.Errorf("--format %s needs --adapter", format)}
				}
			case "safetensors":
			default:
				return usageError{cmd: "export", err: fmt.Errorf("--format %q: want peft, safetensors, gguf or gguf-lora", format)}
			}
			if ollama && format != "gguf-lora" && format != "gguf" {
				return usageError{cmd: "export", err: fmt.Errorf("--ollama goes with --format gguf or gguf-lora")}
			}
			if mergeBase != "original" && mergeBase != "trained" {
				return usageError{cmd: "export", err: fmt.Errorf("--merge-base %q: want original or trained", mergeBase)}
			}
			if err := checkOut(cmd.ErrOrStderr(), "export", format, out, overwrite); err != nil {
				return err
			}
			local, err := hfcache.Resolve(modelPath)
			if err != nil {
				return fmt.Errorf("model %w", err)
			}
			var info *checkpoints.AdapterInfo
			if adapterDir != "" {
				if info, err = checkpoints.ReadAdapterInfo(adapterDir); err != nil {
					return err
				}
			}
			opts := model.LoadOptions{} // the stored weights: the original ones
			baseFrom := ""
			if mergeBase == "trained" {
				if info == nil {
					return fmt.Errorf("--merge-base trained: %s has no lowrank.json saying how its base was held", adapterDir)
				}
				opts = model.BaseOptions(info.Quant, 0, 0, 0)
				if g := info.GPTQ; g != nil {
					opts = model.BaseOptions(info.Quant, g.Tokens, g.Tune, g.Seed)
				}
				opts.CacheDir = defaultBaseCache()
				baseFrom = "the base as training held it (" + info.Quant + ")"
			}
			m, err := model.Load(modelPath, opts)
			if err != nil {
				return err
			}
			defer m.Close()
			var ad *lora.Adapter
			if adapterDir != "" {
				if ad, err = checkpoints.LoadAdapter(adapterDir, m); err != nil {
					return err
				}
			}
			var rep *checkpoints.ExportReport
			switch format {
			case "peft":
				err = checkpoints.SavePEFTExport(out, ad, modelPath, info)
				rep = &checkpoints.ExportReport{Path: out, Format: "peft", Merged: len(ad.Layers), Tensors: len(ad.Params())}
			case "safetensors":
				src := local
				if st, err := os.Stat(local); err == nil && !st.IsDir() {
					src = "" // GGUF: config from metadata
				}
				mo := checkpoints.MergeOptions{Dtype: dtype, Src: src}
				if src == "" {
					if mo.Tokenizer, err = tokenizer.Load(local); err != nil {
						return err
					}
				}
				if info != nil {
					mo.ChatTemplate = info.ChatTemplate
				}
				var mr *checkpoints.MergeReport
				if mr, err = checkpoints.WriteMergedWith(out, m, ad, mo); err == nil {
					rep = &checkpoints.ExportReport{Path: out, Format: "safetensors", Quant: mr.Dtype, Merged: mr.Merged, BaseFrom: mr.BaseFrom, Tensors: mr.Tensors, Bytes: mr.Bytes}
				}
			case "gguf":
				o := checkpoints.GGUFOptions{Type: gt, Name: modelName(modelPath)}
				if err = vocabFor(&o, local); err != nil {
					return err
				}
				if info != nil && info.ChatTemplate != "" {
					o.ChatTemplate = info.ChatTemplate
				}
				rep, err = checkpoints.WriteGGUF(out, m, ad, o)
			case "gguf-lora":
				rep, err = checkpoints.WriteGGUFLoRA(out, m, ad)
			}
			if err != nil {
				return err
			}
			if baseFrom != "" {
				rep.BaseFrom = baseFrom
			}
			if ollama {
				var stops []string
				if tok, err := tokenizer.Load(local); err == nil {
					for _, id := range m.Config.EOS {
						stops = append(stops, tok.Piece(int32(id)))
					}
				}
				mf, err := writeModelfile(out, local, format, stops)
				if err != nil {
					return err
				}
				defer fmt.Fprintf(cmd.OutOrStdout(), "Ollama: %s (ollama create NAME -f %s)\n", mf, mf)
			}
			var vr *train.VerifyReport
			if verify != "" {
				if format == "gguf-lora" {
					return fmt.Errorf("--verify reads back merged models and PEFT adapters; for a GGUF LoRA, verify the merged GGUF of the same adapter")
				}
				c := train.Defaults()
				if info != nil {
					c.MaxSeqLen = info.MaxSeqLen
					if info.ChatTemplate != "" {
						c.ChatTemplate = info.ChatTemplate
					}
				}
				if vr, err = train.VerifyExport(modelPath, adapterDir, out, format, verify, c); err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"export": rep, "verify": vr})
			}
			w := cmd.OutOrStdout()
			defer printVerify(w, vr)
			fmt.Fprintf(w, "wrote %s (%s", rep.Path, rep.Format)
			if rep.Quant != "" {
				fmt.Fprintf(w, ", %s", rep.Quant)
			}
			fmt.Fprintf(w, "): %d tensors, %.1f MiB", rep.Tensors, float64(rep.Bytes)/(1<<20))
			if ad != nil {
				fmt.Fprintf(w, "; %d adapted layers", rep.Merged)
			}
			if rep.BaseFrom != "" && ad != nil && format != "gguf-lora" && format != "peft" {
				fmt.Fprintf(w, " merged onto %s", rep.BaseFrom)
			}
			fmt.Fprintln(w)
			if len(rep.Changed) > 0 {
				fmt.Fprintf(w, "tensors at another type than %s: %s\n", rep.Quant, strings.Join(rep.Changed, ", "))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&modelPath, "model", "", "base model: Hugging Face directory, .gguf file, or hub name ORG/NAME[@REV][:TAG]")
	f.StringVar(&adapterDir, "adapter", "", "PEFT adapter directory (a run's adapter/, best/ or a checkpoint)")
	f.StringVar(&format, "format", "", "peft, safetensors, gguf or gguf-lora")
	f.StringVar(&out, "out", "", "output file (gguf, gguf-lora) or folder (safetensors, peft)")
	f.StringVar(&quant, "quant", "f16", "gguf: "+checkpoints.GGUFTypeNames())
	f.StringVar(&dtype, "dtype", "f16", "safetensors: f16, bf16 or f32")
	f.StringVar(&mergeBase, "merge-base", "original", "merge onto the base's original weights, or onto the base as training held it (trained)")
	f.BoolVar(&ollama, "ollama", false, "also write an Ollama Modelfile beside --out")
	f.StringVar(&verify, "verify", "", "dataset: print the loss of the base, base + adapter, the merge in memory and the written file read back, and the largest weight difference")
	f.BoolVar(&overwrite, "overwrite", false, "replace an existing --out (an earlier export of the same kind)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}

func printVerify(w io.Writer, vr *train.VerifyReport) {
	if vr == nil {
		return
	}
	fmt.Fprintf(w, "verify (%d supervised tokens):\n", vr.Tokens)
	for _, r := range vr.Rows {
		fmt.Fprintf(w, "  %-28s loss %.5f  perplexity %.4f\n", r.What, r.Loss, r.Perplexity)
	}
	if vr.MaxDiffIn == "" {
		fmt.Fprintln(w, "  largest weight difference, merge in memory vs written: 0 (the same values)")
	} else {
		fmt.Fprintf(w, "  largest weight difference, merge in memory vs written: %.3g (%.3g of that tensor's largest value) in %s\n", vr.MaxDiff, vr.MaxDiffRel, vr.MaxDiffIn)
	}
}

// checkOut refuses an --out that cannot be written before anything is
// loaded: a folder where a file goes, a file where a folder goes, a folder
// whose parent does not exist or cannot be written, and anything that exists
// (an empty folder aside) unless overwrite, and then only an earlier export
// of the same kind: a GGUF file for a GGUF, a folder for a folder, whose
// files the writer checks in turn. Then it removes what a killed export to
// out left beside it (temporary files, saying so on w).
func checkOut(w io.Writer, cmd, format, out string, overwrite bool) error {
	if err := checkOutKind(cmd, format, out, overwrite); err != nil {
		return err
	}
	removed, err := atomicfile.RemoveTempsOf(out)
	for _, p := range removed {
		fmt.Fprintf(w, "%s: removed %s, left by an interrupted export\n", cmd, p)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}

func checkOutKind(cmd, format, out string, overwrite bool) error {
	wantFile := format == "gguf" || format == "gguf-lora"
	if wantFile && (strings.HasSuffix(out, "/") || filepath.Ext(out) != ".gguf") {
		return usageError{cmd: cmd, err: fmt.Errorf("--out %s: a %s export is one file named *.gguf", out, format)}
	}
	parent := filepath.Dir(filepath.Clean(out))
	if _, err := os.Stat(parent); err != nil {
		return fmt.Errorf("%s: --out %s: its folder %s does not exist", cmd, out, parent)
	}
	probe, err := os.CreateTemp(parent, ".lowrank-probe-*")
	if err != nil {
		return fmt.Errorf("%s: --out %s: cannot write in %s: %v", cmd, out, parent, errors.Unwrap(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", cmd, err)
	case wantFile && st.IsDir():
		return fmt.Errorf("%s: --out %s is a folder; a %s export is a file", cmd, out, format)
	case !wantFile && !st.IsDir():
		return fmt.Errorf("%s: --out %s is a file; a %s export is a folder", cmd, out, format)
	}
	if !wantFile {
		if entries, err := os.ReadDir(out); err == nil && len(entries) == 0 {
			return nil // an empty folder made for the export
		}
	}
	if !overwrite {
		return fmt.Errorf("%s: --out %s exists: not replaced (--overwrite replaces it)", cmd, out)
	}
	if wantFile {
		g, err := gguf.Open(out)
		if err != nil {
			return fmt.Errorf("%s: --out %s exists and is not a GGUF file: not replaced, even with --overwrite", cmd, out)
		}
		g.Close()
	}
	return nil
}

// vocabFor gives a GGUF export its vocabulary: a GGUF base's own metadata
// as it is, else the tokenizer's.
func vocabFor(o *checkpoints.GGUFOptions, local string) error {
	if st, err := os.Stat(local); err == nil && !st.IsDir() {
		g, err := gguf.Open(local)
		if err != nil {
			return err
		}
		defer g.Close()
		for _, kv := range g.KV {
			if strings.HasPrefix(kv.Key, "tokenizer.") {
				o.TokenizerKV = append(o.TokenizerKV, kv)
			}
		}
		if len(o.TokenizerKV) > 0 {
			return nil
		}
	}
	tok, err := tokenizer.Load(local)
	if err != nil {
		return err
	}
	o.Tokenizer = tok
	return nil
}

func modelName(path string) string {
	return strings.TrimSuffix(filepath.Base(filepath.Clean(path)), ".gguf")
}

// defaultBaseCache is the GPTQ base cache of --cache-dir auto.
func defaultBaseCache() string {
	d := os.Getenv("LOWRANK_CACHE")
	if d == "" {
		u, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		d = filepath.Join(u, "lowrank")
	}
	return filepath.Join(d, "gptq")
}

// writeModelfile writes an Ollama Modelfile beside out: FROM the base GGUF
// and ADAPTER out for a LoRA, FROM out for a merged model, and a stop
// parameter for each end-of-sequence token. TEMPLATE is left out: Ollama
// takes the chat template from the GGUF.
func writeModelfile(out, base, format string, stops []string) (string, error) {
	path := filepath.Join(filepath.Dir(out), "Modelfile")
	var b strings.Builder
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	if format == "gguf-lora" {
		if filepath.Ext(base) != ".gguf" {
			return "", fmt.Errorf("--ollama with a GGUF LoRA needs the base as a .gguf file (--model BASE.gguf): Ollama's FROM loads it")
		}
		fmt.Fprintf(&b, "FROM %s\nADAPTER %s\n", abs(base), abs(out))
	} else {
		fmt.Fprintf(&b, "FROM %s\n", abs(out))
	}
	for _, s := range stops {
		if s != "" {
			fmt.Fprintf(&b, "PARAMETER stop %q\n", s)
		}
	}
	if err := checkpoints.WriteFileAtomic(path, []byte(b.String())); err != nil {
		return "", err
	}
	return path, nil
}
