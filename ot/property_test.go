package ot

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// algAlphabet is what generated documents and inserts are made of: ASCII,
// two- and three-byte characters, a combining mark, astral characters and
// a skin-tone modifier, and characters JSON must escape.
var algAlphabet = []string{
	"a", "b", "c", "x", "y", " ", "é", "ß", "中", "\u0301",
	"😀", "👍", "🏽", "𝄞", "\n", "\"", "\\", "\x01",
}

// algGen makes random documents and valid ops from a source of choices:
// a seeded PRNG in property tests, the fuzzer's bytes in fuzz tests.
type algGen struct {
	intn func(n int) int // uniform in [0, n)
}

func algRandGen(seed uint64) *algGen {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	return &algGen{intn: r.IntN}
}

// algBytesGen draws choices from data, then zeros once data runs out.
func algBytesGen(data []byte) *algGen {
	return &algGen{intn: func(n int) int {
		if n <= 1 || len(data) == 0 {
			return 0
		}
		v := int(data[0])
		data = data[1:]
		if n > 256 && len(data) > 0 {
			v = v<<8 | int(data[0])
			data = data[1:]
		}
		return v % n
	}}
}

func (g *algGen) between(lo, hi int) int { return lo + g.intn(hi-lo+1) }

func (g *algGen) text(lo, hi int) string {
	n := g.between(lo, hi)
	s := ""
	for range n {
		s += algAlphabet[g.intn(len(algAlphabet))]
	}
	return s
}

func (g *algGen) doc() string {
	switch g.intn(8) {
	case 0:
		return ""
	case 1, 2, 3:
		return g.text(1, 6)
	default:
		return g.text(7, 30)
	}
}

// op returns a valid, normalized op on doc. With text set every delete
// carries the text it removes, so the op can be inverted.
func (g *algGen) op(doc string, text bool) Op {
	runes := []rune(doc)
	var op Op
	del := func(at, n int) {
		c := Component{Kind: KindDelete, N: n}
		if text || g.intn(2) == 0 {
			c.Text = string(runes[at : at+n])
		}
		op = appendComponent(op, c)
	}
	ins := func() { op = appendComponent(op, algInsert(g.text(1, 4))) }
	at := 0
	for at < len(runes) || g.intn(3) == 0 {
		room := len(runes) - at
		switch k := g.intn(10); {
		case k < 4 && room > 0:
			n := g.between(1, min(room, 5))
			op = appendComponent(op, Component{Kind: KindSkip, N: n})
			at += n
		case k < 7 && room > 0:
			n := g.between(1, min(room, 4))
			del(at, n)
			at += n
		default:
			ins()
			if room == 0 {
				return trim(op)
			}
		}
		if g.intn(6) == 0 {
			break
		}
	}
	return trim(op)
}

// wild returns a valid op not tied to any document, with counts up to
// 2^40, for checking that big numbers cost nothing and break nothing.
func (g *algGen) wild() Op {
	var op Op
	for range g.between(0, 6) {
		n := g.between(1, 50)
		if g.intn(2) == 0 {
			n = g.between(1, 1<<20) * g.between(1, 1<<20)
		}
		switch g.intn(3) {
		case 0:
			op = appendComponent(op, Component{Kind: KindSkip, N: n})
		case 1:
			op = appendComponent(op, Component{Kind: KindDelete, N: n})
		default:
			op = appendComponent(op, algInsert(g.text(1, 3)))
		}
	}
	return trim(op)
}

// algInsert returns an insert of s.
func algInsert(s string) Component {
	return Component{Kind: KindInsert, N: utf8.RuneCountInString(s), Text: s}
}

// algMustApply applies op, failing the test on error.
func algMustApply(tb testing.TB, doc string, op Op) string {
	tb.Helper()
	s, err := Apply(doc, op)
	if err != nil {
		tb.Fatalf("Apply(%q, %v) = %v", doc, op, err)
	}
	return s
}

