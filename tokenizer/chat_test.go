package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/lowrank/lowrank/internal/testassets"
)

// TestChatReference renders every conversation of chat_public.jsonl with the
// model's own template and compares text and ids with the reference.
func TestChatReference(t *testing.T) {
	f, err := os.Open(testassets.Path(t, "tokenizers/reference/chat_public.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dirs := map[string]string{"llama3": "tokenizers/llama3", "qwen3": "tokenizers/qwen3", "phi-3-mini": "tokenizers/phi-3-mini"}
	toks := map[string]*Tokenizer{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	ok, total, disputed := map[string]int{}, map[string]int{}, 0
	for sc.Scan() {
		var head struct {
			Tokenizer           string          `json:"tokenizer"`
			Messages            json.RawMessage `json:"messages"`
			AddGenerationPrompt bool            `json:"add_generation_prompt"`
			Kwargs              json.RawMessage `json:"template_kwargs"`
			Text                string          `json:"text"`
			IDs                 []int32         `json:"ids"`
			Note                string          `json:"note"`
			PythonText          string          `json:"python_jinja2_text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
			t.Fatal(err)
		}
		if head.Note != "" {
			// Disputed between @huggingface/jinja and Python's jinja2 (what HF
			// transformers runs); lowrank follows Python's string semantics.
			if head.PythonText == "" {
				disputed++
				continue
			}
			head.Text, head.IDs = head.PythonText, nil
		}
		rel, known := dirs[head.Tokenizer]
		if !known {
			t.Fatalf("unknown tokenizer %q", head.Tokenizer)
		}
		tok := toks[head.Tokenizer]
		if tok == nil {
			if tok, err = FromDir(testassets.Path(t, rel)); err != nil {
				t.Fatal(err)
			}
			toks[head.Tokenizer] = tok
		}
		msgs, err := ParseJSONOrdered(head.Messages)
		if err != nil {
			t.Fatal(err)
		}
		extra := map[string]any{}
		if len(head.Kwargs) > 0 {
			kw, err := ParseJSONOrdered(head.Kwargs)
			if err != nil {
				t.Fatal(err)
			}
			if d, ok := kw.(*Dict); ok {
				for _, k := range d.Keys {
					extra[k] = d.M[k]
				}
			}
		}
		total[head.Tokenizer]++
		text, err := tok.ApplyChatTemplate(msgs, head.AddGenerationPrompt, extra)
		if err != nil {
			t.Errorf("%s: %v", head.Tokenizer, err)
			continue
		}
		if text != head.Text {
			t.Errorf("%s (add_generation_prompt=%v):\n got  %q\n want %q", head.Tokenizer, head.AddGenerationPrompt, text, head.Text)
			continue
		}
		if ids := tok.Encode(text, false); head.IDs != nil && !slices.Equal(ids, head.IDs) {
			t.Errorf("%s: ids of the rendered text differ:\n got  %v\n want %v", head.Tokenizer, ids, head.IDs)
			continue
		}
		ok[head.Tokenizer]++
	}
	for name := range total {
		t.Logf("%s: %d/%d conversations render and tokenize like the reference", name, ok[name], total[name])
	}
	t.Logf("%d disputed records skipped", disputed)
}
