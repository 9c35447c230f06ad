package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/lowrank/lowrank/checkpoints"
	"github.com/lowrank/lowrank/model"
	"github.com/spf13/cobra"
)

// useAdapterInfo applies what an adapter's lowrank.json records (how the
// base was held in training, the chat template, the sequence length) to
// the flags the user did not set, says so on w, and warns when the base's
// files differ from the ones the adapter was trained on. flags maps a
// setting (quant, gptq_tokens, gptq_tune, gptq_seed, chat_template,
// max_seq_len) to the command's flag for it; settings without a flag are
// skipped. An adapter without lowrank.json changes nothing.
func useAdapterInfo(cmd *cobra.Command, w io.Writer, adapterDir, modelPath string, flags map[string]string) error {
	if adapterDir == "" {
		return nil
	}
	info, err := checkpoints.ReadAdapterInfo(adapterDir)
	if err != nil || info == nil {
		return err
	}
	vals := map[string]string{"quant": info.Quant, "max_seq_len": strconv.Itoa(info.MaxSeqLen), "gptq_tokens": "0", "gptq_tune": "0", "gptq_seed": "0"}
	if g := info.GPTQ; g != nil {
		vals["gptq_tokens"], vals["gptq_tune"], vals["gptq_seed"] = strconv.Itoa(g.Tokens), strconv.Itoa(g.Tune), strconv.FormatUint(g.Seed, 10)
	}
	if info.ChatTemplate != "" {
		vals["chat_template"] = info.ChatTemplate
	}
	var used []string
	for _, key := range []string{"quant", "gptq_tokens", "gptq_tune", "gptq_seed", "chat_template", "max_seq_len"} {
		name, ok := flags[key]
		v, has := vals[key]
		if !ok || !has || cmd.Flags().Changed(name) {
			continue
		}
		if err := cmd.Flags().Set(name, v); err != nil {
			return fmt.Errorf("adapter %s: lowrank.json: %s %q: %v", adapterDir, key, v, err)
		}
		switch {
		case key == "chat_template":
			used = append(used, "chat template "+info.ChatTemplateName)
		case key == "quant":
			used = append(used, "base held as "+v)
		case strings.HasPrefix(key, "gptq") && info.GPTQ == nil:
		default:
			used = append(used, strings.ReplaceAll(key, "_", "-")+" "+v)
		}
	}
	if len(used) > 0 {
		fmt.Fprintf(w, "lowrank: %s was trained with %s (its lowrank.json): using the same; flags override\n", adapterDir, strings.Join(used, ", "))
	}
	if fp := info.Base.Fingerprint; fp != "" {
		got, err := model.Fingerprint(modelPath)
		if err == nil && got != fp {
			fmt.Fprintf(w, "lowrank: warning: %s was trained on a base whose files differ from %s (fingerprint %s, this one %s)\n", adapterDir, modelPath, short(fp), short(got))
		}
	}
	return nil
}
