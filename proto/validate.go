package proto

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidName checks a collection name: 1..MaxNameLen bytes of a-z, 0-9, '_'
// and '-', the first a letter or a digit. Names are case-sensitive by
// construction (upper case is refused), safe in URL paths and storage keys
// without escaping. The HTTP layer checks {c} path segments with it too.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("empty collection name")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("collection name of %d bytes, limit is %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("collection name %q: byte %d is %q; use a-z, 0-9, '_' and '-', starting with a letter or digit", clip(name, 70), i, c)
		}
	}
	return nil
}

// ValidID checks an item id: 1..MaxIDBytes bytes of valid UTF-8. Any
// character is allowed; in a URL path the client percent-encodes it.
func ValidID(id string) error {
	if id == "" {
		return fmt.Errorf("empty id")
	}
	if len(id) > MaxIDBytes {
		return fmt.Errorf("id of %d bytes, limit is %d", len(id), MaxIDBytes)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("id is not valid UTF-8")
	}
	return nil
}

// validModel checks a model name: 1..MaxModelLen bytes of a-z, A-Z, 0-9,
// '.', '_' and '-'.
func validModel(m string) error {
	if len(m) > MaxModelLen {
		return fmt.Errorf("model name of %d bytes, limit is %d", len(m), MaxModelLen)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("model name %q: byte %d is %q; use a-z, A-Z, 0-9, '.', '_' and '-'", clip(m, 70), i, c)
		}
	}
	return nil
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, or -1.
func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.Float32bits(x)&0x7f800000 == 0x7f800000 {
			return i
		}
	}
	return -1
}

func isZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// checkVector appends the problems of one vector to p: empty, too long,
// not finite.
func checkVector(p *problems, at path, v []float32) {
	switch {
	case len(v) == 0:
		p.add(BadRequest, at.String(), "empty vector")
	case len(v) > MaxDim:
		p.add(TooLarge, at.String(), "%d components, limit is %d", len(v), MaxDim)
	default:
		if i := firstNonFinite(v); i >= 0 {
			p.add(BadRequest, fmt.Sprintf("%s[%d]", at, i), "%v is not finite (NaN, Inf, or beyond float32's range)", v[i])
		}
	}
}

// path names a field of the request, or of its item (item ≥ 0), for
// messages. It is formatted only when there is a problem to report.
type path struct {
	item  int
	field string
}

func (at path) String() string {
	if at.item < 0 {
		return at.field
	}
	return "items[" + strconv.Itoa(at.item) + "]." + at.field
}

// checkVectorDim appends a dimension mismatch, or a zero vector under
// cosine, to p.
func checkVectorDim(p *problems, at path, v []float32, dim int, m Metric) {
	if len(v) != dim {
		p.add(BadRequest, at.String(), "%d components, collection dim is %d", len(v), dim)
		return
	}
	if m == Cosine && isZero(v) {
		p.add(BadRequest, at.String(), "zero vector has no direction under the cosine metric")
	}
}

// metaProblem checks meta as a JSON object: it returns "" when meta is a
// well-formed object (checked only when validJSON is false: the JSON path
// has already validated the body), else what is wrong.
func metaProblem(meta []byte, max int, validJSON bool) (Code, string) {
	if len(meta) > max {
		return TooLarge, fmt.Sprintf("%d bytes, limit is %d", len(meta), max)
	}
	i := skipWS(meta, 0)
	if i >= len(meta) || meta[i] != '{' {
		return BadRequest, fmt.Sprintf("got %s, want a JSON object", kindOf(meta[i:]))
	}
	if !validJSON {
		if !utfValidJSON(meta) {
			return BadRequest, "not a well-formed JSON object"
		}
	}
	return "", ""
}

// maxListed bounds the problems a message lists; the rest are counted.
const maxListed = 20

// problems collects what is wrong with a request, each with its path, so
// that a batch reports every bad item at once.
type problems struct {
	msgs     []string
	n        int
	tooLarge bool
	bad      bool
}

func (p *problems) add(code Code, path, format string, args ...any) {
	if code == TooLarge {
		p.tooLarge = true
	} else {
		p.bad = true
	}
	p.n++
	if len(p.msgs) < maxListed {
		p.msgs = append(p.msgs, path+": "+fmt.Sprintf(format, args...))
	}
}

// err is nil without problems; else an *Error whose code is bad_request,
// or too_large when every problem is a size limit.
func (p *problems) err() error {
	if p.n == 0 {
		return nil
	}
	code := BadRequest
	if p.tooLarge && !p.bad {
		code = TooLarge
	}
	msg := strings.Join(p.msgs, "; ")
	if p.n > len(p.msgs) {
		msg += fmt.Sprintf("; and %d more", p.n-len(p.msgs))
	}
	return &Error{Code: code, Message: msg}
}

// clip shortens s for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
