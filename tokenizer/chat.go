package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ChatTemplate returns the model's chat template ("" when it has none).
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }

// SetChatTemplate replaces the chat template (a built-in or the user's).
func (t *Tokenizer) SetChatTemplate(src string) error {
	tpl, err := ParseTemplate(src)
	if err != nil {
		return err
	}
	t.chatTemplate, t.chat = src, tpl
	return nil
}

// ApplyChatTemplate renders a conversation (messages as decoded by
// ParseJSONOrdered: a list of dicts with role and content) with the model's
// template. extra holds further template variables (tools, enable_thinking…).
func (t *Tokenizer) ApplyChatTemplate(messages any, addGenerationPrompt bool, extra map[string]any) (string, error) {
	if t.chat == nil {
		return "", fmt.Errorf("tokenizer: the model has no chat template; choose one with --chat-template")
	}
	vars := map[string]any{
		"messages":              messages,
		"add_generation_prompt": addGenerationPrompt,
		"bos_token":             t.Piece(t.BOS),
		"eos_token":             t.Piece(t.EOS),
	}
	for k, v := range extra {
		vars[k] = v
	}
	return t.chat.Render(vars)
}

// loadChatTemplate reads chat_template.jinja, which newer transformers
// versions save and which takes precedence, else chat_template from
// tokenizer_config.json (a string, or a list of named templates of which
// "default" is used).
func (t *Tokenizer) loadChatTemplate(dir string) error {
	if src, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		if err := t.SetChatTemplate(string(src)); err != nil {
			return fmt.Errorf("%s: %v", filepath.Join(dir, "chat_template.jinja"), err)
		}
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil || len(cfg.ChatTemplate) == 0 {
		return nil
	}
	var src string
	if json.Unmarshal(cfg.ChatTemplate, &src) != nil {
		var named []struct {
			Name     string `json:"name"`
			Template string `json:"template"`
		}
		if json.Unmarshal(cfg.ChatTemplate, &named) == nil {
			for _, n := range named {
				if n.Name == "default" {
					src = n.Template
				}
			}
		}
	}
	if src == "" {
		return nil
	}
	if err := t.SetChatTemplate(src); err != nil {
		return fmt.Errorf("%s: %v", filepath.Join(dir, "tokenizer_config.json"), err)
	}
	return nil
}

// BuiltinTemplates are chat templates for models that ship none, by name.
var BuiltinTemplates = map[string]string{
	"chatml": "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{%- endfor %}" +
		"{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}",
	"llama3": "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}" +
		"{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}",
	"simple": "{%- for message in messages %}{{- message['role'] | capitalize + ': ' + message['content'] + '\n' }}{%- endfor %}" +
		"{%- if add_generation_prompt %}{{- 'Assistant: ' }}{%- endif %}",
}

// UseChatTemplate selects a built-in template by name, takes the template
// itself (text with "{{" or "{%", as chat_template in tokenizer_config.json
// holds it), or reads one from a file.
func (t *Tokenizer) UseChatTemplate(nameOrFile string) error {
	if src, ok := BuiltinTemplates[nameOrFile]; ok {
		return t.SetChatTemplate(src)
	}
	if strings.Contains(nameOrFile, "{{") || strings.Contains(nameOrFile, "{%") {
		return t.SetChatTemplate(nameOrFile)
	}
	raw, err := os.ReadFile(nameOrFile)
	if err != nil {
		return fmt.Errorf("--chat-template %q is neither a built-in (chatml, llama3, simple) nor a readable file: %v", nameOrFile, err)
	}
	return t.SetChatTemplate(string(raw))
}

// StreamDecoder turns ids into text as they arrive, holding back a partial
// UTF-8 sequence (a character spread over byte-fallback or byte-level tokens)
// until it is complete.
type StreamDecoder struct {
	t           *Tokenizer
	ids         []int32
	emitted     int
	skipSpecial bool
}

// NewStreamDecoder returns a streaming decoder after the given context ids
// (e.g. the prompt), which are not emitted.
func (t *Tokenizer) NewStreamDecoder(context []int32, skipSpecial bool) *StreamDecoder {
	d := &StreamDecoder{t: t, ids: append([]int32(nil), context...), skipSpecial: skipSpecial}
	d.emitted = len(t.Decode(d.ids, skipSpecial))
	return d
}

// Add appends one id and returns the newly completed text (possibly "").
func (d *StreamDecoder) Add(id int32) string {
	d.ids = append(d.ids, id)
	text := d.t.Decode(d.ids, d.skipSpecial)
	if strings.HasSuffix(text, "\uFFFD") || len(text) < d.emitted {
		return "" // an incomplete character: wait for its remaining bytes
	}
	out := text[d.emitted:]
	d.emitted = len(text)
	return out
}
