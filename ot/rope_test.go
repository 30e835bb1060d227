package ot

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// ropeTiny limits give deep trees from short texts, so that small tests
// reach splits, merges and root changes at every level.
var ropeTiny = ropeLimits{maxLeaf: 16, minLeaf: 4, fillLeaf: 16, maxKids: 4, minKids: 2}

// ropeLimitSets are the limits every randomized test runs with.
var ropeLimitSets = []struct {
	name string
	lim  ropeLimits
}{
	{"tiny", ropeTiny},
	{"default", ropeDefaultLimits()},
}

// ropeVerify checks every invariant of r's tree: balance, cached counts,
// leaf and fan-out bounds, valid UTF-8 in every leaf, zeroed unused
// child entries.
func ropeVerify(r *Rope) error {
	lim := r.lim
	if lim.maxLeaf == 0 {
		lim = ropeDefaultLimits()
	}
	if r.root.leaf == nil && r.root.node == nil {
		if r.root.runes != 0 {
			return fmt.Errorf("empty root counts %d code points", r.root.runes)
		}
		return nil
	}
	if r.root.node != nil && r.root.node.n < 2 {
		return fmt.Errorf("internal root has %d children, want >= 2", r.root.node.n)
	}
	return ropeVerifyKid(&r.root, lim, true, "root")
}

func ropeVerifyKid(k *ropeKid, lim ropeLimits, isRoot bool, path string) error {
	if (k.leaf == nil) == (k.node == nil) {
		return fmt.Errorf("%s: want exactly one of leaf and node", path)
	}
	if l := k.leaf; l != nil {
		text := l.text()
		switch {
		case !utf8.Valid(text):
			return fmt.Errorf("%s: leaf text %q is not valid UTF-8", path, text)
		case k.runes != utf8.RuneCount(text):
			return fmt.Errorf("%s: leaf counted as %d code points, has %d", path, k.runes, utf8.RuneCount(text))
		case l.n > lim.maxLeaf:
			return fmt.Errorf("%s: leaf holds %d bytes, over %d", path, l.n, lim.maxLeaf)
		case !isRoot && l.n < lim.minLeaf:
			return fmt.Errorf("%s: leaf holds %d bytes, under %d", path, l.n, lim.minLeaf)
		}
		return nil
	}
	nd := k.node
	if nd.n > lim.maxKids || (!isRoot && nd.n < lim.minKids) {
		return fmt.Errorf("%s: %d children, want %d..%d", path, nd.n, lim.minKids, lim.maxKids)
	}
	for i := nd.n; i < len(nd.kids); i++ {
		if nd.kids[i] != (ropeKid{}) {
			return fmt.Errorf("%s: unused child entry %d is not zero", path, i)
		}
	}
	runes, nbytes := 0, 0
	for i := range nd.list() {
		kid := &nd.kids[i]
		if h := kid.height(); h != nd.height-1 {
			return fmt.Errorf("%s: child %d has height %d, want %d", path, i, h, nd.height-1)
		}
		if err := ropeVerifyKid(kid, lim, false, fmt.Sprintf("%s/%d", path, i)); err != nil {
			return err
		}
		runes += kid.runes
		nbytes += kid.bytes()
	}
	if k.runes != runes || nd.bytes != nbytes {
		return fmt.Errorf("%s: counts (%d runes, %d bytes), children sum to (%d, %d)", path, k.runes, nd.bytes, runes, nbytes)
	}
	return nil
}

