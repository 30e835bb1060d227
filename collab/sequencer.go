package collab

import (
	"context"
	"errors"
)

// ErrContended is returned for a submit when the commit point reported a
// conflict on every one of the session's tries (maxSequenceTries): other
// nodes kept committing to the document first. Nothing was committed; the
// submit may be sent again.
var ErrContended = errors.New("collab: document contended: commit retries exhausted")

// maxSequenceTries bounds how often a group commit is planned and offered
// to the Sequencer: each conflict costs a catch-up and a new plan, and a
// document written this hard on other nodes is better answered with
// ErrContended than by holding the session. A node that lost the race
// once is behind the winner by a round trip and may lose again: with
// three nodes writing one document as fast as they can, 8 tries failed a
// few groups in a hundred; 32 leave that to documents that are really
// hot.
const maxSequenceTries = 32

// Sequencer is the commit point that puts a document's records in one
// order, when several nodes may accept submits for it (DESIGN.md §7). A
// session asks it to commit the records of each group commit before it
// makes them durable in its Store; only then does the document change.
//
// A Hub without Options.Sequencer is the only writer of its documents:
// its sequencer accepts everything and the session's own order is the
// order. Implementations must be safe for concurrent use.
type Sequencer interface {
	// Sequence commits recs, which have consecutive versions starting at
	// the session's head, at those versions. It has three outcomes:
	//
	//   - committed: it returns no records and no error.
	//   - already committed: recs are in the order already, at these
	//     versions (a retry of a call whose answer was lost, as go-redis
	//     retries a script); it answers as for committed.
	//   - conflict: the commit point's head is past recs[0].Version, so
	//     recs were made against an old head. It commits nothing and
	//     returns the records from recs[0].Version to its head, in order.
	//     The session makes them durable and current, plans its
	//     submissions again over them (a resend among them is found by
	//     its dedupe: that is how a submission already committed at
	//     another version is answered), and tries again.
	//
	// Any other failure returns an error and commits nothing.
	Sequence(ctx context.Context, key Key, recs []Record) (missed []Record, err error)
}

// soleSequencer is the Sequencer of a node that is its documents' only
// writer: every session's head is the commit point's head, so there is
// never a conflict.
type soleSequencer struct{}

// Sequence implements Sequencer: it accepts recs.
func (soleSequencer) Sequence(context.Context, Key, []Record) ([]Record, error) { return nil, nil }
