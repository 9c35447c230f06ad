package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// EncodeOffsets is Encode that also returns, for every id, the byte span
// [start, end) of text it came from (special tokens added by the
// post-processor get an empty span at 0 or len(text)).
func (t *Tokenizer) EncodeOffsets(text string, special bool) ([]int32, [][2]int) {
	var ids []int32
	var offs [][2]int
	if special && t.addBOS && t.BOS >= 0 {
		ids, offs = append(ids, t.BOS), append(offs, [2]int{0, 0})
	}
	pos := 0 // byte offset in text of the current raw segment
	t.splitAdded(text, false, func(seg string, a *added) {
		if a != nil {
			start := strings.Index(text[pos:], a.content) + pos
			ids, offs = append(ids, a.id), append(offs, [2]int{start, start + len(a.content)})
			pos = start + len(a.content)
			return
		}
		start := strings.Index(text[pos:], seg) + pos
		pos = start + len(seg)
		if t.byteLevel {
			ids, offs = t.offsetsByteLevel(ids, offs, seg, start)
			return
		}
		ids, offs = t.offsetsSPM(ids, offs, seg, start)
	})
	if special && t.addEOS && t.EOS >= 0 {
		ids, offs = append(ids, t.EOS), append(offs, [2]int{len(text), len(text)})
	}
	return ids, offs
}

func (t *Tokenizer) offsetsByteLevel(ids []int32, offs [][2]int, seg string, base int) ([]int32, [][2]int) {
	src := seg
	if t.nfc && !norm.NFC.IsNormalString(seg) {
		src = norm.NFC.String(seg) // spans are then those of the normalized text, clamped
	}
	p := 0
	t.preSplit(src, func(piece string) {
		n := len(ids)
		ids = t.bpeByteLevel(ids, piece)
		q := p
		for _, id := range ids[n:] {
			l := utf8.RuneCountInString(t.pieces[id]) // one mapped character per byte
			offs = append(offs, [2]int{base + min(q, len(seg)), base + min(q+l, len(seg))})
			q += l
		}
		p += len(piece)
	})
	return ids, offs
}

func (t *Tokenizer) offsetsSPM(ids []int32, offs [][2]int, seg string, base int) ([]int32, [][2]int) {
	// The normalized text and, for each of its bytes, the original offset.
	n := t.normalize(seg)
	orig := make([]int, len(n)+1)
	i, j := 0, 0
	if t.prefix && seg != "" {
		for k := 0; k < len("▁"); k++ {
			orig[k] = 0 // the dummy prefix is zero-width
		}
		j = len("▁")
	}
	for i < len(seg) {
		if seg[i] == ' ' {
			for k := 0; k < len("▁"); k++ {
				orig[j+k] = i
			}
			j += len("▁")
			i++
			continue
		}
		orig[j] = i
		i++
		j++
	}
	orig[len(n)] = len(seg)
	p := 0
	t.splitAdded(n, true, func(piece string, a *added) {
		if a != nil {
			m := a.match(t, true)
			s := strings.Index(n[p:], m) + p
			ids, offs = append(ids, a.id), append(offs, [2]int{base + orig[s], base + orig[s+len(m)]})
			p = s + len(m)
			return
		}
		s := strings.Index(n[p:], piece) + p
		k := len(ids)
		ids = t.bpeWords(ids, piece)
		q := s
		for _, id := range ids[k:] {
			l := len(t.pieces[id])
			if t.isByteToken(id) {
				l = 1
			}
			e := min(q+l, len(n))
			offs = append(offs, [2]int{base + orig[q], base + orig[e]})
			q = e
		}
		p = s + len(piece)
	})
	return ids, offs
}

func (t *Tokenizer) isByteToken(id int32) bool {
	p := t.pieces[id]
	return len(p) == 6 && strings.HasPrefix(p, "<0x") && p[5] == '>' && t.byteID[hexByte(p)] == id
}

// AssistantMask renders a conversation once, tokenizes it, and marks the tokens
// the loss should supervise: each assistant message's content, located in the
// rendering in order (templates change the text around it, and may trim it),
// plus what ends the turn, so that a fine-tuned model learns to stop: the
// template's end-of-turn marker (<|im_end|>, <|eot_id|>, <|end|>, </s>…) in
// as many tokens as this vocabulary writes it, or, where the template has
// none, the model's EOS appended after the last answer. It fails, naming
// the turn, when an assistant message cannot be located.
func (t *Tokenizer) AssistantMask(messages []any, extra map[string]any) ([]int32, []bool, error) {
	return t.AssistantMaskTurns(messages, extra, nil)
}

// AssistantMaskTurns is AssistantMask supervising only the assistant turns
// (by message index) for which supervise returns true (nil: all of them), as
// datasets with a per-message loss weight ask.
func (t *Tokenizer) AssistantMaskTurns(messages []any, extra map[string]any, supervise func(turn int) bool) ([]int32, []bool, error) {
	ids, mask, _, err := t.ChatMasks(messages, extra, supervise)
	return ids, mask, err
}

