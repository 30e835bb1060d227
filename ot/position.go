package ot

// TransformPosition moves a cursor position (in code points) through op,
// as the reference's transformPosition does: inserts before the cursor
// push it right, deletes before it pull it left (never past the start of
// the deletion), and an insert exactly at the cursor leaves it where it
// is. A position at or before 0 is returned unchanged. op is not checked;
// any op, valid or not, gives an answer in time linear in its number of
// components, and sums saturate instead of overflowing.
func TransformPosition(pos int, op Op) int {
	return transformPos(pos, op, false)
}

// TransformPresence moves a cursor or selection through op. Its start and
// end move separately, like positions. own says op was made by the
// presence's owner: then an insert exactly at a caret moves the caret
// after the inserted text, as typing does; another client's insert at the
// caret leaves it where it is. A negative Index or Length counts as 0, and
// the result's Length is never negative.
//
// The page has the same rule in JavaScript (web/static/js/ot.js);
// testdata/presence-vectors.json holds the cases both are tested against.
func TransformPresence(p Presence, op Op, own bool) Presence {
	start := max(p.Index, 0)
	end := addSat(start, max(p.Length, 0))
	start = transformPos(start, op, own)
	end = transformPos(end, op, own)
	return Presence{Index: start, Length: max(end-start, 0)}
}

// transformPos is TransformPosition, where sticky also moves the cursor
// past inserts made exactly at it.
func transformPos(cursor int, op Op, sticky bool) int {
	pos := 0 // where op's walk has reached, in the new document
	for _, c := range op {
		if cursor < pos || (cursor == pos && !sticky) {
			break
		}
		n := max(c.N, 0)
		switch c.Kind {
		case KindSkip:
			pos = addSat(pos, n)
		case KindInsert:
			pos = addSat(pos, n)
			cursor = addSat(cursor, n)
		case KindDelete:
			cursor -= min(n, cursor-pos)
		}
	}
	return cursor
}
