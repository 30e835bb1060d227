package ot

import "slices"

// This file holds the Rope's tree surgery. Every function here may change
// only nodes owned by r (node.owner == r.owner); r.mut copies any other
// node first. Positions are code point offsets that Apply has already
// checked, so nothing here needs to report errors.

// mut returns nd if r owns it, else a copy of nd that r owns. The copy has
// its own text or kids array, so changing it never touches nd.
func (r *Rope) mut(nd *ropeNode) *ropeNode {
	if nd.owner == r.owner {
		return nd
	}
	c := &ropeNode{owner: r.owner, runes: nd.runes, bytes: nd.bytes, height: nd.height}
	if nd.height == 0 {
		c.text = make([]byte, len(nd.text), max(len(nd.text), r.lim.maxLeaf))
		copy(c.text, nd.text)
	} else {
		c.kids = make([]ropeKid, len(nd.kids), max(len(nd.kids), r.lim.maxKids+1))
		copy(c.kids, nd.kids)
	}
	return c
}

// ropeKids returns the child entries for nodes.
func ropeKids(nodes []*ropeNode) []ropeKid {
	kids := make([]ropeKid, len(nodes))
	for i, n := range nodes {
		kids[i] = ropeKid{n, n.runes}
	}
	return kids
}

// insert inserts s, which has n code points, at code point pos of the
// document.
func (r *Rope) insert(pos int, s string, n int) {
	r.root = r.mut(r.root)
	extra := r.insertAt(r.root, pos, s, n)
	if extra != nil {
		r.root = r.buildTree(append([]*ropeNode{r.root}, extra...))
	}
}

// insertAt inserts s (n code points) at pos in nd's subtree, nd owned by r
// and 0 <= pos <= nd.runes. When nd overflows it keeps the first part and
// returns the nodes, of nd's height, that must follow it in its parent.
func (r *Rope) insertAt(nd *ropeNode, pos int, s string, n int) []*ropeNode {
	if nd.height == 0 {
		return r.leafInsert(nd, pos, s, n)
	}
	// Find the first child whose end is at or after pos, so that typing at
	// a boundary extends the child on the left.
	i, last := 0, len(nd.kids)-1
	for ; i < last && pos > nd.kids[i].runes; i++ {
		pos -= nd.kids[i].runes
	}
	kid := r.mut(nd.kids[i].node)
	nd.kids[i].node = kid
	extra := r.insertAt(kid, pos, s, n)
	nd.kids[i].runes = kid.runes
	nd.runes += n
	nd.bytes += len(s)
	if extra == nil {
		return nil
	}
	nd.kids = slices.Insert(nd.kids, i+1, ropeKids(extra)...)
	if len(nd.kids) <= r.lim.maxKids {
		return nil
	}
	parts := r.group(nd.kids)
	clear(nd.kids) // parts hold copies; drop the old array's pointers
	nd.kids, nd.runes, nd.bytes = parts[0].kids, parts[0].runes, parts[0].bytes
	return parts[1:]
}

// leafInsert is insertAt for a leaf.
func (r *Rope) leafInsert(nd *ropeNode, pos int, s string, n int) []*ropeNode {
	b := ropeLeafOffset(nd, pos)
	old := len(nd.text)
	if old+len(s) <= r.lim.maxLeaf {
		if cap(nd.text) < old+len(s) {
			grown := make([]byte, old, min(max(2*cap(nd.text), old+len(s), 64), r.lim.maxLeaf))
			copy(grown, nd.text)
			nd.text = grown
		}
		nd.text = nd.text[:old+len(s)]
		copy(nd.text[b+len(s):], nd.text[b:old])
		copy(nd.text[b:], s)
		nd.runes += n
		nd.bytes = len(nd.text)
		return nil
	}
	parts := r.leaves(ropeCat{a: nd.text[:b], s: s, c: nd.text[b:]}, true)
	nd.text, nd.runes, nd.bytes = parts[0].text, parts[0].runes, parts[0].bytes
	return parts[1:]
}

