package tokenizer

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tokenizer encodes and decodes text.
type Tokenizer struct {
	pieces []string         // id → piece
	ids    map[string]int32 // piece → id
	// Merge order: HF files give ranked merges (lower rank merges first); GGUF
	// SentencePiece vocabularies give scores (higher score merges first).
	ranks  map[[2]int32]int32 // (left, right) → rank
	scores []float32
	byteID [256]int32 // <0xHH> token per byte, −1 where absent
	fallb  bool       // byte fallback
	unk    int32
	prefix bool // prepend "▁" to each text segment (SentencePiece's dummy prefix)
	strip  bool // decoding strips one leading space

	added          []added // added tokens matched in raw text before normalization, longest first
	BOS            int32   // −1 when absent
	EOS            int32
	addBOS, addEOS bool
}

type added struct {
	content    string
	id         int32
	special    bool
	lstrip     bool // swallow whitespace before a match
	rstrip     bool // swallow whitespace after a match
	normalized bool // matched in the normalized text (its content normalized too)
}

// VocabSize returns the number of ids.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// Piece returns the string of one id.
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// ID returns the id of a piece.
func (t *Tokenizer) ID(piece string) (int32, bool) {
	id, ok := t.ids[piece]
	return id, ok
}

// IsSpecial reports whether id is a special (control) token.
func (t *Tokenizer) IsSpecial(id int32) bool {
	for _, a := range t.added {
		if a.id == id && a.special {
			return true
		}
	}
	return false
}

func (t *Tokenizer) init() {
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	for i, p := range t.pieces {
		if len(p) == 6 && strings.HasPrefix(p, "<0x") && p[5] == '>' {
			if v, err := strconv.ParseUint(p[3:5], 16, 8); err == nil {
				t.byteID[v] = int32(i)
			}
		}
	}
	// longest match first
	sort.SliceStable(t.added, func(a, b int) bool { return len(t.added[a].content) > len(t.added[b].content) })
}

// Encode returns the ids of text; with special it adds the BOS/EOS tokens the
// tokenizer's post-processor adds. Added tokens written in the text are
// recognized as Hugging Face does: those marked normalized=false in the raw
// text, the others inside each normalized segment.
func (t *Tokenizer) Encode(text string, special bool) []int32 {
	var out []int32
	if special && t.addBOS && t.BOS >= 0 {
		out = append(out, t.BOS)
	}
	t.splitAdded(text, false, func(seg string, a *added) {
		if a != nil {
			out = append(out, a.id)
			return
		}
		t.splitAdded(t.normalize(seg), true, func(piece string, a *added) {
			if a != nil {
				out = append(out, a.id)
				return
			}
			out = t.bpe(out, piece)
		})
	})
	if special && t.addEOS && t.EOS >= 0 {
		out = append(out, t.EOS)
	}
	return out
}

// normalize applies the SentencePiece normalizer: spaces become "▁", and a
// "▁" is prepended (the dummy prefix) to a non-empty segment.
func (t *Tokenizer) normalize(s string) string {
	if s == "" {
		return s
	}
	s = strings.ReplaceAll(s, " ", "▁")
	if t.prefix {
		s = "▁" + s
	}
	return s
}

// splitAdded calls emit for each run of text between matches of the added
// tokens whose normalized flag equals normalized, and for each match, honouring
// lstrip/rstrip.
func (t *Tokenizer) splitAdded(s string, normalized bool, emit func(seg string, a *added)) {
	start := 0
	for i := 0; i < len(s); {
		a := t.addedAt(s[i:], normalized)
		if a == nil {
			_, n := utf8.DecodeRuneInString(s[i:])
			i += n
			continue
		}
		seg := s[start:i]
		if a.lstrip {
			seg = strings.TrimRightFunc(seg, isSpace)
		}
		if seg != "" {
			emit(seg, nil)
		}
		emit("", a)
		i += len(a.match(t, normalized))
		if a.rstrip {
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if !isSpace(r) {
					break
				}
				i += n
			}
		}
		start = i
	}
	if start < len(s) {
		emit(s[start:], nil)
	}
}

func isSpace(r rune) bool { return unicode.IsSpace(r) || r == '▁' }

// match is the text an added token is found as: its content, normalized for
// normalized tokens.
func (a *added) match(t *Tokenizer, normalized bool) string {
	if normalized {
		return t.normalize(a.content)
	}
	return a.content
}

func (t *Tokenizer) addedAt(s string, normalized bool) *added {
	for i := range t.added {
		a := &t.added[i]
		if a.normalized != normalized || a.content == "" {
			continue
		}
		if strings.HasPrefix(s, a.match(t, normalized)) {
			return a
		}
	}
	return nil
}

