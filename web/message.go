package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER: versions and
// seqs above it cannot round-trip through the JS client.
const maxSafeInteger = 1<<53 - 1

// request is one client message: its fields as raw JSON, kept whole so an
// error reply can echo the request, as ShareDB does. Field order does not
// matter; a repeated key keeps its last value (as in JSON.parse).
type request struct {
	action string
	fields map[string]json.RawMessage
}

// parseRequest decodes a text frame into a request. frame must be valid
// UTF-8 (the reader checks).
func parseRequest(frame []byte) (*request, *protoError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(frame, &fields); err != nil {
		return nil, badlyFormed("message is not a JSON object: " + err.Error())
	}
	if fields == nil {
		return nil, badlyFormed("message is not a JSON object: null")
	}
	r := &request{fields: fields}
	a, ok, perr := r.str("a", 16)
	if perr != nil {
		return nil, perr
	}
	if !ok {
		return nil, badlyFormed(`message has no action "a"`)
	}
	r.action = a
	return r, nil
}

// raw returns field name, or nil when it is absent or null.
func (r *request) raw(name string) json.RawMessage {
	v, ok := r.fields[name]
	if !ok || isNull(v) {
		return nil
	}
	return v
}

func isNull(v json.RawMessage) bool { return bytes.Equal(v, []byte("null")) }

// str returns string field name: ok is false when it is absent or null.
// A present value must be a non-empty string of at most max bytes.
func (r *request) str(name string, max int) (s string, ok bool, perr *protoError) {
	v := r.raw(name)
	if v == nil {
		return "", false, nil
	}
	s, err := decodeString(v)
	if err != nil {
		return "", false, badlyFormed(fmt.Sprintf("%q: %v", name, err))
	}
	if s == "" {
		return "", false, badlyFormed(fmt.Sprintf("%q must not be empty", name))
	}
	if len(s) > max {
		return "", false, badlyFormed(fmt.Sprintf("%q is longer than %d bytes", name, max))
	}
	return s, true, nil
}

// needStr is str for a required field.
func (r *request) needStr(name string, max int) (string, *protoError) {
	s, ok, perr := r.str(name, max)
	if perr != nil {
		return "", perr
	}
	if !ok {
		return "", badlyFormed(fmt.Sprintf("%q is required", name))
	}
	return s, nil
}

// uint returns non-negative integer field name; ok is false when it is
// absent or null.
func (r *request) uint(name string) (n uint64, ok bool, perr *protoError) {
	v := r.raw(name)
	if v == nil {
		return 0, false, nil
	}
	n, err := decodeUint(v)
	if err != nil {
		return 0, false, badlyFormed(fmt.Sprintf("%q: %v", name, err))
	}
	return n, true, nil
}

// key returns the document named by "c" and "d", both required.
func (r *request) key(maxName int) (collab.Key, *protoError) {
	c, perr := r.needStr("c", maxName)
	if perr != nil {
		return collab.Key{}, perr
	}
	d, perr := r.needStr("d", maxName)
	if perr != nil {
		return collab.Key{}, perr
	}
	return collab.Key{Collection: c, ID: d}, nil
}

// decodeUint parses a JSON number that is a non-negative integer no
// larger than JavaScript's MAX_SAFE_INTEGER, written in plain digits (as
// JSON.stringify writes integers).
func decodeUint(v []byte) (uint64, error) {
	if len(v) == 0 || len(v) > 16 {
		return 0, fmt.Errorf("want a non-negative integer, got %s", clip(v))
	}
	for i, b := range v {
		if b < '0' || b > '9' || (i == 0 && b == '0' && len(v) > 1) {
			return 0, fmt.Errorf("want a non-negative integer, got %s", clip(v))
		}
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || n > maxSafeInteger {
		return 0, fmt.Errorf("want an integer at most 2^53-1, got %s", clip(v))
	}
	return n, nil
}

// decodeString decodes a JSON string strictly: a lone or misordered UTF-16
// surrogate escape, which encoding/json would silently turn into U+FFFD
// (changing the text's length in code points), is an error.
func decodeString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", fmt.Errorf("want a string, got %s", clip(v))
	}
	if err := ot.CheckSurrogates(v); err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("want a string: %v", err)
	}
	return s, nil
}

// clip shortens raw JSON for an error message.
func clip(v []byte) string {
	if len(v) > 40 {
		return string(v[:40]) + "…"
	}
	return string(v)
}

// msg builds one outgoing JSON object with its fields in order. Strings
// are escaped as JavaScript's JSON.stringify does (only '"', '\' and
// control characters), other text stays UTF-8.
type msg struct{ b []byte }

// newMsg starts a message with "a":action.
func newMsg(action string) *msg {
	m := &msg{b: make([]byte, 0, 128)}
	m.b = append(m.b, `{"a":`...)
	m.b = appendString(m.b, action)
	return m
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
		for k, v := range r.fields {
			if k == "error" {
				continue
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = append(b, v...)
			b = append(b, ',')
		}
	}
	b = append(b, `"error":`...)
	b = append(b, errorObject(e)...)
	return append(b, '}')
}
