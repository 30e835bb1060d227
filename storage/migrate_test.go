package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// encodeMetaV1 is format 1's docMeta encoding.
func encodeMetaV1(m docMetaV1) []byte {
	e := enc{}
	var flags byte
	if m.deleted {
		flags |= metaDeleted
	}
	e.byte(flags)
	e.uvarint(m.head)
	e.uvarint(m.snap)
	e.uvarint(m.milestone)
	e.varint(m.created)
	e.varint(m.modified)
	e.str(m.typ)
	return e.b
}

// v1Doc is one document of a format 1 file.
type v1Doc struct {
	key        collab.Key
	recs       []collab.Record
	latest     *collab.Snapshot
	milestones []collab.Snapshot
}

// writeV1 writes docs at path in format 1's layout, as a build of that
// format left them: the latest snapshot in the document's bucket (and in
// the milestones when it was one), every src in the seq table.
func writeV1(t *testing.T, path string, docs []v1Doc) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketDocs, bucketDoc, bucketRecent, bucketByColl} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put(keyFormat, binary.AppendUvarint(nil, 1)); err != nil {
			return err
		}
		for _, d := range docs {
			dk := docKey(d.key)
			doc, err := tx.Bucket(bucketDoc).CreateBucket(dk)
			if err != nil {
				return err
			}
			ops, _ := doc.CreateBucket(bucketOps)
			seqs, _ := doc.CreateBucket(bucketSeqs)
			m := docMetaV1{head: uint64(len(d.recs))}
			for i := range d.recs {
				r := &d.recs[i]
				if err := ops.Put(versionKey(r.Version), encodeRecord(r)); err != nil {
					return err
				}
				if err := seqs.Put([]byte(r.Src), encodeSeqEntry(collab.SeqEntry{Seq: r.Seq, Version: r.Version})); err != nil {
					return err
				}
				m.modified = r.Time
				if r.Kind == collab.OpCreate {
					m.typ, m.created = r.Type, r.Time
				}
			}
			if d.latest != nil {
				m.snap = d.latest.Version
				if err := doc.Put(keySnapV1, encodeSnapshot(d.latest)); err != nil {
					return err
				}
			}
			if len(d.milestones) > 0 {
				ms, _ := doc.CreateBucket(bucketMilestonesV1)
				for i := range d.milestones {
					if err := ms.Put(versionKey(d.milestones[i].Version), encodeSnapshot(&d.milestones[i])); err != nil {
						return err
					}
					m.milestone = d.milestones[i].Version
				}
			}
			if err := tx.Bucket(bucketDocs).Put(dk, encodeMetaV1(m)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketRecent).Put(recentKey(dk, m.modified), []byte{}); err != nil {
				return err
			}
			if err := tx.Bucket(bucketByColl).Put(collectionKey(d.key, m.modified), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenMigratesFormat1 opens a file that format 1 wrote: the documents
// read as before (latest snapshot, every past version, the log), the seq
// table keeps only its window, the file passes Check, and it is format 2
// from then on.
func TestOpenMigratesFormat1(t *testing.T) {
	path := tempPath(t)
	text := func(v uint64) string { return fmt.Sprintf("%0*d", int(v), 0) } // v edits of "0" on ""
	snap := func(v uint64) collab.Snapshot { return collab.Snapshot{Version: v, Type: ot.URI, Data: text(v - 1)} }
	// busy: created empty, then one "0" per version, each by a src of its
	// own; snapshots at 1000, 2000 and 3000 (the latest, which format 1
	// also kept as a milestone).
	busy := v1Doc{key: collab.Key{Collection: "c", ID: "busy"}}
	busy.recs = append(busy.recs, createRec(0, srcName(0), 1, ""))
	for v := uint64(1); v < 3000; v++ {
		busy.recs = append(busy.recs, editRec(v, srcName(int(v)), 1, "0"))
	}
	latest := snap(3000)
	busy.latest = &latest
	busy.milestones = []collab.Snapshot{snap(1000), snap(2000), snap(3000)}
	// plain: no snapshot at all.
	plain := v1Doc{key: collab.Key{Collection: "d", ID: "plain"}, recs: []collab.Record{createRec(0, "p", 1, "hello"), editRec(1, "p", 2, "!")}}
	writeV1(t, path, []v1Doc{busy, plain})

	db := openAt(t, path, Options{SeqWindow: 100})
	ctx := context.Background()
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check() after migrating = %v", err)
	}
	var format uint64
	db.bolt.View(func(tx *bolt.Tx) error {
		format, _ = binary.Uvarint(tx.Bucket(bucketMeta).Get(keyFormat))
		return nil
	})
	if format != formatVersion {
		t.Errorf("format after Open = %d, want %d", format, formatVersion)
	}
	st := mustLoad(t, db, busy.key)
	want := map[string]collab.SeqEntry{}
	for v := 2900; v < 3000; v++ {
		want[srcName(v)] = collab.SeqEntry{Seq: 1, Version: uint64(v)}
	}
	if st.Snapshot != latest || len(st.Ops) != 0 || !maps.Equal(st.Seqs, want) {
		t.Errorf("Load(busy) = snapshot %d, %d ops, %d seqs; want %d, 0, the %d of the window",
			st.Snapshot.Version, len(st.Ops), len(st.Seqs), latest.Version, len(want))
	}
	for v, wantV := range map[uint64]uint64{0: 0, 999: 0, 1000: 1000, 1999: 1000, 2000: 2000, 2999: 2000, 3000: 3000} {
		if s, err := db.SnapshotAt(ctx, busy.key, v); err != nil || s.Version != wantV {
			t.Errorf("SnapshotAt(busy, %d) = version %d, %v; want %d", v, s.Version, err, wantV)
		}
	}
	checkHistory(t, db, busy.key, 3000, 37)
	if st := mustLoad(t, db, plain.key); st.Snapshot.Version != 0 || len(st.Ops) != 2 || len(st.Seqs) != 1 {
		t.Errorf("Load(plain) = snapshot %d, %d ops, seqs %v; want 0, 2, p's", st.Snapshot.Version, len(st.Ops), st.Seqs)
	}
	// The migrated file takes commits as any other.
	mustCommit(t, db, plain.key, []collab.Record{editRec(2, "p", 3, "?")}, &collab.Snapshot{Version: 3, Type: ot.URI, Data: "?!hello"})
	checkHistory(t, db, plain.key, 3, 1)
}

// TestFormat2IsNotedAs3: format 3 only added a document's applied point,
// which a format 2 file's documents lack (none of its requests is past
// the file's applied point), so Open takes a format 2 file as it is and
// notes it as 3, which a build of format 2 then refuses rather than
// replaying frames some documents have had.
func TestFormat2IsNotedAs3(t *testing.T) {
	path := tempPath(t)
	key := collab.Key{Collection: "c", ID: "d"}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, db, key, []collab.Record{createRec(0, "s", 1, "hi")}, nil)
	mustCommit(t, db, key, edits(1, 3, "s"), nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	format := func() uint64 {
		var v uint64
		if err := bdb.View(func(tx *bolt.Tx) error {
			v, _ = binary.Uvarint(tx.Bucket(bucketMeta).Get(keyFormat))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Format 2 as a build of it wrote it: no notes in the documents, no
	// log-reached.
	if err := bdb.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Delete(keyReached); err != nil {
			return err
		}
		m, _, err := readMeta(tx, docKey(key))
		if err != nil {
			return err
		}
		m.applied = 0
		if err := tx.Bucket(bucketDocs).Put(docKey(key), encodeMeta(&m)); err != nil {
			return err
		}
		return meta.Put(keyFormat, binary.AppendUvarint(nil, 2))
	}); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	db = openAt(t, path, Options{})
	if st := mustLoad(t, db, key); len(st.Ops) != 4 {
		t.Fatalf("Load after opening format 2 = %d ops, want 4", len(st.Ops))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if bdb, err = bolt.Open(path, 0o600, nil); err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if got := format(); got != 3 {
		t.Fatalf("format after Open = %d, want 3", got)
	}
}
