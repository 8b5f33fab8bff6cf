package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"
)

// The JSON decoders first check the whole body with json.Valid (and
// utf8.Valid), then walk it with the small scanner below, which may assume
// well-formed input. Walking it by hand, instead of json.Unmarshal into
// structs, makes keys match exactly (encoding/json matches them
// case-insensitively), catches duplicate keys, and lets every problem carry
// its path, item index included.

// readBody reads at most lim.MaxBodyBytes of r and checks that they hold
// one well-formed JSON value in UTF-8. An empty body (only white space) is
// returned as nil when allowEmpty.
func readBody(r io.Reader, lim Limits, allowEmpty bool) ([]byte, error) {
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(r, lim.MaxBodyBytes+1))
	b := buf.Bytes()
	if err != nil {
		putBody(b)
		if isMaxBytes(err) {
			return nil, Errorf(TooLarge, "body: over the limit of %d bytes", lim.MaxBodyBytes)
		}
		return nil, Errorf(BadRequest, "body: read: %w", err)
	}
	if int64(len(b)) > lim.MaxBodyBytes {
		return nil, Errorf(TooLarge, "body: over the limit of %d bytes", lim.MaxBodyBytes)
	}
	if skipWS(b, 0) == len(b) {
		if allowEmpty {
			return nil, nil
		}
		return nil, Errorf(BadRequest, "body: empty, want a JSON object")
	}
	if !utf8.Valid(b) {
		return nil, Errorf(BadRequest, "body: not valid UTF-8 (at byte %d)", invalidUTF8At(b))
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, Errorf(BadRequest, "body: malformed JSON at byte %d: %s", se.Offset, se.Error())
		}
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, Errorf(BadRequest, "body: malformed JSON: %s", err.Error())
	}
	return b, nil
}

// bodies recycles the buffers of request bodies: a decoder that returns
// nothing aliasing its body gives the buffer back with putBody.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody bounds the buffers kept for reuse.
const maxPooledBody = 16 << 20

func putBody(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledBody {
		return
	}
	bodies.Put(bytes.NewBuffer(b[:0]))
}

// isMaxBytes reports the error of an http.MaxBytesReader, which the server
// may wrap a body in: a size limit, not a bad request.
func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// utfValidJSON reports whether b is well-formed JSON in UTF-8.
func utfValidJSON(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string that starts at b[i] == '"'.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return len(b)
}

// structural marks the bytes that skipValue must look at inside a
// container.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			for i < len(b) && !structural[b[i]] {
				i++ // numbers, commas, colons, literals, white space
			}
			if i >= len(b) {
				break
			}
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) && !endOfScalar[b[i]] {
		i++
	}
	return i
}

// endOfScalar marks the bytes that end a number or a literal.
var endOfScalar = [256]bool{',': true, ']': true, '}': true, ' ': true, '\t': true, '\n': true, '\r': true}

// kindOf names the kind of the JSON value raw for messages.
func kindOf(raw []byte) string {
	i := skipWS(raw, 0)
	if i >= len(raw) {
		return "nothing"
	}
	switch c := raw[i]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	}
	return "number " + clip(string(raw[i:skipValue(raw, i)]), 40)
}

func isNull(raw []byte) bool { return string(raw) == "null" }

// member is one key and its raw value in a JSON object.
type member struct {
	key   string
	value []byte
}

// members splits the well-formed JSON object raw into its members, in
// order. It fails when raw is not an object.
func members(raw []byte, dst []member) ([]member, error) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, fmt.Errorf("got %s, want a JSON object", kindOf(raw))
	}
	i = skipWS(raw, i+1)
	dst = dst[:0]
	for i < len(raw) && raw[i] != '}' {
		end := skipString(raw, i)
		key, err := unquote(raw[i:end])
		if err != nil {
			return nil, err
		}
		i = skipWS(raw, end)
		i = skipWS(raw, i+1) // ':'
		vend := skipValue(raw, i)
		dst = append(dst, member{key: key, value: raw[i:vend]})
		i = skipWS(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return dst, nil
}

// elements splits the well-formed JSON array raw into its elements.
func elements(raw []byte) ([][]byte, error) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, fmt.Errorf("got %s, want an array", kindOf(raw))
	}
	i = skipWS(raw, i+1)
	var out [][]byte
	for i < len(raw) && raw[i] != ']' {
		end := skipValue(raw, i)
		out = append(out, raw[i:end])
		i = skipWS(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return out, nil
}

// unquote decodes a JSON string token.
func unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", fmt.Errorf("got %s, want a string", kindOf(raw))
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("bad string: %s", err.Error())
	}
	return s, nil
}

// parseInt reads a JSON integer in lo..hi.
func parseInt(raw []byte, lo, hi int64) (int64, error) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, fmt.Errorf("got %s, want an integer %d..%d", kindOf(raw), lo, hi)
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("got %s, want an integer %d..%d", clip(string(raw), 40), lo, hi)
	}
	return v, nil
}

// componentError is a problem with one component of a vector.
type componentError struct {
	i   int
	msg string
}

func (e *componentError) Error() string { return fmt.Sprintf("component %d: %s", e.i, e.msg) }

// addVectorError adds a problem of parseVector at field (a vector's path).
func addVectorError(p *problems, field string, err error) {
	var ce *componentError
	if errors.As(err, &ce) {
		p.add(BadRequest, field+"["+strconv.Itoa(ce.i)+"]", "%s", ce.msg)
		return
	}
	p.add(BadRequest, field, "%s", err.Error())
}

// parseVector reads a JSON array of numbers as float32s. A number beyond
// float32's range is refused as not finite (JSON cannot spell NaN or Inf;
// this is how they would sneak in). It stops after MaxDim+1 components.
func parseVector(raw []byte) ([]float32, error) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, fmt.Errorf("got %s, want an array of numbers", kindOf(raw))
	}
	n := min(bytes.Count(raw, []byte{','})+1, MaxDim+1)
	v := make([]float32, 0, n)
	s := string(raw) // one copy: the substrings below share it
	i = skipWS(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		end := skipValue(raw, i)
		c := raw[i]
		if !(c == '-' || c >= '0' && c <= '9') {
			return nil, &componentError{len(v), "got " + kindOf(raw[i:end]) + ", want a number"}
		}
		f, err := strconv.ParseFloat(s[i:end], 32)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0) {
				return nil, &componentError{len(v), fmt.Sprintf("%s is not finite in float32 (beyond ±%g)", clip(s[i:end], 40), float32(math.MaxFloat32))}
			}
			if !errors.Is(err, strconv.ErrRange) { // an underflow is read as 0
				return nil, fmt.Errorf("component %d: %s", len(v), err.Error())
			}
		}
		if len(v) == MaxDim+1 {
			break
		}
		v = append(v, float32(f))
		i = skipWS(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return v, nil
}
