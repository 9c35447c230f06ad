package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer encodes and decodes text. Encode keeps a cache of encoded words,
// so a Tokenizer must not be used by several goroutines at once: give each its
// own Clone (which shares the read-only tables).
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

	// Byte-level BPE (GPT-2 style) instead of SentencePiece-style:
	byteLevel    bool
	pre          preTokenizer
	ignoreMerges bool // a piece that is itself in the vocabulary is one token (Llama-3)
	nfc          bool // NFC-normalize text first (Qwen)
	cleanup      bool // decode applies clean_up_tokenization_spaces
	cache        map[string][]int32

	chatTemplate string
	chat         *Template
	splits       []*regexp.Regexp // preSplits: the file's own Split patterns

	added          []added      // added tokens matched in raw text before normalization, longest first
	firstByte      [2][256]bool // first bytes of added-token matches (raw, normalized): a quick filter
	BOS            int32        // −1 when absent
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

// preSplit runs the byte-level pre-tokenizer.
func (t *Tokenizer) preSplit(s string, emit func(string)) {
	if t.pre == preSplits {
		splitSequence(t.splits, s, emit)
		return
	}
	t.pre.split(s, emit)
}

// Clone returns a tokenizer sharing t's tables with an empty word cache, for
// use on another goroutine.
func (t *Tokenizer) Clone() *Tokenizer {
	c := *t
	c.cache = map[string][]int32{}
	return &c
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

// IsAdded reports whether id is one of tokenizer.json's added tokens
// (special or not: <|im_start|>, <think>…), which chat templates write.
func (t *Tokenizer) IsAdded(id int32) bool { return t.isAdded(id) }

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
	for _, a := range t.added {
		if m := a.match(t, a.normalized); m != "" {
			t.firstByte[normalized2i(a.normalized)][m[0]] = true
		}
	}
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
		if t.byteLevel {
			if t.nfc {
				seg = norm.NFC.String(seg)
			}
			t.preSplit(seg, func(piece string) { out = t.bpeByteLevel(out, piece) })
			return
		}
		t.splitAdded(t.normalize(seg), true, func(piece string, a *added) {
			if a != nil {
				out = append(out, a.id)
				return
			}
			out = t.bpeWords(out, piece)
		})
	})
	if special && t.addEOS && t.EOS >= 0 {
		out = append(out, t.EOS)
	}
	if t.unk < 0 {
		// Without an unk token and byte fallback, a piece outside the
		// vocabulary is dropped, as Hugging Face's tokenizers drop it.
		out = slices.DeleteFunc(out, func(id int32) bool { return id < 0 })
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
	if !t.firstByte[normalized2i(normalized)][s[0]] {
		return nil
	}
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
	ver        int // bumped on every merge into this symbol; -1 once merged away
}

// pairItem is a candidate merge of symbols left and right, valid while both
// still have the versions recorded here.
type pairItem struct {
	key         float64 // rank, or −score: smaller merges first
	left, right int
	vl, vr      int
	id          int32
}

// pairHeap orders candidates by key, then leftmost, as the reference
// implementations do.
type pairHeap []pairItem

func (h pairHeap) less(i, j int) bool {
	if h[i].key != h[j].key {
		return h[i].key < h[j].key
	}
	return h[i].left < h[j].left
}

func (h *pairHeap) push(it pairItem) {
	*h = append(*h, it)
	for i := len(*h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		(*h)[i], (*h)[p] = (*h)[p], (*h)[i]
		i = p
	}
}

func (h *pairHeap) pop() pairItem {
	old := *h
	top := old[0]
	n := len(old) - 1
	old[0] = old[n]
	*h = old[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.less(l, m) {
			m = l
		}
		if r < n && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		(*h)[i], (*h)[m] = (*h)[m], (*h)[i]
		i = m
	}
	return top
}

// bpeWords runs BPE word by word over SentencePiece-normalized text: a
// SentencePiece vocabulary has no piece with "▁" after another character, so
// no merge crosses the start of a word ("▁" after a non-"▁"), and the split is
// exact. Words are cached.
func (t *Tokenizer) bpeWords(out []int32, s string) []int32 {
	if t.cache == nil {
		t.cache = map[string][]int32{}
	}
	const mark = "▁"
	start := 0
	for i := len(mark); i <= len(s); {
		j := strings.Index(s[i:], mark)
		if j < 0 {
			break
		}
		i += j
		if !strings.HasSuffix(s[:i], mark) { // a word starts here
			out = t.bpeCached(out, s[start:i])
			start = i
		}
		i += len(mark)
	}
	return t.bpeCached(out, s[start:])
}