// ropeModelApply applies op to doc as a plain []rune, with the same
// acceptance rules as Rope.Apply. doc is never changed.
func ropeModelApply(doc []rune, op Op) ([]rune, error) {
	if err := op.Validate(); err != nil {
		return nil, err
	}
	used := 0
	for _, c := range op {
		switch c.Kind {
		case KindInsert:
			if !utf8.ValidString(c.Text) || utf8.RuneCountInString(c.Text) != c.N {
				return nil, ErrInvalidOp
			}
			continue
		case KindDelete:
			if c.Text != "" && utf8.RuneCountInString(c.Text) != c.N {
				return nil, ErrInvalidOp
			}
		}
		if used+c.N > len(doc) || used+c.N < used {
			return nil, ErrOutOfBounds
		}
		used += c.N
	}
	out := slices.Clone(doc)
	pos := 0
	for _, c := range op {
		switch c.Kind {
		case KindSkip:
			pos += c.N
		case KindInsert:
			out = slices.Insert(out, pos, []rune(c.Text)...)
			pos += c.N
		case KindDelete:
			out = slices.Delete(out, pos, pos+c.N)
		}
	}
	return out, nil
}

// ropeErrClass names the sentinel err wraps, for comparing failures.
func ropeErrClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrOutOfBounds):
		return "ErrOutOfBounds"
	case errors.Is(err, ErrInvalidOp):
		return "ErrInvalidOp"
	}
	return "other: " + err.Error()
}

func ropeSkip(n int) Component { return Component{Kind: KindSkip, N: n} }
func ropeDel(n int) Component  { return Component{Kind: KindDelete, N: n} }
func ropeIns(s string) Component {
	return Component{Kind: KindInsert, N: utf8.RuneCountInString(s), Text: s}
}
func ropeDelText(s string) Component {
	return Component{Kind: KindDelete, N: utf8.RuneCountInString(s), Text: s}
}

// TestRopeScan checks the word-at-a-time code point helpers against
// unicode/utf8 at every position of texts whose lengths cross the 8- and
// 32-byte steps.
func TestRopeScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for range 400 {
		text := []byte(ropeRandText(rng, rng.IntN(90)))
		starts := []int{}
		for i := range string(text) {
			starts = append(starts, i)
		}
		starts = append(starts, len(text))
		n := len(starts) - 1
		if got := ropeCountRunes(text); got != n {
			t.Fatalf("ropeCountRunes(%q) = %d, want %d", text, got, n)
		}
		if got := ropeCountRunes(string(text)); got != n {
			t.Fatalf("ropeCountRunes(string %q) = %d, want %d", text, got, n)
		}
		for k, want := range starts {
			if got := ropeRuneStart(text, k); got != want {
				t.Fatalf("ropeRuneStart(%q, %d) = %d, want %d", text, k, got, want)
			}
			if got := ropeRuneStartBack(text, n-k); got != want {
				t.Fatalf("ropeRuneStartBack(%q, %d) = %d, want %d", text, n-k, got, want)
			}
			if got := ropeOffset(text, n, k); got != want {
				t.Fatalf("ropeOffset(%q, %d, %d) = %d, want %d", text, n, k, got, want)
			}
		}
	}
}