// symbol is one node of the merge list.
type symbol struct {
	id         int32
	text       string
	prev, next int
}

// bpe appends the ids of one normalized piece of text.
func (t *Tokenizer) bpe(out []int32, s string) []int32 {
	if s == "" {
		return out
	}
	// One symbol per character; with ranked merges, a character outside the
	// vocabulary becomes its byte tokens right away.
	var syms []symbol
	for i := 0; i < len(s); {
		_, n := utf8.DecodeRuneInString(s[i:])
		ch := s[i : i+n]
		i += n
		if id, ok := t.ids[ch]; ok || t.scores != nil {
			if !ok {
				id = -1
			}
			syms = append(syms, symbol{id: id, text: ch})
			continue
		}
		syms = t.appendBytes(syms, ch)
	}
	for i := range syms {
		syms[i].prev, syms[i].next = i-1, i+1
	}
	// Repeatedly merge the best adjacent pair (lowest rank / highest score,
	// leftmost on ties).
	for {
		best, bestKey := -1, float64(0)
		for i := 0; i != len(syms) && i >= 0; i = syms[i].next {
			j := syms[i].next
			if j >= len(syms) {
				break
			}
			key, id, ok := t.pairKey(&syms[i], &syms[j])
			if ok && (best < 0 || key < bestKey) {
				best, bestKey = i, key
				_ = id
			}
		}
		if best < 0 {
			break
		}
		j := syms[best].next
		_, id, _ := t.pairKey(&syms[best], &syms[j])
		syms[best].id = id
		syms[best].text += syms[j].text
		syms[best].next = syms[j].next
		if syms[j].next < len(syms) {
			syms[syms[j].next].prev = best
		}
		syms[j].text = ""
	}
	for i := 0; i < len(syms); i = syms[i].next {
		if syms[i].id >= 0 {
			out = append(out, syms[i].id)
			continue
		}
		// Scores mode: a symbol outside the vocabulary becomes byte tokens.
		for _, b := range []byte(syms[i].text) {
			if id := t.byteID[b]; id >= 0 && t.fallb {
				out = append(out, id)
			} else {
				out = append(out, t.unk)
			}
		}
	}
	return out
}

func (t *Tokenizer) appendBytes(syms []symbol, ch string) []symbol {
	if !t.fallb {
		return append(syms, symbol{id: t.unk, text: ch})
	}
	for _, b := range []byte(ch) {
		id := t.byteID[b]
		if id < 0 {
			id = t.unk
		}
		syms = append(syms, symbol{id: id, text: string([]byte{b})})
	}
	return syms
}

// pairKey returns the merge priority of two adjacent symbols (smaller is
// better) and the merged id.
func (t *Tokenizer) pairKey(a, b *symbol) (float64, int32, bool) {
	if t.ranks != nil {
		if a.id < 0 || b.id < 0 {
			return 0, 0, false
		}
		r, ok := t.ranks[[2]int32{a.id, b.id}]
		if !ok {
			return 0, 0, false
		}
		id, ok := t.ids[a.text+b.text]
		return float64(r), id, ok
	}
	id, ok := t.ids[a.text+b.text]
	if !ok {
		return 0, 0, false
	}
	return -float64(t.scores[id]), id, true
}

// Decode returns the text of ids. Byte tokens are joined into UTF-8 (an
// invalid sequence becomes U+FFFD per byte); skipSpecial drops special tokens.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	var b strings.Builder
	var bytes []byte
	flush := func() {
		if len(bytes) == 0 {
			return
		}
		if utf8.Valid(bytes) {
			b.Write(bytes)
		} else {
			for range bytes {
				b.WriteString("\uFFFD")
			}
		}
		bytes = bytes[:0]
	}
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.pieces) {
			continue
		}
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		p := t.pieces[id]
		if len(p) == 6 && strings.HasPrefix(p, "<0x") && p[5] == '>' && t.byteID[hexByte(p)] == id {
			bytes = append(bytes, hexByte(p))
			continue
		}
		flush()
		b.WriteString(strings.ReplaceAll(p, "▁", " "))
	}
	flush()
	s := b.String()
	if t.strip {
		s = strings.TrimPrefix(s, " ")
	}
	return s
}

func hexByte(p string) byte {
	v, _ := strconv.ParseUint(p[3:5], 16, 8)
	return byte(v)
}

func errorf(format string, args ...any) error { return fmt.Errorf("tokenizer: "+format, args...) }
