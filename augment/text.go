package augment

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lowrank/lowrank/data"
)

// Text is text-level noise on the fields of a row, before tokenization:
// word-level (EDA's random swap and random deletion, each word with its
// probability) and character-level (each letter or digit with probability
// CharNoise swapped with the next, dropped, doubled by a random letter or
// its case flipped). Only the Fields are edited (ParseFields; nil: the
// prompt fields — prompt, instruction, input, user and system messages),
// so answers (code, SQL) are never altered unless asked. The row is
// rendered again from the edited text, so its loss mask is the edited
// text's.
type Text struct {
	Seed                 uint64
	WordSwap, WordDelete float64
	CharNoise            float64
	Fields               []string
}

const textKey = 0x74657874

// Key names the settings in a dataset's fingerprint.
func (t *Text) Key() string {
	return fmt.Sprintf("text seed=%d swap=%g delete=%g char=%g fields=%v", t.Seed, t.WordSwap, t.WordDelete, t.CharNoise, t.fields())
}

// The fields text noise may edit: row columns, then message roles (chat
// and ShareGPT names), in the order they are edited.
var (
	columnFields = []string{"prompt", "instruction", "input", "completion", "output", "text"}
	roleFields   = []string{"system", "user", "human", "assistant", "gpt"}
	promptSet    = []string{"prompt", "instruction", "input", "system", "user", "human"}
)

