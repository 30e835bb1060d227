package ot

// Kind says what a Component does.
type Kind uint8

const (
	// KindSkip keeps N code points of the document.
	KindSkip Kind = iota + 1
	// KindInsert inserts Text (N code points) at the cursor.
	KindInsert
	// KindDelete removes N code points at the cursor. Text, when not
	// empty, is the deleted text (the invertible form {"d":"str"}).
	KindDelete
)

// Component is one part of an Op. Lengths are counted in Unicode code
// points, as in ShareDB's text-unicode type.
type Component struct {
	Kind Kind
	// N is the length in code points: the skip length, the number of code
	// points in Text for an insert, or the delete length.
	N int
	// Text is the inserted text, or for a delete the deleted text when the
	// op carries it ("" for the count-only form {"d":n}).
	Text string
}

// Op is a text-unicode operation: components read left to right over the
// document. The empty Op is the no-op.
type Op []Component

// Side breaks ties when two ops insert at the same position: Left puts the
// op being transformed first.
type Side uint8

const (
	// Left: the op being transformed wins ties (its insert goes first).
	Left Side = iota
	// Right: the other op's insert goes first.
	Right
)

// String returns "left" or "right".
func (s Side) String() string {
	if s == Left {
		return "left"
	}
	return "right"
}

// URI is the type URI ShareDB uses for text-unicode documents.
const URI = "http://sharejs.org/types/text-unicode"

// Name is the short type name ShareDB clients may send in a create.
const Name = "text-unicode"

// IsType reports whether t names this type, by URI or by Name: the names
// a create or a document presence may give. Documents store URI.
func IsType(t string) bool { return t == URI || t == Name }

// Presence is a text cursor or selection: Index is the selection start
// and Length its length, both in code points. Its JSON form is
// {"index":n,"length":m}.
type Presence struct {
	Index  int `json:"index"`
	Length int `json:"length"`
}
