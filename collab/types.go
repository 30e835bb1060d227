package collab

import (
	"github.com/coedit/coedit/ot"
)

// Key names one document: a collection and an id, as in ShareDB.
type Key struct {
	Collection string
	ID         string
}

// String returns "collection/id".
func (k Key) String() string { return k.Collection + "/" + k.ID }

// OpKind says what a Record does to its document.
type OpKind uint8

const (
	// OpEdit applies Record.Op to the document.
	OpEdit OpKind = iota + 1
	// OpCreate creates the document with Record.Type and Record.Data.
	OpCreate
	// OpDelete deletes the document (its type becomes "").
	OpDelete
)

// Record is one committed operation. Version is the version the op was
// applied to: a record at Version v moves the document from v to v+1 (this
// is ShareDB's "v" on an op and on its ack).
type Record struct {
	Version uint64
	Src     string // the connection id that submitted it ("" for none)
	Seq     uint64 // the submitter's sequence number (0 with Src "")
	Kind    OpKind
	Op      ot.Op  // OpEdit
	Type    string // OpCreate: the type URI
	Data    string // OpCreate: the initial text
	Time    int64  // commit time, Unix milliseconds
}

// Snapshot is a document's content at a version. Type is "" for a document
// that was never created or has been deleted; Data is then "".
type Snapshot struct {
	Version uint64
	Type    string
	Data    string
}

// SeqEntry is the last op a src committed to one document: its seq and the
// version it was committed at. Sessions use it to answer a resent op
// (same src and seq) with an ack at its original version.
type SeqEntry struct {
	Seq     uint64
	Version uint64
}

// DocState is what a Store holds for one document, as a Session loads it.
type DocState struct {
	// Snapshot is the latest stored snapshot (the zero Snapshot for a
	// document the store has never seen).
	Snapshot Snapshot
	// Ops are the committed records after Snapshot, in version order:
	// Ops[i].Version == Snapshot.Version+i. The head version is
	// Snapshot.Version+len(Ops).
	Ops []Record
	// Seqs maps srcs that committed to this document to their last
	// committed op. A Store may leave out srcs whose last op is old
	// (storage keeps those of the newest Options.SeqWindow versions): a
	// session still recognises their resends by scanning the ops since
	// the resend's version, which the Store keeps.
	Seqs map[string]SeqEntry
}

// DocInfo describes a stored document for listings.
type DocInfo struct {
	Key      Key
	Version  uint64 // head version
	Type     string // "" when deleted or never created
	Created  int64  // Unix ms of the (latest) create, 0 if none
	Modified int64  // Unix ms of the latest op
}