func TestRopeApplyTable(t *testing.T) {
	long := strings.Repeat("abcdefghij", 1000)       // 10,000 bytes: many leaves
	longMixed := strings.Repeat("a😀é中\u0301x", 2000) // astral, 2- and 3-byte, combining
	tests := []struct {
		name string
		doc  string
		op   Op
		want string
		err  error // errRopeRefused: ErrOutOfBounds or ErrInvalidOp
	}{
		{"empty op on empty doc", "", nil, "", nil},
		{"insert into empty doc", "", Op{ropeIns("hi")}, "hi", nil},
		{"insert at start", "world", Op{ropeIns("hello ")}, "hello world", nil},
		{"insert at end", "hello", Op{ropeSkip(5), ropeIns("!")}, "hello!", nil},
		{"delete at start", "hello", Op{ropeDel(2)}, "llo", nil},
		{"delete at end", "hello", Op{ropeSkip(3), ropeDel(2)}, "hel", nil},
		{"delete everything", "hello", Op{ropeDel(5)}, "", nil},
		{"delete carrying text not checked", "hello", Op{ropeDelText("xy")}, "llo", nil},
		{"astral emoji counts as one", "a😀b", Op{ropeSkip(1), ropeDel(1)}, "ab", nil},
		{"insert after astral emoji", "😀😀", Op{ropeSkip(1), ropeIns("x")}, "😀x😀", nil},
		{"insert astral emoji", "ab", Op{ropeSkip(1), ropeIns("👍🏽")}, "a👍🏽b", nil},
		{"combining mark is its own code point", "e\u0301x", Op{ropeSkip(1), ropeDel(1)}, "ex", nil},
		{"insert between base and combining mark", "e\u0301", Op{ropeSkip(1), ropeIns("\u0302")}, "e\u0302\u0301", nil},
		{"several components", "abcdef", Op{ropeSkip(1), ropeDel(2), ropeIns("XY"), ropeSkip(1), ropeIns("Z"), ropeDel(1)}, "aXYdZf", nil},
		{"insert then delete at one point", "abc", Op{ropeSkip(1), ropeIns("X"), ropeDel(1)}, "aXc", nil},
		{"large insert into empty doc", "", Op{ropeIns(long)}, long, nil},
		{"large insert mid doc", "0123456789", Op{ropeSkip(5), ropeIns(longMixed)}, "01234" + longMixed + "56789", nil},
		{"delete spanning many leaves", long, Op{ropeSkip(3), ropeDel(9990)}, long[:3] + long[9993:], nil},
		{"delete spanning many mixed leaves", longMixed, Op{ropeSkip(7), ropeDel(5 * 2000)}, string([]rune(longMixed)[:7]) + string([]rune(longMixed)[10007:]), nil},
		{"delete all of a large doc", longMixed, Op{ropeDel(6 * 2000)}, "", nil},
		{"replace a large doc", long, Op{ropeDel(10000), ropeIns(longMixed)}, longMixed, nil},

		{"skip past end", "abc", Op{ropeSkip(4), ropeIns("x")}, "", ErrOutOfBounds},
		{"delete past end", "abc", Op{ropeSkip(1), ropeDel(3)}, "", ErrOutOfBounds},
		{"delete on empty doc", "", Op{ropeDel(1)}, "", ErrOutOfBounds},
		{"astral emoji is one code point, not two", "😀", Op{ropeDel(2)}, "", ErrOutOfBounds},
		{"huge skip", "abc", Op{ropeSkip(math.MaxInt), ropeIns("x")}, "", errRopeRefused},
		{"huge counts that would overflow", "abc", Op{ropeSkip(2), ropeDel(math.MaxInt)}, "", errRopeRefused},
		{"zero-length delete", "abc", Op{ropeDel(0)}, "", ErrInvalidOp},
		{"negative skip", "abc", Op{ropeSkip(-1), ropeIns("x")}, "", ErrInvalidOp},
		{"trailing skip", "abc", Op{ropeIns("x"), ropeSkip(1)}, "", ErrInvalidOp},
		{"empty insert", "abc", Op{{Kind: KindInsert, N: 1}}, "", ErrInvalidOp},
		{"insert count mismatch", "abc", Op{{Kind: KindInsert, N: 1, Text: "😀😀"}}, "", ErrInvalidOp},
		{"insert invalid UTF-8", "abc", Op{{Kind: KindInsert, N: 1, Text: "\xff"}}, "", ErrInvalidOp},
		{"unknown kind", "abc", Op{{Kind: 9, N: 1}}, "", ErrInvalidOp},
	}
	for _, lim := range ropeLimitSets {
		for _, tc := range tests {
			t.Run(lim.name+"/"+tc.name, func(t *testing.T) {
				r := newRopeLimits(tc.doc, lim.lim)
				err := r.Apply(tc.op)
				wantErr := tc.err
				if tc.err == errRopeRefused {
					if !errors.Is(err, ErrOutOfBounds) && !errors.Is(err, ErrInvalidOp) {
						t.Fatalf("Apply(%v) = %v, want ErrOutOfBounds or ErrInvalidOp", tc.op, err)
					}
					wantErr = err
				}
				if wantErr != nil {
					if !errors.Is(err, wantErr) {
						t.Fatalf("Apply(%v) = %v, want %v", tc.op, err, wantErr)
					}
					if got := r.String(); got != tc.doc {
						t.Errorf("after failed Apply, String() = %q, want %q unchanged", got, tc.doc)
					}
				} else if err != nil {
					t.Fatalf("Apply(%v) = %v, want nil", tc.op, err)
				} else if got := r.String(); got != tc.want {
					t.Errorf("Apply(%q, %v): String() = %q, want %q", tc.doc, tc.op, got, tc.want)
				}
				if got, want := r.Len(), utf8.RuneCountInString(r.String()); got != want {
					t.Errorf("Len() = %d, want %d", got, want)
				}
				if got, want := r.ByteLen(), len(r.String()); got != want {
					t.Errorf("ByteLen() = %d, want %d", got, want)
				}
				if err := ropeVerify(r); err != nil {
					t.Errorf("invariant broken: %v", err)
				}
			})
		}
	}
}

