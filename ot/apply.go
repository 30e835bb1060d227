package ot

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidDocument is wrapped when the document given to Apply is not
// valid UTF-8, so its code points cannot be counted.
var ErrInvalidDocument = errors.New("ot: document is not valid UTF-8")

// Apply returns doc with op applied. Positions count Unicode code points.
//
// Apply is stricter than the reference: an op that skips or deletes past
// the end of doc is refused with an error wrapping ErrOutOfBounds (the
// reference silently clamps a delete that runs off the end). The check
// compares op.BaseLen with doc's length before any work, so an op with a
// huge count is refused at once. An op that is not valid gets an error
// wrapping ErrInvalidOp. Like the reference, the text a delete carries is
// not compared with the text it removes.
func Apply(doc string, op Op) (string, error) {
	if err := op.Validate(); err != nil {
		return "", fmt.Errorf("apply: %w", err)
	}
	if len(op) == 0 {
		return doc, nil
	}
	base := op.BaseLen()
	// A document has at most as many code points as bytes: this refuses
	// an impossible op before even counting.
	if base > len(doc) {
		return "", fmt.Errorf("%w: op spans %d code points, document has %d", ErrOutOfBounds, base, utf8.RuneCountInString(doc))
	}
	if !utf8.ValidString(doc) {
		return "", ErrInvalidDocument
	}
	if n := runeCount(doc); base > n {
		return "", fmt.Errorf("%w: op spans %d code points, document has %d", ErrOutOfBounds, base, n)
	}
	grow := len(doc)
	for _, c := range op {
		if c.Kind == KindInsert {
			grow += len(c.Text)
		}
	}
	var b strings.Builder
	b.Grow(grow)
	at := 0 // byte offset in doc
	for _, c := range op {
		switch c.Kind {
		case KindSkip:
			k := runeBytes(doc[at:], c.N)
			b.WriteString(doc[at : at+k])
			at += k
		case KindInsert:
			b.WriteString(c.Text)
		case KindDelete:
			at += runeBytes(doc[at:], c.N)
		}
	}
	b.WriteString(doc[at:])
	return b.String(), nil
}
