package collab

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// This file is the session's side of a cluster (DESIGN.md §7): a Relay
// that is also the commit point and shared log (ClusterRelay) gives each
// session a ClusterLink, and the session follows the commit point's head.
//
//   - A session that starts syncs before it answers anything: it learns
//     the epoch (the name of the history it follows) and adopts the
//     records committed since its Store's head.
//   - Subscribe and Fetch sync first unless a sync began after the
//     request was queued, so a reply is never older than the cluster was
//     when the request arrived. The Hub's reads of history (SnapshotAt,
//     SnapshotAtTime, Ops) ask the session to sync before they read the
//     Store.
//   - Records the relay delivers under another epoch are dropped and the
//     session syncs instead; so it does when the relay calls Resync, and
//     when a gap in delivered records cannot be filled.
//   - A Sequencer that answers ErrResync makes the group commit sync and
//     plan again (submit.go).
//   - Sync may find that the session's records from some version on are
//     not the cluster's history (Redis lost them and another node moved
//     on). The link then offers them to the cluster again, and the
//     session drops them from its Store (Truncater), reloads, and tells
//     its subscribers to fetch the document again (HistoryResetter).
//   - Sync may find the session further behind than the commit point's
//     log reaches. The link then installs the commit point's snapshot as
//     the base of the Store's log (Catchup.Rebased), and the session
//     reloads and tells its subscribers to fetch again, as after a fork;
//     the Store answers reads below the base with ErrOpsMissing
//     (BaseStore).

var (
	// ErrUnavailable is returned, wrapped, when the commit point cannot
	// be reached or is being repaired (in a cluster: Redis is down,
	// paused, or restarted and not yet renewed). Nothing was committed
	// that will not show up later: the request may be sent again, and a
	// resent op is acknowledged once (its src and seq make it
	// idempotent). web closes the WebSocket so that the client
	// reconnects and resends, and answers HTTP with 503.
	ErrUnavailable = errors.New("collab: commit point unavailable, try again")
	// ErrResync is returned by a Sequencer when the commit point's
	// history is no longer the one the session follows (its epoch
	// changed): the session syncs (ClusterLink.Sync) and plans its
	// submissions again. Clients never see it.
	ErrResync = errors.New("collab: commit point history changed, catch up first")
	// ErrCannotFork is returned when a session's records must be dropped
	// from a version on (see ClusterLink.Sync) but its Store is not a
	// Truncater.
	ErrCannotFork = errors.New("collab: store cannot drop records")
)

// ClusterRelay is a Relay whose nodes share a commit point and log
// (collab/redisrelay). A Hub whose Relay implements it joins each session
// with JoinCluster, and makes reads that bypass sessions catch up first.
type ClusterRelay interface {
	Relay
	// JoinCluster is Join for a session that follows the commit point.
	JoinCluster(key Key, m Member) (ClusterLink, error)
}

// ClusterLink is a session's membership of a ClusterRelay.
//
// Its methods are called from the session's goroutine only, one at a
// time; Publish may do nothing (a commit point that publishes on commit).
type ClusterLink interface {
	RelayLink
	// Sync brings a session whose Store ends at head up to the commit
	// point and returns the epoch the session now follows and the
	// records [head, commit point's head). It retries what is worth
	// retrying and returns an error wrapping ErrUnavailable when the
	// commit point stays out of reach.
	//
	// When the session's records from some version F on are not the
	// commit point's history, Sync first offers them to the commit point
	// again, each with its src and seq (as a client that was offline
	// would), so that no acknowledged op is lost; then it calls fork(F),
	// which drops the session's records from F on; the records it
	// returns then start at F. If fork fails, Sync returns its error.
	Sync(ctx context.Context, head uint64, fork func(from uint64) error) (Catchup, error)
}

// Catchup is what ClusterLink.Sync returns.
type Catchup struct {
	// Epoch names the history the session follows from now on; the
	// records the relay delivers under another epoch are dropped.
	Epoch string
	// Records are the commit point's records the session lacks, with
	// consecutive versions from the session's head.
	Records []Record
	// Rebased says that the session's head was too far behind for the
	// commit point's log, and that Sync installed the commit point's
	// snapshot as the base of the Store's log for the document
	// (redisrelay, storage.DB.InstallBase). The session then reloads
	// from the Store, whose head is the base, and tells its subscribers
	// to fetch the document again (they may be at versions the Store no
	// longer holds); Records start at the base.
	Rebased bool
}

// Truncater is implemented by a Store that can drop a document's records
// from a version on (storage.DB). A session in a cluster needs it when
// its records turn out not to be the cluster's history; see
// ClusterLink.Sync.
type Truncater interface {
	// Truncate deletes key's records with Version >= from and every
	// snapshot past from, so that the head becomes from.
	Truncate(ctx context.Context, key Key, from uint64) error
}

// HistoryResetter is implemented by a Conn whose client can be made to
// drop what it holds of a document and fetch it again (web closes the
// WebSocket with a code that says so). A session calls it for each of its
// subscribers when it dropped records they may have seen (a fork).
type HistoryResetter interface {
	ResetHistory(key Key)
}

