package ot

import "math/bits"

// Code point arithmetic on valid UTF-8, eight bytes at a time. A code point
// starts at every byte that is not a continuation byte (10xxxxxx), so in
// valid UTF-8 counting code points is counting those bytes.

const ropeHighBits = 0x8080808080808080

// ropeIsStart reports whether b begins a code point.
func ropeIsStart(b byte) bool { return b&0xC0 != 0x80 }

// ropeLoad64 returns the eight bytes of b from i as a little-endian word;
// i+8 <= len(b). The compiler turns this into a single load.
func ropeLoad64[T string | []byte](b T, i int) uint64 {
	_ = b[i+7]
	return uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
		uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
}

// ropeContinuations returns the number of continuation bytes in the word
// w: bytes whose top bit is set and whose next bit is clear.
func ropeContinuations(w uint64) int {
	return bits.OnesCount64(w &^ (w << 1) & ropeHighBits)
}

// ropeCountRunes returns the number of code points in the valid UTF-8 b.
func ropeCountRunes[T string | []byte](b T) int {
	n, i := len(b), 0
	for ; i+8 <= len(b); i += 8 {
		n -= ropeContinuations(ropeLoad64(b, i))
	}
	for ; i < len(b); i++ {
		if !ropeIsStart(b[i]) {
			n--
		}
	}
	return n
}

// ropeRuneStart returns the byte offset of code point k of the valid UTF-8
// b, or len(b) when b has exactly k code points; 0 <= k <= code points of b.
func ropeRuneStart(b []byte, k int) int {
	i, seen := 0, 0
	for ; i+8 <= len(b); i += 8 {
		starts := 8 - ropeContinuations(ropeLoad64(b, i))
		if seen+starts > k {
			break // code point k starts in this word
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

// ropeLeafOffset returns the byte offset of code point pos in leaf nd;
// 0 <= pos <= nd.runes. An all-ASCII leaf needs no scan.
func ropeLeafOffset(nd *ropeNode, pos int) int {
	if nd.runes == len(nd.text) {
		return pos
	}
	return ropeRuneStart(nd.text, pos)
}
