package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// A small Jinja interpreter for the subset chat templates use, with the
// settings Hugging Face renders them with (trim_blocks, lstrip_blocks):
// text, {{ expr }}, {% if/elif/else %}, {% for x in xs %} (with loop.*),
// {% set %} (including namespace attributes), comments, whitespace control,
// filters (length, tojson, trim, upper, lower, default, join, first, last,
// reverse, string, int, list, capitalize), tests (defined, undefined, none,
// string, mapping, sequence, number, true, false), string and dict methods,
// slicing, and raise_exception / namespace / range.

// Dict is a JSON object that keeps its keys in order (tojson must reproduce it).
type Dict struct {
	Keys []string
	M    map[string]any
}

func (d *Dict) get(k string) (any, bool) { v, ok := d.M[k]; return v, ok }

type undefined struct{ name string }

type namespace struct{ *Dict }

// ParseJSONOrdered decodes JSON into Go values with *Dict for objects.
func ParseJSONOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return decodeOrdered(dec)
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			d := &Dict{M: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := d.M[k]; !dup {
					d.Keys = append(d.Keys, k)
				}
				d.M[k] = v
			}
			_, err := dec.Token()
			return d, err
		case '[':
			var l []any
			for dec.More() {
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token()
			if l == nil {
				l = []any{}
			}
			return l, err
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		f, err := t.Float64()
		return f, err
	}
	return tok, nil
}

// ---- lexer and parser ----

type node interface{}

type textNode struct{ s string }
type outNode struct{ e expr }
type ifNode struct {
	conds  []expr
	bodies [][]node
	els    []node
}
type forNode struct {
	vars []string
	iter expr
	body []node
	els  []node
}
type setNode struct {
	name, attr string
	e          expr
}

type segment struct {
	kind byte // 't' text, 'e' expression, 's' statement
	s    string
}

// lex splits the template into text, {{ }} and {% %} segments, applying
// whitespace control, trim_blocks and lstrip_blocks, and dropping comments.
func lex(src string) ([]segment, error) {
	var segs []segment
	i := 0
	trimNext := false
	for i < len(src) {
		j := indexAny3(src[i:])
		if j < 0 {
			segs = append(segs, segment{'t', src[i:]})
			break
		}
		text := src[i : i+j]
		open := src[i+j : i+j+2]
		k := i + j + 2
		strip := k < len(src) && src[k] == '-'
		plus := k < len(src) && src[k] == '+'
		if strip || plus {
			k++
		}
		if trimNext {
			text = strings.TrimLeftFunc(text, unicode.IsSpace)
			trimNext = false
		}
		if strip {
			text = strings.TrimRightFunc(text, unicode.IsSpace)
		} else if (open == "{%" || open == "{#") && !plus {
			// lstrip_blocks: spaces and tabs from the line start to a block tag
			if nl := strings.LastIndexByte(text, '\n'); strings.TrimLeft(text[nl+1:], " \t") == "" {
				text = text[:nl+1]
			}
		}
		if text != "" {
			segs = append(segs, segment{'t', text})
		}
		closeTok := map[string]string{"{{": "}}", "{%": "%}", "{#": "#}"}[open]
		end := strings.Index(src[k:], closeTok)
		if end < 0 {
			return nil, fmt.Errorf("chat template: unclosed %s", open)
		}
		body := src[k : k+end]
		after := k + end + 2
		if strings.HasSuffix(body, "-") {
			body = body[:len(body)-1]
			trimNext = true
		}
		switch open {
		case "{{":
			segs = append(segs, segment{'e', strings.TrimSpace(body)})
		case "{%":
			segs = append(segs, segment{'s', strings.TrimSpace(body)})
			if !trimNext && after < len(src) && src[after] == '\n' { // trim_blocks
				after++
			}
		case "{#":
			if !trimNext && after < len(src) && src[after] == '\n' {
				after++
			}
		}
		i = after
	}
	if trimNext && len(segs) > 0 && segs[len(segs)-1].kind == 't' {
		segs[len(segs)-1].s = strings.TrimLeftFunc(segs[len(segs)-1].s, unicode.IsSpace)
	}
	return segs, nil
}

func indexAny3(s string) int {
	best := -1
	for _, o := range []string{"{{", "{%", "{#"} {
		if j := strings.Index(s, o); j >= 0 && (best < 0 || j < best) {
			best = j
		}
	}
	return best
}