func TestRopeNewRope(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"a", "a"},
		{"😀 e\u0301 中", "😀 e\u0301 中"},
		{"a\xffb", "a\uFFFDb"},
		{"\xe2\x82", "\uFFFD\uFFFD"}, // truncated sequence: one U+FFFD per byte, as []rune does
		{strings.Repeat("é", 5000), strings.Repeat("é", 5000)},
	}
	for _, lim := range ropeLimitSets {
		for _, tc := range tests {
			r := newRopeLimits(tc.in, lim.lim)
			if got := r.String(); got != tc.want {
				t.Errorf("%s: NewRope(%.20q).String() = %.20q, want %.20q", lim.name, tc.in, got, tc.want)
			}
			if got, want := r.Len(), len([]rune(tc.in)); got != want {
				t.Errorf("%s: NewRope(%.20q).Len() = %d, want %d", lim.name, tc.in, got, want)
			}
			if err := ropeVerify(r); err != nil {
				t.Errorf("%s: NewRope(%.20q): invariant broken: %v", lim.name, tc.in, err)
			}
		}
	}
}

func TestRopeZeroAndNil(t *testing.T) {
	var nilRope *Rope
	if got := nilRope.Len(); got != 0 {
		t.Errorf("nil.Len() = %d, want 0", got)
	}
	if got := nilRope.String(); got != "" {
		t.Errorf("nil.String() = %q, want \"\"", got)
	}
	if err := nilRope.Apply(Op{ropeIns("x")}); err == nil {
		t.Errorf("nil.Apply() = nil, want an error")
	}
	if got := nilRope.Clone().String(); got != "" {
		t.Errorf("nil.Clone().String() = %q, want \"\"", got)
	}
	var zero Rope
	if s, err := zero.Slice(0, 0); s != "" || err != nil {
		t.Errorf("zero.Slice(0, 0) = %q, %v, want \"\", nil", s, err)
	}
	if err := zero.Apply(Op{ropeIns("héllo")}); err != nil {
		t.Fatalf("zero.Apply(insert) = %v, want nil", err)
	}
	if got := zero.String(); got != "héllo" {
		t.Errorf("zero Rope after insert: String() = %q, want %q", got, "héllo")
	}
	if err := ropeVerify(&zero); err != nil {
		t.Errorf("zero Rope after insert: %v", err)
	}
}

func TestRopeSlice(t *testing.T) {
	doc := strings.Repeat("ab😀e\u0301中", 40) // 240 code points
	runes := []rune(doc)
	for _, lim := range ropeLimitSets {
		r := newRopeLimits(doc, lim.lim)
		for from := 0; from <= len(runes); from += 7 {
			for to := from; to <= len(runes); to += 11 {
				got, err := r.Slice(from, to)
				if want := string(runes[from:to]); got != want || err != nil {
					t.Fatalf("%s: Slice(%d, %d) = %q, %v, want %q, nil", lim.name, from, to, got, err, want)
				}
			}
		}
		for _, bad := range [][2]int{{-1, 2}, {3, 2}, {0, len(runes) + 1}, {math.MinInt, math.MaxInt}} {
			if got, err := r.Slice(bad[0], bad[1]); !errors.Is(err, ErrOutOfBounds) {
				t.Errorf("%s: Slice(%d, %d) = %q, %v, want ErrOutOfBounds", lim.name, bad[0], bad[1], got, err)
			}
		}
	}
}

