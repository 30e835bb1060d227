package ot

import (
	"fmt"
	"unicode/utf8"
)

// Compose returns one op with the effect of a followed by b:
// apply(s, Compose(a, b)) == apply(apply(s, a), b). b must be an op on the
// document a produces. This is ShareDB text-unicode's compose, component
// for component; a delete in b keeps its text where it carries one.
//
// Both ops must be valid (Validate); otherwise the error wraps
// ErrInvalidOp, as the reference throws. The work is linear in the number
// of components and in the text that has to be split.
func Compose(a, b Op) (Op, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("compose first op: %w", err)
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("compose second op: %w", err)
	}
	out := make(Op, 0, len(a)+len(b))
	r := reader{op: a}
	for _, c2 := range b {
		switch c2.Kind {
		case KindSkip:
			// Keep a's work under b's skip; a's deletes take no room in
			// the document b sees.
			for n := c2.N; n > 0; {
				c1 := r.take(n, KindDelete)
				out = appendComponent(out, c1)
				if c1.Kind != KindDelete {
					n -= c1.N
				}
			}
		case KindInsert:
			out = appendComponent(out, c2)
		case KindDelete:
			// done counts the code points of c2 handled so far, at byte
			// boff of its text.
			done, boff := 0, 0
			for done < c2.N {
				c1 := r.take(c2.N-done, KindDelete)
				switch c1.Kind {
				case KindSkip:
					// b deletes text that was in the original document.
					d := Component{Kind: KindDelete, N: c1.N}
					if c2.Text != "" {
						k := runeBytes(c2.Text[boff:], c1.N)
						d.Text = c2.Text[boff : boff+k]
						boff += k
					}
					out = appendComponent(out, d)
					done += c1.N
				case KindInsert:
					// b deletes what a inserted: both vanish.
					if c2.Text != "" {
						boff += runeBytes(c2.Text[boff:], c1.N)
					}
					done += c1.N
				case KindDelete:
					out = appendComponent(out, c1)
				}
			}
		}
	}
	for !r.done() {
		out = appendComponent(out, r.take(-1, 0))
	}
	return trim(out), nil
}

// Normalize returns op in the reference's normal form: empty components
// dropped, neighbours of the same kind merged, a trailing skip removed.
// Merging two deletes keeps their text only when both carry text. The
// length of an insert, or of a delete that carries text, is taken from its
// text. Normalize accepts any op and never fails; its result is valid
// whenever every remaining component's length and text are.
func Normalize(op Op) Op {
	out := make(Op, 0, len(op))
	for _, c := range op {
		if c.Text != "" && (c.Kind == KindInsert || c.Kind == KindDelete) {
			c.N = utf8.RuneCountInString(c.Text)
		}
		if c.Kind == KindInsert && c.Text == "" {
			continue
		}
		out = appendComponent(out, c)
	}
	return trim(out)
}

// appendComponent appends c to op the way the reference's append does:
// empty components vanish and a component of the same kind as op's last
// merges into it.
func appendComponent(op Op, c Component) Op {
	if c.N <= 0 || c.Kind < KindSkip || c.Kind > KindDelete {
		return op
	}
	if len(op) == 0 || op[len(op)-1].Kind != c.Kind {
		return append(op, c)
	}
	last := &op[len(op)-1]
	switch c.Kind {
	case KindSkip:
		last.N += c.N
	case KindInsert:
		last.N += c.N
		last.Text += c.Text
	case KindDelete:
		// Text survives only if both halves carry it; otherwise the
		// merged delete is a count, as in the reference.
		if last.Text != "" && c.Text != "" {
			last.Text += c.Text
		} else {
			last.Text = ""
		}
		last.N += c.N
	}
	return op
}

// trim drops a trailing skip; after appendComponent there is at most one.
func trim(op Op) Op {
	if len(op) > 0 && op[len(op)-1].Kind == KindSkip {
		op = op[:len(op)-1]
	}
	return op
}