// delete removes code points [from, to) of the document; from < to.
func (r *Rope) delete(from, to int) {
	if from == 0 && to == r.root.runes {
		r.root = &ropeNode{owner: r.owner}
		return
	}
	r.root = r.mut(r.root)
	r.deleteIn(r.root, from, to)
	for r.root.height > 0 && len(r.root.kids) == 1 {
		r.root = r.root.kids[0].node
	}
}

// deleteIn removes code points [from, to) of nd's subtree, nd owned by r
// and 0 <= from < to <= nd.runes with [from, to) not all of nd. Afterwards
// nd may be underfull, and if nd has a single child that child may be
// underfull too (and so on down); every other node below nd is within
// limits. The parent fixes nd by merging it with a sibling.
func (r *Rope) deleteIn(nd *ropeNode, from, to int) {
	if nd.height == 0 {
		bf := ropeLeafOffset(nd, from)
		bt := bf + ropeRuneStart(nd.text[bf:], to-from)
		nd.text = append(nd.text[:bf], nd.text[bt:]...)
		nd.runes -= to - from
		nd.bytes = len(nd.text)
		return
	}
	// Most deletes fall inside one child: find it without looking at the
	// others.
	i, last := 0, len(nd.kids)-1
	for ; i < last && from >= nd.kids[i].runes; i++ {
		from -= nd.kids[i].runes
		to -= nd.kids[i].runes
	}
	if kid := &nd.kids[i]; to <= kid.runes && to-from < kid.runes {
		before := kid.node.bytes
		kid.node = r.mut(kid.node)
		r.deleteIn(kid.node, from, to)
		kid.runes = kid.node.runes
		nd.runes -= to - from
		nd.bytes -= before - kid.node.bytes
		r.fixKids(nd, i, i)
		return
	}
	// Else the children wholly inside [from, to) go, and at most two, the
	// first and the last touched, lose part of their text and may become
	// underfull. Children before i are untouched; from and to are now
	// relative to child i.
	w, start := i, 0
	lo, hi := len(nd.kids), -1 // kept children that were cut
	for _, kid := range nd.kids[i:] {
		end := start + kid.runes
		switch {
		case end <= from || start >= to:
			// untouched
		case from <= start && end <= to:
			nd.bytes -= kid.node.bytes
			start = end
			continue
		default:
			before := kid.node.bytes
			kid.node = r.mut(kid.node)
			r.deleteIn(kid.node, max(from, start)-start, min(to, end)-start)
			kid.runes = kid.node.runes
			nd.bytes -= before - kid.node.bytes
			lo, hi = min(lo, w), w
		}
		nd.kids[w] = kid
		w++
		start = end
	}
	clear(nd.kids[w:])
	nd.kids = nd.kids[:w]
	nd.runes -= to - from
	r.fixKids(nd, lo, hi)
}

// recount sets an internal node's counts from its children's.
func (r *Rope) recount(nd *ropeNode) {
	nd.runes, nd.bytes = 0, 0
	for _, k := range nd.kids {
		nd.runes += k.runes
		nd.bytes += k.node.bytes
	}
}

// underfull reports whether a non-root node is below its minimum size.
func (r *Rope) underfull(nd *ropeNode) bool {
	if nd.height == 0 {
		return nd.bytes < r.lim.minLeaf
	}
	return len(nd.kids) < r.lim.minKids
}

// fixKids merges each underfull child of nd (owned by r) with a neighbour
// until none is left, unless nd has a single child. Only children lo..hi
// may be underfull; the others are not looked at. It keeps nd's counts.
func (r *Rope) fixKids(nd *ropeNode, lo, hi int) {
	for i := max(lo, 0); i <= hi && i < len(nd.kids) && len(nd.kids) > 1; {
		if !r.underfull(nd.kids[i].node) {
			i++
			continue
		}
		j := i + 1
		if j == len(nd.kids) {
			i, j = i-1, i
		}
		// Each merge either leaves one node fewer or splits the pair into
		// nodes that are all within limits, so the loop ends. A node merged
		// with a sibling that was within limits is within limits.
		merged := r.merge(nd.kids[i].node, nd.kids[j].node)
		n := len(nd.kids)
		nd.kids = slices.Replace(nd.kids, i, j+1, ropeKids(merged)...)
		hi += len(nd.kids) - n
	}
}

