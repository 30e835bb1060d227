package collab

import (
	"context"
	"errors"
	"fmt"
)

// conflict is commit's error when the Sequencer ordered other records
// first: missed are those records, from the session's head on.
type conflict struct {
	missed []Record
}

func (c *conflict) Error() string {
	return fmt.Sprintf("collab: commit point is %d records ahead", len(c.missed))
}

// commit makes recs, consecutive records from the head, durable and then
// current. own says they are this node's (a group commit); otherwise they
// were committed by another node (from the Relay, or missed records a
// conflict returned). It is the only way records enter a session, in four
// steps:
//
//  1. check that they apply (shape.apply), so that no record that would
//     not apply is ever made durable;
//  2. own records only: the Sequencer orders them; on a conflict commit
//     returns a *conflict and the caller catches up and plans again;
//  3. Store.Commit makes them durable, with a snapshot of the new head
//     every Options.SnapshotEvery versions;
//  4. only then do the document, window, seq table and snapshot version
//     change.
//
// On an error the session is as it was, so a failed commit needs no undo.
// The exceptions: ErrVersionConflict from the Store, when another writer
// of the same store got ahead (a bug or a lost race, see Store.Commit)
// and the session reloads to catch up with it; and a Store error after
// own records went to subscribers early (below), when the session stops.
//
// Sending is the caller's: deliver for a group commit, adopt for records
// of other nodes, each followed by settle.
//
// In a cluster, own records go to the subscribers without a submit in
// the group once the Sequencer has taken them, before step 3 (sendEarly).
// When Store.Commit then fails, those subscribers hold records the
// session does not, and the session stops (ErrSessionFailed), as adopt's
// does. When nothing was sent early, the records are committed in the
// cluster but not here; the session's state is untouched, so they come
// back as the missed records of the next conflict or sync, but their
// submitters are told the error (and a resend is acknowledged at their
// version).
func (s *session) commit(recs []Record, own bool) error {
	ctx := context.Background()
	st := &s.h.stats
	if _, err := s.doc.shape().applyAll(recs); err != nil {
		return err
	}
	if own {
		missed, err := s.h.opts.Sequencer.Sequence(ctx, s.key, recs)
		if err != nil {
			return fmt.Errorf("collab: sequence %s: %w", s.key, err)
		}
		if len(missed) > 0 {
			return &conflict{missed: missed}
		}
	}
	snap, next, err := s.nextState(recs)
	if err != nil {
		return err // step 1 makes this unreachable
	}
	if own {
		st.commitBatches.Add(1)
		if s.cluster != nil && s.group != nil {
			s.sendEarly(recs)
		}
	}
	if err := s.h.opts.Store.Commit(ctx, s.key, recs, snap); err != nil {
		st.commitErrors.Add(1)
		if own && len(s.early.recs) > 0 {
			return s.sentNotStored(err) // as in adopt
		}
		if errors.Is(err, ErrVersionConflict) {
			s.reload()
			if s.fatal != nil {
				return s.fatal
			}
		}
		return fmt.Errorf("collab: commit %s: %w", s.key, err)
	}
	if own {
		st.opsCommitted.Add(uint64(len(recs)))
	} else {
		st.remoteRecords.Add(uint64(len(recs)))
	}
	s.advance(recs, snap, next)
	return nil
}

// nextState returns, when the commit of recs is due to store a snapshot
// (every Options.SnapshotEvery versions), that snapshot and the document
// after recs; nil and nil otherwise. recs must apply (step 1).
func (s *session) nextState(recs []Record) (*Snapshot, *docState, error) {
	if s.doc.head+uint64(len(recs))-s.snapVer < uint64(s.h.opts.SnapshotEvery) {
		return nil, nil, nil
	}
	// The snapshot stored with the commit is the document after recs.
	// Build it on a clone (O(1); the rope copies what an edit changes),
	// so the document itself changes only after the commit.
	d := docState{typ: s.doc.typ, rope: s.doc.rope.Clone(), head: s.doc.head}
	if err := d.applyAll(recs); err != nil {
		return nil, nil, err
	}
	sn := d.snapshot()
	return &sn, &d, nil
}