// join joins the Relay: as a ClusterLink, synced with the commit point,
// when the Relay is a ClusterRelay.
func (s *session) join() (RelayLink, error) {
	m := Member{Deliver: s.deliverRemote, Resync: s.requestSync}
	cr, ok := s.h.opts.Relay.(ClusterRelay)
	if !ok {
		return s.h.opts.Relay.Join(s.key, m)
	}
	cl, err := cr.JoinCluster(s.key, m)
	if err != nil {
		return nil, err
	}
	s.cluster = cl
	if err := s.sync(); err != nil {
		cl.Leave()
		return nil, err
	}
	return cl, nil
}

// sync brings the session up to the commit point (see ClusterLink.Sync)
// and sends what it adopted to the subscribers.
func (s *session) sync() error {
	if s.cluster == nil {
		return nil
	}
	start := time.Now()
	s.h.stats.syncs.Add(1)
	c, err := s.cluster.Sync(context.Background(), s.doc.head, s.fork)
	if err == nil && c.Rebased {
		err = s.rebase()
	}
	if err == nil && len(c.Records) > 0 {
		err = s.adopt(c.Records)
	}
	if err != nil {
		s.h.stats.syncErrors.Add(1)
		return fmt.Errorf("collab: catch up %s with the cluster: %w", s.key, err)
	}
	s.epoch = c.Epoch
	s.syncedAt = start
	return nil
}

// fresh reports whether a sync began after r was queued: the session
// then holds every record committed before r arrived.
func (s *session) fresh(r *job) bool {
	return s.cluster == nil || s.syncedAt.After(r.at)
}

// syncFor syncs for r unless the session is fresh for it already.
func (s *session) syncFor(r *job) error {
	if s.fresh(r) {
		return nil
	}
	return s.sync()
}

// syncJob answers a sync request: the Relay's Resync, or a read of
// history that must see the cluster's head (Hub.catchUp).
func (s *session) syncJob(r *job) {
	err := s.syncFor(r)
	if r.onDone != nil {
		r.onDone(err)
	} else if err != nil {
		s.h.log.Warn("collab: cannot catch up with the cluster", "doc", s.key.String(), "err", err)
	}
}

// requestSync is the Relay's Resync callback.
func (s *session) requestSync() {
	s.enqueue(&job{kind: jobSync})
}

// remoteIn adopts records the relay delivered under epoch. Records of an
// epoch the session does not follow are dropped and the session syncs;
// so it does when a gap before them cannot be filled.
func (s *session) remoteIn(r *job) {
	if s.cluster != nil && r.epoch != s.epoch {
		s.syncJob(r)
		return
	}
	if len(r.recs) == 0 {
		return
	}
	s.remote(r.recs)
	if s.cluster == nil {
		return
	}
	last := r.recs[0].Version
	for _, rec := range r.recs {
		last = max(last, rec.Version)
	}
	if s.doc.head <= last {
		s.syncJob(r)
	}
}

// fork drops the session's records from version from on, which the
// commit point's history replaced (see ClusterLink.Sync), and tells the
// subscribers that may have seen them to fetch the document again.
func (s *session) fork(from uint64) error {
	t, ok := s.h.opts.Store.(Truncater)
	if !ok {
		return fmt.Errorf("%w: %s from version %d", ErrCannotFork, s.key, from)
	}
	if err := t.Truncate(context.Background(), s.key, from); err != nil {
		return fmt.Errorf("collab: drop %s from version %d: %w", s.key, from, err)
	}
	if err := s.load(); err != nil {
		s.fatal = err
		return err
	}
	s.h.stats.forks.Add(1)
	s.h.log.Warn("collab: dropped records the cluster's history replaced; they were offered to it again",
		"doc", s.key.String(), "from", from)
	s.resetSubscribers()
	return nil
}

// rebase reloads the session after Sync installed the commit point's
// snapshot as the base of the Store's log (Catchup.Rebased), and tells
// the subscribers, who may be at versions below the base, to fetch the
// document again.
func (s *session) rebase() error {
	from := s.doc.head
	if err := s.load(); err != nil {
		s.fatal = err
		return err
	}
	s.h.log.Info("collab: installed the cluster's snapshot as the base of the document's log",
		"doc", s.key.String(), "from", from, "base", s.doc.head)
	s.resetSubscribers()
	return nil
}

// resetSubscribers makes every subscriber that can be told drop what it
// holds of the document and fetch it again (HistoryResetter).
func (s *session) resetSubscribers() {
	for c := range s.subs {
		if rc, ok := c.(HistoryResetter); ok {
			delete(s.subs, c)
			s.clearPresence(c, "", "")
			s.h.leaveDoc(c, s.key)
			rc.ResetHistory(s.key)
		}
	}
}

// catchUp makes key's session, in a cluster, adopt what the commit point
// has, so that a read of the Store that follows sees the cluster's state.
// It does nothing on a single node.
func (h *Hub) catchUp(ctx context.Context, key Key) error {
	if _, ok := h.opts.Relay.(ClusterRelay); !ok {
		return nil
	}
	done := make(chan error, 1)
	if err := h.send(key, &job{kind: jobSync, onDone: func(err error) { done <- err }}, true); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
