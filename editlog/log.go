package editlog

import (
	"errors"
	"fmt"

	"github.com/coedit/coedit/ot"
)

// FormatVersion is the edit-log format version this package reads and
// writes: the value of the header's "editlog" field.
const FormatVersion = 1

// ErrFormat is wrapped by every error about a malformed edit log or trace:
// bad JSON, a missing or unknown field, an invalid op, or versions that
// cannot have happened.
var ErrFormat = errors.New("editlog: invalid edit log")

// Kind says what a Record submits.
type Kind uint8

const (
	// Edit applies Record.Op (ShareDB's "op").
	Edit Kind = iota + 1
	// Create creates the document with Record.Type and Record.Data
	// (ShareDB's "create").
	Create
	// Delete deletes the document (ShareDB's "del").
	Delete
)

// String returns "op", "create" or "del", the record's JSON field.
func (k Kind) String() string {
	switch k {
	case Edit:
		return "op"
	case Create:
		return "create"
	case Delete:
		return "del"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Header is the optional first line of an edit log. The zero Header
// stands for a log without a header line: it starts from a never-created
// document and has no expected final text.
type Header struct {
	// Version is the format version ("editlog"): FormatVersion in a log
	// read with a header line, 0 in one read without. A header built in
	// code may leave it 0: Write writes the line whenever another field
	// is set, with FormatVersion.
	Version int
	// Collection and ID name the document the log replays into. Both are
	// optional; a replayer picks a default (see collab/replay).
	Collection string
	ID         string
	// Type is the type URI of the initial document (HasInitial). Empty
	// means text-unicode (ot.URI), the only type coedit serves.
	Type string
	// Initial, when HasInitial, is the text of the document before the
	// first record: the replayer creates the document with it (version 0
	// to 1), so the first record's base version is at least 1. Without
	// it the log starts from a never-created document at version 0.
	Initial    string
	HasInitial bool
	// Final, when HasFinal, is the text the document must have after the
	// last record (the document must exist).
	Final    string
	HasFinal bool
	// FinalVersion, when not 0, is the version the document must have
	// after the last record.
	FinalVersion uint64
	// Comment is free text for people: what the log exercises, where it
	// came from.
	Comment string
}

// Record is one submitted op, as the client sent it.
type Record struct {
	// Src is the submitting client's id (ShareDB's src) and Seq its
	// sequence number. A Src seen again with the same Seq is a resend:
	// the server must acknowledge it at the original commit version and
	// not apply it again. Src "" (with Seq 0) is an op without a client,
	// such as one made through the HTTP API; it is never deduplicated.
	Src string
	Seq uint64
	// V is the version the op was made against (its base version). In an
	// exported op log it is the commit version, which is also a valid
	// base.
	V    uint64
	Kind Kind
	// Op is the edit (Kind Edit).
	Op ot.Op
	// Type and Data are the created document's type URI or name and
	// initial text (Kind Create).
	Type string
	Data string
	// Time is when the op was made or committed, Unix milliseconds (0 if
	// unknown). Replay does not reproduce it.
	Time int64
	// Line is the 1-based line the record was read from, 0 for a record
	// built in code. Error messages use it.
	Line int
}

// where names the record in error messages: its line when it has one,
// else its index.
func (r *Record) where(i int) string {
	if r.Line > 0 {
		return fmt.Sprintf("line %d", r.Line)
	}
	return fmt.Sprintf("record %d", i+1)
}

// Where names record i of a log in messages: "line N" for a record read
// from a file, "record N" (1-based) for one built in code.
func (l *Log) Where(i int) string { return l.Records[i].where(i) }

// Log is a whole edit log: its header and its records in commit order.
type Log struct {
	// Name is where the log came from (a file's base name without its
	// extensions), used as the default document id.
	Name    string
	Header  Header
	Records []Record
}

// InitialVersion is the document version before the first record: 1 when
// the header has an initial text (the replayer creates the document
// first), else 0.
func (l *Log) InitialVersion() uint64 {
	if l.Header.HasInitial {
		return 1
	}
	return 0
}
