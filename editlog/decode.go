package editlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/coedit/coedit/ot"
)

// This file decodes the lines of an edit log. It does not decode into
// structs with encoding/json, which matches a key to a field in any case
// ("SRC" sets src) and keeps the last of two equal keys: it splits each
// object into its members (members), refuses a repeated key, and matches
// keys exactly, as ot.Decode does for an op's components.

// recordKeys, headerKeys and createKeys are the keys of each object, for
// the hint in an unknown key's error. A record's include "editlog": a
// line with that key in another case is a header with a typo.
var (
	recordKeys = []string{"src", "seq", "v", "op", "create", "del", "ts", "m", "c", "d", "editlog"}
	headerKeys = []string{"editlog", "collection", "id", "type", "initial", "final", "finalVersion", "comment"}
	createKeys = []string{"type", "data"}
)

// decodeLine checks a line's text and splits its object into members.
func decodeLine(line []byte) ([]member, error) {
	if err := checkJSONText(line); err != nil {
		return nil, err
	}
	ms, err := members(line, "a line")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return ms, nil
}

// isHeader reports whether a line's object is a header: it has an
// "editlog" key.
func isHeader(ms []member) bool {
	for _, m := range ms {
		if m.key == "editlog" {
			return true
		}
	}
	return false
}

func decodeHeader(ms []member) (Header, error) {
	var h Header
	for _, m := range ms {
		var err error
		if isNull(m.value) {
			// A header is coedit's own: every field has its type. A null
			// final, from a snapshot without data, must not read as "no
			// expected text".
			return Header{}, fmt.Errorf("%w: header: %q is null; leave it out instead%s", ErrFormat, m.key, nullHint(m.key))
		}
		switch m.key {
		case "editlog":
			var v uint64
			if v, err = uintValue(m.value, m.key); err == nil && v != FormatVersion {
				return Header{}, fmt.Errorf("%w: header: format version %s, this reader knows %d", ErrFormat, m.value, FormatVersion)
			}
			h.Version = FormatVersion
		case "collection":
			h.Collection, err = stringValue(m.value, m.key)
		case "id":
			h.ID, err = stringValue(m.value, m.key)
		case "type":
			h.Type, err = stringValue(m.value, m.key)
		case "initial":
			h.Initial, err = stringValue(m.value, m.key)
			h.HasInitial = true
		case "final":
			h.Final, err = stringValue(m.value, m.key)
			h.HasFinal = true
		case "finalVersion":
			h.FinalVersion, err = uintValue(m.value, m.key)
		case "comment":
			h.Comment, err = stringValue(m.value, m.key)
		default:
			err = unknownKey(m.key, headerKeys)
		}
		if err != nil {
			return Header{}, fmt.Errorf("%w: header: %w", ErrFormat, err)
		}
	}
	return h, nil
}

// nullHint says what a null header field most likely came from.
func nullHint(key string) string {
	if key == "final" {
		return ` (a snapshot with "type":null has no text: the document was deleted or never created, see docs/editlog.md)`
	}
	return ""
}

func decodeRecord(line []byte, ms []member) (Record, error) {
	var (
		rec                 Record
		hasV, hasTS         bool
		op, create, del, m0 json.RawMessage
	)
	for _, m := range ms {
		var err error
		v := m.value
		switch m.key {
		case "src":
			rec.Src, err = optString(v, m.key)
		case "seq":
			if !isNull(v) {
				rec.Seq, err = uintValue(v, m.key)
			}
		case "v":
			if hasV = !isNull(v); hasV {
				rec.V, err = uintValue(v, m.key)
			}
		case "op":
			op = v
		case "create":
			create = v
		case "del":
			del = v
		case "ts":
			if hasTS = !isNull(v); hasTS {
				rec.Time, err = intValue(v, m.key)
			}
		case "m":
			m0 = v
		case "c", "d":
			// An exported op may carry its document; the header or the
			// replayer names it.
			_, err = optString(v, m.key)
		case "editlog":
			err = errors.New("a header (\"editlog\") is not a record")
		case "error":
			// GET .../ops ends a stream that failed midway with this line.
			return Record{}, fmt.Errorf("%w: the exported op log ends with a server error: %s", ErrFormat, clip(line))
		default:
			err = unknownKey(m.key, recordKeys)
		}
		if err != nil {
			return Record{}, fmt.Errorf("%w: %w", ErrFormat, err)
		}
	}
	if !hasV {
		return Record{}, fmt.Errorf("%w: missing \"v\" (the base version)", ErrFormat)
	}
	kinds := 0
	if present(op) {
		kinds++
		o, err := ot.Decode(op)
		if err != nil {
			return Record{}, fmt.Errorf("%w: op: %w", ErrFormat, err)
		}
		rec.Kind, rec.Op = Edit, o
	}
	if present(create) {
		kinds++
		if err := decodeCreate(create, &rec); err != nil {
			return Record{}, fmt.Errorf("%w: create: %w", ErrFormat, err)
		}
	}
	if present(del) {
		kinds++
		if !bytes.Equal(del, []byte("true")) {
			return Record{}, fmt.Errorf("%w: \"del\" must be true, not %s", ErrFormat, clip(del))
		}
		rec.Kind = Delete
	}
	if kinds != 1 {
		return Record{}, fmt.Errorf("%w: a record needs exactly one of \"op\", \"create\", \"del\" (has %d)", ErrFormat, kinds)
	}
	if present(m0) {
		ts, ok, err := metaTime(m0)
		if err != nil {
			return Record{}, fmt.Errorf("%w: m: %w", ErrFormat, err)
		}
		if ok {
			if hasTS && rec.Time != ts {
				return Record{}, fmt.Errorf("%w: \"ts\" %d and \"m.ts\" %d differ", ErrFormat, rec.Time, ts)
			}
			rec.Time = ts
		}
	}
	return rec, nil
}

