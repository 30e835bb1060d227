package editlog

import (
	"fmt"
	"strconv"
)

// contextLen is how many code points of context a Mismatch shows on each
// side of the first difference.
const contextLen = 24

// Mismatch locates the first difference between two texts, for messages a
// person can act on.
type Mismatch struct {
	// Offset is the code-point offset of the first difference.
	Offset int
	// Line and Col are 1-based; Col counts code points from the start of
	// the line.
	Line, Col int
	// Before is up to contextLen code points that both texts have just
	// before Offset.
	Before string
	// Got and Want are up to contextLen code points of each text from
	// Offset on ("" when that text ends there).
	Got, Want string
	// GotLen and WantLen are the texts' lengths in code points.
	GotLen, WantLen int
}

// Compare returns where got first differs from want, or nil when they are
// equal.
func Compare(got, want string) *Mismatch {
	if got == want {
		return nil
	}
	g, w := []rune(got), []rune(want)
	m := &Mismatch{Line: 1, Col: 1, GotLen: len(g), WantLen: len(w)}
	for m.Offset < len(g) && m.Offset < len(w) && g[m.Offset] == w[m.Offset] {
		if g[m.Offset] == '\n' {
			m.Line, m.Col = m.Line+1, 1
		} else {
			m.Col++
		}
		m.Offset++
	}
	m.Before = string(g[max(0, m.Offset-contextLen):m.Offset])
	m.Got = string(g[m.Offset:min(len(g), m.Offset+contextLen)])
	m.Want = string(w[m.Offset:min(len(w), m.Offset+contextLen)])
	return m
}

// String describes the mismatch over three lines:
//
//	first difference at code point 1234 (line 5, column 7), after "…"
//	  got:  "…" (2000 code points)
//	  want: "…" (2001 code points)
func (m *Mismatch) String() string {
	where := "at the start"
	if m.Offset > 0 {
		where = "after " + quote(m.Before, true)
	}
	return fmt.Sprintf("first difference at code point %d (line %d, column %d), %s\n  got:  %s (%d code points)\n  want: %s (%d code points)",
		m.Offset, m.Line, m.Col, where, quote(m.Got, false), m.GotLen, quote(m.Want, false), m.WantLen)
}

// quote quotes a context snippet, marking a cut with "…" outside the
// quotes: before the text when it is the tail of a longer text (lead),
// after it otherwise.
func quote(s string, lead bool) string {
	q := strconv.Quote(s)
	if len([]rune(s)) < contextLen {
		if s == "" && !lead {
			return "(end of text)"
		}
		return q
	}
	if lead {
		return "…" + q
	}
	return q + "…"
}