// merge joins two adjacent nodes of equal height into one node, or into
// several nodes within limits when one would overflow. The result's
// subtrees are within limits even if a or b was underfull below.
func (r *Rope) merge(a, b *ropeNode) []*ropeNode {
	if a.height == 0 {
		if a.bytes+b.bytes > r.lim.maxLeaf {
			return r.leaves(ropeCat{a: a.text, c: b.text}, true)
		}
		a = r.mut(a)
		a.text = append(a.text, b.text...)
		a.runes += b.runes
		a.bytes = len(a.text)
		return []*ropeNode{a}
	}
	a = r.mut(a)
	a.kids = append(a.kids, b.kids...)
	r.fixKids(a, 0, len(a.kids)-1)
	r.recount(a)
	if len(a.kids) <= r.lim.maxKids {
		return []*ropeNode{a}
	}
	return r.group(a.kids)
}

// group returns new parents for kids (all of one height, at least one): as
// few as hold at most maxKids each, with the kids spread evenly, so that
// when there are several each has more than maxKids/2.
func (r *Rope) group(kids []ropeKid) []*ropeNode {
	n := len(kids)
	k := (n + r.lim.maxKids - 1) / r.lim.maxKids
	parents := make([]*ropeNode, k)
	for i := range k {
		lo, hi := i*n/k, (i+1)*n/k
		p := &ropeNode{owner: r.owner, height: kids[0].node.height + 1}
		p.kids = make([]ropeKid, hi-lo, r.lim.maxKids+1)
		copy(p.kids, kids[lo:hi])
		r.recount(p)
		parents[i] = p
	}
	return parents
}

// buildTree returns the root of a tree over nodes (all of one height, at
// least one), adding levels until one node is left.
func (r *Rope) buildTree(nodes []*ropeNode) *ropeNode {
	for len(nodes) > 1 {
		nodes = r.group(ropeKids(nodes))
	}
	return nodes[0]
}

// leaves cuts the text x into new leaves owned by r, none empty: one leaf
// if x fits, else as few as hold at most maxLeaf bytes each, of nearly equal
// sizes, cut at code point boundaries. With spare set each leaf gets room to
// grow to maxLeaf without reallocating.
//
// Why the sizes hold: with T bytes cut into k = ceil(T/(maxLeaf-4)) parts,
// the ideal cuts are at least floor(T/k) and at most ceil(T/k) <= maxLeaf-4
// apart, and moving a cut back to a code point start moves it at most 3
// bytes. So each part has at most maxLeaf bytes and, when T > maxLeaf, at
// least about maxLeaf/2-6 >= minLeaf.
func (r *Rope) leaves(x ropeCat, spare bool) []*ropeNode {
	total := x.len()
	if total == 0 {
		return nil
	}
	k := 1
	if total > r.lim.maxLeaf {
		k = (total + r.lim.maxLeaf - 5) / (r.lim.maxLeaf - 4)
	}
	out := make([]*ropeNode, 0, k)
	q, rem := total/k, total%k
	prev := 0
	for i := 1; i <= k; i++ {
		cut := total
		if i < k {
			cut = q*i + rem*i/k
			for cut > prev && !ropeIsStart(x.at(cut)) {
				cut--
			}
			if cut == prev {
				continue // unreachable for valid UTF-8 and sane limits
			}
		}
		size := cut - prev
		c := size
		if spare {
			c = max(size, r.lim.maxLeaf)
		}
		text := x.appendRange(make([]byte, 0, c), prev, cut)
		out = append(out, &ropeNode{owner: r.owner, runes: ropeCountRunes(text), bytes: size, text: text})
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
