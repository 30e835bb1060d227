package ot

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Rope is a text document indexed by Unicode code points, built for
// editing large documents: the work of an edit grows only with the
// logarithm of the document's length, so it costs about the same on a
// 10 MB document as on a 1 KB one.
//
// The text lives in a B+ tree whose leaves hold UTF-8 chunks of at most
// 512 bytes; each parent keeps its children's code point counts next to
// the pointers. Every leaf sits at the same depth, and every node but the root
// is at least half (internal) or a quarter (leaf) full, whatever sequence
// of edits is applied, so finding a position costs O(log n) and an edit
// touches one root-to-leaf path plus the leaves it inserts or removes.
//
// The zero Rope is an empty document ready to use. A Rope is not safe for
// concurrent use; Clone makes an independent copy in O(1) that may be handed
// to another goroutine.
type Rope struct {
	root ropeKid // no leaf and no node: the empty document
	// owner marks the nodes this rope may change in place. Nodes with any
	// other owner may be shared with clones and are copied before a change.
	// nil means the rope owns no node yet.
	owner *ropeOwner
	lim   ropeLimits
}

// ropeOwner is an identity token; only its address matters. It has a
// non-zero size so that distinct tokens have distinct addresses.
type ropeOwner struct{ _ byte }

// Physical capacities. Leaves and internal nodes hold their contents in
// fixed arrays, so that reaching a child's header and its contents is one
// memory access, not two: on a large document each is likely a cache miss.
const (
	ropeLeafCap = 512 // bytes of text in a leaf
	ropeKidsCap = 16  // children of an internal node
)

// ropeLimits bounds the tree's nodes. Tests use tiny limits to build deep
// trees from short texts. Invariants (see Rope.leaves and Rope.group for
// why they hold): 16 <= maxLeaf <= ropeLeafCap, 1 <= minLeaf <=
// fillLeaf/2-6 or fillLeaf == maxLeaf, fillLeaf <= maxLeaf,
// 4 <= maxKids <= ropeKidsCap, 2 <= minKids <= (maxKids+1)/2.
type ropeLimits struct {
	maxLeaf, minLeaf int // leaf text size in bytes
	// fillLeaf is the size of the leaves NewRope and long inserts build,
	// below maxLeaf so that the first edits of a loaded document do not
	// split every leaf they touch (a B-tree bulk load's fill factor).
	fillLeaf         int
	maxKids, minKids int // children of an internal node
}

// ropeDefaultLimits are the limits of every Rope outside tests: 512-byte
// leaves keep an in-leaf edit to a short scan and memmove, and 16-way
// nodes keep a 10 MB document five levels deep.
func ropeDefaultLimits() ropeLimits {
	return ropeLimits{
		maxLeaf: ropeLeafCap, minLeaf: ropeLeafCap / 4, fillLeaf: ropeLeafCap * 3 / 4,
		maxKids: ropeKidsCap, minKids: ropeKidsCap / 2,
	}
}

// ropeKid is a reference to a subtree, as held by its parent (or by the
// Rope for the root): exactly one of leaf and node is set, except in the
// empty document's root. runes caches the subtree's code point count, so
// that finding a position reads the parent's array only.
type ropeKid struct {
	leaf  *ropeLeaf
	node  *ropeNode
	runes int
}

// ropeLeaf is a leaf: n bytes of valid UTF-8 text.
type ropeLeaf struct {
	owner *ropeOwner
	n     int
	buf   [ropeLeafCap]byte
}

// ropeNode is an internal node with n children, all of height height-1.
// bytes is the UTF-8 length of its subtree. Entries past n are zero.
type ropeNode struct {
	owner  *ropeOwner
	bytes  int
	height int
	n      int
	kids   [ropeKidsCap]ropeKid
}

func (l *ropeLeaf) text() []byte     { return l.buf[:l.n] }
func (nd *ropeNode) list() []ropeKid { return nd.kids[:nd.n] }

// height returns 0 for a leaf (or the empty root), else the node's height.
func (k *ropeKid) height() int {
	if k.node != nil {
		return k.node.height
	}
	return 0
}

