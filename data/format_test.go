package data

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
	"github.com/lowrank/lowrank/tokenizer"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func show(tok *tokenizer.Tokenizer, ex *Example) string { return Show(tok, ex) }

func supervisedText(tok *tokenizer.Tokenizer, ex *Example) string {
	var sup []int32
	for i, m := range ex.Mask {
		if m {
			sup = append(sup, ex.IDs[i])
		}
	}
	return tok.Decode(sup, false)
}

func firstRow(t *testing.T, rel string) Row {
	s, err := Open(testassets.Path(t, rel), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./data -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: rendering differs from %s:\n got  %q\n want %q", name, path, got, want)
	}
}

// TestMasksGolden: one example per format, with its supervised tokens marked,
// against testdata/*.golden.
func TestMasksGolden(t *testing.T) {
	stories, err := tokenizer.Load(testassets.Path(t, "models/stories260K/hf"))
	if err != nil {
		t.Fatal(err)
	}
	qwen, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	imEnd, _ := qwen.ID("<|im_end|>")
	cases := []struct {
		name string
		row  Row
		tok  *tokenizer.Tokenizer
		opt  RenderOptions
		sup  string // exact supervised text, when simple
	}{
		{"text", Row{"text": "Lily saw a big dog."}, stories, RenderOptions{EOS: 2}, "Lily saw a big dog.</s>"},
		{"prompt_completion", Row{"prompt": "Q: What is red?\nA:", "completion": " A ball."}, stories, RenderOptions{EOS: 2}, "A ball.</s>"},
		{"prompt_completion_train_on_inputs", Row{"prompt": "Q: What is red?\nA:", "completion": " A ball."}, stories, RenderOptions{EOS: 2, TrainOnInputs: true}, ""},
		{"prompt_completion_truncated", Row{"prompt": "Once upon a time there was a girl who liked to play in the park.", "completion": " She was happy every day."}, stories, RenderOptions{EOS: 2, MaxSeqLen: 16}, ""},
		{"prompt_completion_truncated_right", Row{"prompt": "Once upon a time there was a girl who liked to play in the park.", "completion": " She was happy every day."}, stories, RenderOptions{EOS: 2, MaxSeqLen: 16, Truncation: "right"}, ""},
		{"alpaca", firstRow(t, "datasets/llamafactory/identity.parquet"), qwen, RenderOptions{EOS: int32(imEnd)}, ""},
		{"chat", firstRow(t, "datasets/llamafactory/v1_sft_demo.messages.parquet"), qwen, RenderOptions{}, ""},
		{"sharegpt", firstRow(t, "datasets/llamafactory/glaive_toolcall_en_demo.parquet"), qwen, RenderOptions{}, ""},
		{"input_ids", Row{"input_ids": []any{1.0, 403.0, 407.0, 261.0, 378.0}, "labels": []any{-100.0, -100.0, 407.0, 261.0, 378.0}}, stories, RenderOptions{}, ""},
	}
	for _, c := range cases {
		f, err := Detect(c.row)
		if err != nil {
			t.Fatal(err)
		}
		ex, err := Render(c.row, f, c.tok, c.opt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.sup != "" {
			if got := supervisedText(c.tok, ex); got != c.sup {
				t.Errorf("%s: supervised %q, want %q", c.name, got, c.sup)
			}
		}
		if c.opt.MaxSeqLen > 0 && len(ex.IDs) != c.opt.MaxSeqLen {
			t.Errorf("%s: %d tokens after truncation to %d", c.name, len(ex.IDs), c.opt.MaxSeqLen)
		}
		checkGolden(t, c.name, string(f)+"\n"+show(c.tok, ex)+"\n")
	}
}

// TestChatDatasetMasks: every conversation of the chat dataset renders with
// Qwen3's template, every assistant turn is located, and the supervised text
// is the assistant contents with <|im_end|> after each.
func TestChatDatasetMasks(t *testing.T) {
	qwen, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(testassets.Path(t, "datasets/llamafactory/v1_sft_demo.messages.parquet"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for {
		r, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ex, err := Render(r, FormatChat, qwen, RenderOptions{})
		if err != nil {
			t.Fatalf("%s: %v", s.Where(), err)
		}
		var want strings.Builder
		for _, m := range r["messages"].([]any) {
			mm := m.(map[string]any)
			if mm["role"] == "assistant" {
				want.WriteString(mm["content"].(string) + "<|im_end|>")
			}
		}
		if got := supervisedText(qwen, ex); got != want.String() {
			t.Fatalf("%s: supervised %q, want %q", s.Where(), got, want.String())
		}
		n++
	}
	if n != 500 {
		t.Errorf("%d conversations", n)
	}
}

func TestDetectAndColumns(t *testing.T) {
	m, err := ParseColumns("prompt=question, completion=answer")
	if err != nil {
		t.Fatal(err)
	}
	r := MapColumns(Row{"question": "q", "answer": "a"}, m)
	if f, err := Detect(r); err != nil || f != FormatCompletion {
		t.Errorf("mapped columns: %v %v", f, err)
	}
	if _, err := Detect(Row{"foo": 1}); err == nil || !strings.Contains(err.Error(), "--columns") {
		t.Errorf("unknown columns: %v", err)
	}
	if _, err := ParseColumns("prompt"); err == nil {
		t.Error("bad --columns accepted")
	}
	stories, _ := tokenizer.Load(testassets.Path(t, "models/stories260K/hf"))
	if _, err := Render(Row{"prompt": 5, "completion": "x"}, FormatCompletion, stories, RenderOptions{}); err == nil || !strings.Contains(err.Error(), `"prompt"`) {
		t.Errorf("mistyped column: %v", err)
	}
	if _, err := Render(Row{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}, FormatChat, stories, RenderOptions{}); err == nil || !strings.Contains(err.Error(), "chat template") {
		t.Errorf("no template: %v", err)
	}
}

// TestChatContentPartsAndLossWeight: content given as text parts (HF's
// "text", LlamaFactory's "value") renders like the plain string, and an
// assistant message with "loss_weight": 0 is not supervised.
func TestChatContentPartsAndLossWeight(t *testing.T) {
	qwen, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	msg := func(role string, content any, w float64) any {
		return map[string]any{"role": role, "content": content, "loss_weight": w}
	}
	plain := Row{"messages": []any{msg("user", "Hi there", 0), msg("assistant", "Hello!", 1), msg("user", "Name?", 0), msg("assistant", "Zorb.", 1)}}
	parts := Row{"messages": []any{
		msg("user", []any{map[string]any{"type": "text", "text": "Hi "}, map[string]any{"type": "text", "value": "there"}}, 0),
		msg("assistant", []any{map[string]any{"type": "text", "value": "Hello!"}}, 1),
		msg("user", "Name?", 0), msg("assistant", "Zorb.", 1)}}
	a, err := Render(plain, FormatChat, qwen, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render(parts, FormatChat, qwen, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !sameExamples([]*Example{a}, []*Example{b}) {
		t.Errorf("content parts render differently:\n%s\n%s", Show(qwen, a), Show(qwen, b))
	}
	if got := supervisedText(qwen, a); got != "Hello!<|im_end|>Zorb.<|im_end|>" {
		t.Errorf("supervised %q", got)
	}
	plain["messages"].([]any)[1].(map[string]any)["loss_weight"] = 0.0
	c, err := Render(plain, FormatChat, qwen, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := supervisedText(qwen, c); got != "Zorb.<|im_end|>" {
		t.Errorf("loss_weight 0 turn supervised: %q", got)
	}
	bad := Row{"messages": []any{msg("user", []any{map[string]any{"type": "image", "url": "x.png"}}, 0), msg("assistant", "ok", 1)}}
	if _, err := Render(bad, FormatChat, qwen, RenderOptions{}); err == nil || !strings.Contains(err.Error(), `type "image"`) {
		t.Errorf("image part: %v", err)
	}
}

// ownText decodes the tokens an example marks as the row's own text.
func ownText(tok *tokenizer.Tokenizer, ex *Example) string {
	var ids []int32
	for i, id := range ex.IDs {
		if ex.Own[i] {
			ids = append(ids, id)
		}
	}
	return tok.Decode(ids, false)
}

// TestOwnText: an example marks as its own text exactly what the row
// wrote — every message's content, Alpaca's instruction, input and output,
// a prompt and its completion — and not the chat template's headers and
// markers, Alpaca's frame or an appended EOS; the mark survives the token
// store.
func TestOwnText(t *testing.T) {
	qwen, err := tokenizer.Load(testassets.Path(t, "tokenizers/qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	o := RenderOptions{EOS: qwen.EOS}
	for _, c := range []struct {
		row  Row
		f    Format
		want string
	}{
		{Row{"messages": []any{map[string]any{"role": "system", "content": "Be brief."}, map[string]any{"role": "user", "content": "Name a colour."},
			map[string]any{"role": "assistant", "content": "Blue."}}}, FormatChat, "Be brief.Name a colour.Blue."},
		{Row{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}, FormatAlpaca, "Add the numbers2 and 35"}, // ".\n\n" is one token, half frame: not own
		{Row{"instruction": "Say hi.", "output": "Hi!"}, FormatAlpaca, "Say hiHi!"},
		{Row{"prompt": "The sky is", "completion": " blue."}, FormatCompletion, "The sky is blue."},
		{Row{"text": "Once upon a time."}, FormatText, "Once upon a time."},
		{Row{"instruction": "Say hi.", "output": "Hi!", PreambleKey: "Answer as a pirate."}, FormatAlpaca, "Say hiHi!"},
	} {
		ex, err := Render(c.row, c.f, qwen, o)
		if err != nil {
			t.Fatal(err)
		}
		if got := ownText(qwen, ex); got != c.want {
			t.Errorf("%s: own text %q, want %q", c.f, got, c.want)
		}
		if pre, ok := c.row[PreambleKey].(string); ok {
			if text := qwen.Decode(ex.IDs, false); !strings.HasPrefix(text, pre+"\n\n### Instruction:\nSay hi.") {
				t.Errorf("a preamble paraphrase renders as %q", text)
			}
		}
	}
	cache := t.TempDir()
	path := testassets.Path(t, "datasets/llamafactory/identity.parquet")
	fresh, err := Load(path, qwen, LoadOptions{CacheDir: cache, Render: o})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	cached, err := Load(path, qwen, LoadOptions{CacheDir: cache, Render: o})
	if err != nil || !cached.FromCache {
		t.Fatalf("from the cache: %v", err)
	}
	defer cached.Close()
	for i := range fresh.Train {
		if !slices.Equal(fresh.Train[i].Own, cached.Train[i].Own) || !slices.Contains(fresh.Train[i].Own, false) {
			t.Fatalf("example %d: own %v, from the cache %v", i, fresh.Train[i].Own, cached.Train[i].Own)
		}
	}
}
