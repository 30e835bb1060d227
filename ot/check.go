package ot

import (
	"errors"
	"fmt"
)

// ErrInvalidOp is wrapped by every error about an op's shape.
var ErrInvalidOp = errors.New("ot: invalid op")

// ErrOutOfBounds is wrapped when an op skips or deletes past the end of the
// document it is applied to.
var ErrOutOfBounds = errors.New("ot: op runs past the end of the document")

// Validate reports whether op is in the canonical form the reference
// accepts: every component has a positive length and Text consistent with
// its kind, no two skips in a row, no trailing skip.
func (op Op) Validate() error {
	for i, c := range op {
		if c.N <= 0 {
			return fmt.Errorf("%w: component %d has length %d", ErrInvalidOp, i, c.N)
		}
		switch c.Kind {
		case KindSkip:
			if c.Text != "" {
				return fmt.Errorf("%w: component %d: skip with text", ErrInvalidOp, i)
			}
			if i > 0 && op[i-1].Kind == KindSkip {
				return fmt.Errorf("%w: component %d: two skips in a row", ErrInvalidOp, i)
			}
			if i == len(op)-1 {
				return fmt.Errorf("%w: component %d: trailing skip", ErrInvalidOp, i)
			}
		case KindInsert:
			if c.Text == "" {
				return fmt.Errorf("%w: component %d: empty insert", ErrInvalidOp, i)
			}
		case KindDelete:
		default:
			return fmt.Errorf("%w: component %d: unknown kind %d", ErrInvalidOp, i, c.Kind)
		}
	}
	return nil
}

// BaseLen is the number of code points op consumes from the document it
// applies to: its skips plus its deletes. Applying op needs a document at
// least this long.
func (op Op) BaseLen() int {
	n := 0
	for _, c := range op {
		if c.Kind != KindInsert {
			n += c.N
		}
	}
	return n
}

// Delta is how much op changes a document's length: inserted minus
// deleted code points.
func (op Op) Delta() int {
	d := 0
	for _, c := range op {
		switch c.Kind {
		case KindInsert:
			d += c.N
		case KindDelete:
			d -= c.N
		}
	}
	return d
}
