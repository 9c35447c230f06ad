package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/lowrank/lowrank/checkpoints/safetensors"
)

// badCase is a command line lowrank must refuse: exit code not 0, one line
// on stderr that contains want (the file or flag at fault and the problem),
// no Go internals, and memory bounded.
type badCase struct {
	name string
	args []string
	want []string // substrings of the one line
}

// forbidden are what a user must never read.
var forbidden = []string{"goroutine", "panic", "map[", "internal error", "runtime.", "fatal error", "<nil>"}

// refuses runs each case as its own process under GOMEMLIMIT=1GiB (its own
// process so that a crash or an out-of-memory kill is seen, not suffered)
// and checks what it says.
func refuses(t *testing.T, cases []badCase) {
	t.Helper()
	if testing.Short() {
		t.Skip("lowrank processes: skipped with -short (the emulated arm64 run, where this binary cannot run itself)")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], c.args...)
			cmd.Env = append(os.Environ(), "LOWRANK_TEST_MAIN=1", "GOMEMLIMIT=1GiB")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			// The run log's progress lines (slog records at level INFO) may come
			// first, as they do in any run; the error is one line after them.
			var lines []string
			for _, l := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
				if !(strings.HasPrefix(l, "time=") && strings.Contains(l, " level=INFO ")) {
					lines = append(lines, l)
				}
			}
			msg := strings.Join(lines, "\n")
			if code == 0 || code == -1 {
				t.Errorf("exit %d (want an error exit), stderr %q", code, msg)
			}
			if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "lowrank: ") {
				t.Errorf("want one line starting \"lowrank: \", got:\n%s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the message does not say %q:\n%s", w, msg)
				}
			}
			for _, f := range forbidden {
				if strings.Contains(msg, f) {
					t.Errorf("the message shows %q:\n%s", f, msg)
				}
			}
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && runtime.GOOS == "linux" {
				if peak := int64(ru.Maxrss) << 10; peak > 2<<30 {
					t.Errorf("peak RSS %d MiB, want under 2 GiB", peak>>20)
				}
			}
		})
	}
}

// editJSON rewrites a JSON object file with changes applied (nil deletes)
// to the object itself or to the one found under the keys within.
func editJSON(t *testing.T, path string, changes map[string]any, within ...string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	m := top
	for _, k := range within {
		m = m[k].(map[string]any)
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	raw, _ = json.Marshal(top)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a model folder's files.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	os.MkdirAll(to, 0o755)
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(to, e.Name()), raw, 0o644)
	}
}

// tinyModelAndData writes a 2-layer Qwen2 model and a small text dataset.
func tinyModelAndData(t *testing.T) (dir, model, data string) {
	t.Helper()
	dir = t.TempDir()
	model = filepath.Join(dir, "model")
	writeTinyHF(t, model, "qwen2")
	data = filepath.Join(dir, "data.txt")
	os.WriteFile(data, []byte(strings.Repeat("the robot counted the stars.\n\nthe cat painted the clouds.\n\n", 20)), 0o644)
	return dir, model, data
}

