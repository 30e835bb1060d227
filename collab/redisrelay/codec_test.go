package redisrelay

import (
	"errors"
	"reflect"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// TestRecordRoundTrip: every field of a record reads back as committed,
// including an empty op kept apart from no op.
func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []collab.Record{
		{Version: 0, Src: "c1", Seq: 1, Kind: collab.OpCreate, Type: ot.URI, Data: "héllo \"quoted\" <tag> 😀", Time: 1700000000000},
		{Version: 7, Src: "c1", Seq: 2, Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindSkip, N: 3}, {Kind: ot.KindInsert, N: 1, Text: "😀"}, {Kind: ot.KindDelete, N: 2}}, Time: -5},
		{Version: 8, Kind: collab.OpEdit, Op: ot.Op{}},
		{Version: 9, Src: "x", Seq: 1<<53 - 1, Kind: collab.OpDelete},
	} {
		b, err := encodeRecord(&r)
		if err != nil {
			t.Fatalf("encodeRecord(%+v) = %v", r, err)
		}
		got, err := decodeRecord(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("decodeRecord(%s) = %+v, %v; want %+v", b, got, err, r)
		}
	}
	if _, err := encodeRecord(&collab.Record{Seq: 1 << 53, Kind: collab.OpDelete}); !errors.Is(err, ErrInvalid) {
		t.Errorf("encodeRecord(seq 2^53) = %v, want ErrInvalid", err)
	}
	if _, err := encodeRecord(&collab.Record{Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindSkip, N: 0}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("encodeRecord(invalid op) = %v, want ErrInvalid", err)
	}
}

// TestTagEscapes: the hash tag of a document is unambiguous and has no
// brace of the id in it.
func TestTagEscapes(t *testing.T) {
	for _, tc := range []struct {
		key  collab.Key
		want string
	}{
		{collab.Key{Collection: "notes", ID: "a"}, "notes.a"},
		{collab.Key{Collection: "a.b", ID: "c"}, "a%2Eb.c"},
		{collab.Key{Collection: "a", ID: "b.c"}, "a.b%2Ec"},
		{collab.Key{Collection: "x", ID: "}{"}, "x.%7D%7B"},
		{collab.Key{Collection: "x", ID: "%7D"}, "x.%257D"},
	} {
		if got := tag(tc.key); got != tc.want {
			t.Errorf("tag(%v) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

// FuzzDecodeDoorbell: any payload decodes or fails with ErrCorrupt,
// never panics, and what decodes encodes back to records that decode
// the same.
func FuzzDecodeDoorbell(f *testing.F) {
	f.Add([]byte(`{"e":"ab","r":[{"v":3,"s":"c","q":1,"k":1,"o":[2,"x",{"d":1}],"m":5}]}`))
	f.Add([]byte(`{"e":"ab","r":[]}`))
	f.Add([]byte(`{"e":"ab","r":[{"v":0,"k":2,"t":"http://sharejs.org/types/textv1","d":"hi"}]}`))
	f.Add([]byte(`{"e":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, recs, err := decodeDoorbell(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeDoorbell(%q) = %v, want ErrCorrupt", b, err)
			}
			return
		}
		for _, r := range recs {
			enc, err := encodeRecord(&r)
			if err != nil {
				if r.Version >= maxNumber || r.Seq >= maxNumber {
					continue
				}
				t.Fatalf("encodeRecord(%+v) = %v", r, err)
			}
			back, err := decodeRecord(enc)
			if err != nil || !reflect.DeepEqual(back, r) {
				t.Fatalf("round trip of %+v = %+v, %v", r, back, err)
			}
		}
	})
}
