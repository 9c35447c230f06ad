package data

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/lowrank/lowrank/tokenizer"
)

// Report describes a dataset.
type Report struct {
	Path      string         `json:"path"`
	Columns   []string       `json:"columns"`
	Format    Format         `json:"format"`
	Rows      int            `json:"rows"`
	Tokens    *TokenStats    `json:"tokens,omitempty"` // with a tokenizer
	Dropped   map[string]int `json:"dropped,omitempty"`
	Example   string         `json:"example,omitempty"`  // first example, supervised tokens in [brackets]
	TurnEnd   *TurnEnd       `json:"turn_end,omitempty"` // chat data: what ends an assistant turn
	Formatted string         `json:"-"`
}

// TurnEnd is what ends an assistant turn of chat data, supervised so that
// the model learns to stop (tokenizer.Tokenizer.TurnEnd).
type TurnEnd struct {
	Marker string `json:"marker"`
	Tokens int    `json:"tokens"` // how many tokens the vocabulary writes it in
	EOS    bool   `json:"eos"`    // the template has no marker: the model's EOS, after the last answer
}

// TokenStats summarizes rendered examples.
type TokenStats struct {
	Examples   int     `json:"examples"`
	Total      int     `json:"total"`
	Supervised int     `json:"supervised"`
	Coverage   float64 `json:"mask_coverage"` // supervised / total
	Min        int     `json:"min"`
	Median     int     `json:"median"`
	P95        int     `json:"p95"`
	Max        int     `json:"max"`
	Truncated  int     `json:"truncated"`
}

// Inspect reads a dataset once: its columns, detected format and row count,
// and with a tokenizer the token statistics, mask coverage and the first
// example rendered with its supervised tokens marked. Examples that fail to
// render or have no supervised token are counted by reason, not fatal. It
// reads what Load would read with lo (columns, split, text unit, rendering).
func Inspect(path string, tok *tokenizer.Tokenizer, lo LoadOptions) (*Report, error) {
	columns, o := lo.Columns, lo.Render
	src, err := OpenWith(path, SourceOptions{Split: lo.splitOf(path), TextUnit: lo.TextUnit})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	rep := &Report{Path: path, Dropped: map[string]int{}}
	var lengths []int
	st := &TokenStats{}
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if rep.Rows == 0 {
			if err := CheckColumns(r, columns); err != nil {
				return nil, fmt.Errorf("data: %s: %v", src.Where(), err)
			}
		}
		r = MapColumns(r, columns)
		if rep.Rows == 0 {
			for k := range r {
				rep.Columns = append(rep.Columns, k)
			}
			sort.Strings(rep.Columns)
			if rep.Format, err = Detect(r); err != nil {
				return nil, fmt.Errorf("data: %s: %v", src.Where(), err)
			}
		}
		rep.Rows++
		if tok == nil {
			continue
		}
		limit := o.MaxSeqLen
		o.MaxSeqLen = 0
		ex, err := Render(r, rep.Format, tok, o)
		o.MaxSeqLen = limit
		if err != nil {
			rep.Dropped[firstLine(err.Error())]++
			continue
		}
		if limit > 0 && len(ex.IDs) > limit {
			st.Truncated++
			ex = ex.truncate(o, 0)
		}
		if ex.Supervised() == 0 {
			rep.Dropped["no supervised tokens"]++
			continue
		}
		if rep.Example == "" {
			rep.Example = Show(tok, ex)
		}
		lengths = append(lengths, len(ex.IDs))
		st.Total += len(ex.IDs)
		st.Supervised += ex.Supervised()
	}
	if rep.Rows == 0 {
		return nil, fmt.Errorf("data: %s has no rows", path)
	}
	if tok != nil && (rep.Format == FormatChat || rep.Format == FormatShareGPT) {
		if m, n, eos, err := tok.TurnEnd(); err == nil && m != "" {
			rep.TurnEnd = &TurnEnd{Marker: m, Tokens: n, EOS: eos}
		}
	}
	if tok != nil && len(lengths) > 0 {
		sort.Ints(lengths)
		st.Examples = len(lengths)
		st.Min, st.Max = lengths[0], lengths[len(lengths)-1]
		st.Median, st.P95 = lengths[len(lengths)/2], lengths[min(len(lengths)-1, len(lengths)*95/100)]
		st.Coverage = float64(st.Supervised) / float64(st.Total)
		rep.Tokens = st
	}
	if len(rep.Dropped) == 0 {
		rep.Dropped = nil
	}
	return rep, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Show renders an example as its tokens with the supervised ones in
// [brackets]; each token's text is what it adds to the decoded prefix.
func Show(tok *tokenizer.Tokenizer, ex *Example) string {
	var b strings.Builder
	prev := ""
	for i := range ex.IDs {
		cur := tok.Decode(ex.IDs[:i+1], false)
		p := strings.TrimPrefix(cur, prev)
		prev = cur
		if ex.Mask[i] {
			b.WriteString("[" + p + "]")
		} else {
			b.WriteString(p)
		}
	}
	return b.String()
}
