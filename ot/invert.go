package ot

import (
	"errors"
	"fmt"
)

// ErrNotInvertible is wrapped when an op cannot be inverted because one of
// its deletes is the count-only form {"d":n} and does not say what text it
// removed.
var ErrNotInvertible = errors.New("ot: op is not invertible")

// Invert returns the op that undoes op: inserts become deletes carrying
// their text, deletes become inserts of the text they carry, skips stay.
// apply(apply(s, op), Invert(op)) == s when op's deletes carry the text
// they remove from s. Like the reference, the result is normalized.
//
// op must be valid (ErrInvalidOp otherwise) and every delete must carry its
// text (ErrNotInvertible otherwise).
func Invert(op Op) (Op, error) {
	if err := op.Validate(); err != nil {
		return nil, fmt.Errorf("invert: %w", err)
	}
	out := make(Op, 0, len(op))
	for i, c := range op {
		switch c.Kind {
		case KindInsert:
			c.Kind = KindDelete
		case KindDelete:
			if c.Text == "" {
				return nil, fmt.Errorf("%w: component %d deletes %d code points without saying which", ErrNotInvertible, i, c.N)
			}
			c.Kind = KindInsert
		}
		out = appendComponent(out, c)
	}
	return trim(out), nil
}