type tparser struct {
	segs []segment
	pos  int
}

// Template is a parsed chat template.
type Template struct{ body []node }

// ParseTemplate parses a Jinja chat template.
func ParseTemplate(src string) (*Template, error) {
	segs, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &tparser{segs: segs}
	body, stop, err := p.block()
	if err != nil {
		return nil, err
	}
	if stop != "" {
		return nil, fmt.Errorf("chat template: unexpected {%% %s %%}", stop)
	}
	return &Template{body: body}, nil
}

// block parses nodes until a statement that ends it (elif, else, endif, endfor)
// and returns that statement.
func (p *tparser) block() ([]node, string, error) {
	var nodes []node
	for p.pos < len(p.segs) {
		s := p.segs[p.pos]
		p.pos++
		switch s.kind {
		case 't':
			nodes = append(nodes, textNode{s.s})
		case 'e':
			e, err := parseExpr(s.s)
			if err != nil {
				return nil, "", err
			}
			nodes = append(nodes, outNode{e})
		case 's':
			word, rest, _ := strings.Cut(s.s, " ")
			switch word {
			case "elif", "else", "endif", "endfor":
				return nodes, s.s, nil
			case "if":
				n, err := p.ifStmt(rest)
				if err != nil {
					return nil, "", err
				}
				nodes = append(nodes, n)
			case "for":
				n, err := p.forStmt(rest)
				if err != nil {
					return nil, "", err
				}
				nodes = append(nodes, n)
			case "set":
				lhs, rhs, ok := strings.Cut(rest, "=")
				if !ok {
					return nil, "", fmt.Errorf("chat template: unsupported set %q", s.s)
				}
				e, err := parseExpr(strings.TrimSpace(rhs))
				if err != nil {
					return nil, "", err
				}
				name, attr, _ := strings.Cut(strings.TrimSpace(lhs), ".")
				nodes = append(nodes, setNode{name: name, attr: attr, e: e})
			default:
				return nil, "", fmt.Errorf("chat template: unsupported statement {%% %s %%}", s.s)
			}
		}
	}
	return nodes, "", nil
}

func (p *tparser) ifStmt(cond string) (node, error) {
	n := &ifNode{}
	for {
		e, err := parseExpr(cond)
		if err != nil {
			return nil, err
		}
		body, stop, err := p.block()
		if err != nil {
			return nil, err
		}
		n.conds, n.bodies = append(n.conds, e), append(n.bodies, body)
		switch {
		case strings.HasPrefix(stop, "elif "):
			cond = strings.TrimPrefix(stop, "elif ")
			continue
		case stop == "else":
			els, stop2, err := p.block()
			if err != nil {
				return nil, err
			}
			if stop2 != "endif" {
				return nil, fmt.Errorf("chat template: else ended by %q", stop2)
			}
			n.els = els
			return n, nil
		case stop == "endif":
			return n, nil
		}
		return nil, fmt.Errorf("chat template: if ended by %q", stop)
	}
}

func (p *tparser) forStmt(rest string) (node, error) {
	vars, iter, ok := strings.Cut(rest, " in ")
	if !ok {
		return nil, fmt.Errorf("chat template: bad for %q", rest)
	}
	n := &forNode{}
	for _, v := range strings.Split(vars, ",") {
		n.vars = append(n.vars, strings.TrimSpace(v))
	}
	e, err := parseExpr(strings.TrimSpace(iter))
	if err != nil {
		return nil, err
	}
	n.iter = e
	body, stop, err := p.block()
	if err != nil {
		return nil, err
	}
	n.body = body
	if stop == "else" {
		if n.els, stop, err = p.block(); err != nil {
			return nil, err
		}
	}
	if stop != "endfor" {
		return nil, fmt.Errorf("chat template: for ended by %q", stop)
	}
	return n, nil
}

