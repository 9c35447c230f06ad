package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Byte-level BPE (GPT-2, Llama-3, Qwen, StarCoder/SmolLM): text is split into
// pieces by a pre-tokenizer pattern, each piece's UTF-8 bytes are mapped to
// printable characters (GPT-2's bytes_to_unicode), and ranked merges run on
// those characters.

// byteToRune is GPT-2's reversible map from bytes to printable characters.
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := map[rune]byte{}
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

func mapBytes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteToRune[s[i]])
	}
	return b.String()
}

// preTokenizer names a split pattern implemented by hand (Go's regexp has no
// lookahead, which these patterns use).
type preTokenizer int

const (
	preGPT2        preTokenizer = iota // 's|'t|… | ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	preLlama3                          // (?i:'s|…)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
	preQwen2                           // as Llama-3 with \p{N} one digit at a time
	preStarCoder                       // each digit alone, then the GPT-2 pattern
	preDeepSeekLLM                     // a sequence of six splits (deepseek.go)
	preSplits                          // a tokenizer.json sequence of Split regexes Go can run (Tokenizer.splits)
)

// The pattern strings as they appear in tokenizer.json files.
const (
	patGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func isL(r rune) bool  { return unicode.IsLetter(r) }
func isN(r rune) bool  { return unicode.IsNumber(r) }
func isWS(r rune) bool { return unicode.IsSpace(r) }
func isNL(r rune) bool { return r == '\r' || r == '\n' }

// split cuts s into pieces: every match of the pattern, and (for the
// StarCoder digit split) every digit alone. Matches cover all of s.
func (p preTokenizer) split(s string, emit func(piece string)) {
	if p == preDeepSeekLLM {
		splitSequence(deepseekLLMSplits, s, emit)
		return
	}
	if p == preStarCoder {
		start := 0
		for i, r := range s {
			if isN(r) {
				if start < i {
					preGPT2.split(s[start:i], emit)
				}
				emit(s[i : i+utf8.RuneLen(r)])
				start = i + utf8.RuneLen(r)
			}
		}
		if start < len(s) {
			preGPT2.split(s[start:], emit)
		}
		return
	}
	for i := 0; i < len(s); {
		n := p.match(s[i:])
		emit(s[i : i+n])
		i += n
	}
}

// runAt returns the rune at the start of s and its size (size 0 at the end).
func runAt(s string) (rune, int) {
	if s == "" {
		return 0, 0
	}
	return utf8.DecodeRuneInString(s)
}

// span returns the length of the longest prefix of s whose runes satisfy f,
// taking at most max runes (max < 0: no limit).
func span(s string, f func(rune) bool, max int) int {
	n, k := 0, 0
	for n < len(s) && k != max {
		r, sz := utf8.DecodeRuneInString(s[n:])
		if !f(r) {
			break
		}
		n += sz
		k++
	}
	return n
}

var contractions = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// match returns the length of the pattern's match at the start of s (≥ 1 for
// non-empty s: the last alternative, \s+, or a lone character, always matches).
func (p preTokenizer) match(s string) int {
	// contractions
	for _, c := range contractions {
		if p == preGPT2 && strings.HasPrefix(s, c) {
			return len(c)
		}
		if p != preGPT2 && len(s) >= len(c) && strings.EqualFold(s[:len(c)], c) {
			return len(c)
		}
	}
	r, sz := runAt(s)
	other := func(r rune) bool { return !isWS(r) && !isL(r) && !isN(r) }
	if p == preGPT2 {
		// ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+
		for _, f := range []func(rune) bool{isL, isN, other} {
			if r == ' ' {
				if n := span(s[1:], f, -1); n > 0 {
					return 1 + n
				}
			}
			if n := span(s, f, -1); n > 0 {
				return n
			}
		}
	} else {
		// [^\r\n\p{L}\p{N}]?\p{L}+
		if !isNL(r) && !isL(r) && !isN(r) && sz > 0 {
			if n := span(s[sz:], isL, -1); n > 0 {
				return sz + n
			}
		}
		if n := span(s, isL, -1); n > 0 {
			return n
		}
		// \p{N}{1,3} or \p{N}
		maxDigits := 3
		if p == preQwen2 {
			maxDigits = 1
		}
		if n := span(s, isN, maxDigits); n > 0 {
			return n
		}
		// ?[^\s\p{L}\p{N}]+[\r\n]*
		if r == ' ' {
			if n := span(s[1:], other, -1); n > 0 {
				return 1 + n + span(s[1+n:], isNL, -1)
			}
		}
		if n := span(s, other, -1); n > 0 {
			return n + span(s[n:], isNL, -1)
		}
		// \s*[\r\n]+ : through the last newline of the whitespace run
		ws := span(s, isWS, -1)
		last := -1
		for i := 0; i < ws; {
			r, sz := utf8.DecodeRuneInString(s[i:])
			if isNL(r) {
				last = i + sz
			}
			i += sz
		}
		if last > 0 {
			return last
		}
	}
	// \s+(?!\S) | \s+
	if ws := span(s, isWS, -1); ws > 0 {
		if ws == len(s) {
			return ws
		}
		// leave the last whitespace character to the next piece, if there are two or more
		_, lastSz := utf8.DecodeLastRuneInString(s[:ws])
		if ws > lastSz {
			return ws - lastSz
		}
		return ws
	}
	if sz == 0 {
		return len(s)
	}
	return sz
}

// bpeByteLevel appends the ids of one pre-tokenized piece.
func (t *Tokenizer) bpeByteLevel(out []int32, piece string) []int32 {
	mapped := mapBytes(piece)
	if t.ignoreMerges {
		if id, ok := t.ids[mapped]; ok {
			return append(out, id)
		}
	}
	if ids, ok := t.cache[mapped]; ok {
		return append(out, ids...)
	}
	start := len(out)
	out = t.bpe(out, mapped)
	if len(t.cache) < 1<<16 {
		t.cache[mapped] = append([]int32(nil), out[start:]...)
	}
	return out
}

// decodeByteLevel reads bytes as UTF-8; an invalid byte becomes U+FFFD.
func decodeByteLevel(s string) string {
	buf := []byte(s)
	if utf8.Valid(buf) {
		return string(buf)
	}
	var b strings.Builder
	for i := 0; i < len(buf); {
		r, sz := utf8.DecodeRune(buf[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += sz
	}
	return b.String()
}

// cleanUp is transformers' clean_up_tokenization.
func cleanUp(s string) string {
	return strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'", " n't", "n't",
		" 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re").Replace(s)
}

func nfc(s string) string { return norm.NFC.String(s) }

// ByteLevelChar is the printable character GPT-2's byte-level BPE uses for b.
func ByteLevelChar(b byte) string { return string(byteToRune[b]) }

// NewByteLevel returns a byte-level BPE tokenizer with no merges: the 256
// bytes, then n−256 special tokens <|extra_i|> (the vocabulary of a model
// built in memory, for benchmarks and tests; n ≥ 258: the last two are
// BOS and EOS).
func NewByteLevel(n int) (*Tokenizer, error) {
	if n < 258 {
		return nil, errorf("a byte-level vocabulary needs at least 258 pieces, not %d", n)
	}
	t := &Tokenizer{ids: make(map[string]int32, n), BOS: int32(n - 2), EOS: int32(n - 1), unk: -1, byteLevel: true, pre: preGPT2,
		cache: map[string][]int32{}, ranks: map[[2]int32]int32{}, addBOS: true}
	t.pieces = make([]string, n)
	for i := range t.pieces {
		p := fmt.Sprintf("<|extra_%d|>", i)
		if i < 256 {
			p = ByteLevelChar(byte(i))
		}
		t.pieces[i], t.ids[p] = p, int32(i)
		if i >= 256 {
			t.added = append(t.added, added{content: p, id: int32(i), special: true})
		}
	}
	t.init()
	return t, nil
}
