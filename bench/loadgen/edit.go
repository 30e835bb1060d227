package loadgen

import (
	"math/rand/v2"
	"strings"

	"github.com/coedit/coedit/ot"
)

// Document lengths, in code points, that the edits steer towards: inserts
// only below minDocLen, deletes more often than inserts above maxDocLen,
// so a long run neither empties a document nor grows it without bound
// (ShareDB's in-memory database copies the whole snapshot per op, and a
// growing document would measure that rather than the server).
const (
	minDocLen = 50
	maxDocLen = 400
)

// initialText is a new document's text: some of every kind of character
// the edits use, so that deletes and skips cross them from the first op.
const initialText = "coedit bench: naïve café, Grüße, 中文, emoji 😀🎉, music 𝄞. " +
	"The quick brown fox jumps over the lazy dog; ∑ αβγ — done."

// alphabet is what inserts draw from: mostly ASCII, some two- and
// three-byte BMP characters, and some astral ones (four bytes in UTF-8, a
// surrogate pair in JavaScript), which text-unicode counts as one code
// point each.
var alphabet = []rune("abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrstuvwxyz ETAOINSHRDLU .,;" +
	"éüßñ€中文αβ∑—" + "😀🎉𝄞🚀")

// randomEdit returns a small edit of a document of docLen code points:
// insert 1 to 3 characters, or delete 1 to 3, at a uniformly random
// position. The op is canonical (no empty or trailing skip).
func randomEdit(r *rand.Rand, docLen int) ot.Op {
	del := docLen > 0 && docLen >= minDocLen && r.IntN(100) < deletePercent(docLen)
	var op ot.Op
	if del {
		pos := r.IntN(docLen)
		n := min(1+r.IntN(3), docLen-pos)
		if pos > 0 {
			op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
		}
		return append(op, ot.Component{Kind: ot.KindDelete, N: n})
	}
	pos := r.IntN(docLen + 1)
	n := 1 + r.IntN(3)
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindInsert, N: n, Text: b.String()})
}

// deletePercent is the chance of a delete: balanced with inserts inside
// the target range, so the length wanders, and mostly deletes above it.
func deletePercent(docLen int) int {
	if docLen > maxDocLen {
		return 80
	}
	return 45
}