// Render runs the template with the given variables.
func (t *Template) Render(vars map[string]any) (string, error) {
	sc := &scope{vars: map[string]any{
		"raise_exception": builtin(func(args []any, _ *Dict) (any, error) {
			msg := ""
			if len(args) > 0 {
				msg = pyStr(args[0])
			}
			return nil, templateError{msg}
		}),
		"namespace": builtin(func(_ []any, kw *Dict) (any, error) { return &namespace{kw}, nil }),
		"range": builtin(func(args []any, _ *Dict) (any, error) {
			var lo, hi int64
			if len(args) == 1 {
				hi, _ = args[0].(int64)
			} else if len(args) >= 2 {
				lo, _ = args[0].(int64)
				hi, _ = args[1].(int64)
			}
			if hi-lo > maxTemplateRange {
				return nil, fmt.Errorf("chat template: range of %d items (at most %d)", hi-lo, maxTemplateRange)
			}
			out := []any{}
			for i := lo; i < hi; i++ {
				out = append(out, i)
			}
			return out, nil
		}),
	}}
	child := &scope{vars: vars, parent: sc}
	var b output
	if err := run(t.body, &scope{vars: map[string]any{}, parent: child}, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Bounds on one rendering: a template is a user's file, and a loop over
// range(10**12) or a string doubled in a loop must end in an error, not in
// an hour or an out-of-memory crash.
const (
	maxTemplateSteps  = 1 << 24 // statements and outputs executed
	maxTemplateOutput = 1 << 26 // bytes of output, and of any one string or list
	maxTemplateRange  = 1 << 20 // items of range()
)

var errTemplateBudget = fmt.Errorf("chat template: rendering exceeds %d steps or %d MiB: does it loop without end?", maxTemplateSteps, maxTemplateOutput>>20)

// output is a rendering's text and the steps it has taken.
type output struct {
	strings.Builder
	steps int
}

// tick counts one step and fails past the budget.
func (o *output) tick() error {
	if o.steps++; o.steps > maxTemplateSteps || o.Len() > maxTemplateOutput {
		return errTemplateBudget
	}
	return nil
}

func run(nodes []node, sc *scope, b *output) error {
	for _, n := range nodes {
		if err := b.tick(); err != nil {
			return err
		}
		switch x := n.(type) {
		case textNode:
			b.WriteString(x.s)
		case outNode:
			v, err := eval(x.e, sc)
			if err != nil {
				return err
			}
			b.WriteString(pyStr(v))
		case *ifNode:
			done := false
			for i, c := range x.conds {
				v, err := eval(c, sc)
				if err != nil {
					return err
				}
				if truthy(v) {
					if err := run(x.bodies[i], sc, b); err != nil {
						return err
					}
					done = true
					break
				}
			}
			if !done && x.els != nil {
				if err := run(x.els, sc, b); err != nil {
					return err
				}
			}
		case *forNode:
			it, err := eval(x.iter, sc)
			if err != nil {
				return err
			}
			var items []any
			switch l := it.(type) {
			case []any:
				items = l
			case *Dict:
				for _, k := range l.Keys {
					items = append(items, k)
				}
			case string:
				for _, r := range l {
					items = append(items, string(r))
				}
			case nil, undefined:
			default:
				return fmt.Errorf("chat template: cannot loop over %s", typeName(it))
			}
			if len(items) == 0 && x.els != nil {
				if err := run(x.els, sc, b); err != nil {
					return err
				}
				continue
			}
			for i, item := range items {
				n := int64(len(items))
				loop := &Dict{Keys: []string{"index", "index0", "revindex", "revindex0", "first", "last", "length"}, M: map[string]any{
					"index": int64(i + 1), "index0": int64(i), "revindex": n - int64(i), "revindex0": n - int64(i) - 1,
					"first": i == 0, "last": i == len(items)-1, "length": n,
				}}
				inner := &scope{vars: map[string]any{"loop": loop}, parent: sc}
				if len(x.vars) == 1 {
					inner.vars[x.vars[0]] = item
				} else if tup, ok := item.([]any); ok {
					for k, name := range x.vars {
						if k < len(tup) {
							inner.vars[name] = tup[k]
						}
					}
				}
				if err := run(x.body, inner, b); err != nil {
					return err
				}
			}
		case setNode:
			v, err := eval(x.e, sc)
			if err != nil {
				return err
			}
			if x.attr != "" {
				obj, _ := sc.lookup(x.name)
				ns, ok := obj.(*namespace)
				if !ok {
					return fmt.Errorf("chat template: cannot set %s.%s: not a namespace", x.name, x.attr)
				}
				if _, dup := ns.M[x.attr]; !dup {
					ns.Keys = append(ns.Keys, x.attr)
				}
				ns.M[x.attr] = v
				continue
			}
			sc.vars[x.name] = v
		}
	}
	return nil
}