// ChatMasks is AssistantMaskTurns that also returns own: which tokens
// hold the messages' own text (any role), not the template's (role
// headers, markers, the system prompt it adds): what augmentation may edit.
func (t *Tokenizer) ChatMasks(messages []any, extra map[string]any, supervise func(turn int) bool) (ids []int32, mask, own []bool, err error) {
	text, err := t.ApplyChatTemplate(messages, false, extra)
	if err != nil {
		return nil, nil, nil, err
	}
	ids, offs := t.EncodeOffsets(text, false)
	mask = make([]bool, len(ids))
	own = make([]bool, len(ids))
	inside := func(start, end int) {
		for i, o := range offs {
			if o[0] >= start && o[1] <= end && o[1] > o[0] {
				own[i] = true
			}
		}
	}
	pos := 0
	for turn, m := range messages {
		d, ok := m.(*Dict)
		if !ok {
			return nil, nil, nil, fmt.Errorf("message %d is not an object", turn)
		}
		role, _ := d.M["role"].(string)
		content, _ := d.M["content"].(string)
		start, end := -1, -1
		for _, c := range []string{content, strings.TrimSpace(content)} {
			if c == "" {
				continue
			}
			if k := strings.Index(text[pos:], c); k >= 0 {
				start, end = pos+k, pos+k+len(c)
				break
			}
		}
		if start >= 0 {
			inside(start, end)
		}
		if role != "assistant" {
			// Other turns anchor the search (so an answer is not found inside the
			// question); one the template rewrote simply does not move the anchor.
			if start >= 0 {
				pos = end
			}
			continue
		}
		if start < 0 {
			return nil, nil, nil, fmt.Errorf("assistant message %d could not be located in the rendered conversation", turn)
		}
		if supervise != nil && !supervise(turn) {
			pos = end
			continue
		}
		last := -1
		for i, o := range offs {
			if o[0] < end && o[1] > start {
				mask[i] = true
				last = i
			}
		}
		switch s, e, ok := t.turnEnd(text, end, ids, offs, last); {
		case ok:
			for i, o := range offs {
				if o[0] < e && o[1] > s {
					mask[i] = true
				}
			}
			pos = e
			continue
		case turn == len(messages)-1 && t.EOS >= 0:
			// No marker: the model's EOS ends the conversation (as the
			// prompt/completion formats end with it).
			ids = append(ids, t.EOS)
			mask = append(mask, true)
			own = append(own, false)
			offs = append(offs, [2]int{len(text), len(text)})
		}
		pos = end
	}
	return ids, mask, own, nil
}

// endMarkers are the end-of-turn markers of common chat templates, which
// a vocabulary may or may not hold as one token.
var endMarkers = []string{"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|END_OF_TURN_TOKEN|>", "<|eot|>", "</s>"}

// turnEnd finds what ends an assistant turn whose content ends at byte end
// of the rendering (its last token is last): after whitespace, one of
// endMarkers or the EOS token's text, or else an added token right after
// the content. It returns the marker's byte span.
func (t *Tokenizer) turnEnd(text string, end int, ids []int32, offs [][2]int, last int) (int, int, bool) {
	rest := strings.TrimLeft(text[end:], " \t\r\n")
	at := len(text) - len(rest)
	eos := ""
	if t.EOS >= 0 && int(t.EOS) < len(t.pieces) {
		eos = t.pieces[t.EOS]
	}
	for _, m := range append(endMarkers[:len(endMarkers):len(endMarkers)], eos) {
		if m != "" && strings.HasPrefix(rest, m) {
			return at, at + len(m), true
		}
	}
	for i := last + 1; i >= 1 && i < len(ids); i++ {
		if t.isAdded(ids[i]) {
			return offs[i][0], offs[i][1], true
		}
		if strings.TrimSpace(text[offs[i][0]:offs[i][1]]) != "" {
			break
		}
	}
	return 0, 0, false
}

// TurnEnd says what ends an assistant turn under the chat template, as
// AssistantMask supervises it: the marker's text and how many tokens this
// vocabulary writes it in, or the EOS token's text with eos set when the
// template has no marker. It renders a probe conversation to find out.
func (t *Tokenizer) TurnEnd() (marker string, tokens int, eos bool, err error) {
	probe := []any{&Dict{Keys: []string{"role", "content"}, M: map[string]any{"role": "user", "content": "Hello there"}},
		&Dict{Keys: []string{"role", "content"}, M: map[string]any{"role": "assistant", "content": "General Kenobi"}}}
	text, err := t.ApplyChatTemplate(probe, false, nil)
	if err != nil {
		return "", 0, false, err
	}
	end := strings.LastIndex(text, "General Kenobi")
	if end < 0 {
		return "", 0, false, fmt.Errorf("chat template: the assistant's message is not in its rendering")
	}
	end += len("General Kenobi")
	ids, offs := t.EncodeOffsets(text, false)
	last := -1
	for i, o := range offs {
		if o[0] < end {
			last = i
		}
	}
	if s, e, ok := t.turnEnd(text, end, ids, offs, last); ok {
		for _, o := range offs {
			if o[0] < e && o[1] > s {
				tokens++
			}
		}
		return text[s:e], tokens, false, nil
	}
	if t.EOS >= 0 && int(t.EOS) < len(t.pieces) {
		return t.pieces[t.EOS], 1, true, nil
	}
	return "", 0, false, nil
}

func (t *Tokenizer) isAdded(id int32) bool {
	for _, a := range t.added {
		if a.id == id {
			return true
		}
	}
	return false
}
