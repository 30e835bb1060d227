package collab

import (
	"fmt"
	"unicode/utf8"

	"github.com/coedit/coedit/ot"
)

// docState is a document's content at its head version.
type docState struct {
	typ  string // "" when not created or deleted
	rope *ot.Rope
	head uint64
}

// shape returns what decides whether records apply to d.
func (d *docState) shape() shape {
	return shape{head: d.head, typ: d.typ, length: d.rope.Len()}
}

// applyRecord applies the committed record r, which must be at the head.
// It fails, leaving d untouched, exactly when shape.apply refuses r.
func (d *docState) applyRecord(r Record) error {
	next, err := d.shape().apply(r)
	if err != nil {
		return err
	}
	switch r.Kind {
	case OpCreate:
		d.rope = ot.NewRope(r.Data)
	case OpDelete:
		d.rope = ot.NewRope("")
	case OpEdit:
		// shape.apply checked everything Rope.Apply checks.
		if err := d.rope.Apply(r.Op); err != nil {
			return fmt.Errorf("%w: record at version %d: %w", ErrInvalidOp, r.Version, err)
		}
	}
	d.typ, d.head = next.typ, next.head
	return nil
}

// applyAll applies recs in order; on an error d may hold some of them.
func (d *docState) applyAll(recs []Record) error {
	for _, r := range recs {
		if err := d.applyRecord(r); err != nil {
			return err
		}
	}
	return nil
}

// snapshot returns the document at its head.
func (d *docState) snapshot() Snapshot {
	s := Snapshot{Version: d.head, Type: d.typ}
	if d.typ != "" {
		s.Data = d.rope.String()
	}
	return s
}

// shape is what decides whether a record applies to a document: its head
// version, its type ("" when not created or deleted) and its length in
// code points. Planning a group commit and checking remote records work
// on shapes, so the document's text changes only after the commit.
type shape struct {
	head   uint64
	typ    string
	length int
}

// apply returns the shape after rec, or why rec does not apply: it is not
// at the head, edits a document that does not exist, is not a valid op, or
// skips or deletes past the end. A record apply accepts applies to the
// document's rope without error (Rope.Apply checks exactly Validate and
// the length).
func (sh shape) apply(rec Record) (shape, error) {
	if rec.Version != sh.head {
		return sh, fmt.Errorf("collab: record at version %d applied at head %d", rec.Version, sh.head)
	}
	switch rec.Kind {
	case OpCreate:
		// NewRope replaces each invalid byte with one U+FFFD, which is
		// what RuneCountInString counts for it.
		sh.typ, sh.length = rec.Type, utf8.RuneCountInString(rec.Data)
	case OpDelete:
		sh.typ, sh.length = "", 0
	case OpEdit:
		if sh.typ == "" {
			return sh, fmt.Errorf("%w: edit at version %d", ErrDocMissing, rec.Version)
		}
		if err := rec.Op.Validate(); err != nil {
			return sh, fmt.Errorf("%w: record at version %d: %w", ErrInvalidOp, rec.Version, err)
		}
		if n := rec.Op.BaseLen(); n > sh.length {
			return sh, fmt.Errorf("%w: record at version %d: %w: the op spans %d code points of a document of %d",
				ErrInvalidOp, rec.Version, ot.ErrOutOfBounds, n, sh.length)
		}
		sh.length += rec.Op.Delta()
	default:
		return sh, fmt.Errorf("%w: record at version %d has unknown kind %d", ErrInvalidOp, rec.Version, rec.Kind)
	}
	sh.head++
	return sh, nil
}

// applyAll returns the shape after recs, or the first one's error.
func (sh shape) applyAll(recs []Record) (shape, error) {
	for _, r := range recs {
		next, err := sh.apply(r)
		if err != nil {
			return sh, err
		}
		sh = next
	}
	return sh, nil
}
