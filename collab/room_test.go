package collab

import (
	"strings"
	"testing"

	"github.com/coedit/coedit/ot"
)

// TestRoomFits: a catch-up chunk takes at most half a Pacer's room, in
// messages and in bytes, and always at least one record.
func TestRoomFits(t *testing.T) {
	small := Record{Kind: OpEdit, Op: ot.Op{{Kind: ot.KindInsert, N: 1, Text: "x"}}}
	big := Record{Kind: OpEdit, Op: ot.Op{{Kind: ot.KindInsert, N: 1000, Text: strings.Repeat("y", 1000)}}}
	recs := func(r Record, n int) []Record {
		out := make([]Record, n)
		for i := range out {
			out[i] = r
		}
		return out
	}
	for _, tc := range []struct {
		name string
		room Room
		recs []Record
		want int
	}{
		{"half the messages", Room{Messages: 10, Bytes: 1 << 20}, recs(small, 20), 5},
		{"all when they fit", Room{Messages: 100, Bytes: 1 << 20}, recs(small, 20), 20},
		{"half the bytes", Room{Messages: 100, Bytes: 4 * recordSize(&big)}, recs(big, 20), 2},
		{"one even without room", Room{}, recs(big, 3), 1},
		{"none to send", Room{Messages: 10, Bytes: 100}, nil, 0},
	} {
		if got := tc.room.fits(tc.recs); got != tc.want {
			t.Errorf("%s: %+v.fits(%d records) = %d, want %d", tc.name, tc.room, len(tc.recs), got, tc.want)
		}
	}
}
