package ot

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalidPresence is wrapped by every error DecodePresence returns.
var ErrInvalidPresence = errors.New("ot: invalid presence")

// DecodeError says what is wrong with a JSON op or presence and where. It
// unwraps to ErrInvalidOp or ErrInvalidPresence.
type DecodeError struct {
	// Offset is the byte offset in the input where the problem was found.
	Offset int
	// Index is the op component the problem is in, or -1 when it is not
	// inside a component (or the input is a presence).
	Index int
	// Reason says what is wrong.
	Reason string

	kind error
}

// Error returns the reason with its position.
func (e *DecodeError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("%v: component %d (byte %d): %s", e.kind, e.Index, e.Offset, e.Reason)
	}
	return fmt.Sprintf("%v: byte %d: %s", e.kind, e.Offset, e.Reason)
}

// Unwrap returns ErrInvalidOp or ErrInvalidPresence.
func (e *DecodeError) Unwrap() error { return e.kind }

// Decode parses an op from its JSON form: an array whose elements are a
// positive integer (skip), a non-empty string (insert), or {"d":n} or
// {"d":"text"} (delete). It is strict where encoding/json is lenient: it
// refuses invalid UTF-8, lone or split UTF-16 surrogate escapes (which
// encoding/json would turn into U+FFFD), numbers that are not integers in
// 1..MaxLen, unknown or repeated keys, empty inserts and deletes, and ops
// the reference would reject (two skips in a row, a trailing skip).
// Every error is a *DecodeError wrapping ErrInvalidOp. A decoded op is
// valid (Validate returns nil).
func Decode(data []byte) (Op, error) {
	return decodeOp(data, true)
}

// MarshalJSON encodes op in its canonical compact JSON form, the same
// bytes JavaScript's JSON.stringify gives for the op: only '"', '\' and
// control characters are escaped, other text is kept as UTF-8. An op that
// is not valid is refused with an error wrapping ErrInvalidOp.
func (op Op) MarshalJSON() ([]byte, error) {
	if err := op.Validate(); err != nil {
		return nil, err
	}
	return appendOp(make([]byte, 0, opJSONSize(op)), op), nil
}

// AppendJSON appends op's JSON form, the bytes MarshalJSON returns, to b.
// An op that is not valid is refused with an error wrapping ErrInvalidOp,
// and b is returned as it was.
func (op Op) AppendJSON(b []byte) ([]byte, error) {
	if err := op.Validate(); err != nil {
		return b, err
	}
	return appendOp(b, op), nil
}

// UnmarshalJSON decodes data with Decode. Unlike most Unmarshalers it
// refuses null: an op is always an array.
func (op *Op) UnmarshalJSON(data []byte) error {
	o, err := Decode(data)
	if err != nil {
		return err
	}
	*op = o
	return nil
}

// String returns op's JSON form, for messages and debugging. It does not
// validate op.
func (op Op) String() string {
	return string(appendOp(nil, op))
}

// DecodePresence parses a text presence {"index":n,"length":m}: both keys
// present, once each, no others, each a non-negative integer at most
// MaxLen. Every error is a *DecodeError wrapping ErrInvalidPresence.
func DecodePresence(data []byte) (Presence, error) {
	s := scanner{data: data, idx: -1, kind: ErrInvalidPresence}
	var p Presence
	s.space()
	if s.eof() || s.data[s.pos] != '{' {
		return p, s.fail(s.pos, "presence must be a JSON object {\"index\":n,\"length\":m}")
	}
	s.pos++
	var seenIndex, seenLength bool
	s.space()
	if !s.eof() && s.data[s.pos] == '}' {
		return p, s.fail(s.pos, "presence is missing \"index\" and \"length\"")
	}
	for {
		s.space()
		keyAt := s.pos
		if s.eof() || s.data[s.pos] != '"' {
			return p, s.fail(s.pos, "expected a string key")
		}
		key, _, err := s.str()
		if err != nil {
			return p, err
		}
		var dst *int
		switch key {
		case "index":
			if seenIndex {
				return p, s.fail(keyAt, "repeated key \"index\"")
			}
			seenIndex, dst = true, &p.Index
		case "length":
			if seenLength {
				return p, s.fail(keyAt, "repeated key \"length\"")
			}
			seenLength, dst = true, &p.Length
		default:
			return p, s.fail(keyAt, "unknown key "+quoteShort(key)+", want \"index\" or \"length\"")
		}
		if err := s.colon(); err != nil {
			return p, err
		}
		if s.eof() || !isNumberStart(s.data[s.pos]) {
			return p, s.fail(s.pos, quoteShort(key)+" must be a non-negative integer")
		}
		v, err := s.number(true, key)
		if err != nil {
			return p, err
		}
		*dst = v
		s.space()
		if s.eof() {
			return p, s.fail(s.pos, "unterminated object")
		}
		if s.data[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.data[s.pos] != '}' {
			return p, s.fail(s.pos, "expected ',' or '}' in object")
		}
		s.pos++
		break
	}
	if !seenIndex {
		return p, s.fail(s.pos, "presence is missing \"index\"")
	}
	if !seenLength {
		return p, s.fail(s.pos, "presence is missing \"length\"")
	}
	s.space()
	if !s.eof() {
		return p, s.fail(s.pos, "unexpected data after the presence")
	}
	return p, nil
}

// EncodePresence returns p's JSON form {"index":n,"length":m}.
func EncodePresence(p Presence) []byte {
	b := make([]byte, 0, 32)
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(p.Index), 10)
	b = append(b, `,"length":`...)
	b = strconv.AppendInt(b, int64(p.Length), 10)
	return append(b, '}')
}