// bytes returns the UTF-8 length of the subtree.
func (k *ropeKid) bytes() int {
	switch {
	case k.leaf != nil:
		return k.leaf.n
	case k.node != nil:
		return k.node.bytes
	}
	return 0
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
	if leaves := r.leaves(ropeCat{s: ropeValidString(s)}, lim.fillLeaf); len(leaves) > 0 {
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
	if r == nil {
		return 0
	}
	return r.root.runes
}

// ByteLen returns the length of the document's UTF-8 encoding, in O(1).
func (r *Rope) ByteLen() int {
	if r == nil {
		return 0
	}
	return r.root.bytes()
}

// String returns the whole document.
func (r *Rope) String() string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	b.Grow(r.root.bytes())
	ropeEachLeaf(&r.root, func(text []byte) bool {
		b.Write(text)
		return true
	})
	return b.String()
}

// WriteTo writes the document's UTF-8 text to w, one chunk at a time,
// without building the whole string. It implements io.WriterTo.
func (r *Rope) WriteTo(w io.Writer) (int64, error) {
	if r == nil {
		return 0, nil
	}
	var n int64
	var err error
	ropeEachLeaf(&r.root, func(text []byte) bool {
		var m int
		m, err = w.Write(text)
		n += int64(m)
		return err == nil
	})
	return n, err
}

// ropeEachLeaf calls f with the text of each non-empty leaf under k in
// order until f returns false. It reports whether every call returned true.
func ropeEachLeaf(k *ropeKid, f func([]byte) bool) bool {
	switch {
	case k.leaf != nil:
		return k.leaf.n == 0 || f(k.leaf.text())
	case k.node != nil:
		for i := range k.node.list() {
			if !ropeEachLeaf(&k.node.kids[i], f) {
				return false
			}
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
	ropeSlice(&r.root, from, to, &b)
	return b.String(), nil
}

// ropeSlice writes code points [from, to) of k's subtree to b;
// 0 <= from < to <= k.runes.
func ropeSlice(k *ropeKid, from, to int, b *strings.Builder) {
	if k.leaf != nil {
		text := k.leaf.text()
		bf := ropeOffset(text, k.runes, from)
		bt := bf + ropeRuneStart(text[bf:], to-from)
		b.Write(text[bf:bt])
		return
	}
	start := 0
	for i := range k.node.list() {
		kid := &k.node.kids[i]
		end := start + kid.runes
		if end > from && start < to {
			ropeSlice(kid, max(from, start)-start, min(to, end)-start, b)
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
// It first checks op: op.Validate must pass (it also checks that each text
// is valid UTF-8 whose code point count is its component's N), and op must
// consume at most Len() code points, else the error wraps ErrOutOfBounds.
// If a check fails, Apply returns the error and the document is untouched.
// The text of a delete is not compared with the document, as in the
// reference implementation.
//
// The cost is O(len(op) * log Len()) plus the inserted text and, for long
// deletes, the number of whole leaves removed; a long skip costs nothing.
func (r *Rope) Apply(op Op) error {
	if r == nil {
		return errNilRope
	}
	if err := op.Validate(); err != nil {
		return err
	}
	n, used := r.Len(), 0 // used never exceeds n, so it cannot overflow
	for i, c := range op {
		if c.Kind == KindInsert {
			continue
		}
		if c.N > n-used {
			return fmt.Errorf("%w: component %d spans code points [%d, %d) of a document of %d", ErrOutOfBounds, i, used, used+c.N, n)
		}
		used += c.N
	}
	r.prepare()
	pos := 0
	for _, c := range op {
		switch c.Kind {
		case KindSkip:
			pos += c.N
		case KindInsert:
			// Count the code points here rather than trust c.N: the tree
			// stays consistent even if Validate ever let a wrong N through.
			m := ropeCountRunes(c.Text)
			r.insert(pos, c.Text, m)
			pos += m
		case KindDelete:
			r.delete(pos, pos+c.N)
		}
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
}
