package ot

import (
	"fmt"
	"math/bits"
)

// Transform rewrites op so that it applies after other, where both ops
// were made against the same document: apply(apply(s, other),
// Transform(op, other, side)) keeps op's intent. When both ops insert at
// the same position, side decides whose text comes first: Left puts op's
// insert before other's, Right after. This is ShareDB text-unicode's
// transform, component for component, including the shape of its result.
//
// The result converges (apply(apply(s, a), Transform(b, a, Right)) ==
// apply(apply(s, b), Transform(a, b, Left))) for ops whose neighbouring
// inserts are merged, as Normalize, Compose and Transform leave them.
// Like the reference, an op with two inserts in a row only puts the first
// of them ahead of a tied insert, so such ops can diverge: normalize ops
// from clients before transforming them.
//
// Both ops must be valid (Validate); otherwise the error wraps
// ErrInvalidOp, as the reference throws. The work is linear in the number
// of components and in the text that has to be split, never in the
// lengths of skips and count-only deletes.
func Transform(op, other Op, side Side) (Op, error) {
	return TransformTo(nil, op, other, side)
}

// TransformTo is Transform with the result written over dst's memory
// (grown when it is too small): a caller that transforms an op over many
// others in turn alternates two buffers instead of allocating a result
// per step. dst must not share memory with op or other.
func TransformTo(dst, op, other Op, side Side) (Op, error) {
	if side != Left && side != Right {
		return nil, fmt.Errorf("ot: transform side %d is neither Left nor Right", side)
	}
	if err := op.Validate(); err != nil {
		return nil, fmt.Errorf("transform op: %w", err)
	}
	if err := other.Validate(); err != nil {
		return nil, fmt.Errorf("transform by other: %w", err)
	}
	out := dst[:0]
	if out == nil || cap(out) < len(op)+len(other) {
		// Never nil: an op that transforms to nothing is the empty op,
		// [] on the wire, not null, and callers tell the two apart (a
		// nil op in flight is none in flight).
		out = make(Op, 0, len(op)+len(other))
	}
	r := reader{op: op}
	for _, c2 := range other {
		switch c2.Kind {
		case KindSkip:
			// Keep what op does inside the skipped stretch; op's inserts
			// stay whole and take no room in other's document.
			for n := c2.N; n > 0; {
				c1 := r.take(n, KindInsert)
				out = appendComponent(out, c1)
				if c1.Kind != KindInsert {
					n -= c1.N
				}
			}
		case KindInsert:
			// On the left, op's insert waiting at this spot goes first.
			if side == Left && r.peekKind() == KindInsert {
				out = appendComponent(out, r.take(-1, 0))
			}
			out = appendComponent(out, Component{Kind: KindSkip, N: c2.N})
		case KindDelete:
			// Text other deleted is gone: drop op's skips and deletes over
			// it, keep op's inserts.
			for n := c2.N; n > 0; {
				c1 := r.take(n, KindInsert)
				switch c1.Kind {
				case KindSkip, KindDelete:
					n -= c1.N
				case KindInsert:
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

// reader hands out an op's components in pieces, the way the reference's
// take does: ask for up to n code points and get the next component or
// the part of it that fits. Past the end an op keeps skipping forever.
type reader struct {
	op   Op
	idx  int // component being read
	off  int // code points of op[idx] already handed out
	boff int // bytes of op[idx].Text already handed out
}

// done reports whether every component has been handed out.
func (r *reader) done() bool { return r.idx >= len(r.op) }

// peekKind returns the kind of the component being read, or 0 at the end.
func (r *reader) peekKind() Kind {
	if r.done() {
		return 0
	}
	return r.op[r.idx].Kind
}

// take returns up to n code points of the next component; n < 0 asks for
// the rest of the component. A component of kind whole is never split:
// it comes back entire even when longer than n. At the end of the op it
// returns a skip of n (n must then be positive).
func (r *reader) take(n int, whole Kind) Component {
	if r.done() {
		return Component{Kind: KindSkip, N: n}
	}
	c := r.op[r.idx]
	rest := c.N - r.off
	if n < 0 || rest <= n || c.Kind == whole {
		part := Component{Kind: c.Kind, N: rest}
		if c.Text != "" {
			part.Text = c.Text[r.boff:]
		}
		r.idx++
		r.off, r.boff = 0, 0
		return part
	}
	part := Component{Kind: c.Kind, N: n}
	if c.Text != "" {
		b := runeBytes(c.Text[r.boff:], n)
		part.Text = c.Text[r.boff : r.boff+b]
		r.boff += b
	}
	r.off += n
	return part
}

// runeCount returns the number of code points in s, which must be valid
// UTF-8, eight bytes at a time (see runeBytes).
func runeCount(s string) int {
	const high = 0x8080808080808080
	cont := 0
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		cont += bits.OnesCount64(w &^ (w << 1) & high)
	}
	for ; i < len(s); i++ {
		if s[i]&0xc0 == 0x80 {
			cont++
		}
	}
	return len(s) - cont
}

// runeBytes returns the byte length of the first n code points of s (all
// of s if it has fewer). s must be valid UTF-8. It counts eight bytes at a
// time: in valid UTF-8 each code point starts at exactly one byte that is
// not a continuation byte (10xxxxxx).
func runeBytes(s string, n int) int {
	const high = 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// A byte's top bit set and next bit clear marks a continuation.
		starts := 8 - bits.OnesCount64(w&^(w<<1)&high)
		if starts > n {
			break
		}
		n -= starts
	}
	for ; i < len(s); i++ {
		if s[i]&0xc0 != 0x80 {
			if n == 0 {
				break
			}
			n--
		}
	}
	return i
}