// decodeOp parses an op. With canonical unset it also accepts what only
// Normalize or the tests need: zero counts, empty texts, and skips that
// are adjacent or trailing.
func decodeOp(data []byte, canonical bool) (Op, error) {
	s := scanner{data: data, idx: -1, kind: ErrInvalidOp}
	s.space()
	if s.eof() {
		return nil, s.fail(s.pos, "empty input, want a JSON array")
	}
	if s.data[s.pos] != '[' {
		return nil, s.fail(s.pos, "op must be a JSON array, found "+s.describe())
	}
	s.pos++
	op := Op{}
	base, target := 0, 0
	lastAt := 0
	s.space()
	if !s.eof() && s.data[s.pos] == ']' {
		s.pos++
	} else {
		for {
			s.idx = len(op)
			s.space()
			at := s.pos
			c, err := s.component(canonical)
			if err != nil {
				return nil, err
			}
			if canonical {
				if c.Kind == KindSkip && len(op) > 0 && op[len(op)-1].Kind == KindSkip {
					return nil, s.fail(at, "two skips in a row; the reference wants them combined")
				}
				if c.Kind != KindInsert {
					base += c.N
				}
				if c.Kind != KindDelete {
					target += c.N
				}
				if base > MaxLen || target > MaxLen {
					return nil, s.fail(at, fmt.Sprintf("op spans more than %d code points", MaxLen))
				}
			}
			op = append(op, c)
			lastAt = at
			s.space()
			if s.eof() {
				return nil, s.fail(s.pos, "unterminated array")
			}
			if s.data[s.pos] == ',' {
				s.pos++
				continue
			}
			if s.data[s.pos] != ']' {
				return nil, s.fail(s.pos, "expected ',' or ']' after a component, found "+s.describe())
			}
			s.pos++
			break
		}
		if canonical && op[len(op)-1].Kind == KindSkip {
			s.idx = len(op) - 1
			return nil, s.fail(lastAt, "trailing skip; the reference wants it removed")
		}
	}
	s.idx = -1
	s.space()
	if !s.eof() {
		return nil, s.fail(s.pos, "unexpected data after the op")
	}
	return op, nil
}

// scanner reads JSON by hand, a byte at a time.
type scanner struct {
	data []byte
	pos  int
	idx  int   // component being read, or -1
	kind error // sentinel the errors wrap
	buf  []byte
}

func (s *scanner) eof() bool { return s.pos >= len(s.data) }

func (s *scanner) fail(at int, reason string) error {
	return &DecodeError{Offset: at, Index: s.idx, Reason: reason, kind: s.kind}
}

// space skips JSON whitespace.
func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// describe names what is at the current position, for messages.
func (s *scanner) describe() string {
	if s.eof() {
		return "end of input"
	}
	b := s.data[s.pos]
	switch {
	case b == '"':
		return "a string"
	case b == '{':
		return "an object"
	case b == '[':
		return "an array"
	case isNumberStart(b):
		return "a number"
	case b == 't' || b == 'f':
		return "a boolean"
	case b == 'n':
		return "null"
	case b >= 0x20 && b < 0x7f:
		return strconv.QuoteRune(rune(b))
	default:
		return fmt.Sprintf("byte 0x%02x", b)
	}
}