func TestRopeWriteTo(t *testing.T) {
	doc := strings.Repeat("x😀yé", 3000)
	r := NewRope(doc)
	var buf bytes.Buffer
	n, err := r.WriteTo(&buf)
	if err != nil || n != int64(len(doc)) || buf.String() != doc {
		t.Errorf("WriteTo() = %d, %v, wrote %d bytes equal %v; want %d, nil, the document", n, err, buf.Len(), buf.String() == doc, len(doc))
	}
	w := &ropeFailWriter{after: 2}
	if _, err := r.WriteTo(w); !errors.Is(err, errRopeWrite) {
		t.Errorf("WriteTo(failing writer) = %v, want %v", err, errRopeWrite)
	}
	if w.calls != 3 {
		t.Errorf("WriteTo(failing writer) called Write %d times, want 3 (stop at the first error)", w.calls)
	}
}

// errRopeRefused in a table test accepts ErrOutOfBounds or ErrInvalidOp:
// Validate may refuse huge counts before the bounds check does.
var errRopeRefused = errors.New("refused as out of bounds or invalid")

var errRopeWrite = errors.New("write refused")

type ropeFailWriter struct{ after, calls int }

func (w *ropeFailWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls > w.after {
		return 0, errRopeWrite
	}
	return len(p), nil
}

func TestRopeClone(t *testing.T) {
	for _, lim := range ropeLimitSets {
		base := strings.Repeat("0123456789é😀", 300)
		a := newRopeLimits(base, lim.lim)
		b := a.Clone()
		if err := a.Apply(Op{ropeSkip(5), ropeIns("A")}); err != nil {
			t.Fatal(err)
		}
		if err := b.Apply(Op{ropeSkip(7), ropeDel(2000), ropeIns("B")}); err != nil {
			t.Fatal(err)
		}
		c := b.Clone()
		if err := b.Apply(Op{ropeIns("again")}); err != nil {
			t.Fatal(err)
		}
		rs := []rune(base)
		wantA := string(rs[:5]) + "A" + string(rs[5:])
		wantC := string(rs[:7]) + "B" + string(rs[2007:])
		wantB := "again" + wantC
		for _, x := range []struct {
			name string
			r    *Rope
			want string
		}{{"original", a, wantA}, {"clone", b, wantB}, {"clone of clone", c, wantC}} {
			if got := x.r.String(); got != x.want {
				t.Errorf("%s: %s String() = %.40q..., want %.40q...", lim.name, x.name, got, x.want)
			}
			if err := ropeVerify(x.r); err != nil {
				t.Errorf("%s: %s: %v", lim.name, x.name, err)
			}
		}
	}
}

