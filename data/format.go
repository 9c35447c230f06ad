package data

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/lowrank/lowrank/tokenizer"
)

// Format is how a row becomes an example.
type Format string

const (
	FormatText       Format = "text"              // {text}: continued pre-training
	FormatCompletion Format = "prompt_completion" // {prompt, completion}
	FormatAlpaca     Format = "alpaca"            // {instruction, input?, output}
	FormatChat       Format = "chat"              // {messages: [{role, content}], tools?}
	FormatShareGPT   Format = "sharegpt"          // {conversations: [{from, value}], tools?}
	FormatTokens     Format = "input_ids"         // {input_ids, labels?}
)

// ParseFormat reads a format's name (as Detect names them).
func ParseFormat(s string) (Format, error) {
	for _, f := range []Format{FormatText, FormatCompletion, FormatAlpaca, FormatChat, FormatShareGPT, FormatTokens} {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("format %q: want text, prompt_completion, alpaca, chat, sharegpt or input_ids", s)
}

// Detect names the format of a row from its columns (after column mapping).
func Detect(r Row) (Format, error) {
	has := func(k string) bool { _, ok := r[k]; return ok }
	switch {
	case has("input_ids"):
		return FormatTokens, nil
	case has("messages"):
		return FormatChat, nil
	case has("conversations"):
		return FormatShareGPT, nil
	case has("instruction") && has("output"):
		return FormatAlpaca, nil
	case has("prompt") && has("completion"):
		return FormatCompletion, nil
	case has("text"):
		return FormatText, nil
	}
	cols := make([]string, 0, len(r))
	for k := range r {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	return "", fmt.Errorf("columns %v match no format (text; prompt+completion; instruction+output; messages; conversations; input_ids): map yours with --columns, e.g. --columns prompt=question,completion=answer", cols)
}

// ParseColumns reads "--columns prompt=question,completion=answer".
func ParseColumns(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--columns: %q is not name=column", kv)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}

// CheckColumns refuses a mapping that names a column the row lacks (a
// typo in --columns would otherwise be a format detected without it).
func CheckColumns(r Row, m map[string]string) error {
	for _, want := range slices.Sorted(maps.Keys(m)) {
		if _, ok := r[m[want]]; !ok {
			return fmt.Errorf("--columns maps %s to column %q, which the data lacks (its columns: %s)", want, m[want], strings.Join(slices.Sorted(maps.Keys(r)), ", "))
		}
	}
	return nil
}

// MapColumns renames the row's columns: want → have.
func MapColumns(r Row, m map[string]string) Row {
	if len(m) == 0 {
		return r
	}
	out := Row{}
	for k, v := range r {
		out[k] = v
	}
	for want, have := range m {
		if v, ok := r[have]; ok {
			out[want] = v
		}
	}
	return out
}

// Example is one rendered training example: Mask[i] says whether token i is a
// supervised target (predicted from the tokens before it).
type Example struct {
	IDs  []int32
	Mask []bool
	// Own marks the tokens of the row's own text, as opposed to what a
	// template or prompt wrapper wrote around it (role headers, markers,
	// Alpaca's instruction frame, an appended EOS): what augmentation may
	// edit. Nil means every token.
	Own []bool
	// Truncated is how many tokens --max-seq-len cut from the rendering
	// (not kept in the token cache; the Dataset keeps the count).
	Truncated int
}

// Supervised counts the supervised tokens.
func (e *Example) Supervised() int {
	n := 0
	for _, m := range e.Mask {
		if m {
			n++
		}
	}
	return n
}

// RenderOptions control rendering.
type RenderOptions struct {
	TrainOnInputs bool // supervise prompts and user turns too
	MaxSeqLen     int  // truncate to this many tokens (0: no limit)
	// KeepLongText leaves text examples whole whatever MaxSeqLen says, for
	// a window transform to cut a different part of them every epoch.
	KeepLongText bool   `json:",omitempty"`
	Truncation   string // "keep-answer" (default: drop the start of the prompt, then the end of the answer) or "right"
	EOS          int32  // appended to text/alpaca/prompt-completion examples (−1: none)
}

// PreambleKey, in a row, replaces the Alpaca frame's first paragraph ("Below
// is an instruction…"): how a template paraphrase reaches the renderer.
const PreambleKey = "_lowrank_preamble"

// AlpacaPrompt is the default template for alpaca rows (Stanford Alpaca's).
const (
	AlpacaPrompt        = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n"
	AlpacaPromptNoInput = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Response:\n"
)

func str(r Row, k string) (string, error) {
	v, ok := r[k]
	if !ok {
		return "", fmt.Errorf("column %q is missing", k)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("column %q is %s, want a string", k, kindOf(v))
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("column %q is not valid UTF-8", k)
	}
	return s, nil
}

// Render turns a row of format f into an example.
func Render(r Row, f Format, tok *tokenizer.Tokenizer, o RenderOptions) (*Example, error) {
	var ex *Example
	var err error
	switch f {
	case FormatText:
		var text string
		if text, err = str(r, "text"); err != nil {
			return nil, err
		}
		ids, offs := tok.EncodeOffsets(text, true)
		ex = &Example{IDs: ids, Mask: make([]bool, len(ids)), Own: make([]bool, len(ids))}
		for i := range ex.Mask {
			ex.Mask[i] = i > 0                  // every token but the first (nothing precedes it) is a target
			ex.Own[i] = offs[i][1] > offs[i][0] // not BOS or another token the tokenizer adds
		}
		ex.appendEOS(o.EOS)
		if o.KeepLongText {
			return ex, nil
		}
		return ex.truncate(o, 0), nil
	case FormatCompletion, FormatAlpaca:
		var prompt, completion string
		var own [][2]int // byte spans of the row's own text in prompt+completion
		if f == FormatCompletion {
			if prompt, err = str(r, "prompt"); err != nil {
				return nil, err
			}
			if completion, err = str(r, "completion"); err != nil {
				return nil, err
			}
		} else {
			ins, err := str(r, "instruction")
			if err != nil {
				return nil, err
			}
			if completion, err = str(r, "output"); err != nil {
				return nil, err
			}
			in, _ := r["input"].(string)
			format := AlpacaPrompt
			if strings.TrimSpace(in) == "" {
				format = AlpacaPromptNoInput
			}
			if pre, ok := r[PreambleKey].(string); ok && pre != "" {
				// A paraphrased preamble (augment.Template) before the frame's headers.
				format = pre + format[strings.Index(format, "\n\n### Instruction:"):]
			}
			if format == AlpacaPromptNoInput || !strings.Contains(format, "### Input:") {
				prompt, own = frame(format, ins)
			} else {
				prompt, own = frame(format, ins, in)
			}
		}
		if f == FormatCompletion {
			own = append(own, [2]int{0, len(prompt)})
		}
		own = append(own, [2]int{len(prompt), len(prompt) + len(completion)})
		// Tokenize prompt and completion together (as they will be seen), and
		// split them by offsets: a token that ends past the prompt is part of
		// the answer. Tokenizing them apart would add SentencePiece's dummy
		// prefix space to the completion.
		ids, offs := tok.EncodeOffsets(prompt+completion, true)
		ex = &Example{IDs: ids, Mask: make([]bool, len(ids)), Own: make([]bool, len(ids))}
		promptLen := 0
		for i, span := range offs {
			answer := span[1] > len(prompt)
			if !answer {
				promptLen = i + 1
			}
			ex.Mask[i] = answer || (o.TrainOnInputs && i > 0)
			for _, w := range own {
				if span[0] >= w[0] && span[1] <= w[1] && span[1] > span[0] {
					ex.Own[i] = true
				}
			}
		}
		ex.appendEOS(o.EOS)
		return ex.truncate(o, promptLen), nil
	case FormatChat, FormatShareGPT:
		msgs, extra, unsupervised, err := chatMessages(r, f)
		if err != nil {
			return nil, err
		}
		ids, mask, own, err := tok.ChatMasks(msgs, extra, func(turn int) bool { return !unsupervised[turn] })
		if err != nil {
			return nil, err
		}
		if o.TrainOnInputs {
			for i := range mask {
				mask[i] = i > 0
			}
		}
		ex = &Example{IDs: ids, Mask: mask, Own: own}
		return ex.truncate(rightTruncation(o), 0), nil
	case FormatTokens:
		ids, err := intList(r["input_ids"])
		if err != nil {
			return nil, fmt.Errorf("column \"input_ids\": %v", err)
		}
		ex = &Example{IDs: make([]int32, len(ids)), Mask: make([]bool, len(ids))}
		var labels []int64
		if l, ok := r["labels"]; ok && l != nil {
			if labels, err = intList(l); err != nil || len(labels) != len(ids) {
				return nil, fmt.Errorf("column \"labels\" must be a list as long as input_ids")
			}
		}
		for i, id := range ids {
			if id < 0 || id >= int64(tok.VocabSize()) {
				return nil, fmt.Errorf("input_ids[%d] = %d is outside the vocabulary of %d", i, id, tok.VocabSize())
			}
			ex.IDs[i] = int32(id)
			ex.Mask[i] = i > 0 && (labels == nil || labels[i] >= 0)
		}
		return ex.truncate(rightTruncation(o), 0), nil
	}
	return nil, fmt.Errorf("unknown format %q", f)
}

// rightTruncation: conversations and token lists have no single prompt to
// shorten, so they lose their end.
func rightTruncation(o RenderOptions) RenderOptions {
	o.Truncation = "right"
	return o
}

func (e *Example) appendEOS(eos int32) {
	if eos >= 0 {
		e.IDs = append(e.IDs, eos)
		e.Mask = append(e.Mask, true)
		if e.Own != nil {
			e.Own = append(e.Own, false)
		}
	}
}

// Heads returns the examples cut to their first n tokens (views, no copy):
// what a window transform's data looks like where nothing is augmented
// (validation).
func Heads(examples []*Example, n int) []*Example {
	out := make([]*Example, len(examples))
	for i, e := range examples {
		if len(e.IDs) <= n {
			out[i] = e
			continue
		}
		h := &Example{IDs: e.IDs[:n], Mask: e.Mask[:n], Truncated: len(e.IDs) - n}
		if e.Own != nil {
			h.Own = e.Own[:n]
		}
		out[i] = h
	}
	return out
}

// frame fills a prompt format's %s verbs with args and returns the text and
// the byte spans the args occupy in it.
func frame(format string, args ...string) (string, [][2]int) {
	parts := strings.Split(format, "%s")
	var b strings.Builder
	var spans [][2]int
	for i, p := range parts {
		b.WriteString(p)
		if i < len(args) {
			spans = append(spans, [2]int{b.Len(), b.Len() + len(args[i])})
			b.WriteString(args[i])
		}
	}
	return b.String(), spans
}

// truncate cuts e to o.MaxSeqLen tokens. With "keep-answer" and a prompt of
// promptLen tokens, the start of the prompt goes first (keeping its first
// token, BOS), then the end of the answer.
func (e *Example) truncate(o RenderOptions, promptLen int) *Example {
	n := o.MaxSeqLen
	if n <= 0 || len(e.IDs) <= n {
		return e
	}
	e.Truncated = len(e.IDs) - n
	if o.Truncation != "right" && promptLen > 1 {
		excess := len(e.IDs) - n
		cut := min(excess, promptLen-1) // drop prompt tokens after the first
		e.IDs = append(e.IDs[:1:1], e.IDs[1+cut:]...)
		e.Mask = append(e.Mask[:1:1], e.Mask[1+cut:]...)
		if e.Own != nil {
			e.Own = append(e.Own[:1:1], e.Own[1+cut:]...)
		}
	}
	if len(e.IDs) > n {
		e.IDs, e.Mask = e.IDs[:n], e.Mask[:n]
		if e.Own != nil {
			e.Own = e.Own[:n]
		}
	}
	return e
}

func intList(v any) ([]int64, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("is %s, want a list of integers", kindOf(v))
	}
	out := make([]int64, len(l))
	for i, x := range l {
		switch n := x.(type) {
		case float64:
			out[i] = int64(n)
		case int64:
			out[i] = n
		case int32:
			out[i] = int64(n)
		default:
			return nil, fmt.Errorf("element %d is %s, want an integer", i, kindOf(x))
		}
	}
	return out, nil
}

var shareGPTRoles = map[string]string{"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
	"system": "system", "function_call": "assistant", "observation": "tool", "tool": "tool"}

// messageText is a message's content: a string, or a list of content parts
// of which the text ones are joined ({"type": "text", "text": …}, as HF chat
// data has it, or "value", as LlamaFactory's).
func messageText(v any) (string, error) {
	switch c := v.(type) {
	case string:
		return c, nil
	case []any:
		var b strings.Builder
		for j, p := range c {
			pm, ok := p.(map[string]any)
			if !ok {
				return "", fmt.Errorf("part %d is %s, want an object", j, kindOf(p))
			}
			if typ, _ := pm["type"].(string); typ != "" && typ != "text" {
				return "", fmt.Errorf("part %d has type %q: only text is supported", j, typ)
			}
			text, ok := pm["text"].(string)
			if !ok {
				text, ok = pm["value"].(string)
			}
			if !ok {
				return "", fmt.Errorf("part %d has no text", j)
			}
			b.WriteString(text)
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("is %s, want a string or a list of text parts", kindOf(v))
}

// chatMessages converts a chat or ShareGPT row into template input: messages
// as ordered dicts, and the tools (a JSON string or list) when present. A
// message with "loss_weight": 0 is not supervised (the returned set).
func chatMessages(r Row, f Format) ([]any, map[string]any, map[int]bool, error) {
	key, roleKey, contentKey := "messages", "role", "content"
	if f == FormatShareGPT {
		key, roleKey, contentKey = "conversations", "from", "value"
	}
	list, ok := r[key].([]any)
	if !ok {
		return nil, nil, nil, fmt.Errorf("column %q is %s, want a list of messages", key, kindOf(r[key]))
	}
	var msgs []any
	unsupervised := map[int]bool{}
	for i, m := range list {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil, nil, nil, fmt.Errorf("%s[%d] is %s, want an object", key, i, kindOf(m))
		}
		role, _ := mm[roleKey].(string)
		content, err := messageText(mm[contentKey])
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s[%d] %q: %v", key, i, contentKey, err)
		}
		if w, ok := mm["loss_weight"].(float64); ok && w == 0 {
			unsupervised[i] = true
		}
		if f == FormatShareGPT {
			mapped, ok := shareGPTRoles[role]
			if !ok {
				return nil, nil, nil, fmt.Errorf("%s[%d]: unknown ShareGPT role %q", key, i, role)
			}
			role = mapped
		} else if role == "" {
			return nil, nil, nil, fmt.Errorf("%s[%d] has no role", key, i)
		}
		msgs = append(msgs, &tokenizer.Dict{Keys: []string{"role", "content"}, M: map[string]any{"role": role, "content": content}})
	}
	extra := map[string]any{}
	switch t := r["tools"].(type) {
	case string:
		if strings.TrimSpace(t) != "" {
			v, err := tokenizer.ParseJSONOrdered([]byte(t))
			if err != nil {
				return nil, nil, nil, fmt.Errorf("column \"tools\" is not valid JSON: %v", err)
			}
			extra["tools"] = v
		}
	case []any:
		raw, _ := json.Marshal(t)
		v, _ := tokenizer.ParseJSONOrdered(raw)
		extra["tools"] = v
	}
	return msgs, extra, unsupervised, nil
}

// kindOf names a value's type as a user reads a JSON or Parquet row: null,
// a string, a number, a list, an object, not Go's names for them.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "a number"
	case []byte:
		return "binary"
	case map[string]any:
		return "an object"
	}
	if reflect.ValueOf(v).Kind() == reflect.Slice {
		return "a list"
	}
	return "a value of an unsupported type"
}

// DroppedSummary says, most frequent first, how many rows were dropped and
// why: 2 rows dropped: column "text" is a list, want a string; 1 row
// dropped: column "text" is null.
func DroppedSummary(dropped map[string]int) string {
	reasons := make([]string, 0, len(dropped))
	for r := range dropped {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if a, b := dropped[reasons[i]], dropped[reasons[j]]; a != b {
			return a > b
		}
		return reasons[i] < reasons[j]
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		n := dropped[r]
		parts[i] = fmt.Sprintf("%d %s dropped: %s", n, map[bool]string{true: "row", false: "rows"}[n == 1], r)
	}
	return strings.Join(parts, "; ")
}
