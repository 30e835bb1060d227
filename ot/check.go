package ot

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// ErrInvalidOp is wrapped by every error about an op's shape.
var ErrInvalidOp = errors.New("ot: invalid op")

// ErrOutOfBounds is wrapped when an op skips or deletes past the end of the
// document it is applied to.
var ErrOutOfBounds = errors.New("ot: op runs past the end of the document")

// MaxLen is the largest number of code points an op may span, before or
// after it applies: 2^53-1, the largest integer a JavaScript number holds
// exactly. Keeping every total below it means no sum in this package can
// overflow, and every count survives a trip through a JS client.
const MaxLen = 1<<53 - 1

// Validate reports whether op is in the canonical form the reference
// accepts: every component has a positive length and Text consistent with
// its kind, no two skips in a row, no trailing skip. Beyond the reference
// it also requires valid UTF-8, N equal to Text's code-point count where
// there is Text, and an op spanning at most MaxLen code points.
func (op Op) Validate() error {
	base, target := 0, 0
	for i, c := range op {
		if c.N <= 0 {
			return fmt.Errorf("%w: component %d has length %d, want > 0", ErrInvalidOp, i, c.N)
		}
		if c.N > MaxLen {
			return fmt.Errorf("%w: component %d has length %d, over the maximum %d", ErrInvalidOp, i, c.N, MaxLen)
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
			base += c.N
			target += c.N
		case KindInsert:
			if c.Text == "" {
				return fmt.Errorf("%w: component %d: empty insert", ErrInvalidOp, i)
			}
			if err := checkText(c, i); err != nil {
				return err
			}
			target += c.N
		case KindDelete:
			if c.Text != "" {
				if err := checkText(c, i); err != nil {
					return err
				}
			}
			base += c.N
		default:
			return fmt.Errorf("%w: component %d: unknown kind %d", ErrInvalidOp, i, c.Kind)
		}
		// Each N is at most MaxLen, so these sums cannot overflow before
		// the check catches them.
		if base > MaxLen || target > MaxLen {
			return fmt.Errorf("%w: component %d: op spans more than %d code points", ErrInvalidOp, i, MaxLen)
		}
	}
	return nil
}

// checkText checks that an insert's or delete's Text is valid UTF-8 and
// that N counts its code points.
func checkText(c Component, i int) error {
	if !utf8.ValidString(c.Text) {
		return fmt.Errorf("%w: component %d: text is not valid UTF-8", ErrInvalidOp, i)
	}
	if n := utf8.RuneCountInString(c.Text); n != c.N {
		return fmt.Errorf("%w: component %d: length %d but text has %d code points", ErrInvalidOp, i, c.N, n)
	}
	return nil
}

// BaseLen is the number of code points op consumes from the document it
// applies to: its skips plus its deletes. Applying op needs a document at
// least this long. The sum saturates at math.MaxInt rather than
// overflowing, so it is safe to compare even for an op that is not valid.
func (op Op) BaseLen() int {
	n := 0
	for _, c := range op {
		if c.Kind != KindInsert && c.N > 0 {
			n = addSat(n, c.N)
		}
	}
	return n
}

// Delta is how much op changes a document's length: inserted minus
// deleted code points. For a valid op it cannot overflow.
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

// addSat returns a+b for non-negative a and b, or math.MaxInt when the sum
// would overflow.
func addSat(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}