func (t *Tokenizer) bpeCached(out []int32, w string) []int32 {
	if ids, ok := t.cache[w]; ok {
		return append(out, ids...)
	}
	n := len(out)
	out = t.bpe(out, w)
	if len(t.cache) < 1<<16 {
		t.cache[w] = append([]int32(nil), out[n:]...)
	}
	return out
}

// bpe appends the ids of one normalized piece of text: one symbol per
// character, then repeatedly the best adjacent merge (lowest rank or highest
// score, leftmost on ties) until none applies. A heap of candidate pairs makes
// this O(n log n), so a long segment (SentencePiece models see whole lines)
// stays fast.
func (t *Tokenizer) bpe(out []int32, s string) []int32 {
	if s == "" {
		return out
	}
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
	var h pairHeap
	consider := func(l int) {
		if l < 0 || l >= len(syms) {
			return
		}
		r := syms[l].next
		if r >= len(syms) {
			return
		}
		if key, id, ok := t.pairKey(&syms[l], &syms[r]); ok {
			h.push(pairItem{key: key, left: l, right: r, vl: syms[l].ver, vr: syms[r].ver, id: id})
		}
	}
	for i := range syms {
		consider(i)
	}
	for len(h) > 0 {
		it := h.pop()
		l, r := it.left, it.right
		if syms[l].ver != it.vl || syms[r].ver != it.vr || syms[l].next != r {
			continue // stale: one side changed since this candidate was made
		}
		syms[l].id = it.id
		syms[l].text += syms[r].text
		syms[l].ver++
		syms[l].next = syms[r].next
		if syms[r].next < len(syms) {
			syms[syms[r].next].prev = l
		}
		syms[r].ver = -1
		consider(syms[l].prev)
		consider(l)
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
	if t.byteLevel {
		return t.decodeBytes(ids, skipSpecial)
	}
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

// decodeBytes is the byte-level decoder: each token's characters map back to
// bytes (a token with characters outside the map, such as an added token,
// contributes its own text), then the bytes are read as UTF-8.
func (t *Tokenizer) decodeBytes(ids []int32, skipSpecial bool) string {
	var buf []byte
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.pieces) || (skipSpecial && t.IsSpecial(id)) {
			continue
		}
		p := t.pieces[id]
		mark := len(buf)
		for _, r := range p {
			b, ok := runeToByte[r]
			if !ok {
				buf = append(buf[:mark], p...)
				break
			}
			buf = append(buf, b)
		}
	}
	s := decodeByteLevel(string(buf))
	if t.cleanup {
		s = cleanUp(s)
	}
	return s
}

func hexByte(p string) byte {
	v, _ := strconv.ParseUint(p[3:5], 16, 8)
	return byte(v)
}

func errorf(format string, args ...any) error { return fmt.Errorf("tokenizer: "+format, args...) }

func normalized2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Fingerprint identifies what the tokenizer produces (vocabulary, merges,
// added tokens, flags, chat template), for cache keys.
func (t *Tokenizer) Fingerprint() string {
	h := sha256.New()
	for _, p := range t.pieces {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	ranks := make([]string, 0, len(t.ranks))
	for k, v := range t.ranks {
		ranks = append(ranks, fmt.Sprintf("%d,%d:%d", k[0], k[1], v))
	}
	sort.Strings(ranks)
	for _, r := range ranks {
		io.WriteString(h, r)
	}
	for _, s := range t.scores {
		fmt.Fprintf(h, "%g,", s)
	}
	for _, a := range t.added {
		fmt.Fprintf(h, "%q%d%v%v%v%v", a.content, a.id, a.special, a.lstrip, a.rstrip, a.normalized)
	}
	fmt.Fprintf(h, "%v%v%v%v%v%v%d%d%v%v%d", t.byteLevel, t.pre, t.ignoreMerges, t.nfc, t.prefix, t.fallb, t.BOS, t.EOS, t.addBOS, t.addEOS, t.unk)
	io.WriteString(h, t.chatTemplate)
	return hex.EncodeToString(h.Sum(nil))
}