// TestRopeCloneConcurrent edits a rope and its clones from different
// goroutines at once; run with -race it shows that they share nothing
// mutable.
func TestRopeCloneConcurrent(t *testing.T) {
	base := strings.Repeat("0123456789é😀", 2000)
	r := NewRope(base)
	done := make(chan error)
	for g := range 2 {
		c := r.Clone()
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			model := []rune(base)
			for range 300 {
				op := ropeRandOp(rng, len(model), 50)
				next, err := ropeModelApply(model, op)
				if cerr := c.Apply(op); ropeErrClass(cerr) != ropeErrClass(err) {
					done <- fmt.Errorf("clone %d: Apply(%.100v) = %v, want %v", g, op, cerr, err)
					return
				}
				if err == nil {
					model = next
				}
			}
			if c.String() != string(model) {
				done <- fmt.Errorf("clone %d: text differs from its model", g)
				return
			}
			done <- nil
		}()
	}
	for i := range 300 {
		if err := r.Apply(Op{ropeSkip(i + 1), ropeDel(1), ropeIns("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	rs := []rune(base)
	for i := range 300 {
		rs[i+1] = 'x'
	}
	if got := r.String(); got != string(rs) {
		t.Errorf("original: text differs after concurrent edits of its clones")
	}
}

// ropeAlphabet mixes ASCII, 2-, 3- and 4-byte code points and a combining
// mark, so leaves are rarely all-ASCII and cuts fall inside sequences.
var ropeAlphabet = []rune("abcdefghij klmnop\nqrstuvwxyzé中\u0301😀👍")

func ropeRandText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteRune(ropeAlphabet[rng.IntN(len(ropeAlphabet))])
	}
	return b.String()
}

// ropeRandOp returns a random op for a document of n code points: mostly
// valid, sometimes with large inserts or deletes, sometimes invalid or out
// of bounds.
func ropeRandOp(rng *rand.Rand, n int, bigText int) Op {
	var op Op
	pos := 0
	for range 1 + rng.IntN(4) {
		switch rng.IntN(3) {
		case 0:
			if pos < n && (len(op) == 0 || op[len(op)-1].Kind != KindSkip) {
				op = append(op, ropeSkip(1+rng.IntN(n-pos)))
				pos += op[len(op)-1].N
			}
		case 1:
			size := 1 + rng.IntN(8)
			if rng.IntN(10) == 0 {
				size = 1 + rng.IntN(bigText)
			}
			op = append(op, ropeIns(ropeRandText(rng, size)))
		case 2:
			if pos < n {
				size := 1 + rng.IntN(min(8, n-pos))
				if rng.IntN(8) == 0 {
					size = 1 + rng.IntN(n-pos)
				}
				op = append(op, ropeDel(size))
				pos += size
			}
		}
	}
	if len(op) > 0 && op[len(op)-1].Kind == KindSkip {
		op = op[:len(op)-1]
	}
	if rng.IntN(25) == 0 && len(op) > 0 {
		// Break it: out of bounds, a bad count, or a bad shape.
		i := rng.IntN(len(op))
		switch rng.IntN(3) {
		case 0:
			if op[i].Kind != KindInsert {
				op[i].N += n + 1
			}
		case 1:
			op[i].N++
		case 2:
			op[i].N = 0
		}
	}
	return op
}

// TestRopeRandom compares the rope with a []rune model over thousands of
// random ops, checking the tree's invariants after each step and that
// clones taken along the way never change.
func TestRopeRandom(t *testing.T) {
	for _, lim := range ropeLimitSets {
		t.Run(lim.name, func(t *testing.T) {
			steps, bigText := 4000, 3000
			if lim.name == "default" {
				bigText = 30000
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(lim.name))))
			model := []rune(ropeRandText(rng, 500))
			r := newRopeLimits(string(model), lim.lim)
			type snapshot struct {
				step int
				r    *Rope
				want string
			}
			var snaps []snapshot
			maxHeight := 0
			for step := range steps {
				op := ropeRandOp(rng, len(model), bigText)
				if len(model) > 60000 {
					op = Op{ropeSkip(rng.IntN(100) + 1), ropeDel(len(model) - 40000)}
				}
				want, wantErr := ropeModelApply(model, op)
				err := r.Apply(op)
				if ropeErrClass(err) != ropeErrClass(wantErr) {
					t.Fatalf("step %d: Apply(%.200v) = %v, want %v", step, op, err, wantErr)
				}
				if err == nil {
					model = want
				}
				if got := r.String(); got != string(model) {
					t.Fatalf("step %d: after Apply(%.200v): String() differs from the model (len %d vs %d)", step, op, len(got), len(string(model)))
				}
				if r.Len() != len(model) {
					t.Fatalf("step %d: Len() = %d, want %d", step, r.Len(), len(model))
				}
				if err := ropeVerify(r); err != nil {
					t.Fatalf("step %d: after Apply(%.200v): %v", step, op, err)
				}
				if len(model) > 0 {
					from := rng.IntN(len(model))
					to := from + rng.IntN(len(model)-from+1)
					if s, err := r.Slice(from, to); s != string(model[from:to]) || err != nil {
						t.Fatalf("step %d: Slice(%d, %d) = %.40q, %v, want %.40q", step, from, to, s, err, string(model[from:to]))
					}
				}
				maxHeight = max(maxHeight, r.root.height())
				if step%200 == 0 {
					snaps = append(snaps, snapshot{step, r.Clone(), string(model)})
				}
				if step%500 == 250 && len(snaps) > 0 {
					// Edit an old snapshot: neither it nor r may see the other's edit.
					s := &snaps[rng.IntN(len(snaps))]
					sop := ropeRandOp(rng, s.r.Len(), bigText)
					next, serr := ropeModelApply([]rune(s.want), sop)
					if err := s.r.Apply(sop); ropeErrClass(err) != ropeErrClass(serr) {
						t.Fatalf("step %d: snapshot.Apply(%.200v) = %v, want %v", step, sop, err, serr)
					}
					if serr == nil {
						s.want = string(next)
					}
				}
			}
			for _, s := range snaps {
				if got := s.r.String(); got != s.want {
					t.Errorf("snapshot from step %d changed: len %d, want %d", s.step, len(got), len(s.want))
				}
				if err := ropeVerify(s.r); err != nil {
					t.Errorf("snapshot from step %d: %v", s.step, err)
				}
			}
			if maxHeight < 2 {
				t.Errorf("tree never grew past height %d: the test does not reach internal merges", maxHeight)
			}
		})
	}
}

