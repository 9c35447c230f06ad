package tokenizer

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type expr interface{}

type (
	lit     struct{ v any }
	nameRef struct{ n string }
	attrRef struct {
		x    expr
		name string
	}
	indexRef struct{ x, i expr }
	sliceRef struct{ x, lo, hi, step expr }
	callExpr struct {
		fn     expr
		args   []expr
		kwKeys []string
		kwVals []expr
	}
	filterExpr struct {
		x    expr
		name string
		args []expr
	}
	testExpr struct {
		x    expr
		name string
		neg  bool
	}
	binExpr struct {
		op   string
		l, r expr
	}
	notExpr  struct{ x expr }
	negExpr  struct{ x expr }
	condExpr struct{ c, a, b expr }
	listExpr struct{ items []expr }
	dictExpr struct{ keys, vals []expr }
)

// ---- expression tokens ----

type etok struct {
	kind byte // 'n' name, 's' string, 'i' int, 'f' float, 'o' operator, 0 end
	s    string
}

func etokens(s string) ([]etok, error) {
	var out []etok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					switch s[j] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					default:
						b.WriteByte(s[j])
					}
					continue
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string in %q", s)
			}
			out = append(out, etok{'s', b.String()})
			i = j + 1
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			kind := byte('i')
			if strings.Contains(s[i:j], ".") {
				kind = 'f'
			}
			out = append(out, etok{kind, s[i:j]})
			i = j
		case c == '_' || unicode.IsLetter(rune(c)):
			j := i
			for j < len(s) && (s[j] == '_' || unicode.IsLetter(rune(s[j])) || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			out = append(out, etok{'n', s[i:j]})
			i = j
		default:
			op := string(c)
			if i+1 < len(s) {
				if two := s[i : i+2]; two == "==" || two == "!=" || two == "<=" || two == ">=" || two == "//" || two == "**" {
					op = two
				}
			}
			if !strings.Contains("+-*/%~()[]{},:.|=<>!", op[:1]) {
				return nil, fmt.Errorf("unexpected %q in %q", op, s)
			}
			out = append(out, etok{'o', op})
			i += len(op)
		}
	}
	return append(out, etok{}), nil
}

type eparser struct {
	t   []etok
	pos int
	src string
}

func parseExpr(s string) (expr, error) {
	toks, err := etokens(s)
	if err != nil {
		return nil, fmt.Errorf("chat template: %v", err)
	}
	p := &eparser{t: toks, src: s}
	e, err := p.cond()
	if err != nil {
		return nil, fmt.Errorf("chat template: %v in %q", err, s)
	}
	if p.peek().kind != 0 {
		return nil, fmt.Errorf("chat template: unexpected %q in %q", p.peek().s, s)
	}
	return e, nil
}

func (p *eparser) peek() etok { return p.t[p.pos] }
func (p *eparser) next() etok { t := p.t[p.pos]; p.pos++; return t }
func (p *eparser) isOp(s string) bool {
	t := p.peek()
	return t.kind == 'o' && t.s == s
}
func (p *eparser) isName(s string) bool {
	t := p.peek()
	return t.kind == 'n' && t.s == s
}
func (p *eparser) expect(s string) error {
	if !p.isOp(s) {
		return fmt.Errorf("expected %q, found %q", s, p.peek().s)
	}
	p.pos++
	return nil
}

func (p *eparser) cond() (expr, error) {
	a, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.isName("if") {
		p.pos++
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		var b expr = lit{undefined{}}
		if p.isName("else") {
			p.pos++
			if b, err = p.cond(); err != nil {
				return nil, err
			}
		}
		return condExpr{c, a, b}, nil
	}
	return a, nil
}

func (p *eparser) or() (expr, error) {
	l, err := p.and()
	for err == nil && p.isName("or") {
		p.pos++
		var r expr
		if r, err = p.and(); err == nil {
			l = binExpr{"or", l, r}
		}
	}
	return l, err
}

func (p *eparser) and() (expr, error) {
	l, err := p.not()
	for err == nil && p.isName("and") {
		p.pos++
		var r expr
		if r, err = p.not(); err == nil {
			l = binExpr{"and", l, r}
		}
	}
	return l, err
}

func (p *eparser) not() (expr, error) {
	if p.isName("not") {
		p.pos++
		x, err := p.not()
		return notExpr{x}, err
	}
	return p.compare()
}