// algCheckLaws checks the OT laws on one document and three ops: a and b
// on doc, c on Apply(doc, a). Shared by the property and fuzz tests.
func algCheckLaws(t *testing.T, doc string, a, b Op, c Op) {
	t.Helper()
	for _, op := range []Op{a, b, c} {
		if err := op.Validate(); err != nil {
			t.Fatalf("generated invalid op %v: %v", op, err)
		}
	}
	sa := algMustApply(t, doc, a)
	sb := algMustApply(t, doc, b)

	// TP1, for both tie-breaks.
	for _, side := range []Side{Left, Right} {
		other := Right
		if side == Right {
			other = Left
		}
		a2, err := Transform(a, b, side)
		if err != nil {
			t.Fatalf("Transform(%v, %v, %v) = %v", a, b, side, err)
		}
		b2, err := Transform(b, a, other)
		if err != nil {
			t.Fatalf("Transform(%v, %v, %v) = %v", b, a, other, err)
		}
		x := algMustApply(t, sb, a2)
		y := algMustApply(t, sa, b2)
		if x != y {
			t.Fatalf("doc %q a %v b %v: apply(apply(s,b), Transform(a,b,%v)=%v) = %q, apply(apply(s,a), Transform(b,a,%v)=%v) = %q", doc, a, b, side, a2, x, other, b2, y)
		}
		// The same law through Compose.
		ab, err1 := Compose(a, b2)
		ba, err2 := Compose(b, a2)
		if err1 != nil || err2 != nil {
			t.Fatalf("Compose after transform: %v, %v", err1, err2)
		}
		if p, q := algMustApply(t, doc, ab), algMustApply(t, doc, ba); p != q || p != x {
			t.Fatalf("doc %q: apply(s, Compose(a, b')) = %q, apply(s, Compose(b, a')) = %q, want %q", doc, p, q, x)
		}
	}

	// Compose agrees with applying in turn.
	ac, err := Compose(a, c)
	if err != nil {
		t.Fatalf("Compose(%v, %v) = %v", a, c, err)
	}
	if got, want := algMustApply(t, doc, ac), algMustApply(t, sa, c); got != want {
		t.Fatalf("doc %q: Apply(Compose(%v, %v) = %v) = %q, want %q", doc, a, c, ac, got, want)
	}

	// Invert undoes an op whose deletes carry the text they remove, and
	// Compose keeps the right text.
	if inv, err := Invert(ac); err == nil {
		if back := algMustApply(t, algMustApply(t, doc, ac), inv); back != doc {
			t.Fatalf("doc %q: Apply(Apply(s, Compose(%v, %v) = %v), Invert = %v) = %q", doc, a, c, ac, inv, back)
		}
	}
	if inv, err := Invert(a); err == nil {
		if back := algMustApply(t, sa, inv); back != doc {
			t.Fatalf("Apply(Apply(%q, %v), Invert = %v) = %q", doc, a, inv, back)
		}
		if again, err := Invert(inv); err != nil || again.String() != a.String() {
			t.Fatalf("Invert(Invert(%v)) = %v, %v", a, again, err)
		}
	}

	// Positions move as the text around them does.
	for p := 0; p <= utf8.RuneCountInString(doc); p++ {
		if got, want := TransformPosition(p, a), algModelPosition(p, a, false); got != want {
			t.Fatalf("TransformPosition(%d, %v) = %d, model says %d (doc %q)", p, a, got, want, doc)
		}
		pr := TransformPresence(Presence{Index: p}, a, true)
		if want := algModelPosition(p, a, true); pr.Index != want || pr.Length != 0 {
			t.Fatalf("TransformPresence({%d 0}, %v, own) = %+v, model says index %d (doc %q)", p, a, pr, want, doc)
		}
	}

	// The codec round-trips.
	for _, op := range []Op{a, b, ac} {
		enc, err := op.MarshalJSON()
		if err != nil {
			t.Fatalf("%v.MarshalJSON() = %v", op, err)
		}
		if back, err := Decode(enc); err != nil || back.String() != string(enc) {
			t.Fatalf("Decode(%s) = %v, %v", enc, back, err)
		}
	}
}

// algModelPosition works out where a cursor at p ends up, the slow and
// obvious way: it counts the surviving code points before p and the
// inserted ones that land before the cursor. Others' inserts land before
// the cursor when made strictly before p; own inserts also when made at
// p, or after it with everything between p and the insert deleted.
func algModelPosition(p int, op Op, own bool) int {
	type ins struct{ at, n int }
	var inserts []ins
	deleted := map[int]bool{}
	base := 0
	for _, c := range op {
		switch c.Kind {
		case KindSkip:
			base += c.N
		case KindDelete:
			for i := base; i < base+c.N; i++ {
				deleted[i] = true
			}
			base += c.N
		case KindInsert:
			inserts = append(inserts, ins{base, c.N})
		}
	}
	n := 0
	for i := 0; i < p; i++ {
		if !deleted[i] {
			n++
		}
	}
	for _, in := range inserts {
		before := in.at < p
		if own && in.at >= p {
			before = true
			for i := p; i < in.at; i++ {
				if !deleted[i] {
					before = false
				}
			}
		}
		if before {
			n += in.n
		}
	}
	return n
}

func TestPropertyLaws(t *testing.T) {
	const seed = 20240601
	g := algRandGen(seed)
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		doc := g.doc()
		text := g.intn(2) == 0
		a, b := g.op(doc, text), g.op(doc, g.intn(2) == 0)
		c := g.op(algMustApply(t, doc, a), text)
		algCheckLaws(t, doc, a, b, c)
		if t.Failed() {
			t.Fatalf("seed %d, iteration %d", seed, i)
		}
	}
}

// TestPropertyBigCounts runs Transform and Compose on ops with counts up
// to 2^40: they must agree with the laws that need no document, quickly.
func TestPropertyBigCounts(t *testing.T) {
	g := algRandGen(7)
	for range 20000 {
		a, b := g.wild(), g.wild()
		for _, side := range []Side{Left, Right} {
			got, err := Transform(a, b, side)
			if err != nil {
				t.Fatalf("Transform(%v, %v, %v) = %v", a, b, side, err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("Transform(%v, %v, %v) = %v, invalid: %v", a, b, side, got, err)
			}
		}
		got, err := Compose(a, b)
		if err != nil {
			t.Fatalf("Compose(%v, %v) = %v", a, b, err)
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("Compose(%v, %v) = %v, invalid: %v", a, b, got, err)
		}
		// Composing adds up the changes in length.
		if got.Delta() != a.Delta()+b.Delta() {
			t.Fatalf("Compose(%v, %v) = %v: delta %d, want %d", a, b, got, got.Delta(), a.Delta()+b.Delta())
		}
		_ = TransformPosition(1<<50, a)
	}
}