// ropeFuzzSource reads fuzz bytes as numbers, giving zeros when they run
// out.
type ropeFuzzSource struct{ data []byte }

func (s *ropeFuzzSource) byte() byte {
	if len(s.data) == 0 {
		return 0
	}
	b := s.data[0]
	s.data = s.data[1:]
	return b
}

// intn returns a number in [0, n) from two bytes, or 0 if n <= 0.
func (s *ropeFuzzSource) intn(n int) int {
	v := int(s.byte())<<8 | int(s.byte())
	if n <= 0 {
		return 0
	}
	return v % n
}

func (s *ropeFuzzSource) text(n int) string {
	var b strings.Builder
	for range n {
		b.WriteRune(ropeAlphabet[int(s.byte())%len(ropeAlphabet)])
	}
	return b.String()
}

func FuzzRope(f *testing.F) {
	f.Add([]byte("\x00\x05hello\x01\x02\x00\x03"))
	f.Add([]byte("\x01\x40abcdefghijklmnopqrstuvwxyz0123456789\x02\x00\x10\x01\x00\xff\x00\x01\x00\x08"))
	f.Add(bytes.Repeat([]byte{0x01, 0x7f, 0x13, 0x02, 0x21, 0xfe}, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := &ropeFuzzSource{data: data}
		lim := ropeTiny
		if src.byte()%4 == 0 {
			lim = ropeDefaultLimits()
		}
		model := []rune(src.text(int(src.byte()) * 4))
		r := newRopeLimits(string(model), lim)
		var clone *Rope
		var cloneWant string
		for step := 0; len(src.data) > 0 && step < 200; step++ {
			var op Op
			pos := 0
			for range 1 + int(src.byte())%4 {
				kind := src.byte()
				switch kind % 4 {
				case 0:
					op = append(op, ropeSkip(1+src.intn(len(model)+2)))
				case 1:
					op = append(op, ropeIns(src.text(1+src.intn(300))))
				case 2:
					op = append(op, ropeDel(1+src.intn(len(model)-pos+2)))
				case 3:
					// A component as the bytes say, valid or not.
					op = append(op, Component{Kind: Kind(src.byte() % 5), N: src.intn(8) - 1, Text: src.text(src.intn(3))})
				}
				if op[len(op)-1].Kind != KindInsert {
					pos += max(op[len(op)-1].N, 0)
				}
			}
			if src.byte()%8 == 0 {
				clone, cloneWant = r.Clone(), string(model)
			}
			want, wantErr := ropeModelApply(model, op)
			err := r.Apply(op)
			if ropeErrClass(err) != ropeErrClass(wantErr) {
				t.Fatalf("step %d: Apply(%v) = %v, want %v", step, op, err, wantErr)
			}
			if err == nil {
				model = want
			}
			if got := r.String(); got != string(model) {
				t.Fatalf("step %d: after Apply(%v): String() = %q, want %q", step, op, got, string(model))
			}
			if err := ropeVerify(r); err != nil {
				t.Fatalf("step %d: after Apply(%v): %v", step, op, err)
			}
		}
		if clone != nil {
			if got := clone.String(); got != cloneWant {
				t.Fatalf("clone changed: String() = %q, want %q", got, cloneWant)
			}
		}
	})
}