// TestBadConfigSizes: a config.json with absurd sizes, or sizes that
// disagree with the tensors, is refused before anything is allocated from
// it, naming the key and both numbers, by every command that loads a model.
func TestBadConfigSizes(t *testing.T) {
	dir, good, data := tinyModelAndData(t)
	var cases []badCase
	for i, c := range []struct {
		change map[string]any
		want   []string
	}{
		{map[string]any{"num_hidden_layers": 1000000000}, []string{"num_hidden_layers 1000000000", "at most"}},
		{map[string]any{"num_hidden_layers": 9000}, []string{"num_hidden_layers is 9000", "hold 2 layers"}},
		{map[string]any{"num_hidden_layers": 1}, []string{"num_hidden_layers is 1", "hold 2 layers"}},
		{map[string]any{"num_hidden_layers": 3}, []string{"num_hidden_layers is 3", "hold 2 layers"}},
		{map[string]any{"hidden_size": int64(1) << 40}, []string{"hidden_size 1099511627776", "at most"}},
		{map[string]any{"hidden_size": 1 << 20, "head_dim": 16}, []string{"model.embed_tokens.weight", "[258 64]", "[258 1048576]"}},
		{map[string]any{"intermediate_size": int64(1) << 40}, []string{"intermediate_size 1099511627776"}},
		{map[string]any{"intermediate_size": 1 << 19}, []string{"mlp.gate_proj.weight", "[128 64]", "[524288 64]"}},
		{map[string]any{"max_position_embeddings": int64(1) << 40}, []string{"max_position_embeddings 1099511627776"}},
		{map[string]any{"vocab_size": 1 << 23}, []string{"model.embed_tokens.weight", "[8388608 64]"}},
		{map[string]any{"vocab_size": int64(1) << 40}, []string{"vocab_size 1099511627776"}},
		{map[string]any{"num_attention_heads": 1 << 13}, []string{"self_attn.q_proj.weight", "[64 64]", "[131072 64]"}},
		{map[string]any{"num_attention_heads": 7, "head_dim": 16}, []string{"num_key_value_heads 2 must divide num_attention_heads 7"}},
		{map[string]any{"num_attention_heads": 1 << 20}, []string{"num_attention_heads 1048576"}},
		{map[string]any{"head_dim": 1 << 19}, []string{"self_attn.q_proj.weight", "[2097152 64]"}},
		{map[string]any{"head_dim": 15}, []string{"head_dim 15"}},
		{map[string]any{"vocab_size": -3}, []string{"vocab_size", "-3"}},
		{map[string]any{"num_hidden_layers": "many"}, []string{"config.json", "num_hidden_layers"}},
		{map[string]any{"architectures": []string{"GPT2LMHeadModel"}}, []string{"config.json", "GPT2LMHeadModel"}},
	} {
		m := filepath.Join(dir, fmt.Sprintf("m%d", i))
		copyDir(t, good, m)
		editJSON(t, filepath.Join(m, "config.json"), c.change)
		name := fmt.Sprint(c.change)
		cases = append(cases,
			badCase{"inspect " + name, []string{"inspect", m}, append([]string{m}, c.want...)},
			badCase{"eval " + name, []string{"eval", "--model", m, "--data", data}, append([]string{m}, c.want...)},
			badCase{"train " + name, []string{"train", "--model", m, "--data", data, "--out", filepath.Join(dir, "run"), "--dry-run"}, append([]string{m}, c.want...)},
			badCase{"export " + name, []string{"export", "--model", m, "--format", "gguf", "--out", filepath.Join(dir, "x.gguf")}, append([]string{m}, c.want...)},
		)
	}
	cases = append(cases, badCase{"generate, too few layers", []string{"generate", "--model", filepath.Join(dir, "m2"), "--max-tokens", "2"}, []string{"num_hidden_layers is 1"}})
	refuses(t, cases)
}