func (p *eparser) compare() (expr, error) {
	l, err := p.concat()
	for err == nil {
		t := p.peek()
		switch {
		case t.kind == 'o' && (t.s == "==" || t.s == "!=" || t.s == "<" || t.s == ">" || t.s == "<=" || t.s == ">="):
			p.pos++
			var r expr
			if r, err = p.concat(); err == nil {
				l = binExpr{t.s, l, r}
			}
		case p.isName("in"):
			p.pos++
			var r expr
			if r, err = p.concat(); err == nil {
				l = binExpr{"in", l, r}
			}
		case p.isName("not") && p.t[p.pos+1].kind == 'n' && p.t[p.pos+1].s == "in":
			p.pos += 2
			var r expr
			if r, err = p.concat(); err == nil {
				l = notExpr{binExpr{"in", l, r}}
			}
		case p.isName("is"):
			p.pos++
			neg := false
			if p.isName("not") {
				p.pos++
				neg = true
			}
			name := p.next()
			if name.kind != 'n' {
				return nil, fmt.Errorf("expected a test name after is")
			}
			l = testExpr{l, name.s, neg}
		default:
			return l, nil
		}
	}
	return l, err
}

func (p *eparser) concat() (expr, error) {
	l, err := p.additive()
	for err == nil && p.isOp("~") {
		p.pos++
		var r expr
		if r, err = p.additive(); err == nil {
			l = binExpr{"~", l, r}
		}
	}
	return l, err
}

func (p *eparser) additive() (expr, error) {
	l, err := p.mult()
	for err == nil && (p.isOp("+") || p.isOp("-")) {
		op := p.next().s
		var r expr
		if r, err = p.mult(); err == nil {
			l = binExpr{op, l, r}
		}
	}
	return l, err
}

func (p *eparser) mult() (expr, error) {
	l, err := p.unary()
	for err == nil && (p.isOp("*") || p.isOp("/") || p.isOp("//") || p.isOp("%")) {
		op := p.next().s
		var r expr
		if r, err = p.unary(); err == nil {
			l = binExpr{op, l, r}
		}
	}
	return l, err
}

func (p *eparser) unary() (expr, error) {
	if p.isOp("-") {
		p.pos++
		x, err := p.unary()
		return negExpr{x}, err
	}
	return p.postfix()
}

