// Package wire reads the few top-level fields of a ShareDB protocol frame
// that the load generator and the bare relay route by, in one pass over
// the bytes and without allocating: the values come back as slices of the
// frame, still in their JSON form.
//
// It is not a JSON validator. It checks the shape it walks (an object of
// string keys, balanced brackets, terminated strings) and nothing inside
// the values; the programs that use it talk to servers they started.
// Decoding the whole frame with encoding/json would cost the relay more
// than everything else it does per op, and it would stop being a ceiling.
package wire

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrFrame is returned for a frame that is not a JSON object of the shape
// Scan walks.
var ErrFrame = errors.New("wire: frame is not a JSON object")

// Fields holds the raw JSON values of the top-level keys ShareDB frames
// route by; a key absent from the frame leaves its field nil. Strings keep
// their quotes (use Str), numbers and null are as written (use Uint).
type Fields struct {
	A, C, D, V, Src, Seq, ID []byte
	Op, Create, Del, Error   []byte
	Data                     []byte
}

// Scan fills f from frame's top-level keys. Nested values are skipped
// over, never examined, so a key inside an op or a snapshot never shadows
// a top-level one.
func Scan(frame []byte, f *Fields) error {
	*f = Fields{}
	i := skipSpace(frame, 0)
	if i >= len(frame) || frame[i] != '{' {
		return ErrFrame
	}
	i = skipSpace(frame, i+1)
	if i < len(frame) && frame[i] == '}' {
		return nil
	}
	for {
		if i >= len(frame) || frame[i] != '"' {
			return ErrFrame
		}
		end, ok := skipString(frame, i)
		if !ok {
			return ErrFrame
		}
		key := frame[i+1 : end-1]
		i = skipSpace(frame, end)
		if i >= len(frame) || frame[i] != ':' {
			return ErrFrame
		}
		i = skipSpace(frame, i+1)
		vend, ok := skipValue(frame, i)
		if !ok {
			return ErrFrame
		}
		if dst := f.slot(key); dst != nil {
			*dst = frame[i:vend]
		}
		i = skipSpace(frame, vend)
		if i >= len(frame) {
			return ErrFrame
		}
		switch frame[i] {
		case ',':
			i = skipSpace(frame, i+1)
		case '}':
			return nil
		default:
			return ErrFrame
		}
	}
}

// slot returns the field that stores key's value, or nil for a key Fields
// does not keep.
func (f *Fields) slot(key []byte) *[]byte {
	switch string(key) { // no allocation: the compiler compares in place
	case "a":
		return &f.A
	case "c":
		return &f.C
	case "d":
		return &f.D
	case "v":
		return &f.V
	case "src":
		return &f.Src
	case "seq":
		return &f.Seq
	case "id":
		return &f.ID
	case "op":
		return &f.Op
	case "create":
		return &f.Create
	case "del":
		return &f.Del
	case "error":
		return &f.Error
	case "data":
		return &f.Data
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i]
// (a quote).
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j, j > i
}

// IsNull reports whether raw is absent or the literal null.
func IsNull(raw []byte) bool { return raw == nil || string(raw) == "null" }

// Uint parses raw as a non-negative integer.
func Uint(raw []byte) (uint64, bool) {
	if len(raw) == 0 || raw[0] == '-' || raw[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	return n, err == nil
}

// Str returns the text of the JSON string raw. The common case, a string
// without escapes, costs one copy.
func Str(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body), true
	}
	return unescape(body)
}

// unescape decodes a string body with backslash escapes.
func unescape(body []byte) (string, bool) {
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(body) {
			return "", false
		}
		switch body[i] {
		case '"', '\\', '/':
			out = append(out, body[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(body, i+1)
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+2 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
					r2, ok = hex4(body, i+3)
				}
				if !ok {
					return "", false // a lone surrogate has no code point
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return string(out), true
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[i:i+4]), 16, 32)
	return rune(n), err == nil
}
