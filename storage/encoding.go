package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// The values in the file use a small binary encoding built from uvarints,
// zigzag varints and length-prefixed strings. It is private to this
// package and versioned as a whole by formatVersion in the meta bucket:
// any change to it needs a new format version and a migration.
//
//	record     = kind:byte src:str seq:uvarint time:varint type:str data:str
//	             ncomp:uvarint { ckind:byte n:uvarint text:str }
//	snapHeader = version:uvarint type:str size:uvarint opBytes:uvarint
//	docMeta    = flags:byte head:uvarint snap:uvarint seqFloor:uvarint
//	             opBytes:uvarint created:varint modified:varint type:str
//	             [applied:uvarint, when flags has metaApplied]
//	seqEntry   = seq:uvarint version:uvarint
//	docKey     = len(collection):uvarint collection id
//
// A snapshot's data is not encoded: it is stored raw, in pieces (see
// snapshots.go). Format 1 stored a snapshot as one value, version:uvarint
// type:str data:str (encodeSnapshot), and a docMeta with a milestone
// version where format 2 has seqFloor and opBytes; migrate.go reads
// those. Format 3 added a docMeta's applied LSN (apply.go); a format 2
// file is format 3 as it stands.
//
// Every field of a Record is encoded whatever its Kind, so a record reads
// back exactly as it was committed. A record's version is its key in the
// document's op bucket, not part of the value.

// errDecode is wrapped by every decoding error; callers wrap it again in
// ErrCorrupt with the location of the bad value.
var errDecode = errors.New("malformed value")

// maxKeyLen bounds a document key's Collection plus ID, and a src, in
// bytes. bbolt keys are at most 32 KiB; ours get a few bytes of prefix.
const maxKeyLen = 4096

// docMeta is a document's entry in the docs bucket.
type docMeta struct {
	deleted bool   // the latest create/delete record was a delete
	head    uint64 // the version after the last committed record
	snap    uint64 // version of the latest snapshot (0: none)
	// seqFloor: the seq table holds no entry for a version below it
	// (see seqs.go).
	seqFloor uint64
	// opBytes weighs the whole op log: the size of its encoded records
	// less the text of its creates (a create's text is a base to replay
	// from, as a snapshot is). The milestone rule weighs it against a
	// snapshot's size.
	opBytes  uint64
	created  int64  // Time of the latest create record
	modified int64  // Time of the latest record
	typ      string // type URI, "" before a create and after a delete
	// applied is the LSN of the last logged request applied to the
	// document (0: none noted). The applier applies documents at
	// different times (apply.go), so a frame past the file's applied
	// point may hold requests this document has already had.
	applied uint64
}

const (
	metaDeleted = 1 << 0
	metaApplied = 1 << 1
)

// enc appends to a byte slice. Its methods never fail.
type enc struct{ b []byte }

func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// dec reads what enc wrote. The first error sticks: later reads return
// zero values, and err reports the first problem.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s", errDecode, what)
	}
}

func (d *dec) byte(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// str copies the string out of the buffer: bbolt's buffers are only valid
// for the life of their transaction.
func (d *dec) str(what string) string {
	n := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// end reports the first error, or an error if bytes are left over.
func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errDecode, len(d.b))
	}
	return d.err
}

// encodeRecord encodes r without its version. It does not validate r;
// validateRecords does.
func encodeRecord(r *collab.Record) []byte {
	size := 16 + len(r.Src) + len(r.Type) + len(r.Data) + 4
	for _, c := range r.Op {
		size += 4 + len(c.Text)
	}
	e := enc{b: make([]byte, 0, size)}
	e.byte(byte(r.Kind))
	e.str(r.Src)
	e.uvarint(r.Seq)
	e.varint(r.Time)
	e.str(r.Type)
	e.str(r.Data)
	e.uvarint(uint64(len(r.Op)))
	for _, c := range r.Op {
		e.byte(byte(c.Kind))
		e.uvarint(uint64(c.N))
		e.str(c.Text)
	}
	return e.b
}

// decodeRecord decodes a record stored at version.
func decodeRecord(version uint64, b []byte) (collab.Record, error) {
	d := dec{b: b}
	r := collab.Record{Version: version}
	r.Kind = collab.OpKind(d.byte("record kind"))
	r.Src = d.str("record src")
	r.Seq = d.uvarint("record seq")
	r.Time = d.varint("record time")
	r.Type = d.str("record type")
	r.Data = d.str("record data")
	n := d.uvarint("op length")
	// Each component takes at least 3 bytes, which bounds the allocation
	// by the input's size whatever the stored count says.
	if d.err == nil && n > uint64(len(d.b))/3 {
		d.fail("op length")
	}
	if d.err == nil && n > 0 {
		r.Op = make(ot.Op, n)
		for i := range r.Op {
			c := &r.Op[i]
			c.Kind = ot.Kind(d.byte("component kind"))
			cn := d.uvarint("component length")
			if cn > math.MaxInt {
				d.fail("component length")
			}
			c.N = int(cn)
			c.Text = d.str("component text")
		}
	}
	if err := d.end(); err != nil {
		return collab.Record{}, err
	}
	return r, nil
}

func encodeSnapshot(s *collab.Snapshot) []byte {
	e := enc{b: make([]byte, 0, 12+len(s.Type)+len(s.Data))}
	e.uvarint(s.Version)
	e.str(s.Type)
	e.str(s.Data)
	return e.b
}

func decodeSnapshot(b []byte) (collab.Snapshot, error) {
	d := dec{b: b}
	var s collab.Snapshot
	s.Version = d.uvarint("snapshot version")
	s.Type = d.str("snapshot type")
	s.Data = d.str("snapshot data")
	if err := d.end(); err != nil {
		return collab.Snapshot{}, err
	}
	return s, nil
}