// TestBadSettings: values that parse but mean nothing, or whose memory
// follows from them, are refused naming the flag.
func TestBadSettings(t *testing.T) {
	dir, m, data := tinyModelAndData(t)
	runs := 0
	trainArgs := func(extra ...string) []string { // each in a folder of its own
		runs++
		out := filepath.Join(dir, fmt.Sprintf("run%d", runs))
		return append([]string{"train", "--model", m, "--data", data, "--out", out, "--max-steps", "2", "--no-progress"}, extra...)
	}
	var cases []badCase
	for _, c := range []struct {
		flag, value, want string
	}{
		{"--lr", "nan", "lr: NaN is not a finite number"}, {"--lr", "inf", "lr: +Inf"}, {"--lr", "-1e-3", "lr: -0.001 must be positive"},
		{"--lr", "0", "lr: 0 must be positive"}, {"--lr", "fast", `"fast" is not a float`},
		{"--weight-decay", "nan", "weight_decay: NaN"}, {"--weight-decay", "-0.1", "weight_decay: -0.1"},
		{"--alpha", "nan", "alpha: NaN"}, {"--alpha", "-inf", "alpha: -Inf"}, {"--dropout", "nan", "dropout: NaN"}, {"--dropout", "1", "dropout: 1"},
		{"--momentum", "nan", "momentum: NaN"}, {"--max-grad-norm", "-1", "max_grad_norm: -1"}, {"--max-grad-norm", "nan", "max_grad_norm: NaN"},
		{"--loraplus-ratio", "-2", "loraplus_ratio: -2"}, {"--min-lr-ratio", "1.5", "min_lr_ratio: 1.5"}, {"--min-lr-ratio", "nan", "min_lr_ratio: NaN"},
		{"--warmup-steps", "-1", "warmup_steps: -1"}, {"--max-steps", "-5", "max_steps: -5"}, {"--eval-every", "-1", "eval_every: -1"},
		{"--epochs", "-1", "epochs: -1"}, {"--val-fraction", "nan", "val_fraction: NaN"}, {"--early-stopping-threshold", "nan", "early_stopping_threshold: NaN"},
		{"--threads", "100000", "--threads 100000"}, {"--threads", "-1", "--threads -1"}, {"--rank", "100000", "rank 100000"}, {"--rank", "65", "above its width"},
		{"--batch-size", "1000000", "--batch-size 1000000"}, {"--memory-limit", "64KiB", "more than the 0.1 MiB"}, {"--memory-limit", "lots", "memory_limit"},
		{"--max-seq-len", "100000", "max_seq_len 100000"}, {"--targets", "q_proj,qproj", `target "qproj"`}, {"--targets", "nothing", "nothing"},
		{"--checkpoint-layers", "3", "checkpoint_layers 3"}, {"--data-weights", "0.5,0.5", "2 weights for 1 datasets"},
		{"--data-weights", "most", "data_weights"}, {"--data-weights", "-1", "data_weights"}, {"--mix-stop", "never", "mix_stop"},
		{"--neftune-noise-alpha", "nan", "neftune_noise_alpha: NaN"}, {"--neftune-noise-alpha", "-5", "neftune_noise_alpha: -5"},
		{"--token-dropout", "1", "token_dropout: 1"}, {"--token-replace", "nan", "token_replace: NaN"}, {"--token-replace-from", "air", "token_replace_from"},
		{"--text-word-swap", "1", "text_word_swap: 1"}, {"--text-char-noise", "nan", "text_char_noise: NaN"}, {"--text-fields", "answers", "text_fields"},
		{"--text-variants", "-1", "text_variants: -1"}, {"--system-prompts", "/no/such/prompts.txt", "system_prompts: open /no/such/prompts.txt"}, {"--seed", "-1", `"-1" is not a uint`}, {"--pack=maybe", "", `"maybe" is not a bool`},
		{"--compute-dtype", "fp8", `compute_dtype: "fp8": want f32, bf16, int8 or auto`}, {"--compute-dtype", "int8", "int8 computes the forward products of eval and generate only"},
	} {
		args := trainArgs(c.flag, c.value)
		if c.value == "" {
			args = args[:len(args)-1]
		}
		cases = append(cases, badCase{c.flag + " " + c.value, args, []string{c.want}})
	}
	for _, c := range []struct {
		flag, value, want string
	}{
		{"--temperature", "nan", "--temperature NaN"}, {"--temperature", "inf", "--temperature +Inf"}, {"--temperature", "-1", "--temperature -1"},
		{"--top-p", "nan", "--top-p NaN"}, {"--top-p", "2", "--top-p 2"}, {"--max-tokens", "-1", "--max-tokens"}, {"--threads", "100000", "--threads 100000"},
	} {
		cases = append(cases, badCase{"generate " + c.flag + " " + c.value, []string{"generate", "--model", m, c.flag, c.value}, []string{c.want}})
	}
	cases = append(cases,
		badCase{"eval --threads", []string{"eval", "--model", m, "--data", data, "--threads", "4096"}, []string{"--threads 4096"}},
		badCase{"eval --max-seq-len", []string{"eval", "--model", m, "--data", data, "--max-seq-len", "100000"}, []string{"max_seq_len 100000"}},
		badCase{"bench --threads", []string{"bench", "train", "--threads", "4096"}, []string{"--threads 4096"}},
	)
	refuses(t, cases)
}

