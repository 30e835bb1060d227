package ot

import "slices"

// This file holds the Rope's tree surgery. Functions take the parent's
// reference to a subtree (*ropeKid), so they can replace the child and keep
// its cached count. They change only nodes owned by r (owner == r.owner);
// mutLeaf and mutNode copy any other node first. Positions are code point
// offsets that Apply has already checked, so nothing here reports errors.

// mutLeaf returns l if r owns it, else a copy that r owns.
func (r *Rope) mutLeaf(l *ropeLeaf) *ropeLeaf {
	if l.owner == r.owner {
		return l
	}
	c := &ropeLeaf{owner: r.owner, n: l.n}
	copy(c.buf[:], l.text())
	return c
}

// mutNode returns nd if r owns it, else a copy that r owns.
func (r *Rope) mutNode(nd *ropeNode) *ropeNode {
	if nd.owner == r.owner {
		return nd
	}
	c := *nd
	c.owner = r.owner
	return &c
}

// insert inserts s, which has n code points, at code point pos of the
// document.
func (r *Rope) insert(pos int, s string, n int) {
	if r.root.leaf == nil && r.root.node == nil {
		r.root.leaf = &ropeLeaf{owner: r.owner}
	}
	if extra := r.insertAt(&r.root, pos, s, n); extra != nil {
		r.root = r.buildTree(append([]ropeKid{r.root}, extra...))
	}
}

// insertAt inserts s (n code points) at pos in k's subtree; 0 <= pos <=
// k.runes. When the subtree overflows, k keeps the first part and
// insertAt returns the subtrees, of k's height, that must follow k in its
// parent.
func (r *Rope) insertAt(k *ropeKid, pos int, s string, n int) []ropeKid {
	if k.leaf != nil {
		return r.leafInsert(k, pos, s, n)
	}
	nd := r.mutNode(k.node)
	k.node = nd
	// Find the first child whose end is at or after pos, so that typing at
	// a boundary extends the child on the left.
	i, base := ropeFind(nd, pos, 0)
	extra := r.insertAt(&nd.kids[i], pos-base, s, n)
	k.runes += n
	nd.bytes += len(s)
	if extra == nil {
		return nil
	}
	if nd.n+len(extra) <= r.lim.maxKids {
		copy(nd.kids[i+1+len(extra):], nd.kids[i+1:nd.n])
		copy(nd.kids[i+1:], extra)
		nd.n += len(extra)
		return nil
	}
	all := slices.Insert(slices.Clone(nd.list()), i+1, extra...)
	parts := r.group(all)
	*k = parts[0]
	return parts[1:]
}

// ropeFind returns the first child i of nd whose end is at least pos+bias,
// and the offset at which child i starts; with bias 0 that is the child
// that pos is in or at the end of, with bias 1 the child that code point
// pos is in. The last child is returned if none other matches. (A
// branch-free scan of every count measured slower than stopping early.)
func ropeFind(nd *ropeNode, pos, bias int) (i, base int) {
	last := nd.n - 1
	for ; i < last && base+nd.kids[i].runes < pos+bias; i++ {
		base += nd.kids[i].runes
	}
	return i, base
}

// leafInsert is insertAt for a leaf.
func (r *Rope) leafInsert(k *ropeKid, pos int, s string, n int) []ropeKid {
	old := k.leaf.text()
	b := ropeOffset(old, k.runes, pos)
	if len(old)+len(s) > r.lim.maxLeaf {
		parts := r.leaves(ropeCat{a: old[:b], s: s, c: old[b:]}, r.lim.fillLeaf)
		*k = parts[0]
		return parts[1:]
	}
	l := r.mutLeaf(k.leaf)
	k.leaf = l
	copy(l.buf[b+len(s):], l.buf[b:l.n])
	copy(l.buf[b:], s)
	l.n += len(s)
	k.runes += n
	return nil
}

// delete removes code points [from, to) of the document; from < to.
func (r *Rope) delete(from, to int) {
	if from == 0 && to == r.root.runes {
		r.root = ropeKid{}
		return
	}
	r.deleteIn(&r.root, from, to)
	for r.root.node != nil && r.root.node.n == 1 {
		r.root = r.root.node.kids[0]
	}
}