// snapHeader describes a stored snapshot; its data follows in pieces.
type snapHeader struct {
	version uint64
	typ     string
	size    uint64 // length of the data in bytes
	// opBytes is docMeta.opBytes when the snapshot was stored: the
	// weight of the op log up to the snapshot, or a little more for one
	// stored behind the head.
	opBytes uint64
}

func encodeSnapHeader(h *snapHeader) []byte {
	e := enc{b: make([]byte, 0, 32+len(h.typ))}
	e.uvarint(h.version)
	e.str(h.typ)
	e.uvarint(h.size)
	e.uvarint(h.opBytes)
	return e.b
}

func decodeSnapHeader(b []byte) (snapHeader, error) {
	d := dec{b: b}
	var h snapHeader
	h.version = d.uvarint("snapshot version")
	h.typ = d.str("snapshot type")
	h.size = d.uvarint("snapshot size")
	h.opBytes = d.uvarint("snapshot op bytes")
	if err := d.end(); err != nil {
		return snapHeader{}, err
	}
	return h, nil
}

// decodeRecordSrc reads only the src of an encoded record, for pruning
// the seq table without copying a record's op or data.
func decodeRecordSrc(b []byte) (string, error) {
	d := dec{b: b}
	d.byte("record kind")
	src := d.str("record src")
	return src, d.err
}

// recordWeight is an encoded record's part of docMeta.opBytes: its size
// less its create data, read without copying the data.
func recordWeight(b []byte) (uint64, error) {
	d := dec{b: b}
	d.byte("record kind")
	d.str("record src")
	d.uvarint("record seq")
	d.varint("record time")
	d.str("record type")
	n := d.uvarint("record data")
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("record data")
	}
	return uint64(len(b)) - n, d.err
}

func encodeMeta(m *docMeta) []byte {
	e := enc{b: make([]byte, 0, 48+len(m.typ))}
	var flags byte
	if m.deleted {
		flags |= metaDeleted
	}
	if m.applied > 0 {
		flags |= metaApplied
	}
	e.byte(flags)
	e.uvarint(m.head)
	e.uvarint(m.snap)
	e.uvarint(m.seqFloor)
	e.uvarint(m.opBytes)
	e.varint(m.created)
	e.varint(m.modified)
	e.str(m.typ)
	if m.applied > 0 {
		e.uvarint(m.applied)
	}
	return e.b
}

func decodeMeta(b []byte) (docMeta, error) {
	d := dec{b: b}
	var m docMeta
	flags := d.byte("metadata flags")
	if flags&^(metaDeleted|metaApplied) != 0 {
		d.fail("metadata flags")
	}
	m.deleted = flags&metaDeleted != 0
	m.head = d.uvarint("metadata head")
	m.snap = d.uvarint("metadata snapshot version")
	m.seqFloor = d.uvarint("metadata seq floor")
	m.opBytes = d.uvarint("metadata op bytes")
	m.created = d.varint("metadata created")
	m.modified = d.varint("metadata modified")
	m.typ = d.str("metadata type")
	if flags&metaApplied != 0 {
		m.applied = d.uvarint("metadata applied point")
	}
	if err := d.end(); err != nil {
		return docMeta{}, err
	}
	return m, nil
}

func encodeSeqEntry(s collab.SeqEntry) []byte {
	e := enc{b: make([]byte, 0, 20)}
	e.uvarint(s.Seq)
	e.uvarint(s.Version)
	return e.b
}

func decodeSeqEntry(b []byte) (collab.SeqEntry, error) {
	d := dec{b: b}
	var s collab.SeqEntry
	s.Seq = d.uvarint("seq")
	s.Version = d.uvarint("seq version")
	if err := d.end(); err != nil {
		return collab.SeqEntry{}, err
	}
	return s, nil
}

// docKey is a document's key in the docs and doc buckets. Prefixing the
// collection with its length keeps each collection's documents together
// and makes no collection a prefix of another's keys.
func docKey(k collab.Key) []byte {
	e := enc{b: make([]byte, 0, 2+len(k.Collection)+len(k.ID))}
	e.str(k.Collection)
	e.b = append(e.b, k.ID...)
	return e.b
}

// collectionPrefix is the prefix docKey gives every key of collection c.
func collectionPrefix(c string) []byte {
	e := enc{b: make([]byte, 0, 2+len(c))}
	e.str(c)
	return e.b
}

func decodeDocKey(b []byte) (collab.Key, error) {
	d := dec{b: b}
	c := d.str("document key")
	if d.err != nil {
		return collab.Key{}, d.err
	}
	return collab.Key{Collection: c, ID: string(d.b)}, nil
}

// versionKey is a record's or milestone's key: big-endian, so bbolt's
// byte order is version order.
func versionKey(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

func decodeVersionKey(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: version key of %d bytes", errDecode, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// descTime maps a Unix time to 8 bytes whose byte order is newest first.
func descTime(t int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), ^(uint64(t) ^ 1<<63))
}

// recentKey is a document's key in the recent index: newest first, then
// by document key.
func recentKey(dk []byte, modified int64) []byte {
	return append(descTime(modified), dk...)
}

// collectionKey is a document's key in the by-collection index: grouped by
// collection, newest first within it, then by id.
func collectionKey(k collab.Key, modified int64) []byte {
	b := collectionPrefix(k.Collection)
	b = append(b, descTime(modified)...)
	return append(b, k.ID...)
}

// bytes appends b as a length-prefixed string.
func (e *enc) bytes(b []byte) {
	e.uvarint(uint64(len(b)))
	e.b = append(e.b, b...)
}
