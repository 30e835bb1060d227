package ot

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Rope is a text document indexed by Unicode code points, built for
// editing large documents: an edit costs about the same on a 10 MB
// document as on a 1 KB one.
//
// The text lives in a B+ tree whose leaves hold UTF-8 chunks of at most
// about 1 KB, each with its code point count cached; internal nodes cache
// the counts of their subtrees. Every leaf sits at the same depth, and every
// node but the root is at least half (internal) or a quarter (leaf) full,
// whatever sequence of edits is applied, so finding a position costs
// O(log n) and an edit touches one root-to-leaf path plus the leaves it
// inserts or removes.
//
// The zero Rope is an empty document ready to use. A Rope is not safe for
// concurrent use; Clone makes an independent copy in O(1) that may be handed
// to another goroutine.
type Rope struct {
	root *ropeNode
	// owner marks the nodes this rope may change in place. Nodes with any
	// other owner may be shared with clones and are copied before a change.
	// nil means the rope owns no node yet.
	owner *ropeOwner
	lim   ropeLimits
}

// ropeOwner is an identity token; only its address matters. It has a
// non-zero size so that distinct tokens have distinct addresses.
type ropeOwner struct{ _ byte }

// ropeLimits bounds the tree's nodes. Tests use tiny limits to build deep
// trees from short texts. Invariants (see ropeChunk and ropeGroup for why
// they hold): maxLeaf >= 16, 1 <= minLeaf <= maxLeaf/2-6,
// maxKids >= 4, 2 <= minKids <= (maxKids+1)/2.
type ropeLimits struct {
	maxLeaf, minLeaf int // leaf text size in bytes
	maxKids, minKids int // children of an internal node
}

// ropeDefaultLimits are the limits of every Rope outside tests: 1 KB
// leaves keep an in-leaf insert to a short memmove, and 16-way nodes keep a
// 10 MB document under five levels deep.
func ropeDefaultLimits() ropeLimits {
	return ropeLimits{maxLeaf: 1024, minLeaf: 256, maxKids: 16, minKids: 8}
}

// ropeNode is a leaf (height 0, text) or an internal node (kids). runes
// and bytes are the code points and UTF-8 bytes of the whole subtree.
type ropeNode struct {
	owner  *ropeOwner
	runes  int
	bytes  int
	height int
	text   []byte    // leaf only: valid UTF-8
	kids   []ropeKid // internal only: at least one
}

// ropeKid is a child pointer with a copy of the child's code point count,
// so that finding a position reads one array per level instead of
// following every child pointer (a cache miss each on a large document).
type ropeKid struct {
	node  *ropeNode
	runes int // == node.runes
}

// errNilRope is returned by Apply on a nil *Rope.
var errNilRope = errors.New("ot: Apply on a nil *Rope")

// NewRope returns a rope holding s. Invalid UTF-8 in s is replaced, byte
// by byte, with U+FFFD, as converting s to []rune would.
func NewRope(s string) *Rope {
	return newRopeLimits(s, ropeDefaultLimits())
}

// newRopeLimits is NewRope with the tree limits lim.
func newRopeLimits(s string, lim ropeLimits) *Rope {
	r := &Rope{lim: lim, owner: new(ropeOwner)}
	s = ropeValidString(s)
	leaves := r.leaves(ropeCat{s: s}, false)
	if len(leaves) == 0 {
		r.root = &ropeNode{owner: r.owner}
	} else {
		r.root = r.buildTree(leaves)
	}
	return r
}

// ropeValidString returns s with each byte of an invalid UTF-8 sequence
// replaced by U+FFFD, and s itself when it is valid.
func ropeValidString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	for _, c := range s {
		b.WriteRune(c) // range yields utf8.RuneError for each bad byte
	}
	return b.String()
}

// Len returns the length of the document in code points, in O(1).
func (r *Rope) Len() int {
	if r == nil || r.root == nil {
		return 0
	}
	return r.root.runes
}

// ByteLen returns the length of the document's UTF-8 encoding, in O(1).
func (r *Rope) ByteLen() int {
	if r == nil || r.root == nil {
		return 0
	}
	return r.root.bytes
}

// String returns the whole document.
func (r *Rope) String() string {
	if r == nil || r.root == nil {
		return ""
	}
	var b strings.Builder
	b.Grow(r.root.bytes)
	ropeEachLeaf(r.root, func(text []byte) bool {
		b.Write(text)
		return true
	})
	return b.String()
}

// WriteTo writes the document's UTF-8 text to w, one chunk at a time,
// without building the whole string. It implements io.WriterTo.
func (r *Rope) WriteTo(w io.Writer) (int64, error) {
	if r == nil || r.root == nil {
		return 0, nil
	}
	var n int64
	var err error
	ropeEachLeaf(r.root, func(text []byte) bool {
		var m int
		m, err = w.Write(text)
		n += int64(m)
		return err == nil
	})
	return n, err
}