// deleteIn removes code points [from, to) of k's subtree, where 0 <= from <
// to <= k.runes and [from, to) is not all of it. Afterwards k may be
// underfull, and if k has a single child that child may be underfull too
// (and so on down); every other node below k is within limits. The parent
// fixes k by merging it with a sibling.
func (r *Rope) deleteIn(k *ropeKid, from, to int) {
	runes := k.runes
	k.runes -= to - from
	if k.leaf != nil {
		l := r.mutLeaf(k.leaf)
		k.leaf = l
		bf := ropeOffset(l.text(), runes, from)
		bt := bf + ropeRuneStart(l.buf[bf:l.n], to-from)
		copy(l.buf[bf:], l.buf[bt:l.n])
		l.n -= bt - bf
		return
	}
	nd := r.mutNode(k.node)
	k.node = nd
	// Most deletes fall inside one child: find it without looking at the
	// others.
	i, base := ropeFind(nd, from, 1)
	from, to = from-base, to-base
	if kid := &nd.kids[i]; to <= kid.runes && to-from < kid.runes {
		before := kid.bytes()
		r.deleteIn(kid, from, to)
		nd.bytes -= before - kid.bytes()
		r.fixKids(nd, i, i)
		return
	}
	// Else the children wholly inside [from, to) go, and at most two, the
	// first and the last touched, lose part of their text and may become
	// underfull. Children before i are untouched; from and to are now
	// relative to child i.
	w, start := i, 0
	lo, hi := nd.n, -1 // kept children that were cut
	for j := i; j < nd.n; j++ {
		kid := nd.kids[j]
		end := start + kid.runes
		switch {
		case end <= from || start >= to:
			// untouched
		case from <= start && end <= to:
			nd.bytes -= kid.bytes()
			start = end
			continue
		default:
			before := kid.bytes()
			r.deleteIn(&kid, max(from, start)-start, min(to, end)-start)
			nd.bytes -= before - kid.bytes()
			lo, hi = min(lo, w), w
		}
		nd.kids[w] = kid
		w++
		start = end
	}
	clear(nd.kids[w:nd.n])
	nd.n = w
	r.fixKids(nd, lo, hi)
}

// underfull reports whether a non-root subtree's top node is below its
// minimum size.
func (r *Rope) underfull(k *ropeKid) bool {
	if k.leaf != nil {
		return k.leaf.n < r.lim.minLeaf
	}
	return k.node.n < r.lim.minKids
}

// fixKids merges each underfull child of nd (owned by r) with a neighbour,
// unless nd has a single child. Only children lo..hi may be underfull; the
// others are not looked at. nd's counts do not change.
func (r *Rope) fixKids(nd *ropeNode, lo, hi int) {
	if lo == hi && !r.underfull(&nd.kids[lo]) {
		return // the common case, after a delete inside one child
	}
	// fixList works in place here, as it never grows the list.
	list := r.fixList(nd.list(), lo, hi)
	if len(list) > 0 && &list[0] != &nd.kids[0] {
		copy(nd.kids[:], list) // unreachable; keeps nd consistent regardless
	}
	nd.n = len(list)
}

// fixList is fixKids on a list of subtrees of one height, returning the
// shortened list; it never grows the list.
func (r *Rope) fixList(kids []ropeKid, lo, hi int) []ropeKid {
	for i := max(lo, 0); i <= hi && i < len(kids) && len(kids) > 1; {
		if !r.underfull(&kids[i]) {
			i++
			continue
		}
		j := i + 1
		if j == len(kids) {
			i, j = i-1, i
		}
		// A merge leaves one subtree fewer, or splits the pair into two
		// that are both within limits (never three: an underfull node and
		// a full one never need more than two), so the loop ends. A
		// subtree merged with a sibling that was within limits is within
		// limits.
		merged := r.merge(&kids[i], &kids[j])
		n := len(kids)
		kids = slices.Replace(kids, i, j+1, merged...)
		hi += len(kids) - n
	}
	return kids
}