func isNumberStart(b byte) bool { return b == '-' || (b >= '0' && b <= '9') }

// colon reads the ':' after an object key and the space around it.
func (s *scanner) colon() error {
	s.space()
	if s.eof() || s.data[s.pos] != ':' {
		return s.fail(s.pos, "expected ':' after object key")
	}
	s.pos++
	s.space()
	return nil
}

// component reads one op component.
func (s *scanner) component(canonical bool) (Component, error) {
	if s.eof() {
		return Component{}, s.fail(s.pos, "unterminated array")
	}
	at := s.pos
	switch b := s.data[s.pos]; {
	case b == '"':
		text, n, err := s.str()
		if err != nil {
			return Component{}, err
		}
		if n == 0 && canonical {
			return Component{}, s.fail(at, "empty insert")
		}
		return Component{Kind: KindInsert, N: n, Text: text}, nil
	case b == '{':
		return s.deleteObject(canonical)
	case isNumberStart(b):
		n, err := s.number(!canonical, "skip")
		if err != nil {
			return Component{}, err
		}
		return Component{Kind: KindSkip, N: n}, nil
	default:
		return Component{}, s.fail(at, "want a skip (positive integer), an insert (string) or a delete ({\"d\":...}), found "+s.describe())
	}
}

// deleteObject reads {"d":n} or {"d":"text"}.
func (s *scanner) deleteObject(canonical bool) (Component, error) {
	open := s.pos
	s.pos++
	s.space()
	if !s.eof() && s.data[s.pos] == '}' {
		return Component{}, s.fail(open, "empty object, want a delete {\"d\":n} or {\"d\":\"text\"}")
	}
	var c Component
	for {
		s.space()
		keyAt := s.pos
		if s.eof() || s.data[s.pos] != '"' {
			return Component{}, s.fail(s.pos, "expected a string key in object")
		}
		key, _, err := s.str()
		if err != nil {
			return Component{}, err
		}
		if key != "d" {
			return Component{}, s.fail(keyAt, "unknown key "+quoteShort(key)+" in delete, want only \"d\"")
		}
		if c.Kind != 0 {
			return Component{}, s.fail(keyAt, "repeated key \"d\"")
		}
		if err := s.colon(); err != nil {
			return Component{}, err
		}
		at := s.pos
		switch {
		case !s.eof() && s.data[s.pos] == '"':
			text, n, err := s.str()
			if err != nil {
				return Component{}, err
			}
			if n == 0 && canonical {
				return Component{}, s.fail(at, "empty delete text")
			}
			c = Component{Kind: KindDelete, N: n, Text: text}
		case !s.eof() && isNumberStart(s.data[s.pos]):
			n, err := s.number(!canonical, "delete length")
			if err != nil {
				return Component{}, err
			}
			c = Component{Kind: KindDelete, N: n}
		default:
			return Component{}, s.fail(at, "delete value must be a positive integer or a non-empty string, found "+s.describe())
		}
		s.space()
		if s.eof() {
			return Component{}, s.fail(s.pos, "unterminated object")
		}
		if s.data[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.data[s.pos] != '}' {
			return Component{}, s.fail(s.pos, "expected ',' or '}' in object, found "+s.describe())
		}
		s.pos++
		return c, nil
	}
}

// number reads a JSON number that must be an integer in 1..MaxLen (or
// 0..MaxLen with zero set). Forms such as 1e3 or 2.0 that denote an
// integer are accepted; the value is worked out exactly from the digits,
// never through a float.
func (s *scanner) number(zero bool, what string) (int, error) {
	at := s.pos
	d := s.data
	neg := false
	if d[s.pos] == '-' {
		neg = true
		s.pos++
	}
	intStart := s.pos
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
		if s.pos < len(d) && isDigit(d[s.pos]) {
			return 0, s.fail(at, "invalid number: leading zero")
		}
	case s.pos < len(d) && isDigit(d[s.pos]):
		for s.pos < len(d) && isDigit(d[s.pos]) {
			s.pos++
		}
	default:
		return 0, s.fail(at, "invalid number")
	}
	intDigits := d[intStart:s.pos]
	var fracDigits []byte
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		fs := s.pos
		for s.pos < len(d) && isDigit(d[s.pos]) {
			s.pos++
		}
		if s.pos == fs {
			return 0, s.fail(at, "invalid number: no digits after '.'")
		}
		fracDigits = d[fs:s.pos]
	}
	exp := 0
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		expNeg := false
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			expNeg = d[s.pos] == '-'
			s.pos++
		}
		es := s.pos
		for s.pos < len(d) && isDigit(d[s.pos]) {
			if exp < 1<<30 {
				exp = exp*10 + int(d[s.pos]-'0')
			}
			s.pos++
		}
		if s.pos == es {
			return 0, s.fail(at, "invalid number: no digits in exponent")
		}
		if expNeg {
			exp = -exp
		}
	}
	// The value is digits × 10^exp, with digits the integer and fraction
	// digits run together.
	exp -= len(fracDigits)
	lead := 0
	for lead < len(intDigits) && intDigits[lead] == '0' {
		lead++
	}
	intDigits = intDigits[lead:]
	if len(intDigits) == 0 {
		for lead = 0; lead < len(fracDigits) && fracDigits[lead] == '0'; lead++ {
		}
		fracDigits = fracDigits[lead:]
	}
	// Copying costs at most the input's size; typical counts fit the
	// stack buffer.
	var stack [24]byte
	digits := append(append(stack[:0], intDigits...), fracDigits...)
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	return s.numberValue(at, neg, digits, exp, zero, what)
}