// TestNonFiniteWeights: an adapter or a base holding NaN or Inf is an
// error in eval and generate (and an adapter in merge), never a loss of
// NaN with exit 0 or a merged model of NaN.
func TestNonFiniteWeights(t *testing.T) {
	dir, m, data := tinyModelAndData(t)
	run := filepath.Join(dir, "run")
	if code, _, stderr := capture(t, "train", "--model", m, "--data", data, "--out", run, "--max-steps", "2", "--max-seq-len", "32", "--no-progress", "--quant", "f32"); code != 0 {
		t.Fatalf("train: exit %d\n%s", code, stderr)
	}
	var cases []badCase
	for i, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		// The adapter: one value of one factor.
		ad := filepath.Join(dir, fmt.Sprintf("adapter%d", i))
		copyDir(t, filepath.Join(run, "adapter"), ad)
		poison(t, filepath.Join(ad, "adapter_model.safetensors"), "lora_B", v)
		// The base: one value of one projection.
		base := filepath.Join(dir, fmt.Sprintf("base%d", i))
		copyDir(t, m, base)
		poison(t, filepath.Join(base, "model.safetensors"), "layers.1.mlp.down_proj", v)
		cases = append(cases,
			badCase{fmt.Sprintf("eval adapter %g", v), []string{"eval", "--model", m, "--adapter", ad, "--data", data}, []string{"adapter_model.safetensors", "lora_B", fmt.Sprint(v)}},
			badCase{fmt.Sprintf("generate adapter %g", v), []string{"generate", "--model", m, "--adapter", ad, "--max-tokens", "3"}, []string{"adapter_model.safetensors", fmt.Sprint(v)}},
			badCase{fmt.Sprintf("merge adapter %g", v), []string{"merge", "--model", m, "--adapter", ad, "--out", filepath.Join(dir, fmt.Sprintf("merged%d", i))}, []string{"adapter_model.safetensors", fmt.Sprint(v)}},
			badCase{fmt.Sprintf("eval base %g", v), []string{"eval", "--model", base, "--data", data}, []string{"non-finite"}},
			badCase{fmt.Sprintf("generate base %g", v), []string{"generate", "--model", base, "--max-tokens", "3", "--temperature", "0"}, []string{"non-finite"}},
		)
	}
	refuses(t, cases)
}