func (p *eparser) postfix() (expr, error) {
	x, err := p.primary()
	for err == nil {
		switch {
		case p.isOp("."):
			p.pos++
			n := p.next()
			if n.kind != 'n' && n.kind != 'i' {
				return nil, fmt.Errorf("expected an attribute name")
			}
			x = attrRef{x, n.s}
		case p.isOp("["):
			p.pos++
			var lo, hi, step expr
			isSlice := false
			if !p.isOp(":") {
				if lo, err = p.cond(); err != nil {
					return nil, err
				}
			}
			if p.isOp(":") {
				isSlice = true
				p.pos++
				if !p.isOp(":") && !p.isOp("]") {
					if hi, err = p.cond(); err != nil {
						return nil, err
					}
				}
				if p.isOp(":") {
					p.pos++
					if !p.isOp("]") {
						if step, err = p.cond(); err != nil {
							return nil, err
						}
					}
				}
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			if isSlice {
				x = sliceRef{x, lo, hi, step}
			} else {
				x = indexRef{x, lo}
			}
		case p.isOp("("):
			p.pos++
			c := callExpr{fn: x}
			for !p.isOp(")") {
				if p.peek().kind == 'n' && p.t[p.pos+1].kind == 'o' && p.t[p.pos+1].s == "=" {
					k := p.next().s
					p.pos++
					v, err := p.cond()
					if err != nil {
						return nil, err
					}
					c.kwKeys, c.kwVals = append(c.kwKeys, k), append(c.kwVals, v)
				} else {
					a, err := p.cond()
					if err != nil {
						return nil, err
					}
					c.args = append(c.args, a)
				}
				if !p.isOp(",") {
					break
				}
				p.pos++
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			x = c
		case p.isOp("|"):
			p.pos++
			n := p.next()
			if n.kind != 'n' {
				return nil, fmt.Errorf("expected a filter name")
			}
			f := filterExpr{x: x, name: n.s}
			if p.isOp("(") {
				p.pos++
				for !p.isOp(")") {
					if p.peek().kind == 'n' && p.t[p.pos+1].kind == 'o' && p.t[p.pos+1].s == "=" {
						p.pos += 2 // keyword arguments of filters (e.g. indent=) are positional here
					}
					a, err := p.cond()
					if err != nil {
						return nil, err
					}
					f.args = append(f.args, a)
					if !p.isOp(",") {
						break
					}
					p.pos++
				}
				if err := p.expect(")"); err != nil {
					return nil, err
				}
			}
			x = f
		default:
			return x, nil
		}
	}
	return x, err
}

func (p *eparser) primary() (expr, error) {
	t := p.next()
	switch t.kind {
	case 's':
		s := t.s
		for p.peek().kind == 's' { // adjacent literals concatenate
			s += p.next().s
		}
		return lit{s}, nil
	case 'i':
		v, err := strconv.ParseInt(t.s, 10, 64)
		return lit{v}, err
	case 'f':
		v, err := strconv.ParseFloat(t.s, 64)
		return lit{v}, err
	case 'n':
		switch t.s {
		case "true", "True":
			return lit{true}, nil
		case "false", "False":
			return lit{false}, nil
		case "none", "None":
			return lit{nil}, nil
		}
		return nameRef{t.s}, nil
	case 'o':
		switch t.s {
		case "(":
			e, err := p.cond()
			if err != nil {
				return nil, err
			}
			if p.isOp(",") { // a tuple: treat as a list
				items := []expr{e}
				for p.isOp(",") {
					p.pos++
					if p.isOp(")") {
						break
					}
					x, err := p.cond()
					if err != nil {
						return nil, err
					}
					items = append(items, x)
				}
				e = listExpr{items}
			}
			return e, p.expect(")")
		case "[":
			var l listExpr
			for !p.isOp("]") {
				x, err := p.cond()
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, x)
				if !p.isOp(",") {
					break
				}
				p.pos++
			}
			return l, p.expect("]")
		case "{":
			var d dictExpr
			for !p.isOp("}") {
				k, err := p.cond()
				if err != nil {
					return nil, err
				}
				if err := p.expect(":"); err != nil {
					return nil, err
				}
				v, err := p.cond()
				if err != nil {
					return nil, err
				}
				d.keys, d.vals = append(d.keys, k), append(d.vals, v)
				if !p.isOp(",") {
					break
				}
				p.pos++
			}
			return d, p.expect("}")
		}
	}
	return nil, fmt.Errorf("unexpected %q", t.s)
}

// ---- evaluation ----

type scope struct {
	vars   map[string]any
	parent *scope
}

func (s *scope) lookup(n string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[n]; ok {
			return v, true
		}
	}
	return nil, false
}

type builtin func(args []any, kw *Dict) (any, error)

type boundMethod struct {
	recv any
	name string
}

// templateError is raised by raise_exception.
type templateError struct{ msg string }

func (e templateError) Error() string { return "chat template: " + e.msg }

func truthy(v any) bool {
	switch x := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case int64:
		return x != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case *Dict:
		return len(x.Keys) > 0
	}
	return true
}

func eval(e expr, sc *scope) (any, error) {
	switch x := e.(type) {
	case lit:
		return x.v, nil
	case nameRef:
		if v, ok := sc.lookup(x.n); ok {
			return v, nil
		}
		return undefined{x.n}, nil
	case attrRef:
		v, err := eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		return getAttr(v, x.name), nil
	case indexRef:
		v, err := eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		i, err := eval(x.i, sc)
		if err != nil {
			return nil, err
		}
		return getIndex(v, i), nil
	case sliceRef:
		return evalSlice(x, sc)
	case callExpr:
		return evalCall(x, sc)
	case filterExpr:
		v, err := eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		var args []any
		for _, a := range x.args {
			av, err := eval(a, sc)
			if err != nil {
				return nil, err
			}
			args = append(args, av)
		}
		return applyFilter(x.name, v, args)
	case testExpr:
		v, err := eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		r, err := applyTest(x.name, v)
		return r != x.neg, err
	case notExpr:
		v, err := eval(x.x, sc)
		return !truthy(v), err
	case negExpr:
		v, err := eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		switch n := v.(type) {
		case int64:
			return -n, nil
		case float64:
			return -n, nil
		}
		return nil, fmt.Errorf("chat template: cannot negate %s", pyStr(v))
	case condExpr:
		c, err := eval(x.c, sc)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return eval(x.a, sc)
		}
		return eval(x.b, sc)
	case listExpr:
		l := []any{}
		for _, it := range x.items {
			v, err := eval(it, sc)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case dictExpr:
		d := &Dict{M: map[string]any{}}
		for i := range x.keys {
			k, err := eval(x.keys[i], sc)
			if err != nil {
				return nil, err
			}
			v, err := eval(x.vals[i], sc)
			if err != nil {
				return nil, err
			}
			ks := pyStr(k)
			if _, dup := d.M[ks]; !dup {
				d.Keys = append(d.Keys, ks)
			}
			d.M[ks] = v
		}
		return d, nil
	case binExpr:
		return evalBin(x, sc)
	}
	return nil, fmt.Errorf("chat template: cannot evaluate %T", e)
}

