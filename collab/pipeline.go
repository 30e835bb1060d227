package collab

import (
	"fmt"
	"sync/atomic"
)

// Pipelined group commits (a node that is its documents' only writer,
// with a Store that is an AsyncCommitter).
//
// A group commit waits for its Store write, and with --sync always for a
// disk sync, before anything is answered. Done on the session goroutine
// that wait is a bubble: submits that arrive meanwhile wait for it to end
// before they are even planned, and then for a sync of their own. So the
// session plans a group, makes it current, starts its Store write, and
// goes on planning the next groups on top of it while the write is out;
// their writes queue behind it in the Store, in order. The replies and
// broadcasts of each group go out only once it is durable, in the order
// the groups were planned (flush). Nothing is answered or sent before it
// is durable, as before.
//
// At most maxOutGroups groups are out at a time: one being written and
// synced, the next queued in the Store behind it. The submits that
// arrive meanwhile wait in the inbox and make one group when a write
// ends, so groups stay as big as they were, and the Store's batches too.
//
// Every other request (fetch, subscribe, presence, unsubscribe, a catch-up)
// first waits until every group out is durable and sent (drain), so that
// nothing but a group's own replies and broadcasts ever shows a record
// before it is durable, and the subscribers set changes only between
// groups (deliver's invariant).
//
// A Store write that fails leaves the session ahead of its Store: that
// group and every one planned after it are answered with the error, and
// the session reloads the document from the Store (flush). If the Store
// cannot be read either, the session fails (ErrSessionFailed) and drops
// its subscribers; without pipelining it would have gone on serving from
// memory.

// maxOutGroups bounds the group commits a session has out.
const maxOutGroups = 2

// AsyncCommitter is a Store that can start a Commit without its caller
// waiting for the write.
type AsyncCommitter interface {
	// CommitAsync is Commit with context.Background, whose result goes
	// to done, called once, on any goroutine (the caller's included,
	// for a commit refused before it is queued). Commits a goroutine
	// starts one after another are written in that order: one that
	// follows a commit of the same document is checked against the head
	// that commit leaves.
	CommitAsync(key Key, recs []Record, snap *Snapshot, done func(error))
}

// outGroup is a group commit whose Store write is out.
type outGroup struct {
	jobs []*job
	out  []outcome
	recs []Record
	done atomic.Bool
	err  error // set before done
}

// pipelined reports whether the session's group commits are pipelined.
func (s *session) pipelined() bool {
	if !s.h.opts.Pipeline || s.cluster != nil {
		return false
	}
	if _, ok := s.h.opts.Sequencer.(soleSequencer); !ok {
		return false
	}
	_, ok := s.h.opts.Store.(AsyncCommitter)
	return ok
}

// submitPipelined plans jobs on the document as the groups out leave it,
// makes the records current, and starts their Store write; flush sends
// the replies once it is durable.
func (s *session) submitPipelined(jobs []*job) {
	st := &s.h.stats
	st.submits.Add(uint64(len(jobs)))
	out, recs := s.planGroup(jobs)
	g := &outGroup{jobs: jobs, out: append([]outcome(nil), out...), recs: recs}
	clear(out)
	s.outGroups = append(s.outGroups, g)
	if len(recs) == 0 {
		// Nothing to write: the replies (errors, resends of records
		// already durable or out) go in order after the groups before.
		g.done.Store(true)
		return
	}
	// Steps 1, 3 and 4 of commit (commit.go); step 2 is the sole
	// Sequencer's, which accepts everything.
	_, err := s.doc.shape().applyAll(recs)
	var snap *Snapshot
	var next *docState
	if err == nil {
		snap, next, err = s.nextState(recs)
	}
	if err != nil {
		// The records do not apply: planGroup makes that unreachable.
		g.out = failPlanned(g.out, recs[0].Version, err)
		g.recs = nil
		g.done.Store(true)
		return
	}
	st.commitBatches.Add(1)
	s.advance(recs, snap, next)
	s.h.opts.Store.(AsyncCommitter).CommitAsync(s.key, recs, snap, func(err error) {
		g.err = err
		g.done.Store(true)
		s.signal()
	})
}

// flush sends what the groups out owe, in order, for those that are
// durable, up to the first that is not.
//
// A failed write fails its group's submits, as a failed Commit does, and
// every group planned after it: those were planned on its records, and
// the Store refuses them for that (their first version is not its head).
// Nothing of them was sent. Once no group is out, the session reloads
// the document from the Store, which it had got ahead of; if that fails
// too, the session fails (ErrSessionFailed).
func (s *session) flush() {
	st := &s.h.stats
	n := 0
	for _, g := range s.outGroups {
		if !g.done.Load() {
			break
		}
		n++
		if g.err != nil && s.rollback == nil {
			st.commitErrors.Add(1)
			s.rollback = fmt.Errorf("collab: commit %s: %w", s.key, g.err)
			s.rollbackFrom = g.recs[0].Version
		}
		if s.rollback != nil {
			// Resends acknowledged at a version the failed writes held
			// fail too; those of older records stand.
			g.out = failPlanned(g.out, s.rollbackFrom, s.rollback)
			g.recs = nil
		}
		st.opsCommitted.Add(uint64(len(g.recs)))
		s.finishGroup(g.jobs, g.out, g.recs)
	}
	clear(s.outGroups[:n])
	s.outGroups = s.outGroups[n:]
	if len(s.outGroups) == 0 {
		s.outGroups = nil
		if s.rollback != nil {
			s.rollback = nil
			s.reload()
		}
	}
}

// awaitWrite waits for a wake-up (a write's end, or a request queued)
// and sends what the groups that are durable owe.
func (s *session) awaitWrite() {
	<-s.wake
	s.flush()
}

// drain waits until every group out is durable and sent.
func (s *session) drain() {
	woke := false
	for {
		s.flush()
		if len(s.outGroups) == 0 {
			if woke {
				// The wake-ups taken here may have been for requests
				// queued meanwhile: pass one on.
				s.signal()
			}
			return
		}
		<-s.wake
		woke = true
	}
}