// poison sets one value of the first tensor whose name contains part.
func poison(t *testing.T, path, part string, v float32) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []safetensors.WriteEntry
	done := false
	for _, n := range f.Names() {
		ten, _ := f.Tensor(n)
		data := append([]byte(nil), ten.Data...)
		if !done && strings.Contains(n, part) && ten.Dtype == safetensors.F32 {
			bits := math.Float32bits(v)
			data[4], data[5], data[6], data[7] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
			done = true
		}
		entries = append(entries, safetensors.WriteEntry{Name: n, Dtype: ten.Dtype, Shape: ten.Shape, Data: data})
	}
	f.Close()
	if !done {
		t.Fatalf("%s has no F32 tensor named like %q", path, part)
	}
	if err := safetensors.Write(path, entries, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// TestChatLearnsToStop: with a template whose end-of-turn marker is not one
// token of the vocabulary (chatml over a byte-level vocabulary: <|im_end|>
// is 10 tokens), the marker is supervised, the log says so, and after
// fine-tuning generate --chat replies and stops at the marker, which it
// does not print.
func TestChatLearnsToStop(t *testing.T) {
	if testing.Short() {
		t.Skip("a training run: skipped with -short (the emulated arm64 run)")
	}
	dir := t.TempDir()
	m := filepath.Join(dir, "model")
	writeTinyHF(t, m, "qwen2")
	var b strings.Builder
	for range 32 {
		b.WriteString(`{"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi there, friend!"}]}` + "\n")
	}
	data := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(data, []byte(b.String()), 0o644)
	conv := filepath.Join(dir, "conv.json")
	os.WriteFile(conv, []byte(`[{"role": "user", "content": "Say hi."}]`), 0o644)
	code, out, _ := capture(t, "inspect", data, "--model", m, "--chat-template", "chatml")
	if code != 0 || !strings.Contains(out, "turns end with <|im_end|> (supervised), which this vocabulary writes in 10 tokens") {
		t.Fatalf("inspect: exit %d\n%s", code, out)
	}
	run := filepath.Join(dir, "run")
	code, _, stderr := capture(t, "train", "--model", m, "--data", data, "--chat-template", "chatml", "--out", run, "--quant", "f32",
		"--max-steps", "150", "--lr", "1e-2", "--lr-schedule", "constant", "--rank", "16", "--no-progress", "--log-every", "0")
	if code != 0 || !strings.Contains(stderr, "end-of-turn marker is not one token") || !strings.Contains(stderr, "tokens=10") {
		t.Fatalf("train: exit %d\n%s", code, stderr)
	}
	code, out, stderr = capture(t, "generate", "--model", m, "--adapter", filepath.Join(run, "adapter"), "--chat", conv, "--temperature", "0", "--max-tokens", "60")
	if code != 0 || out != "Hi there, friend!" {
		t.Fatalf("generate --chat: exit %d, %q (want the reply, stopped at <|im_end|>)\n%s", code, out, stderr)
	}
	// Without the marker supervised, the same run would go on past the reply.
	code, out, _ = capture(t, "generate", "--model", m, "--adapter", filepath.Join(run, "adapter"), "--prompt", "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n", "--temperature", "0", "--max-tokens", "27")
	if code != 0 || !strings.HasPrefix(out, "Hi there, friend!<|im_end|>") {
		t.Errorf("the model does not write the marker after its reply: %q", out)
	}
}

// TestBadFiles: broken tokenizer files, datasets whose rows do not fit,
// and paths that name nothing are one line each, naming the file.
func TestBadFiles(t *testing.T) {
	dir, good, data := tinyModelAndData(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	variant := func(name string, edit func(m string)) string {
		m := filepath.Join(dir, name)
		copyDir(t, good, m)
		edit(m)
		return m
	}
	tokEdit := func(changes map[string]any) func(string) {
		return func(m string) { editJSON(t, filepath.Join(m, "tokenizer.json"), changes, "model") }
	}
	noVocab := variant("novocab", tokEdit(map[string]any{"vocab": nil}))
	negID := variant("negid", tokEdit(map[string]any{"vocab": map[string]any{"a": -4}}))
	sparse := variant("sparse", tokEdit(map[string]any{"vocab": map[string]any{"a": 0, "b": 9000000}}))
	badUnk := variant("badunk", tokEdit(map[string]any{"unk_token": "<nope>"}))
	wordPiece := variant("wordpiece", tokEdit(map[string]any{"type": "WordPiece"}))
	badMerge := variant("badmerge", tokEdit(map[string]any{"merges": []string{"zz qq"}}))
	notJSON := variant("notjson", func(m string) { os.WriteFile(filepath.Join(m, "tokenizer.json"), []byte("{\"model\": "), 0o644) })
	noConfig := variant("noconfig", func(m string) { os.Remove(filepath.Join(m, "config.json")) })
	bigVocab := variant("bigvocab", func(m string) { // a tokenizer of 301 tokens for a model of 258
		p := filepath.Join(m, "tokenizer.json")
		raw, _ := os.ReadFile(p)
		var tj map[string]any
		json.Unmarshal(raw, &tj)
		tj["added_tokens"] = append(tj["added_tokens"].([]any), map[string]any{"id": 300, "content": "<|extra|>", "special": true})
		raw, _ = json.Marshal(tj)
		os.WriteFile(p, raw, 0o644)
	})
	badTemplate := variant("badtemplate", func(m string) {
		os.WriteFile(filepath.Join(m, "tokenizer_config.json"), []byte(`{"chat_template": "{% for i in range(1000000000) %}x{% endfor %}"}`), 0o644)
	})
	chat := write("chat.jsonl", `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}`+"\n")
	mixed := write("mixed.jsonl", "{\"text\": [\"a\"]}\n{\"text\": null}\n{\"text\": 5}\n{\"text\": {\"x\": 1}}\n")
	badChat := write("badchat.jsonl", "{\"messages\": \"should be a list\"}\n{\"messages\": [\"not an object\"]}\n")
	ragged := write("ragged.csv", "prompt,completion\nhi,there,extra\n")
	dupHeader := write("dup.csv", "text,text\na,b\n")
	emptyCSV := write("empty.csv", "")
	qa := write("qa.csv", "question,answer\nwhat?,this\n")
	notJSONL := write("broken.jsonl", "{\"text\": \"fine\"}\n{not json\n")
	empty := filepath.Join(dir, "emptydir")
	os.MkdirAll(empty, 0o755)
	cases := []badCase{
		{"tokenizer without vocab", []string{"tokenize", "--model", noVocab, "hi"}, []string{"tokenizer.json", "no vocab"}},
		{"negative id", []string{"tokenize", "--model", negID, "hi"}, []string{"tokenizer.json", "id -4"}},
		{"sparse ids", []string{"train", "--model", sparse, "--data", data, "--out", filepath.Join(dir, "r1")}, []string{"tokenizer.json", "9000000"}},
		{"unknown unk_token", []string{"eval", "--model", badUnk, "--data", data}, []string{"tokenizer.json", "unk_token \"<nope>\""}},
		{"WordPiece", []string{"generate", "--model", wordPiece}, []string{"tokenizer.json", "WordPiece"}},
		{"merge outside the vocabulary", []string{"tokenize", "--model", badMerge, "hi"}, []string{"tokenizer.json", "zz qq"}},
		{"truncated tokenizer.json", []string{"tokenize", "--model", notJSON, "hi"}, []string{"tokenizer.json"}},
		{"no config.json: inspect", []string{"inspect", noConfig}, []string{noConfig, "no config.json"}},
		{"no config.json: train", []string{"train", "--model", noConfig, "--data", data, "--out", filepath.Join(dir, "r2")}, []string{noConfig, "no config.json"}},
		{"tokenizer larger than the model", []string{"train", "--model", bigVocab, "--data", data, "--out", filepath.Join(dir, "r3")}, []string{"301 tokens", "vocabulary 258"}},
		{"tokenizer larger than the model: generate", []string{"generate", "--model", bigVocab}, []string{"301 tokens", "vocabulary 258"}},
		{"endless chat template", []string{"tokenize", "--model", badTemplate, "--chat", chat}, []string{"range of 1000000000 items"}},
		{"missing model", []string{"train", "--model", filepath.Join(dir, "nope"), "--data", data, "--out", filepath.Join(dir, "r4")}, []string{"model " + filepath.Join(dir, "nope") + ": no such file"}},
		{"missing model: inspect", []string{"inspect", filepath.Join(dir, "nope")}, []string{filepath.Join(dir, "nope") + ": no such file"}},
		{"missing model: tokenize", []string{"tokenize", "--model", filepath.Join(dir, "nope"), "x"}, []string{"model " + filepath.Join(dir, "nope") + ": no such file"}},
		{"missing data", []string{"train", "--model", good, "--data", filepath.Join(dir, "nope.jsonl"), "--out", filepath.Join(dir, "r5")}, []string{"data " + filepath.Join(dir, "nope.jsonl") + ": no such file"}},
		{"glob matching nothing", []string{"eval", "--model", good, "--data", filepath.Join(dir, "*.nothing")}, []string{"matches no file"}},
		{"folder without data", []string{"train", "--model", good, "--data", empty, "--out", filepath.Join(dir, "r6")}, []string{empty, "holds no .parquet"}},
		{"rows of the wrong types", []string{"train", "--model", good, "--data", mixed, "--out", filepath.Join(dir, "r7")},
			[]string{mixed, `row dropped: column "text" is a list, want a string`, `column "text" is null`, `is a number`, `is an object`}},
		{"rows of the wrong types: inspect", []string{"inspect", mixed, "--model", good}, []string{mixed, `column "text" is null`}},
		{"chat column of the wrong type", []string{"inspect", badChat, "--model", good, "--chat-template", "chatml"}, []string{badChat, `column "messages" is a string, want a list of messages`, `messages[0] is a string, want an object`}},
		{"chat column of the wrong type: train", []string{"train", "--model", good, "--data", badChat, "--chat-template", "chatml", "--out", filepath.Join(dir, "r8")}, []string{badChat, "want a list of messages"}},
		{"CSV row of the wrong width", []string{"train", "--model", good, "--data", ragged, "--out", filepath.Join(dir, "r9")}, []string{ragged, "line 2", "wrong number of fields"}},
		{"CSV header twice", []string{"inspect", dupHeader}, []string{dupHeader, `header column 2 is "text"`}},
		{"empty CSV", []string{"inspect", emptyCSV}, []string{emptyCSV, "is empty"}},
		{"CSV columns that match no format", []string{"train", "--model", good, "--data", qa, "--out", filepath.Join(dir, "r10")}, []string{qa, "match no format", "--columns"}},
		{"--columns naming a missing column", []string{"train", "--model", good, "--data", qa, "--columns", "prompt=question,completion=answr", "--out", filepath.Join(dir, "r11")}, []string{qa, `column "answr"`, "answer, question"}},
		{"--columns naming a missing column: inspect", []string{"inspect", qa, "--columns", "prompt=questoin,completion=answer"}, []string{qa, `column "questoin"`}},
		{"JSONL line that is not JSON", []string{"train", "--model", good, "--data", notJSONL, "--out", filepath.Join(dir, "r12")}, []string{notJSONL, "line 2"}},
	}
	refuses(t, cases)
	// CSV and TSV with a header are tables: one example per row.
	tsv := write("qa.tsv", "prompt\tcompletion\nwhat is \"two\"?\ttwo\nand three?\tthree\n")
	code, out, errOut := capture(t, "inspect", tsv, "--model", good, "--json")
	if code != 0 || !strings.Contains(out, `"format": "prompt_completion"`) || !strings.Contains(out, `"rows": 2`) {
		t.Errorf("TSV: exit %d %s\n%s", code, errOut, out)
	}
	code, out, errOut = capture(t, "inspect", qa, "--model", good, "--columns", "prompt=question,completion=answer", "--json")
	if code != 0 || !strings.Contains(out, `"rows": 1`) || !strings.Contains(out, `"examples": 1`) {
		t.Errorf("CSV with --columns: exit %d %s\n%s", code, errOut, out)
	}
}

// TestInspectAugment: inspect --augment shows each example as loaded and as
// an epoch of the configured run sees it; template text is never touched.
func TestInspectAugment(t *testing.T) {
	dir, m, _ := tinyModelAndData(t)
	data := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(data, []byte(strings.Repeat(`{"messages": [{"role": "user", "content": "please count all the stars in the sky tonight"}, {"role": "assistant", "content": "ok"}]}`+"\n", 4)), 0o644)
	cfg := filepath.Join(dir, "run.yaml")
	os.WriteFile(cfg, []byte("token_dropout: 0.3\nneftune_noise_alpha: 5\n"), 0o644)
	code, out, errOut := capture(t, "inspect", data, "--model", m, "--chat-template", "chatml", "--augment", cfg, "--samples", "2", "--epoch", "3")
	if code != 0 || strings.Count(out, "as loaded:") != 2 || strings.Count(out, "epoch 3 (") != 2 || !strings.Contains(out, "NEFTune α=5") {
		t.Fatalf("exit %d %s\n%s", code, errOut, out)
	}
	// Every augmented rendering keeps the template's headers and markers.
	for _, block := range strings.Split(out, "epoch 3 (")[1:] {
		if !strings.Contains(block, "<|im_start|>user\n") || !strings.Contains(block, "<|im_start|>assistant\n[o][k]") {
			t.Errorf("template text changed:\n%s", block)
		}
	}
	os.WriteFile(cfg, []byte("token_dropout: 2\n"), 0o644)
	if code, _, errOut := capture(t, "inspect", data, "--model", m, "--augment", cfg); code == 0 || !strings.Contains(errOut, "token_dropout: 2") {
		t.Errorf("a bad augmentation config: exit %d %s", code, errOut)
	}
}