func getAttr(v any, name string) any {
	switch x := v.(type) {
	case *Dict:
		if r, ok := x.get(name); ok {
			return r
		}
		if name == "items" || name == "keys" || name == "values" || name == "get" {
			return boundMethod{x, name}
		}
	case *namespace:
		if r, ok := x.get(name); ok {
			return r
		}
	case string:
		return boundMethod{x, name}
	case []any:
		return boundMethod{x, name}
	}
	return undefined{name}
}

func getIndex(v, i any) any {
	switch x := v.(type) {
	case []any:
		if n, ok := i.(int64); ok {
			if n < 0 {
				n += int64(len(x))
			}
			if n >= 0 && n < int64(len(x)) {
				return x[n]
			}
		}
	case string:
		if n, ok := i.(int64); ok {
			r := []rune(x)
			if n < 0 {
				n += int64(len(r))
			}
			if n >= 0 && n < int64(len(r)) {
				return string(r[n])
			}
		}
	case *Dict:
		if s, ok := i.(string); ok {
			if r, ok := x.get(s); ok {
				return r
			}
		}
	}
	return undefined{}
}

func evalSlice(x sliceRef, sc *scope) (any, error) {
	v, err := eval(x.x, sc)
	if err != nil {
		return nil, err
	}
	var items []any
	str, isStr := v.(string)
	if isStr {
		for _, r := range str {
			items = append(items, string(r))
		}
	} else if l, ok := v.([]any); ok {
		items = l
	} else {
		return nil, fmt.Errorf("chat template: cannot slice %s", pyStr(v))
	}
	n := int64(len(items))
	bound := func(e expr, def int64) (int64, error) {
		if e == nil {
			return def, nil
		}
		b, err := eval(e, sc)
		if err != nil {
			return 0, err
		}
		i, ok := b.(int64)
		if !ok {
			return 0, fmt.Errorf("chat template: slice bound %s", pyStr(b))
		}
		return i, nil
	}
	step, err := bound(x.step, 1)
	if err != nil || step == 0 {
		return nil, fmt.Errorf("chat template: bad slice step")
	}
	var out []any
	if step > 0 {
		lo, _ := bound(x.lo, 0)
		hi, _ := bound(x.hi, n)
		lo, hi = clampIdx(lo, n, 0, n), clampIdx(hi, n, 0, n)
		for i := lo; i < hi; i += step {
			out = append(out, items[i])
		}
	} else {
		lo, _ := bound(x.lo, n-1)
		hi, _ := bound(x.hi, -n-1)
		lo, hi = clampIdx(lo, n, -1, n-1), clampIdx(hi, n, -1, n-1)
		for i := lo; i > hi; i += step {
			out = append(out, items[i])
		}
	}
	if isStr {
		var b strings.Builder
		for _, s := range out {
			b.WriteString(s.(string))
		}
		return b.String(), nil
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

func clampIdx(i, n, lo, hi int64) int64 {
	if i < 0 {
		i += n
	}
	return max(lo, min(hi, i))
}

func evalCall(c callExpr, sc *scope) (any, error) {
	fn, err := eval(c.fn, sc)
	if err != nil {
		return nil, err
	}
	var args []any
	for _, a := range c.args {
		v, err := eval(a, sc)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	kw := &Dict{M: map[string]any{}}
	for i, k := range c.kwKeys {
		v, err := eval(c.kwVals[i], sc)
		if err != nil {
			return nil, err
		}
		kw.Keys = append(kw.Keys, k)
		kw.M[k] = v
	}
	switch f := fn.(type) {
	case builtin:
		return f(args, kw)
	case boundMethod:
		return callMethod(f, args)
	case undefined:
		return nil, fmt.Errorf("chat template: %q is not a function", f.name)
	}
	return nil, fmt.Errorf("chat template: cannot call %s", pyStr(fn))
}

func argStr(args []any, i int) (string, bool) {
	if i >= len(args) {
		return "", false
	}
	s, ok := args[i].(string)
	return s, ok
}

func callMethod(m boundMethod, args []any) (any, error) {
	switch r := m.recv.(type) {
	case string:
		switch m.name {
		case "strip", "lstrip", "rstrip":
			cut, has := argStr(args, 0)
			f := func(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }
			if m.name == "lstrip" {
				f = func(s string) string { return strings.TrimLeftFunc(s, unicode.IsSpace) }
			} else if m.name == "rstrip" {
				f = func(s string) string { return strings.TrimRightFunc(s, unicode.IsSpace) }
			}
			if has {
				switch m.name {
				case "strip":
					return strings.Trim(r, cut), nil
				case "lstrip":
					return strings.TrimLeft(r, cut), nil
				default:
					return strings.TrimRight(r, cut), nil
				}
			}
			return f(r), nil
		case "startswith", "endswith":
			cands := args
			if l, ok := args[0].([]any); ok {
				cands = l
			}
			for _, c := range cands {
				s, _ := c.(string)
				if (m.name == "startswith" && strings.HasPrefix(r, s)) || (m.name == "endswith" && strings.HasSuffix(r, s)) {
					return true, nil
				}
			}
			return false, nil
		case "split":
			var parts []string
			sep, has := argStr(args, 0)
			maxSplit := int64(-1)
			if len(args) > 1 {
				maxSplit, _ = args[1].(int64)
			}
			if !has {
				parts = strings.Fields(r)
			} else if maxSplit >= 0 {
				parts = strings.SplitN(r, sep, int(maxSplit)+1)
			} else {
				parts = strings.Split(r, sep)
			}
			out := make([]any, len(parts))
			for i, p := range parts {
				out[i] = p
			}
			return out, nil
		case "upper":
			return strings.ToUpper(r), nil
		case "lower":
			return strings.ToLower(r), nil
		case "title":
			return strings.Title(r), nil //nolint:staticcheck // Python's str.title on ASCII text
		case "capitalize":
			return capitalize(r), nil
		case "replace":
			a, _ := argStr(args, 0)
			b, _ := argStr(args, 1)
			return strings.ReplaceAll(r, a, b), nil
		case "join":
			if l, ok := args[0].([]any); ok {
				var parts []string
				for _, v := range l {
					parts = append(parts, pyStr(v))
				}
				return strings.Join(parts, r), nil
			}
		}
	case *Dict:
		switch m.name {
		case "items":
			out := []any{}
			for _, k := range r.Keys {
				out = append(out, []any{k, r.M[k]})
			}
			return out, nil
		case "keys":
			out := []any{}
			for _, k := range r.Keys {
				out = append(out, k)
			}
			return out, nil
		case "values":
			out := []any{}
			for _, k := range r.Keys {
				out = append(out, r.M[k])
			}
			return out, nil
		case "get":
			k, _ := argStr(args, 0)
			if v, ok := r.get(k); ok {
				return v, nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return nil, nil
		}
	}
	return nil, fmt.Errorf("chat template: unsupported method %s on %s", m.name, pyStr(m.recv))
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + strings.ToLower(s[n:])
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case bool:
		if n {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func equal(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		if fb, ok := toFloat(b); ok {
			return fa == fb
		}
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case nil:
		return b == nil
	case undefined:
		_, ok := b.(undefined)
		return ok
	}
	return pyStr(a) == pyStr(b)
}

func evalBin(x binExpr, sc *scope) (any, error) {
	l, err := eval(x.l, sc)
	if err != nil {
		return nil, err
	}
	switch x.op {
	case "and":
		if !truthy(l) {
			return l, nil
		}
		return eval(x.r, sc)
	case "or":
		if truthy(l) {
			return l, nil
		}
		return eval(x.r, sc)
	}
	r, err := eval(x.r, sc)
	if err != nil {
		return nil, err
	}
	switch x.op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "~":
		ls, rs := pyStr(l), pyStr(r)
		if len(ls)+len(rs) > maxTemplateOutput {
			return nil, errTemplateBudget
		}
		return ls + rs, nil
	case "in":
		switch c := r.(type) {
		case string:
			s, _ := l.(string)
			return strings.Contains(c, s), nil
		case []any:
			for _, v := range c {
				if equal(v, l) {
					return true, nil
				}
			}
			return false, nil
		case *Dict:
			s, _ := l.(string)
			_, ok := c.get(s)
			return ok, nil
		}
		return false, nil
	case "+":
		if ls, ok := l.(string); ok {
			if rs, ok := r.(string); ok {
				if len(ls)+len(rs) > maxTemplateOutput {
					return nil, errTemplateBudget
				}
				return ls + rs, nil
			}
			return nil, fmt.Errorf("chat template: can only concatenate str (not %s) to str", typeName(r))
		}
		if ll, ok := l.([]any); ok {
			if rl, ok := r.([]any); ok {
				if len(ll)+len(rl) > maxTemplateOutput {
					return nil, errTemplateBudget
				}
				return append(append([]any{}, ll...), rl...), nil
			}
		}
	}
	a, aok := toFloat(l)
	b, bok := toFloat(r)
	if !aok || !bok {
		return nil, fmt.Errorf("chat template: unsupported operands for %s: %s, %s", x.op, typeName(l), typeName(r))
	}
	_, li := l.(int64)
	_, ri := r.(int64)
	ints := li && ri
	switch x.op {
	case "<":
		return a < b, nil
	case ">":
		return a > b, nil
	case "<=":
		return a <= b, nil
	case ">=":
		return a >= b, nil
	case "+", "-", "*":
		res := map[string]float64{"+": a + b, "-": a - b, "*": a * b}[x.op]
		if ints {
			return int64(res), nil
		}
		return res, nil
	case "/":
		return a / b, nil
	case "//":
		if ints {
			if b == 0 {
				return nil, fmt.Errorf("chat template: integer division by zero")
			}
			return int64(math.Floor(a / b)), nil
		}
		return math.Floor(a / b), nil
	case "%":
		if ints {
			if r.(int64) == 0 {
				return nil, fmt.Errorf("chat template: integer modulo by zero")
			}
			return l.(int64) % r.(int64), nil
		}
		return math.Mod(a, b), nil
	}
	return nil, fmt.Errorf("chat template: unknown operator %s", x.op)
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "str"
	case int64:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case nil:
		return "NoneType"
	case []any:
		return "list"
	case *Dict:
		return "dict"
	case undefined:
		return "Undefined"
	}
	return fmt.Sprintf("%T", v)
}

func applyTest(name string, v any) (bool, error) {
	switch name {
	case "defined":
		_, u := v.(undefined)
		return !u, nil
	case "undefined":
		_, u := v.(undefined)
		return u, nil
	case "none":
		return v == nil, nil
	case "string":
		_, ok := v.(string)
		return ok, nil
	case "mapping":
		_, ok := v.(*Dict)
		return ok, nil
	case "sequence", "iterable":
		switch v.(type) {
		case []any, string, *Dict:
			return true, nil
		}
		return false, nil
	case "number":
		switch v.(type) {
		case int64, float64:
			return true, nil
		}
		return false, nil
	case "integer":
		_, ok := v.(int64)
		return ok, nil
	case "boolean":
		_, ok := v.(bool)
		return ok, nil
	case "true":
		return v == true, nil
	case "false":
		return v == false, nil
	}
	return false, fmt.Errorf("chat template: unknown test %q", name)
}

func applyFilter(name string, v any, args []any) (any, error) {
	switch name {
	case "length", "count":
		switch x := v.(type) {
		case string:
			return int64(utf8.RuneCountInString(x)), nil
		case []any:
			return int64(len(x)), nil
		case *Dict:
			return int64(len(x.Keys)), nil
		}
		return int64(0), nil
	case "tojson":
		indent := -1
		if len(args) > 0 {
			if n, ok := args[0].(int64); ok {
				indent = int(min(max(n, -1), 64))
			}
		}
		var b strings.Builder
		pyJSON(&b, v, indent, 0)
		return b.String(), nil
	case "trim":
		return strings.TrimFunc(pyStr(v), unicode.IsSpace), nil
	case "upper":
		return strings.ToUpper(pyStr(v)), nil
	case "lower":
		return strings.ToLower(pyStr(v)), nil
	case "capitalize":
		return capitalize(pyStr(v)), nil
	case "string":
		return pyStr(v), nil
	case "int":
		switch x := v.(type) {
		case int64:
			return x, nil
		case float64:
			return int64(x), nil
		case string:
			n, _ := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			return n, nil
		}
		return int64(0), nil
	case "default", "d":
		if _, u := v.(undefined); u || (len(args) > 1 && truthy(args[1]) && !truthy(v)) {
			if len(args) > 0 {
				return args[0], nil
			}
			return "", nil
		}
		return v, nil
	case "join":
		sep := ""
		if len(args) > 0 {
			sep = pyStr(args[0])
		}
		l, _ := v.([]any)
		var parts []string
		for _, x := range l {
			parts = append(parts, pyStr(x))
		}
		return strings.Join(parts, sep), nil
	case "first", "last":
		l, _ := v.([]any)
		if len(l) == 0 {
			return undefined{}, nil
		}
		if name == "first" {
			return l[0], nil
		}
		return l[len(l)-1], nil
	case "reverse":
		if s, ok := v.(string); ok {
			r := []rune(s)
			for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
			return string(r), nil
		}
		l, _ := v.([]any)
		out := make([]any, len(l))
		for i, x := range l {
			out[len(l)-1-i] = x
		}
		return out, nil
	case "list":
		switch x := v.(type) {
		case []any:
			return x, nil
		case string:
			var out []any
			for _, r := range x {
				out = append(out, string(r))
			}
			return out, nil
		case *Dict:
			out := []any{}
			for _, k := range x.Keys {
				out = append(out, k)
			}
			return out, nil
		}
	case "items":
		if d, ok := v.(*Dict); ok {
			return callMethod(boundMethod{d, "items"}, nil)
		}
	case "dictsort":
		if d, ok := v.(*Dict); ok {
			keys := append([]string(nil), d.Keys...)
			sort.Strings(keys)
			out := []any{}
			for _, k := range keys {
				out = append(out, []any{k, d.M[k]})
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("chat template: unsupported filter %q", name)
}

// pyStr renders a value as Python's str() does.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case undefined:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return pyFloat(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *Dict:
		parts := make([]string, len(x.Keys))
		for i, k := range x.Keys {
			parts[i] = pyRepr(k) + ": " + pyRepr(x.M[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case *namespace:
		return "<Namespace>"
	}
	return fmt.Sprint(v)
}

func pyRepr(v any) string {
	if s, ok := v.(string); ok {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
	}
	return pyStr(v)
}

func pyFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// pyJSON writes v as Python's json.dumps(v, ensure_ascii=False) does (", " and
// ": " separators, or indent), keeping dict key order.
func pyJSON(b *strings.Builder, v any, indent, depth int) {
	nl := func(d int) {
		if indent >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*d))
		}
	}
	sep := ", "
	if indent >= 0 {
		sep = ","
	}
	switch x := v.(type) {
	case nil, undefined:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(pyFloat(x))
	case string:
		b.WriteByte('"')
		for _, r := range x {
			switch r {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			default:
				if r < 0x20 {
					fmt.Fprintf(b, `\u%04x`, r)
				} else {
					b.WriteRune(r)
				}
			}
		}
		b.WriteByte('"')
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(sep)
			}
			nl(depth + 1)
			pyJSON(b, e, indent, depth+1)
		}
		nl(depth)
		b.WriteByte(']')
	case *Dict:
		if len(x.Keys) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteByte('{')
		for i, k := range x.Keys {
			if i > 0 {
				b.WriteString(sep)
			}
			nl(depth + 1)
			pyJSON(b, k, indent, depth+1)
			b.WriteString(": ")
			pyJSON(b, x.M[k], indent, depth+1)
		}
		nl(depth)
		b.WriteByte('}')
	default:
		pyJSON(b, pyStr(v), indent, depth)
	}
}