// numberValue turns significant digits (no leading or trailing zeros)
// times 10^exp into an int, or explains why it cannot be one.
func (s *scanner) numberValue(at int, neg bool, digits []byte, exp int, zero bool, what string) (int, error) {
	if len(digits) == 0 {
		if zero {
			return 0, nil
		}
		return 0, s.fail(at, what+" must be positive, got 0")
	}
	if neg {
		return 0, s.fail(at, what+" must not be negative")
	}
	if exp < 0 {
		return 0, s.fail(at, what+" must be an integer, got "+quoteNumber(s.data[at:s.pos]))
	}
	if len(digits)+exp > 16 {
		return 0, s.fail(at, fmt.Sprintf("%s is larger than %d", what, MaxLen))
	}
	v := uint64(0)
	for _, c := range digits {
		v = v*10 + uint64(c-'0')
	}
	for ; exp > 0; exp-- {
		v *= 10
	}
	if v > MaxLen {
		return 0, s.fail(at, fmt.Sprintf("%s is larger than %d", what, MaxLen))
	}
	return int(v), nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// quoteNumber shows a number's text in a message, cut short if long.
func quoteNumber(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "..."
	}
	return string(b)
}

// quoteShort quotes a decoded key for a message, cut short if long.
func quoteShort(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return strconv.Quote(s)
}