func decodeCreate(data json.RawMessage, rec *Record) error {
	ms, err := members(data, `"create"`)
	if err != nil {
		return err
	}
	rec.Kind = Create
	for _, m := range ms {
		switch m.key {
		case "type":
			rec.Type, err = optString(m.value, m.key)
		case "data":
			rec.Data, err = optString(m.value, m.key)
		default:
			err = unknownKey(m.key, createKeys)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// metaTime returns m.ts, if there is one. The other fields of m are
// ShareDB's metadata and are ignored, but a "ts" in another case is
// refused: it would be a timestamp silently dropped.
func metaTime(data json.RawMessage) (int64, bool, error) {
	ms, err := members(data, `"m"`)
	if err != nil {
		return 0, false, err
	}
	for _, m := range ms {
		switch {
		case m.key == "ts" && !isNull(m.value):
			ts, err := intValue(m.value, m.key)
			return ts, err == nil, err
		case m.key != "ts" && strings.EqualFold(m.key, "ts"):
			return 0, false, unknownKey(m.key, []string{"ts"})
		}
	}
	return 0, false, nil
}

// member is one key and value of a JSON object.
type member struct {
	key string
	// value is the value's JSON text, without the whitespace around it,
	// in the memory of the object's text: valid while that is.
	value json.RawMessage
}

// members splits data, which must be one JSON object and nothing more,
// into its members in order. A repeated key is an error. what names the
// object in errors ("a line", `"create"`). The values share data's
// memory.
func members(data []byte, what string) ([]member, error) {
	if !json.Valid(data) {
		return nil, jsonError(data)
	}
	// From here on data is known to be one valid JSON value, so the
	// scanning below only has to find where each part ends.
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, fmt.Errorf("%s must be a JSON object, not %s", what, describeValue(data[i:]))
	}
	ms, err := appendMembers(nil, data[i:])
	if err != nil {
		return nil, err
	}
	var seen keySet
	for _, m := range ms {
		if !seen.add(m.key) {
			return nil, fmt.Errorf("%s has the key %q twice", what, m.key)
		}
	}
	return ms, nil
}

// appendMembers appends the members of obj to ms, in order, and returns
// the extended slice. obj starts with the '{' of a valid JSON object (see
// members); the values share its memory. Repeated keys are left to the
// caller.
func appendMembers(ms []member, obj []byte) ([]member, error) {
	for i := skipSpace(obj, 1); obj[i] != '}'; {
		end := stringEnd(obj, i)
		key, err := unquote(obj[i:end])
		if err != nil {
			return nil, err
		}
		i = skipSpace(obj, skipSpace(obj, end)+1) // past the colon
		end = valueEnd(obj, i)
		ms = append(ms, member{key, obj[i:end:end]})
		if i = skipSpace(obj, end); obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return ms, nil
}

// appendElements appends the elements of arr to vs, in order, and
// returns the extended slice. arr starts with the '[' of a valid JSON
// array; each element is its JSON text without the space around it, in
// arr's memory.
func appendElements(vs [][]byte, arr []byte) [][]byte {
	for i := skipSpace(arr, 1); arr[i] != ']'; {
		end := valueEnd(arr, i)
		vs = append(vs, arr[i:end:end])
		if i = skipSpace(arr, end); arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
	return vs
}

// jsonError says what is wrong with data, which is not one valid JSON
// value.
func jsonError(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return syntaxError(err, len(data))
	}
	return errors.New("unexpected data after the JSON object")
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the valid JSON string at i.
func stringEnd(data []byte, i int) int {
	for i++; data[i] != '"'; i++ {
		if data[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// valueEnd returns the index just past the valid JSON value at i.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch data[i] {
			case '"':
				i = stringEnd(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(data) && !strings.ContainsRune(",}] \t\r\n", rune(data[i])) {
		i++
	}
	return i
}

// unquote decodes a valid JSON string.
func unquote(q []byte) (string, error) {
	if bytes.IndexByte(q, '\\') < 0 {
		// checkJSONText has checked the UTF-8: without an escape the text
		// is what is between the quotes.
		return string(q[1 : len(q)-1]), nil
	}
	var s string
	err := json.Unmarshal(q, &s)
	return s, err
}

// keySet tells a repeated key: a slice holds the few keys of most
// objects, a map takes over for an object with many, so that one with a
// million keys is not checked in quadratic time.
type keySet struct {
	few  []string
	many map[string]struct{}
}

// reset empties s for the next object, keeping the memory of its few
// keys.
func (s *keySet) reset() {
	s.few, s.many = s.few[:0], nil
}

// add adds key and reports whether it was new.
func (s *keySet) add(key string) bool {
	if s.many != nil {
		if _, ok := s.many[key]; ok {
			return false
		}
		s.many[key] = struct{}{}
		return true
	}
	for _, k := range s.few {
		if k == key {
			return false
		}
	}
	s.few = append(s.few, key)
	if len(s.few) > 16 {
		s.many = make(map[string]struct{}, 2*len(s.few))
		for _, k := range s.few {
			s.many[k] = struct{}{}
		}
	}
	return true
}

// syntaxError describes a decoder's error on malformed or cut-short
// JSON, with the offset from 0 of the byte at fault where it is known;
// size is the length of the text decoded.
func syntaxError(err error, size int) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		// Offset counts the bytes read, the one at fault included.
		return fmt.Errorf("byte %d: %w", se.Offset-1, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("byte %d: the JSON ends early", size)
	}
	return err
}

// unknownKey is the error for a key no field has, with a hint when it is
// a known key in another case.
func unknownKey(key string, known []string) error {
	if k, ok := caseVariant(key, known); ok {
		return caseError(key, k)
	}
	return fmt.Errorf("unknown field %q", key)
}

// caseVariant returns the key of known that key spells in another case.
func caseVariant(key string, known []string) (string, bool) {
	for _, k := range known {
		if key != k && strings.EqualFold(key, k) {
			return k, true
		}
	}
	return "", false
}

func caseError(key, want string) error {
	return fmt.Errorf("unknown field %q (keys are case-sensitive: %q)", key, want)
}

// describeValue names the kind of the valid JSON value that starts v,
// for messages.
func describeValue(v []byte) string {
	switch v[0] {
	case '[':
		return "an array"
	case '{':
		return "an object"
	case '"':
		return "a string"
	case 't', 'f', 'n':
		return string(v[:valueEnd(v, 0)])
	}
	return "a number"
}

var null = []byte("null")

func isNull(v json.RawMessage) bool { return bytes.Equal(v, null) }

// present reports whether a raw field was given a non-null value, as
// ShareDB's checkOp tests op.create != null.
func present(v json.RawMessage) bool { return len(v) > 0 && !isNull(v) }

// uintValue decodes an unsigned integer field. Errors name the field,
// not a Go type as encoding/json's do. The helpers from here on return
// errors without ErrFormat; their callers add it once.
func uintValue(v json.RawMessage, name string) (uint64, error) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q must be an integer from 0 to 2^64-1, not %s", name, clip(v))
	}
	return n, nil
}

// intValue decodes a signed integer field (a timestamp).
func intValue(v json.RawMessage, name string) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q must be an integer from -2^63 to 2^63-1, not %s", name, clip(v))
	}
	return n, nil
}

// stringValue decodes a string field; null is an error.
func stringValue(v json.RawMessage, name string) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", fmt.Errorf("%q must be a string, not %s", name, clip(v))
	}
	s, err := unquote(v)
	if err != nil {
		return "", fmt.Errorf("%q: %w", name, err)
	}
	return s, nil
}

// optString decodes a string field of a record, where null, as in
// ShareDB's messages, means absent.
func optString(v json.RawMessage, name string) (string, error) {
	if isNull(v) {
		return "", nil
	}
	return stringValue(v, name)
}

// clip shortens a value quoted in an error: a line may be megabytes.
func clip(v []byte) string {
	const max = 64
	if len(v) <= max {
		return string(v)
	}
	return string(v[:max]) + "…"
}
