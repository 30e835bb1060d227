package web

import (
	"strconv"
	"unicode/utf8"
)

// msg builds one outgoing JSON object with its fields in order. Strings
// are escaped as JavaScript's JSON.stringify does (only '"', '\' and
// control characters), other text stays UTF-8.
type msg struct{ b []byte }

// newMsg starts a message with "a":action. It is small enough to inline,
// so that the msg itself can stay on the caller's stack.
func newMsg(action string) *msg {
	return &msg{b: appendAction(make([]byte, 0, 128), action)}
}

func appendAction(b []byte, action string) []byte {
	return appendString(append(b, `{"a":`...), action)
}

func (m *msg) key(k string) {
	m.b = append(m.b, ',')
	m.b = appendString(m.b, k)
	m.b = append(m.b, ':')
}

func (m *msg) str(k, v string) *msg {
	m.key(k)
	m.b = appendString(m.b, v)
	return m
}

func (m *msg) uint(k string, v uint64) *msg {
	m.key(k)
	m.b = appendUint(m.b, v)
	return m
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }

func (m *msg) int(k string, v int64) *msg {
	m.key(k)
	m.b = strconv.AppendInt(m.b, v, 10)
	return m
}

// raw adds a field whose value is already JSON.
func (m *msg) raw(k string, v []byte) *msg {
	m.key(k)
	m.b = append(m.b, v...)
	return m
}

func (m *msg) null(k string) *msg { return m.raw(k, []byte("null")) }

func (m *msg) bytes() []byte { return append(m.b, '}') }

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				const hex = "0123456789abcdef"
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// repeated reports whether one of fields is named name.
func repeated(fields []field, name []byte) bool {
	for _, f := range fields {
		if string(f.name) == string(name) {
			return true
		}
	}
	return false
}

// errorObject returns {"code":..,"message":..}.
func errorObject(e *protoError) []byte {
	b := make([]byte, 0, 64+len(e.Message))
	b = append(b, `{"code":`...)
	b = appendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	return append(b, '}')
}

// echoError returns the request echoed with an "error" field (ShareDB's
// error reply), or {"error":..} alone when there is no request.
func echoError(r *request, e *protoError) []byte {
	b := make([]byte, 0, 256)
	b = append(b, '{')
	if r != nil {
		fields := r.fields()
		for i, f := range fields {
			if string(f.name) == "error" || repeated(fields[i+1:], f.name) {
				continue // a repeated key keeps its last value
			}
			b = appendString(b, string(f.name))
			b = append(b, ':')
			b = append(b, f.value...)
			b = append(b, ',')
		}
	}
	b = append(b, `"error":`...)
	b = append(b, errorObject(e)...)
	return append(b, '}')
}
