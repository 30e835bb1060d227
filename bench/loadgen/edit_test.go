package loadgen

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/coedit/coedit/ot"
)

// TestRandomEditsStayValidAndBounded applies many random edits in a row:
// each must be a valid op that applies to the document it was made for,
// the document must stay within its steering range once there, and
// characters outside ASCII, BMP and astral alike, must turn up.
func TestRandomEditsStayValidAndBounded(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	doc := ot.NewRope(initialText)
	var bmp, astral bool
	for i := range 20000 {
		op := randomEdit(r, doc.Len())
		if err := op.Validate(); err != nil {
			t.Fatalf("edit %d = %v: %v", i, op, err)
		}
		if err := doc.Apply(op); err != nil {
			t.Fatalf("edit %d = %v on a document of %d: %v", i, op, doc.Len(), err)
		}
		for _, c := range op {
			for _, ch := range c.Text {
				bmp = bmp || (ch > utf8.RuneSelf && ch <= 0xFFFF)
				astral = astral || ch > 0xFFFF
			}
		}
		if i > 5000 && (doc.Len() < minDocLen-3 || doc.Len() > maxDocLen+50) {
			t.Fatalf("after %d edits the document has %d code points, want about %d to %d", i, doc.Len(), minDocLen, maxDocLen)
		}
	}
	if !bmp || !astral {
		t.Errorf("inserts had BMP non-ASCII %v, astral %v; want both", bmp, astral)
	}
}