// advance makes recs, committed with snap (nil, or nextState's, with
// next), current: the document, window and seq table (step 4).
func (s *session) advance(recs []Record, snap *Snapshot, next *docState) {
	if next != nil {
		s.doc = *next
		s.snapVer = snap.Version
	} else if err := s.doc.applyAll(recs); err != nil {
		// Unreachable after step 1; if it ever happens, the Store has the
		// records and is the truth.
		s.h.log.Error("collab: committed records do not apply; reloading", "doc", s.key.String(), "err", err)
		s.reload()
		return
	}
	for _, r := range recs {
		s.push(r)
		s.seqs.add(r)
	}
	s.seqs.prune(s.doc.head)
}

// adopt commits records another node committed (remote records, or the
// records a conflict returned) and sends them to every subscriber.
//
// In a cluster they are sent first and written to the Store after: the
// commit point (Redis) holds them durably already, so this node's Store
// is a copy, not what makes them safe, and the subscribers need not wait
// for its write (a group commit and, with --sync always, an fsync) on
// the way from another node. Nothing else sees the session in between:
// the write follows on its goroutine before the next request, so syncs,
// forks and this node's own commits always find the records in the
// Store. If the write fails, the subscribers hold records the session
// does not, and the session stops (ErrSessionFailed: its subscribers are
// dropped and catch up by version from a new session, which loads the
// Store and syncs with the commit point).
func (s *session) adopt(recs []Record) error {
	if s.cluster != nil {
		if _, err := s.doc.shape().applyAll(recs); err != nil {
			return err
		}
		s.h.stats.broadcasts.Add(uint64(broadcast(s.key, recs, s.subs, nil)))
		if err := s.commit(recs, false); err != nil {
			return s.sentNotStored(err)
		}
		if s.noter != nil {
			s.noter.Stored()
		}
		s.settle(recs, false)
		return nil
	}
	if err := s.commit(recs, false); err != nil {
		return err
	}
	s.h.stats.broadcasts.Add(uint64(broadcast(s.key, recs, s.subs, nil)))
	s.settle(recs, false)
	return nil
}

// sentNotStored stops the session after err, a failed Store write of
// records its subscribers were sent already: they hold records the
// session does not (ErrSessionFailed).
func (s *session) sentNotStored(err error) error {
	if s.fatal == nil {
		s.fatal = fmt.Errorf("%w: %s: records sent to subscribers could not be stored: %w", ErrSessionFailed, s.key, err)
	}
	return s.fatal
}

// sendEarly sends a group's records, just taken by the cluster's commit
// point, to the subscribers that have no submit in the group (s.group),
// before the node's own Store write: adopt's reasoning for other nodes'
// records holds for this node's too. Redis holds them durably once it
// answers (AOF always), and the subscribers need not wait for this
// node's group commit and its fsync as well. The submitters' connections
// still get their replies, and then their broadcasts, after the write
// (deliver): an ack still means "in Redis and in this node's Store", and
// a submitter must have its ack before any record above it. If the
// write fails, the session stops as adopt's does.
//
// The records' frames are kept in s.early, so that deliver encodes none of
// them again for the submitters.
func (s *session) sendEarly(recs []Record) {
	var grp connVersions
	for _, j := range s.group {
		if j.conn != nil {
			grp.set(j.conn, 0)
		}
	}
	s.early = frames{key: s.key, recs: recs}
	f := &s.early
	n := 0
	for _, rec := range recs {
		for c := range s.subs {
			if _, in := grp.get(c); in || !receives(c, rec, nil) {
				continue
			}
			n++
			f.send(c, rec)
		}
	}
	s.h.stats.broadcasts.Add(uint64(n))
	if n == 0 {
		// Nothing sent: deliver's broadcast to every subscriber sends
		// them nothing either (receives).
		s.early = frames{}
	}
}

// settle finishes a commit once its records are sent: it publishes own
// records to the other nodes, brings remembered presence to the new head,
// and trims the window.
func (s *session) settle(recs []Record, own bool) {
	if own {
		s.link.Publish(recs)
	}
	s.transformStoredPresence(recs)
	s.trimWindow()
}