// merge joins two adjacent subtrees of equal height into one, or into two
// within limits when one would overflow. The result is within limits all
// the way down even if a or b had underfull nodes below a single child.
func (r *Rope) merge(a, b *ropeKid) []ropeKid {
	if a.leaf != nil {
		if a.leaf.n+b.leaf.n > r.lim.maxLeaf {
			// The pair holds under maxLeaf+minLeaf bytes: cut at maxLeaf it
			// makes two leaves, never three.
			return r.leaves(ropeCat{a: a.leaf.text(), c: b.leaf.text()}, r.lim.maxLeaf)
		}
		l := r.mutLeaf(a.leaf)
		copy(l.buf[l.n:], b.leaf.text())
		l.n += b.leaf.n
		return []ropeKid{{leaf: l, runes: a.runes + b.runes}}
	}
	all := append(slices.Clone(a.node.list()), b.node.list()...)
	return r.group(r.fixList(all, 0, len(all)-1))
}

// group returns new parents for kids (all of one height, at least one): as
// few as hold at most maxKids each, with the kids spread evenly, so that
// when there are several each has more than maxKids/2.
func (r *Rope) group(kids []ropeKid) []ropeKid {
	n := len(kids)
	k := (n + r.lim.maxKids - 1) / r.lim.maxKids
	height := kids[0].height() + 1
	parents := make([]ropeKid, k)
	for i := range k {
		lo, hi := i*n/k, (i+1)*n/k
		p := &ropeNode{owner: r.owner, height: height, n: hi - lo}
		copy(p.kids[:], kids[lo:hi])
		parents[i].node = p
		for _, c := range kids[lo:hi] {
			parents[i].runes += c.runes
			p.bytes += c.bytes()
		}
	}
	return parents
}

// buildTree returns the root of a tree over kids (all of one height, at
// least one), adding levels until one subtree is left.
func (r *Rope) buildTree(kids []ropeKid) ropeKid {
	for len(kids) > 1 {
		kids = r.group(kids)
	}
	return kids[0]
}

// leaves cuts the text x into new leaves owned by r, none empty: one leaf
// if x has at most target bytes, else as few as hold at most target bytes
// each, of nearly equal sizes, cut at code point boundaries; target is
// maxLeaf or fillLeaf.
//
// Why the sizes hold: with T bytes cut into k = ceil(T/(target-4)) parts,
// the ideal cuts are at least floor(T/k) and at most ceil(T/k) <= target-4
// apart, and moving a cut back to a code point start moves it at most 3
// bytes. So each part has at most target bytes and, when T > target, at
// least about target/2-6 >= minLeaf (ropeLimits).
func (r *Rope) leaves(x ropeCat, target int) []ropeKid {
	total := x.len()
	if total == 0 {
		return nil
	}
	k := 1
	if total > target {
		k = (total + target - 5) / (target - 4)
	}
	out := make([]ropeKid, 0, k)
	q, rem := total/k, total%k
	prev := 0
	for i := 1; i <= k; i++ {
		cut := total
		if i < k {
			cut = q*i + rem*i/k
			ideal := cut
			for cut > prev && !ropeIsStart(x.at(cut)) {
				cut--
			}
			if cut == prev {
				cut = ideal // only for invalid UTF-8: never exceed target
			}
		}
		l := &ropeLeaf{owner: r.owner, n: cut - prev}
		x.appendRange(l.buf[:0], prev, cut)
		out = append(out, ropeKid{leaf: l, runes: ropeCountRunes(l.text())})
		prev = cut
	}
	return out
}

// ropeCat is the concatenation a + s + c, read without building it.
type ropeCat struct {
	a []byte
	s string
	c []byte
}

func (x *ropeCat) len() int { return len(x.a) + len(x.s) + len(x.c) }

// at returns byte i of the concatenation; 0 <= i < x.len().
func (x *ropeCat) at(i int) byte {
	if i < len(x.a) {
		return x.a[i]
	}
	i -= len(x.a)
	if i < len(x.s) {
		return x.s[i]
	}
	return x.c[i-len(x.s)]
}

// appendRange appends bytes [from, to) of the concatenation to dst.
func (x *ropeCat) appendRange(dst []byte, from, to int) []byte {
	na, ns := len(x.a), len(x.a)+len(x.s)
	if from < na {
		dst = append(dst, x.a[from:min(to, na)]...)
	}
	if from < ns && to > na {
		dst = append(dst, x.s[max(from, na)-na:min(to, ns)-na]...)
	}
	if to > ns {
		dst = append(dst, x.c[max(from, ns)-ns:to-ns]...)
	}
	return dst
}
