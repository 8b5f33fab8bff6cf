package tfjs

import (
	"fmt"
	"strconv"
	"strings"
)

// The model files of nsfwjs are browserify bundles whose one module is
// `e.exports={...}` (the model JSON as a JavaScript object literal: bare
// keys, numbers such as .5) or `m.exports="..."` (a weight shard in
// base64). literal parses such a literal into JSON-like Go values:
// map[string]any, []any, string, float64, bool and nil.

// exportedLiteral finds the first `.exports=` followed by an object or
// string literal in src and parses that literal.
func exportedLiteral(src []byte, what string) (any, error) {
	s := string(src)
	for off := 0; ; {
		i := strings.Index(s[off:], ".exports=")
		if i < 0 {
			return nil, fmt.Errorf("tfjs: %s: no `exports=` literal found: %w", what, ErrFormat)
		}
		j := off + i + len(".exports=")
		if j < len(s) && (s[j] == '{' || s[j] == '"') {
			p := &litParser{s: s, pos: j}
			v := p.value(0)
			if p.err != nil {
				return nil, fmt.Errorf("tfjs: %s: %v: %w", what, p.err, ErrFormat)
			}
			return v, nil
		}
		off = j
	}
}

// maxDepth bounds nesting, so that hostile input cannot exhaust the stack.
const maxDepth = 64

type litParser struct {
	s   string
	pos int
	err error // sticky: the first error; later calls return zero values
}

func (p *litParser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("offset %d: "+format, append([]any{p.pos}, args...)...)
	}
}

func (p *litParser) skipSpace() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *litParser) peek() byte {
	p.skipSpace()
	if p.pos >= len(p.s) {
		return 0
	}
	return p.s[p.pos]
}

func (p *litParser) expect(c byte) {
	if p.peek() != c {
		p.fail("want %q", c)
		return
	}
	p.pos++
}

func (p *litParser) value(depth int) any {
	if p.err != nil {
		return nil
	}
	if depth > maxDepth {
		p.fail("nested deeper than %d", maxDepth)
		return nil
	}
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"' || c == '\'':
		return p.str()
	case c == '!': // minifiers write true as !0 and false as !1
		p.pos++
		switch p.peek() {
		case '0':
			p.pos++
			return true
		case '1':
			p.pos++
			return false
		}
		p.fail("want !0 or !1")
		return nil
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		switch w := p.ident(); w {
		case "true":
			return true
		case "false":
			return false
		case "null":
			return nil
		default:
			p.fail("unexpected %q", w)
			return nil
		}
	}
}

func (p *litParser) object(depth int) any {
	p.expect('{')
	m := map[string]any{}
	for p.err == nil {
		if p.peek() == '}' {
			p.pos++
			return m
		}
		var key string
		if c := p.peek(); c == '"' || c == '\'' {
			key = p.str()
		} else {
			key = p.ident()
			if key == "" {
				p.fail("want a key")
				return nil
			}
		}
		p.expect(':')
		m[key] = p.value(depth + 1)
		if p.peek() == ',' {
			p.pos++
		} else if p.peek() != '}' {
			p.fail("want , or }")
		}
	}
	return nil
}

func (p *litParser) array(depth int) any {
	p.expect('[')
	a := []any{}
	for p.err == nil {
		if p.peek() == ']' {
			p.pos++
			return a
		}
		a = append(a, p.value(depth+1))
		if p.peek() == ',' {
			p.pos++
		} else if p.peek() != ']' {
			p.fail("want , or ]")
		}
	}
	return nil
}

func (p *litParser) ident() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (p.pos > start && c >= '0' && c <= '9') {
			p.pos++
			continue
		}
		break
	}
	return p.s[start:p.pos]
}

func (p *litParser) number() any {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+' {
			p.pos++
			continue
		}
		break
	}
	f, err := strconv.ParseFloat(p.s[start:p.pos], 64)
	if err != nil {
		p.fail("number %q", p.s[start:p.pos])
		return nil
	}
	return f
}

// str parses a quoted string with JavaScript's common escapes.
func (p *litParser) str() string {
	q := p.s[p.pos]
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch {
		case c == q:
			return b.String()
		case c == '\\':
			if p.pos >= len(p.s) {
				p.fail("unterminated string")
				return ""
			}
			e := p.s[p.pos]
			p.pos++
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				if p.pos+4 > len(p.s) {
					p.fail("short \\u escape")
					return ""
				}
				r, err := strconv.ParseUint(p.s[p.pos:p.pos+4], 16, 16)
				if err != nil {
					p.fail("bad \\u escape")
					return ""
				}
				b.WriteRune(rune(r))
				p.pos += 4
			default: // \" \' \\ \/ and any other character stand for themselves
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	p.fail("unterminated string")
	return ""
}