// str reads a JSON string at s.pos (on its opening quote) and returns its
// text and its length in code points. It refuses invalid UTF-8, raw
// control characters and escapes that do not spell whole code points.
func (s *scanner) str() (string, int, error) {
	d := s.data
	s.pos++
	start := s.pos
	n := 0
	// Fast path: no escapes, so the text is the raw bytes.
	for s.pos < len(d) {
		b := d[s.pos]
		switch {
		case b == '"':
			text := string(d[start:s.pos])
			s.pos++
			return text, n, nil
		case b == '\\':
			s.buf = append(s.buf[:0], d[start:s.pos]...)
			return s.strEscaped(n)
		case b < 0x20:
			return "", 0, s.fail(s.pos, fmt.Sprintf("control character 0x%02x in string must be escaped", b))
		case b < utf8.RuneSelf:
			s.pos++
		default:
			r, size := utf8.DecodeRune(d[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", 0, s.fail(s.pos, "invalid UTF-8 in string")
			}
			s.pos += size
		}
		n++
	}
	return "", 0, s.fail(start-1, "unterminated string")
}

// strEscaped continues str once an escape is seen, building the text in
// s.buf; n code points are already there.
func (s *scanner) strEscaped(n int) (string, int, error) {
	d := s.data
	for s.pos < len(d) {
		b := d[s.pos]
		switch {
		case b == '"':
			s.pos++
			return string(s.buf), n, nil
		case b == '\\':
			r, err := s.escape()
			if err != nil {
				return "", 0, err
			}
			s.buf = utf8.AppendRune(s.buf, r)
		case b < 0x20:
			return "", 0, s.fail(s.pos, fmt.Sprintf("control character 0x%02x in string must be escaped", b))
		case b < utf8.RuneSelf:
			s.buf = append(s.buf, b)
			s.pos++
		default:
			r, size := utf8.DecodeRune(d[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", 0, s.fail(s.pos, "invalid UTF-8 in string")
			}
			s.buf = append(s.buf, d[s.pos:s.pos+size]...)
			s.pos += size
		}
		n++
	}
	return "", 0, s.fail(s.pos, "unterminated string")
}

// escape reads one escape sequence at s.pos (on its backslash), joining a
// surrogate pair written as two \u escapes into one code point.
func (s *scanner) escape() (rune, error) {
	d := s.data
	at := s.pos
	if at+1 >= len(d) {
		return 0, s.fail(at, "unterminated string")
	}
	s.pos += 2
	switch d[at+1] {
	case '"':
		return '"', nil
	case '\\':
		return '\\', nil
	case '/':
		return '/', nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, s.fail(at, "invalid escape "+strconv.Quote(string(d[at:at+2])))
	}
	r, ok := hex4(d, at+2)
	if !ok {
		return 0, s.fail(at, "invalid \\u escape: want four hex digits")
	}
	s.pos = at + 6
	switch {
	case utf16.IsSurrogate(r) && r >= 0xdc00:
		return 0, s.fail(at, fmt.Sprintf("lone low surrogate \\u%04x", r))
	case utf16.IsSurrogate(r):
		if at+7 >= len(d) || d[at+6] != '\\' || d[at+7] != 'u' {
			return 0, s.fail(at, fmt.Sprintf("high surrogate \\u%04x not followed by a low surrogate escape", r))
		}
		lo, ok := hex4(d, at+8)
		if !ok {
			return 0, s.fail(at+6, "invalid \\u escape: want four hex digits")
		}
		if lo < 0xdc00 || lo > 0xdfff {
			return 0, s.fail(at, fmt.Sprintf("high surrogate \\u%04x followed by \\u%04x, not a low surrogate", r, lo))
		}
		s.pos = at + 12
		return utf16.DecodeRune(r, lo), nil
	}
	return r, nil
}

// CheckSurrogates reports a \u escape anywhere in the JSON text data that
// is a UTF-16 surrogate not part of a high-low pair. encoding/json would
// silently decode such an escape to U+FFFD, changing the text's length in
// code points; callers that decode other JSON fields with encoding/json
// check them with this first. Other malformed escapes are left to the
// decoder.
func CheckSurrogates(data []byte) error {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		i++
		if i >= len(data) || data[i] != 'u' {
			continue
		}
		r, ok := hex4(data, i+1)
		if !ok {
			continue
		}
		i += 4
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xdc00 {
			return fmt.Errorf("lone UTF-16 surrogate \\u%04x in string", r)
		}
		lo, ok := rune(0), i+6 < len(data) && data[i+1] == '\\' && data[i+2] == 'u'
		if ok {
			lo, ok = hex4(data, i+3)
		}
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return fmt.Errorf("lone UTF-16 surrogate \\u%04x in string", r)
		}
		i += 6
	}
	return nil
}

// hex4 reads four hex digits at d[i:].
func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// opJSONSize estimates the encoded size of op, to allocate once.
func opJSONSize(op Op) int {
	n := 2
	for _, c := range op {
		n += len(c.Text) + 24
	}
	return n
}

// appendOp appends op's compact JSON form to b.
func appendOp(b []byte, op Op) []byte {
	b = append(b, '[')
	for i, c := range op {
		if i > 0 {
			b = append(b, ',')
		}
		switch c.Kind {
		case KindSkip:
			b = strconv.AppendInt(b, int64(c.N), 10)
		case KindInsert:
			b = appendString(b, c.Text)
		case KindDelete:
			b = append(b, `{"d":`...)
			if c.Text != "" {
				b = appendString(b, c.Text)
			} else {
				b = strconv.AppendInt(b, int64(c.N), 10)
			}
			b = append(b, '}')
		default:
			b = append(b, "null"...)
		}
	}
	return append(b, ']')
}

// appendString appends s as a JSON string, escaping exactly what
// JSON.stringify escapes in well-formed text: '"', '\' and control
// characters (short forms where JSON has them, \u00xx otherwise).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
