package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

// loadChatTemplate reads chat_template from tokenizer_config.json (a string, or
// a list of named templates of which "default" is used).
func (t *Tokenizer) loadChatTemplate(dir string) error {
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