// ParseFields reads a field setting: "prompt" (prompt, instruction, input,
// system and user messages), "all" (answers too), or a comma-separated
// list of those names (e.g. "instruction,user").
func ParseFields(s string) ([]string, error) {
	switch s {
	case "", "prompt":
		return promptSet, nil
	case "all":
		return append(append([]string(nil), columnFields...), roleFields...), nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(columnFields, f) && !slices.Contains(roleFields, f) {
			return nil, fmt.Errorf("text fields: %q is not one of prompt, all, %s, %s", f, strings.Join(columnFields, ", "), strings.Join(roleFields, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

func (t *Text) fields() []string {
	if t.Fields == nil {
		return promptSet
	}
	return t.Fields
}

// Vary returns variant epoch of row index: a copy of r with its fields
// edited (r itself is not modified). It is a pure function of (Seed,
// epoch, index, r).
func (t *Text) Vary(epoch, index int, r data.Row) data.Row {
	rng := rand.New(rand.NewPCG(t.Seed^textKey, uint64(epoch)<<32|uint64(uint32(index))))
	out := make(data.Row, len(r))
	for k, v := range r {
		out[k] = v
	}
	fields := t.fields()
	for _, f := range columnFields { // a fixed order: the draws do not depend on map order
		if s, ok := out[f].(string); ok && slices.Contains(fields, f) {
			out[f] = t.edit(rng, s)
		}
	}
	for _, key := range []string{"messages", "conversations"} {
		list, ok := out[key].([]any)
		if !ok {
			continue
		}
		edited := make([]any, len(list))
		for i, m := range list {
			edited[i] = m
			mm, ok := m.(map[string]any)
			if !ok {
				continue
			}
			role, _ := mm["role"].(string)
			if from, ok := mm["from"].(string); ok {
				role = from
			}
			content, ok := mm["content"].(string)
			ck := "content"
			if !ok {
				content, ok = mm["value"].(string)
				ck = "value"
			}
			if !ok || !slices.Contains(fields, role) {
				continue
			}
			cp := make(map[string]any, len(mm))
			for k, v := range mm {
				cp[k] = v
			}
			cp[ck] = t.edit(rng, content)
			edited[i] = cp
		}
		out[key] = edited
	}
	return out
}

// edit applies the word and character noise to s, keeping its whitespace.
func (t *Text) edit(r *rand.Rand, s string) string {
	// Words and the whitespace after each: deleting a word deletes its space.
	type word struct{ w, sep string }
	var words []word
	lead := len(s) - len(strings.TrimLeftFunc(s, unicode.IsSpace))
	rest := s[lead:]
	for rest != "" {
		i := strings.IndexFunc(rest, unicode.IsSpace)
		if i < 0 {
			words = append(words, word{rest, ""})
			break
		}
		j := i + len(rest[i:]) - len(strings.TrimLeftFunc(rest[i:], unicode.IsSpace))
		words = append(words, word{rest[:i], rest[i:j]})
		rest = rest[j:]
	}
	if len(words) == 0 {
		return s
	}
	if t.WordDelete > 0 && len(words) > 1 {
		kept := words[:0:0]
		for _, w := range words {
			if r.Float64() >= t.WordDelete {
				kept = append(kept, w)
			}
		}
		if len(kept) == 0 { // EDA keeps one word
			kept = append(kept, words[r.IntN(len(words))])
		}
		words = kept
	}
	if t.WordSwap > 0 && len(words) > 1 {
		for i := range words {
			if r.Float64() < t.WordSwap {
				j := r.IntN(len(words))
				words[i].w, words[j].w = words[j].w, words[i].w
			}
		}
	}
	var b strings.Builder
	b.WriteString(s[:lead])
	for _, w := range words {
		if t.CharNoise > 0 {
			b.WriteString(t.chars(r, w.w))
		} else {
			b.WriteString(w.w)
		}
		b.WriteString(w.sep)
	}
	return b.String()
}

// chars applies character noise to one word.
func (t *Text) chars(r *rand.Rand, w string) string {
	rs := []rune(w)
	var out []rune
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		if !(unicode.IsLetter(c) || unicode.IsDigit(c)) || r.Float64() >= t.CharNoise {
			out = append(out, c)
			continue
		}
		switch r.IntN(4) {
		case 0: // swap with the next
			if i+1 < len(rs) {
				out = append(out, rs[i+1], c)
				i++
			} else {
				out = append(out, c)
			}
		case 1: // drop
		case 2: // insert a letter before it
			out = append(out, rune('a'+r.IntN(26)), c)
		case 3: // flip the case
			if unicode.IsUpper(c) {
				out = append(out, unicode.ToLower(c))
			} else {
				out = append(out, unicode.ToUpper(c))
			}
		}
	}
	if !utf8.ValidString(string(out)) {
		return w
	}
	return string(out)
}

// Template samples the part of the prompt a template writes from a list of
// paraphrases: a chat row's system message (replaced, or added first when
// the row has none) and an Alpaca row's preamble ("Below is an
// instruction…"). Each variant draws from (Seed, epoch, index).
type Template struct {
	Seed    uint64
	Prompts []string
}

const templateKey = 0x74706c

// Key names the settings in a dataset's fingerprint.
func (t *Template) Key() string {
	return fmt.Sprintf("template seed=%d prompts=%q", t.Seed, t.Prompts)
}

// Vary returns variant epoch of row index with a sampled paraphrase (r is
// not modified).
func (t *Template) Vary(epoch, index int, r data.Row) data.Row {
	if len(t.Prompts) == 0 {
		return r
	}
	rng := rand.New(rand.NewPCG(t.Seed^templateKey, uint64(epoch)<<32|uint64(uint32(index))))
	p := t.Prompts[rng.IntN(len(t.Prompts))]
	out := make(data.Row, len(r))
	for k, v := range r {
		out[k] = v
	}
	if _, ok := r["instruction"]; ok {
		out[data.PreambleKey] = p
		return out
	}
	for _, key := range []string{"messages", "conversations"} {
		list, ok := r[key].([]any)
		if !ok {
			continue
		}
		roleKey, contentKey := "role", "content"
		if key == "conversations" {
			roleKey, contentKey = "from", "value"
		}
		msgs := append([]any(nil), list...)
		replaced := false
		for i, m := range msgs {
			if mm, ok := m.(map[string]any); ok && mm[roleKey] == "system" {
				cp := make(map[string]any, len(mm))
				for k, v := range mm {
					cp[k] = v
				}
				cp[contentKey] = p
				msgs[i], replaced = cp, true
				break
			}
		}
		if !replaced {
			msgs = append([]any{map[string]any{roleKey: "system", contentKey: p}}, msgs...)
		}
		out[key] = msgs
	}
	return out
}

// Vary chains row transforms (nil ones skipped) into one; nil if none.
func Vary(fs ...func(epoch, index int, r data.Row) data.Row) func(epoch, index int, r data.Row) data.Row {
	var set []func(epoch, index int, r data.Row) data.Row
	for _, f := range fs {
		if f != nil {
			set = append(set, f)
		}
	}
	if len(set) == 0 {
		return nil
	}
	return func(epoch, index int, r data.Row) data.Row {
		for _, f := range set {
			r = f(epoch, index, r)
		}
		return r
	}
}
