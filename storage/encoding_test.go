package storage

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"sort"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []collab.Record{
		{Version: 0, Kind: collab.OpCreate, Type: ot.URI, Data: "héllo 😀", Src: "abc", Seq: 1, Time: 1700000000000},
		{Version: 7, Kind: collab.OpEdit, Op: ot.Op{
			{Kind: ot.KindSkip, N: 3}, {Kind: ot.KindInsert, N: 2, Text: "é😀"},
			{Kind: ot.KindDelete, N: 4}, {Kind: ot.KindDelete, N: 1, Text: "x"},
		}, Time: -1},
		{Version: math.MaxUint64, Kind: collab.OpDelete, Src: "s", Seq: math.MaxUint64, Time: math.MinInt64},
		{Version: 1, Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindDelete, N: math.MaxInt}}, Time: math.MaxInt64},
		{Version: 2, Kind: collab.OpEdit, Type: "kept", Data: "even for an edit"},
	} {
		b := encodeRecord(&r)
		got, err := decodeRecord(r.Version, b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("decodeRecord(encodeRecord(%+v)) = %+v, %v", r, got, err)
		}
		// Every strict prefix is an error, never a panic.
		for i := range len(b) {
			if _, err := decodeRecord(r.Version, b[:i]); !errors.Is(err, errDecode) {
				t.Errorf("decodeRecord(%x, first %d of %d bytes) = %v, want errDecode", b[:i], i, len(b), err)
			}
		}
		if _, err := decodeRecord(r.Version, append(b, 0)); !errors.Is(err, errDecode) {
			t.Errorf("decodeRecord(with a trailing byte) = %v, want errDecode", err)
		}
	}
}

func TestMetaSnapshotSeqRoundTrip(t *testing.T) {
	for _, m := range []docMeta{
		{},
		{deleted: true, head: 9, snap: 8, seqFloor: 4, opBytes: math.MaxUint64, created: -3, modified: math.MaxInt64, typ: ot.URI},
	} {
		if got, err := decodeMeta(encodeMeta(&m)); err != nil || got != m {
			t.Errorf("decodeMeta(encodeMeta(%+v)) = %+v, %v", m, got, err)
		}
	}
	if _, err := decodeMeta([]byte{0x80, 0, 0, 0, 0, 0, 0}); !errors.Is(err, errDecode) {
		t.Errorf("decodeMeta(unknown flag) = %v, want errDecode", err)
	}
	for _, s := range []collab.Snapshot{{}, {Version: 5, Type: ot.URI, Data: "x\x00y"}} {
		if got, err := decodeSnapshot(encodeSnapshot(&s)); err != nil || got != s {
			t.Errorf("decodeSnapshot(encodeSnapshot(%+v)) = %+v, %v", s, got, err)
		}
	}
	for _, h := range []snapHeader{{}, {version: math.MaxUint64, typ: ot.URI, size: 3 << 20, opBytes: 7}} {
		if got, err := decodeSnapHeader(encodeSnapHeader(&h)); err != nil || got != h {
			t.Errorf("decodeSnapHeader(encodeSnapHeader(%+v)) = %+v, %v", h, got, err)
		}
	}
	for _, e := range []collab.SeqEntry{{}, {Seq: math.MaxUint64, Version: 3}} {
		if got, err := decodeSeqEntry(encodeSeqEntry(e)); err != nil || got != e {
			t.Errorf("decodeSeqEntry(encodeSeqEntry(%+v)) = %+v, %v", e, got, err)
		}
	}
}

// TestKeyOrder checks the orders the indexes rely on: document keys group
// by collection with no collection a prefix of another's keys, and
// descTime sorts newest first across negative and positive times.
func TestKeyOrder(t *testing.T) {
	keys := []collab.Key{{Collection: "a", ID: "b"}, {Collection: "ab", ID: ""}, {Collection: "a", ID: "bc"}}
	for _, k := range keys {
		got, err := decodeDocKey(docKey(k))
		if err != nil || got != k {
			t.Errorf("decodeDocKey(docKey(%+v)) = %+v, %v", k, got, err)
		}
	}
	if bytes.HasPrefix(docKey(collab.Key{Collection: "ab", ID: "x"}), collectionPrefix("a")) {
		t.Errorf("collection \"ab\"'s keys start with collection \"a\"'s prefix")
	}
	times := []int64{math.MinInt64, -1000, -1, 0, 1, 1000, math.MaxInt64}
	enc := make([][]byte, len(times))
	for i, tm := range times {
		enc[i] = descTime(tm)
	}
	if !sort.SliceIsSorted(enc, func(i, j int) bool { return bytes.Compare(enc[i], enc[j]) > 0 }) {
		t.Errorf("descTime(%v) is not in descending byte order: %x", times, enc)
	}
	for i := uint64(0); i < 300; i += 37 {
		if v, err := decodeVersionKey(versionKey(i)); err != nil || v != i {
			t.Errorf("decodeVersionKey(versionKey(%d)) = %d, %v", i, v, err)
		}
	}
	if _, err := decodeVersionKey([]byte{1, 2}); !errors.Is(err, errDecode) {
		t.Errorf("decodeVersionKey(2 bytes) = %v, want errDecode", err)
	}
}

// FuzzDecodeRecord checks that no input makes the decoder panic or
// allocate beyond its input, and that whatever decodes re-encodes to a
// value that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(&collab.Record{Kind: collab.OpEdit, Op: insertOp("abc"), Src: "s", Seq: 3}))
	f.Add(encodeRecord(&collab.Record{Kind: collab.OpCreate, Type: ot.URI, Data: "d"}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(4, b)
		if err != nil {
			if !errors.Is(err, errDecode) {
				t.Fatalf("decodeRecord(%x) = %v, want an errDecode", b, err)
			}
			return
		}
		again, err := decodeRecord(4, encodeRecord(&r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("decodeRecord(encodeRecord(%+v)) = %+v, %v", r, again, err)
		}
	})
}

// FuzzDecodeMeta does the same for metadata, snapshots (format 1's and
// format 2's headers) and seq entries.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(&docMeta{head: 3, typ: ot.URI}))
	f.Add(encodeSnapshot(&collab.Snapshot{Version: 2, Data: "x"}))
	f.Add(encodeSnapHeader(&snapHeader{version: 2, typ: ot.URI, size: 9}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeMeta(b); err == nil {
			if again, err := decodeMeta(encodeMeta(&m)); err != nil || again != m {
				t.Fatalf("decodeMeta round trip of %+v = %+v, %v", m, again, err)
			}
		}
		if s, err := decodeSnapshot(b); err == nil {
			if again, err := decodeSnapshot(encodeSnapshot(&s)); err != nil || again != s {
				t.Fatalf("decodeSnapshot round trip of %+v = %+v, %v", s, again, err)
			}
		}
		if h, err := decodeSnapHeader(b); err == nil {
			if again, err := decodeSnapHeader(encodeSnapHeader(&h)); err != nil || again != h {
				t.Fatalf("decodeSnapHeader round trip of %+v = %+v, %v", h, again, err)
			}
		}
		if e, err := decodeSeqEntry(b); err == nil {
			if again, err := decodeSeqEntry(encodeSeqEntry(e)); err != nil || again != e {
				t.Fatalf("decodeSeqEntry round trip of %+v = %+v, %v", e, again, err)
			}
		}
		decodeDocKey(b)
	})
}
