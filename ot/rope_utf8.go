package ot

import (
	"encoding/binary"
	"math/bits"
)

// Code point arithmetic on valid UTF-8, many bytes at a time. A code point
// starts at every byte that is not a continuation byte (10xxxxxx), so in
// valid UTF-8 counting code points is counting those bytes. On invalid
// input these functions still agree with one another, so the tree's counts
// stay consistent whatever it is given.

const (
	ropeHighBits = 0x8080808080808080
	ropeLowBits  = 0x0101010101010101
)

// ropeIsStart reports whether b begins a code point.
func ropeIsStart(b byte) bool { return b&0xC0 != 0x80 }

// ropeStartMask returns the word w with bit 7 of each byte set when that
// byte begins a code point, and every other bit clear.
func ropeStartMask(w uint64) uint64 {
	// w<<1 moves each byte's bit 6 to its bit 7: a continuation byte has
	// bit 7 set and bit 6 clear.
	return ^(w &^ (w << 1)) & ropeHighBits
}

// ropeContFlags returns w with the low bit of each byte set when that byte
// is a continuation byte, and every other bit clear. Flags of up to 255
// words can be added without a carry between lanes.
func ropeContFlags(w uint64) uint64 {
	// w<<1 moves each byte's bit 6 to its bit 7: a continuation byte has
	// bit 7 set and bit 6 clear.
	return (w &^ (w << 1)) >> 7 & ropeLowBits
}

// ropeSelectStart returns the byte index in a word of its code point start
// number j (from 0, in memory order), given the word's start mask m with
// more than j starts. Without branches: the multiply leaves in each byte
// lane the number of starts up to it, and the subtraction sets the top bit
// of the lanes where that number exceeds j (lanes hold at most 8, so no
// borrow crosses lanes); the first such lane is the answer.
func ropeSelectStart(m uint64, j int) int {
	upTo := (m >> 7) * ropeLowBits
	over := ((upTo | ropeHighBits) - uint64(j+1)*ropeLowBits) & ropeHighBits
	return bits.TrailingZeros64(over) / 8
}

// ropeCountRunes returns the number of code points in the valid UTF-8 b.
func ropeCountRunes[T string | []byte](b T) int {
	n, i := 0, 0
	for ; i+8 <= len(b); i += 8 {
		w := b[i : i+8]
		n += bits.OnesCount64(ropeStartMask(uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56))
	}
	for ; i < len(b); i++ {
		if ropeIsStart(b[i]) {
			n++
		}
	}
	return n
}

// ropeRuneStart returns the byte offset of code point k of the valid UTF-8
// b, or len(b) when b has exactly k code points; 0 <= k <= code points of b.
func ropeRuneStart(b []byte, k int) int {
	i, seen := 0, 0
	// 32 bytes at a time: add the four words' continuation flags and sum
	// the byte lanes with one multiply.
	for ; i+32 <= len(b); i += 32 {
		x := b[i : i+32]
		c := ropeContFlags(binary.LittleEndian.Uint64(x[0:8])) + ropeContFlags(binary.LittleEndian.Uint64(x[8:16])) +
			ropeContFlags(binary.LittleEndian.Uint64(x[16:24])) + ropeContFlags(binary.LittleEndian.Uint64(x[24:32]))
		starts := 32 - int(c*ropeLowBits>>56)
		if seen+starts > k {
			break // code point k starts in this block
		}
		seen += starts
	}
	for ; i+8 <= len(b); i += 8 {
		m := ropeStartMask(binary.LittleEndian.Uint64(b[i : i+8]))
		starts := bits.OnesCount64(m)
		if seen+starts > k {
			return i + ropeSelectStart(m, k-seen)
		}
		seen += starts
	}
	for ; i < len(b); i++ {
		if ropeIsStart(b[i]) {
			if seen == k {
				return i
			}
			seen++
		}
	}
	return len(b)
}

// ropeRuneStartBack returns the byte offset of the code point that has k
// code points from it to the end of the valid UTF-8 b, scanning from the
// end; 0 <= k <= code points of b.
func ropeRuneStartBack(b []byte, k int) int {
	if k == 0 {
		return len(b)
	}
	i, seen := len(b), 0
	for ; i >= 32; i -= 32 {
		x := b[i-32 : i]
		c := ropeContFlags(binary.LittleEndian.Uint64(x[0:8])) + ropeContFlags(binary.LittleEndian.Uint64(x[8:16])) +
			ropeContFlags(binary.LittleEndian.Uint64(x[16:24])) + ropeContFlags(binary.LittleEndian.Uint64(x[24:32]))
		starts := 32 - int(c*ropeLowBits>>56)
		if seen+starts >= k {
			break // the code point wanted starts in this block
		}
		seen += starts
	}
	for ; i >= 8; i -= 8 {
		m := ropeStartMask(binary.LittleEndian.Uint64(b[i-8 : i]))
		starts := bits.OnesCount64(m)
		if seen+starts >= k {
			// It is the (k-seen)-th start from the top, counting from 1.
			return i - 8 + ropeSelectStart(m, starts-(k-seen))
		}
		seen += starts
	}
	for i > 0 {
		i--
		if ropeIsStart(b[i]) {
			if seen++; seen == k {
				return i
			}
		}
	}
	return 0
}

// ropeOffset returns the byte offset of code point pos in text, a leaf's
// text of runes code points; 0 <= pos <= runes. All-ASCII text needs no
// scan; otherwise it scans from the nearer end.
func ropeOffset(text []byte, runes, pos int) int {
	if runes == len(text) {
		return pos
	}
	if pos > runes/2 {
		return ropeRuneStartBack(text, runes-pos)
	}
	return ropeRuneStart(text, pos)
}
