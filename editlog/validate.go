package editlog

import (
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/coedit/coedit/ot"
)

// Validate checks what can be checked without running the OT: the header,
// that there is a record, each record's shape (a valid op, a known type,
// src and seq together), and that the versions could have happened on a
// ShareDB-like server committing the records in order:
//
//   - a record's base version V is at most the head before it;
//   - a resend (a Src with the same Seq as its latest committed record)
//     has V at most that record's commit version, so the server finds it;
//     it commits nothing;
//   - otherwise a Src's Seq only grows;
//   - a create needs a missing (never created or deleted) document and V
//     at the head; an edit or delete needs an existing document and no
//     create or delete committed since V (ShareDB answers those with
//     ERR_DOC_ALREADY_CREATED or ERR_DOC_WAS_DELETED);
//   - the header's FinalVersion, when set, is the head after the last
//     record, and a log with a Final text ends with the document existing.
//
// Whether each op fits the document it is transformed to is left to the
// replay. Errors wrap ErrFormat and name the record's line.
func (l *Log) Validate() error {
	h := &l.Header
	if h.Version != 0 && h.Version != FormatVersion {
		return fmt.Errorf("%w: header: format version %d, want %d", ErrFormat, h.Version, FormatVersion)
	}
	if h.Type != "" && !ot.IsType(h.Type) {
		return fmt.Errorf("%w: header: unknown type %q (only %s)", ErrFormat, h.Type, ot.Name)
	}
	if !utf8.ValidString(h.Initial) || !utf8.ValidString(h.Final) {
		return fmt.Errorf("%w: header: initial or final text is not valid UTF-8", ErrFormat)
	}
	if len(l.Records) == 0 {
		// A replay of nothing would pass whatever the header says; Read
		// refuses such a file for the same reason.
		return fmt.Errorf("%w: no records: nothing to replay", ErrFormat)
	}
	type last struct{ seq, version uint64 }
	var (
		head    = l.InitialVersion()
		exists  = h.HasInitial
		lastOf  = map[string]last{}
		typeOps []uint64 // versions of committed creates and deletes, ascending
		kindAt  = map[uint64]Kind{}
	)
	if h.HasInitial {
		typeOps, kindAt[0] = append(typeOps, 0), Create
	}
	for i := range l.Records {
		r := &l.Records[i]
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w: %s: %s", ErrFormat, r.where(i), fmt.Sprintf(format, args...))
		}
		switch r.Kind {
		case Edit:
			if err := r.Op.Validate(); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrFormat, r.where(i), err)
			}
		case Create:
			if !ot.IsType(r.Type) {
				return fail("create: unknown type %q (only %s)", r.Type, ot.Name)
			}
			if !utf8.ValidString(r.Data) {
				return fail("create: data is not valid UTF-8")
			}
		case Delete:
		default:
			return fail("unknown record kind %d", r.Kind)
		}
		if (r.Src == "") != (r.Seq == 0) {
			return fail("src %q with seq %d: a record has both a src and a seq (from 1), or neither", r.Src, r.Seq)
		}
		if r.V > head {
			return fail("base version %d is past the head %d (a log starts at version %d; an export must start from=0)", r.V, head, l.InitialVersion())
		}
		if r.Src != "" {
			if prev, ok := lastOf[r.Src]; ok {
				if r.Seq == prev.seq {
					if r.V > prev.version {
						return fail("resend of src %q seq %d with v %d, past its commit version %d", r.Src, r.Seq, r.V, prev.version)
					}
					continue // a resend commits nothing
				}
				if r.Seq < prev.seq {
					return fail("src %q seq %d after seq %d: seq must grow (a resend repeats the latest seq)", r.Src, r.Seq, prev.seq)
				}
			}
		}
		if r.Kind == Create {
			if exists {
				return fail("create of a document that exists (ShareDB: ERR_DOC_ALREADY_CREATED)")
			}
			if r.V != head {
				return fail("create against version %d, but the head is %d: a create is never transformed (ShareDB: ERR_DOC_ALREADY_CREATED)", r.V, head)
			}
		} else {
			if !exists {
				return fail("%s on a document that does not exist (ShareDB: ERR_DOC_DOES_NOT_EXIST)", r.Kind)
			}
			k := sort.Search(len(typeOps), func(j int) bool { return typeOps[j] >= r.V })
			if k < len(typeOps) {
				switch kindAt[typeOps[k]] {
				case Create:
					return fail("%s against version %d, before the create at version %d (ShareDB: ERR_DOC_ALREADY_CREATED)", r.Kind, r.V, typeOps[k])
				case Delete:
					return fail("%s against version %d, before the delete at version %d (ShareDB: ERR_DOC_WAS_DELETED)", r.Kind, r.V, typeOps[k])
				}
			}
		}
		if r.Kind != Edit {
			typeOps, kindAt[head] = append(typeOps, head), r.Kind
			exists = r.Kind == Create
		}
		if r.Src != "" {
			lastOf[r.Src] = last{r.Seq, head}
		}
		head++
	}
	if h.FinalVersion != 0 && h.FinalVersion != head {
		return fmt.Errorf("%w: header: finalVersion %d, but the records end at version %d", ErrFormat, h.FinalVersion, head)
	}
	if h.HasFinal && !exists {
		return fmt.Errorf("%w: header: a final text is given, but the records leave the document deleted", ErrFormat)
	}
	return nil
}

// Outcome is what one record must do when its log replays.
type Outcome struct {
	// Version is the version the record commits at (the ack's v); for a
	// resend, the version its original committed at.
	Version uint64
	// Resend is true when the record repeats its Src's latest committed
	// Seq: the server must acknowledge it at Version and apply nothing.
	Resend bool
}

// Outcomes returns, for each record in order, what it must do on replay,
// assuming the log is valid (see Validate).
func (l *Log) Outcomes() []Outcome {
	type last struct{ seq, version uint64 }
	out := make([]Outcome, len(l.Records))
	head := l.InitialVersion()
	lastOf := map[string]last{}
	for i := range l.Records {
		r := &l.Records[i]
		if r.Src != "" {
			if p, ok := lastOf[r.Src]; ok && p.seq == r.Seq {
				out[i] = Outcome{Version: p.version, Resend: true}
				continue
			}
			lastOf[r.Src] = last{r.Seq, head}
		}
		out[i] = Outcome{Version: head}
		head++
	}
	return out
}

// Head returns the version the document reaches after every record: the
// initial version plus one per record that commits (resends do not).
func (l *Log) Head() uint64 {
	head := l.InitialVersion()
	for _, o := range l.Outcomes() {
		if !o.Resend {
			head++
		}
	}
	return head
}