// ropeEachLeaf calls f with the text of each leaf under nd in order until f
// returns false. It reports whether every call returned true.
func ropeEachLeaf(nd *ropeNode, f func([]byte) bool) bool {
	if nd.height == 0 {
		if len(nd.text) == 0 {
			return true
		}
		return f(nd.text)
	}
	for _, k := range nd.kids {
		if !ropeEachLeaf(k.node, f) {
			return false
		}
	}
	return true
}

// Slice returns the code points [from, to) of the document. It fails with
// an error wrapping ErrOutOfBounds unless 0 <= from <= to <= Len().
func (r *Rope) Slice(from, to int) (string, error) {
	n := r.Len()
	if from < 0 || to < from || to > n {
		return "", fmt.Errorf("%w: slice [%d, %d) of a document of %d code points", ErrOutOfBounds, from, to, n)
	}
	if from == to {
		return "", nil
	}
	var b strings.Builder
	b.Grow(to - from)
	ropeSlice(r.root, from, to, &b)
	return b.String(), nil
}

// ropeSlice writes code points [from, to) of nd's subtree to b;
// 0 <= from < to <= nd.runes.
func ropeSlice(nd *ropeNode, from, to int, b *strings.Builder) {
	if nd.height == 0 {
		bf := ropeLeafOffset(nd, from)
		bt := bf + ropeRuneStart(nd.text[bf:], to-from)
		b.Write(nd.text[bf:bt])
		return
	}
	start := 0
	for _, k := range nd.kids {
		end := start + k.runes
		if end > from && start < to {
			ropeSlice(k.node, max(from, start)-start, min(to, end)-start, b)
		}
		if end >= to {
			return
		}
		start = end
	}
}

// Clone returns a copy of r in O(1). The copy and r share their nodes until
// either is edited; each then copies only the nodes it changes. Clone
// counts as an edit of r: do not call it while r is in use by another
// goroutine. The returned rope may be used by any one goroutine.
func (r *Rope) Clone() *Rope {
	if r == nil {
		return NewRope("")
	}
	// Neither rope may change the nodes they now share: give both a fresh
	// (lazily allocated) owner, so the old owner's nodes are frozen.
	r.owner = nil
	return &Rope{root: r.root, lim: r.lim}
}

// Apply applies op to the document in place.
//
// It first checks op: op.Validate must pass, each insert's N must be the
// code point count of its valid UTF-8 Text, a delete that carries Text must
// have N equal to its code point count, and op must consume at most Len()
// code points (else the error wraps ErrOutOfBounds). If any check fails,
// Apply returns the error and the document is untouched. The text of a
// delete is not compared with the document, as in the reference
// implementation.
//
// The cost is O(len(op) * log Len()) plus the inserted text and, for long
// deletes, the number of whole leaves removed; a long skip costs nothing.
func (r *Rope) Apply(op Op) error {
	if r == nil {
		return errNilRope
	}
	if err := r.check(op); err != nil {
		return err
	}
	r.prepare()
	pos := 0
	for _, c := range op {
		switch c.Kind {
		case KindSkip:
			pos += c.N
		case KindInsert:
			r.insert(pos, c.Text, c.N)
			pos += c.N
		case KindDelete:
			r.delete(pos, pos+c.N)
		}
	}
	return nil
}

// check reports why op cannot apply to r, without changing r.
func (r *Rope) check(op Op) error {
	if err := op.Validate(); err != nil {
		return err
	}
	n := r.Len()
	used := 0 // code points consumed so far; never exceeds n, so never overflows
	for i, c := range op {
		switch c.Kind {
		case KindInsert:
			if !utf8.ValidString(c.Text) {
				return fmt.Errorf("%w: component %d: insert text is not valid UTF-8", ErrInvalidOp, i)
			}
			if m := ropeCountRunes(c.Text); m != c.N {
				return fmt.Errorf("%w: component %d: insert length %d, but its text has %d code points", ErrInvalidOp, i, c.N, m)
			}
			continue
		case KindDelete:
			if c.Text != "" {
				if m := utf8.RuneCountInString(c.Text); m != c.N {
					return fmt.Errorf("%w: component %d: delete length %d, but its text has %d code points", ErrInvalidOp, i, c.N, m)
				}
			}
		}
		if c.N > n-used {
			return fmt.Errorf("%w: component %d runs past code point %d of a document of %d", ErrOutOfBounds, i, n-used, n)
		}
		used += c.N
	}
	return nil
}

// prepare makes a zero or cloned Rope ready to change.
func (r *Rope) prepare() {
	if r.lim.maxLeaf == 0 {
		r.lim = ropeDefaultLimits()
	}
	if r.owner == nil {
		r.owner = new(ropeOwner)
	}
	if r.root == nil {
		r.root = &ropeNode{owner: r.owner}
	}
}
