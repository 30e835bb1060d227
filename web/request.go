package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// This file decodes a client message into a request: its top-level
// fields, split without decoding their values, and the typed reads of
// those values (str, uint, key) that every action uses.

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER: versions and
// seqs above it cannot round-trip through the JS client.
const maxSafeInteger = 1<<53 - 1

// request is one client message: its fields as raw JSON, kept whole so an
// error reply can echo the request, as ShareDB does. Field order does not
// matter; a repeated key keeps its last value (as in JSON.parse).
//
// The values are slices of the frame, which nothing modifies once it is
// read: a value kept beyond the request's reply (a presence value) must
// be copied, or it would pin the whole frame.
//
// handle parses each frame into a request on its own stack, which costs
// no allocation: a reply made later, on another goroutine (the hub's
// reply functions, a snapshot's goroutine), must not keep the request.
// It keeps a heap copy (keep), or the frame to parse again should it
// fail (submit, the hot path, with reparse). Capturing the request
// itself would only move it to the heap (the compiler sees it), not
// break anything.
type request struct {
	action string
	frame  []byte
	// The fields are the first n of inline for a message that has at
	// most len(inline) of them (every message a ShareDB client sends),
	// so that they cost no allocation of their own, or else more. A
	// count, not a slice of inline: a request that pointed into itself
	// would have to be on the heap.
	n      int
	more   []field
	inline [10]field
}

// split splits data, a JSON object, into r's fields (splitObject).
func (r *request) split(data []byte) (isNull bool, err error) {
	f, isNull, err := splitObject(data, r.inline[:0])
	if err != nil || isNull {
		return isNull, err
	}
	if len(f) <= len(r.inline) {
		r.n = len(f)
	} else {
		// A copy, though f is on the heap already: storing f itself, which
		// the compiler cannot tell from a slice of inline, would move
		// every request to the heap.
		r.more = slices.Clone(f)
	}
	return false, nil
}

// fields returns r's fields.
func (r *request) fields() []field {
	if r.more != nil {
		return r.more
	}
	return r.inline[:r.n]
}

// field is one top-level key of a message and its raw JSON value.
type field struct {
	name  []byte // the key, decoded
	value []byte
}

// parseRequest decodes a text frame into r. frame must be valid UTF-8
// (the reader checks).
func parseRequest(frame []byte, r *request) *protoError {
	isNull, err := r.split(frame)
	if err != nil {
		return badlyFormed("message is not a JSON object: " + err.Error())
	}
	if isNull {
		return badlyFormed("message is not a JSON object: null")
	}
	r.frame = frame
	if a, ok := plainString(r.raw("a")); ok {
		// The common case: an action the server knows, named without
		// escapes. Its name is the table's, so it costs no allocation.
		if name, ok := actionNames[string(a)]; ok {
			r.action = name
			return nil
		}
	}
	a, ok, perr := r.str("a", 16)
	if perr != nil {
		return perr
	}
	if !ok {
		return badlyFormed(`message has no action "a"`)
	}
	r.action = a
	return nil
}

// keep returns a copy of r on the heap, for a reply made after handle
// returns.
func (r *request) keep() *request {
	k := new(request)
	*k = *r
	return k
}

// reparse parses again a frame that parsed once, into a request on the
// heap: for a reply that fails after handle returned, to echo the request.
func reparse(frame []byte) *request {
	r := new(request)
	if parseRequest(frame, r) != nil {
		return nil
	}
	return r
}

// actionNames maps each action the server serves to itself.
var actionNames = func() map[string]string {
	m := make(map[string]string, len(actions))
	for _, a := range actions {
		m[a] = a
	}
	return m
}()

// splitObject splits data, a JSON object, into its top-level fields,
// appended to into, without decoding the values. It accepts exactly what
// json.Unmarshal into a map[string]json.RawMessage accepts, with the same
// keys and values, and fails with its error otherwise; isNull reports the
// literal null, which that leaves a nil map.
func splitObject(data []byte, into []field) (fields []field, isNull bool, err error) {
	if !json.Valid(data) {
		return nil, false, unmarshalError(data)
	}
	// data is valid JSON from here on: the scan below need not check
	// what it walks.
	i := skipSpace(data, 0)
	switch data[i] {
	case '{':
	case 'n':
		return nil, true, nil
	default:
		return nil, false, unmarshalError(data)
	}
	fields = into
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return fields, false, nil
	}
	for {
		end := stringEnd(data, i)
		name := data[i+1 : end-1]
		if !plainKey(name) {
			var s string
			if err := json.Unmarshal(data[i:end], &s); err != nil {
				return nil, false, err // unreachable: data is valid
			}
			name = []byte(s)
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // past ':'
		vend := valueEnd(data, i)
		fields = append(fields, field{name: name, value: data[i:vend]})
		i = skipSpace(data, vend)
		if data[i] == '}' {
			return fields, false, nil
		}
		i = skipSpace(data, i+1) // past ','
	}
}

