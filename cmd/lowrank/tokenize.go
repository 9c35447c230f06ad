package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lowrank/lowrank/tokenizer"
	"github.com/spf13/cobra"
)

func newTokenize() *cobra.Command {
	var (
		modelPath, chatFile, chatTemplate string
		asJSON, noSpecial, addGen         bool
	)
	c := &cobra.Command{
		Use:   "tokenize --model M [--json] [--no-special] TEXT|-  |  --chat CONV.json [--add-generation-prompt]",
		Short: "Print the token ids of a text, or render a conversation with the chat template",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if modelPath == "" {
				return usageError{cmd: "tokenize", err: fmt.Errorf("--model is required")}
			}
			if chatFile != "" {
				return tokenizeChat(cmd, modelPath, chatFile, chatTemplate, addGen, asJSON)
			}
			if len(args) != 1 {
				return usageError{cmd: "tokenize", err: fmt.Errorf("give a TEXT (or - for stdin), or --chat CONV.json")}
			}
			text := args[0]
			if text == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				text = string(b)
			}
			tok, err := tokenizer.Load(modelPath)
			if err != nil {
				return err
			}
			ids, offsets := tok.EncodeOffsets(text, !noSpecial)
			out := cmd.OutOrStdout()
			if asJSON {
				pieces := make([]string, len(ids))
				for i, id := range ids {
					pieces[i] = tok.Piece(id)
				}
				return writeJSON(out, map[string]any{"ids": ids, "pieces": pieces, "offsets": offsets, "count": len(ids)})
			}
			s := make([]string, len(ids))
			for i, id := range ids {
				s[i] = fmt.Sprint(id)
			}
			fmt.Fprintln(out, strings.Join(s, " "))
			return nil
		},
	}
	c.Flags().StringVar(&modelPath, "model", "", "model directory, tokenizer directory, .gguf file, or hub name ORG/NAME[@REV][:TAG]")
	c.Flags().BoolVar(&asJSON, "json", false, "print ids and pieces as JSON")
	c.Flags().BoolVar(&noSpecial, "no-special", false, "do not add BOS/EOS")
	c.Flags().StringVar(&chatFile, "chat", "", "a conversation: JSON list of {role, content} (or {messages, tools})")
	c.Flags().BoolVar(&addGen, "add-generation-prompt", false, "end the rendering with the assistant's header")
	c.Flags().StringVar(&chatTemplate, "chat-template", "", "template to use instead of the model's: chatml, llama3, simple, or a file")
	return c
}

func tokenizeChat(cmd *cobra.Command, modelPath, chatFile, chatTemplate string, addGen, asJSON bool) error {
	tok, err := tokenizer.Load(modelPath)
	if err != nil {
		return err
	}
	if chatTemplate != "" {
		if err := tok.UseChatTemplate(chatTemplate); err != nil {
			return err
		}
	}
	text, err := renderChatFile(tok, chatFile, addGen)
	if err != nil {
		return err
	}
	ids := tok.Encode(text, false)
	out := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(out, map[string]any{"text": text, "ids": ids, "count": len(ids)})
	}
	fmt.Fprint(out, text)
	if !strings.HasSuffix(text, "\n") {
		fmt.Fprintln(out)
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	fmt.Fprintln(out, strings.Join(s, " "))
	return nil
}

// renderChatFile applies tok's chat template to the conversation in file: a
// JSON list of {role, content} messages, or an object with "messages" and
// the template's other variables (tools…).
func renderChatFile(tok *tokenizer.Tokenizer, file string, addGen bool) (string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	conv, err := tokenizer.ParseJSONOrdered(raw)
	if err != nil {
		return "", fmt.Errorf("%s: not valid JSON: %v", file, err)
	}
	messages, extra := conv, map[string]any{}
	if d, ok := conv.(*tokenizer.Dict); ok { // {"messages": [...], "tools": [...]}
		messages = d.M["messages"]
		for _, k := range d.Keys {
			if k != "messages" {
				extra[k] = d.M[k]
			}
		}
	}
	list, ok := messages.([]any)
	if !ok {
		return "", fmt.Errorf("%s: want a JSON list of messages or an object with \"messages\"", file)
	}
	for i, m := range list {
		d, ok := m.(*tokenizer.Dict)
		if !ok {
			return "", fmt.Errorf("%s: message %d is not an object with role and content", file, i)
		}
		if _, ok := d.M["role"].(string); !ok {
			return "", fmt.Errorf("%s: message %d has no role", file, i)
		}
	}
	text, err := tok.ApplyChatTemplate(messages, addGen, extra)
	if err != nil {
		return "", fmt.Errorf("%s: %v", file, err)
	}
	return text, nil
}