// ropeMixedText returns about n bytes of text that is mostly ASCII with
// some 2-, 3- and 4-byte code points, seeded so every run is the same.
func ropeMixedText(n int) string {
	rng := rand.New(rand.NewPCG(7, 7))
	var b strings.Builder
	b.Grow(n + 4)
	for b.Len() < n {
		if rng.IntN(8) == 0 {
			b.WriteRune([]rune("é中😀\u0301")[rng.IntN(4)])
		} else {
			b.WriteByte(byte('a' + rng.IntN(26)))
		}
	}
	return b.String()
}

// BenchmarkRopeEditAt measures one single-code-point insert plus the
// delete that undoes it, at a fresh uniformly random position each time,
// on documents of 1 KB, 100 KB and 10 MB. It is the worst case: on a 10 MB
// document each edit then misses the CPU caches on every tree level.
func BenchmarkRopeEditAt(b *testing.B) {
	rng := rand.NewPCG(3, 3) // used directly: a few ns per number
	ropeBenchEdits(b, func(n int) int {
		return int((rng.Uint64() >> 32) * uint64(n+1) >> 32) // in [0, n]
	})
}

// BenchmarkRopeEditTyping is BenchmarkRopeEditAt with the locality of real
// typing: the edit position walks a few code points at a time and jumps to
// a fresh random place every 256 edits, as a writer moves between
// paragraphs.
func BenchmarkRopeEditTyping(b *testing.B) {
	rng := rand.NewPCG(5, 5)
	pos, k := 0, 0
	ropeBenchEdits(b, func(n int) int {
		if k%256 == 0 {
			pos = int((rng.Uint64() >> 32) * uint64(n+1) >> 32)
		} else {
			pos = min(max(pos+int(rng.Uint64()%9)-4, 0), n)
		}
		k++
		return pos
	})
}

// ropeBenchEdits runs an insert+delete pair at next(Len()) per iteration
// on documents of each benchmark size.
func ropeBenchEdits(b *testing.B, next func(n int) int) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"1KB", 1 << 10}, {"100KB", 100 << 10}, {"10MB", 10 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			r := NewRope(ropeMixedText(size.bytes))
			n := r.Len()
			ins := Op{ropeSkip(1), ropeIns("é")}
			del := Op{ropeSkip(1), ropeDel(1)}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				pos := next(n)
				ins[0].N, del[0].N = pos, pos
				i, d := ins, del
				if pos == 0 {
					i, d = ins[1:], del[1:]
				}
				if err := r.Apply(i); err != nil {
					b.Fatal(err)
				}
				if err := r.Apply(d); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if r.Len() != n {
				b.Fatalf("Len() = %d after paired edits, want %d", r.Len(), n)
			}
		})
	}
}