// unmarshalError returns encoding/json's error for data that is not a
// JSON object, so that the reply says what it always said.
func unmarshalError(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	return fmt.Errorf("not an object") // unreachable: the callers checked
}

// plainKey reports whether a key's bytes between its quotes are its text:
// no escapes, and valid UTF-8 (encoding/json turns invalid bytes into
// U+FFFD).
func plainKey(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string whose quote is
// at b[i], or -1 if b ends before it does (a frame cut short: conn's
// scalarPrefix; a valid frame's strings always end).
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the valid JSON value at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// value returns field name, null included; ok is false when it is
// absent. A repeated key gives its last value.
func (r *request) value(name string) (v []byte, ok bool) {
	fields := r.fields()
	for i := len(fields) - 1; i >= 0; i-- {
		if f := &fields[i]; string(f.name) == name {
			return f.value, true
		}
	}
	return nil, false
}

// raw returns field name, or nil when it is absent or null.
func (r *request) raw(name string) []byte {
	v, _ := r.value(name)
	if v == nil || isNull(v) {
		return nil
	}
	return v
}

func isNull(v []byte) bool { return string(v) == "null" }

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
	c, perr := r.name("c", maxName)
	if perr != nil {
		return collab.Key{}, perr
	}
	d, perr := r.name("d", maxName)
	if perr != nil {
		return collab.Key{}, perr
	}
	return collab.Key{Collection: c, ID: d}, nil
}

// name returns field name, required, as a collection name or document id
// (checkName).
func (r *request) name(field string, maxName int) (string, *protoError) {
	v, perr := r.needStr(field, maxName)
	if perr != nil {
		return "", perr
	}
	return v, checkName(strconv.Quote(field), v, maxName)
}

// checkName refuses a collection name or document id (what names it in a
// message: "c", "d", "b") that is empty, longer than maxName bytes, not
// UTF-8 or holds a control character. Such a name could be stored and
// listed, but the page cannot open it (validName) and the document list
// cannot link to it, and bytes that are not UTF-8 come back from the
// list as U+FFFD, another name.
func checkName(what, v string, maxName int) *protoError {
	switch {
	case v == "":
		return badlyFormed(fmt.Sprintf("%s must not be empty", what))
	case len(v) > maxName:
		return badlyFormed(fmt.Sprintf("%s is longer than %d bytes", what, maxName))
	case !utf8.ValidString(v):
		return badlyFormed(fmt.Sprintf("%s is not UTF-8", what))
	case strings.ContainsFunc(v, unicode.IsControl):
		return badlyFormed(fmt.Sprintf("%s %s holds a control character", what, strconv.QuoteToASCII(clip([]byte(v)))))
	}
	return nil
}

// decodeUint parses a JSON number that is a non-negative integer no
// larger than JavaScript's MAX_SAFE_INTEGER, written in plain digits (as
// JSON.stringify writes integers).
func decodeUint(v []byte) (uint64, error) {
	if len(v) == 0 || len(v) > 16 {
		return 0, fmt.Errorf("want a non-negative integer, got %s", clip(v))
	}
	var n uint64
	for i, b := range v {
		if b < '0' || b > '9' || (i == 0 && b == '0' && len(v) > 1) {
			return 0, fmt.Errorf("want a non-negative integer, got %s", clip(v))
		}
		n = n*10 + uint64(b-'0') // 16 digits cannot overflow
	}
	if n > maxSafeInteger {
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
	if s, ok := plainString(v); ok {
		return string(s), nil
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

// plainString returns the text of v when v is a JSON string whose bytes
// between the quotes are its text: no escapes, no control characters, and
// valid UTF-8. Otherwise ok is false and the string needs decoding.
func plainString(v []byte) (text []byte, ok bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	text = v[1 : len(v)-1]
	ascii := true
	for _, b := range text {
		switch {
		case b == '\\' || b == '"' || b < 0x20:
			return nil, false
		case b >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(text) {
		return nil, false
	}
	return text, true
}

// clip shortens raw JSON for an error message.
func clip(v []byte) string {
	if len(v) > 40 {
		return string(v[:40]) + "…"
	}
	return string(v)
}
