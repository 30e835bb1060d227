package collab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
//     session notes in the cluster which clients may hold them
//     (ClusterLink.MarkReplaced), drops them from its Store (Truncater),
//     reloads, and drops its subscribers with ErrHistoryReplaced
//     (Conn.Drop). A noted client that comes back, to any node, with a
//     copy past the fork is refused with ErrHistoryReplaced until it
//     takes the cluster's history (replaced.go).
//   - Sync may find the session further behind than the commit point's
//     log reaches. The link then installs the commit point's snapshot as
//     the base of the Store's log (Catchup.Rebased), and the session
//     reloads and drops its subscribers to subscribe again by version;
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
	// ErrHistoryReplaced is returned, wrapped, to a client whose copy
	// of a document may hold records the cluster's history replaced
	// (Redis lost them and another node moved on; they were offered
	// again as new ops at other versions): its version no longer names
	// the text it holds, so it cannot be caught up by version. It must
	// drop its copy and fetch the document without a version; its
	// unacknowledged ops, made on that copy, are refused with it. A
	// session also drops its subscribers with it (Conn.Drop) when it
	// forks.
	ErrHistoryReplaced = errors.New("collab: the document's history was replaced: fetch it again")
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
	// would), so that no acknowledged op is lost; those it cannot offer
	// (the commit point no longer holds what they would be transformed
	// over, or nothing shows what they were made on) it logs and counts
	// as lost. Then it calls fork(F), which drops the session's records
	// from F on; the records it returns then start at F. If fork fails,
	// Sync returns its error.
	Sync(ctx context.Context, head uint64, fork func(from uint64) error) (Catchup, error)
	// MarkReplaced notes, for every node, that the clients srcs may hold
	// records from version from on that the session is about to drop in
	// a fork (see Catchup.Replaced).
	MarkReplaced(ctx context.Context, from uint64, srcs []string) error
	// ClearReplaced forgets src's note: the client took the commit
	// point's history.
	ClearReplaced(ctx context.Context, src string) error
}

// StoredNoter is a ClusterLink told when the session's Store has written
// records it adopted from the commit point, so that it can note beside
// them which history they belong to: a node that only ever reads a
// document stores records without committing any.
type StoredNoter interface {
	Stored()
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
	// from the Store, whose head is the base, and drops its subscribers
	// (they may be at versions the Store no longer holds; they subscribe
	// again by version); Records start at the base.
	Rebased bool
	// Replaced are the clients (by src) that MarkReplaced noted, each
	// with the version their copy is good below.
	Replaced map[string]uint64
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
	s.noter, _ = cl.(StoredNoter)
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
	s.replaced = c.Replaced
	s.syncedAt = start
	s.syncRetries = 0
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
		s.retrySync()
	}
}

// Retries of a failed sync the relay asked for (Resync): the first
// after syncRetryFirst, each later one after twice the wait before it,
// at most syncRetryMax, and no more than syncRetryTries in a row.
const (
	syncRetryFirst = 200 * time.Millisecond
	syncRetryMax   = 10 * time.Second
	syncRetryTries = 10
)

// retrySync asks for the sync again later, after one the relay asked for
// failed (the commit point came back slowly, say, and the sync gave up).
// Nobody else may ask: a session with no requests would stay behind, and
// one that holds records the commit point lost puts them back only by
// its own sync (a renewal; redisrelay's doc.go).
func (s *session) retrySync() {
	if s.syncRetries >= syncRetryTries || !s.syncRetrying.CompareAndSwap(false, true) {
		return
	}
	d := min(syncRetryFirst<<s.syncRetries, syncRetryMax)
	s.syncRetries++
	time.AfterFunc(d, func() {
		s.syncRetrying.Store(false)
		s.requestSync()
	})
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
// commit point's history replaced (see ClusterLink.Sync). Every client
// that may hold them (its subscribers, those catching up or holding
// presence here, and the authors of the records) is first noted in the
// cluster, so that it is refused with ErrHistoryReplaced wherever it comes
// back with such a copy; then the records are dropped, and the session's
// connections are dropped with ErrHistoryReplaced (web closes them with
// 4002).
func (s *session) fork(from uint64) error {
	t, ok := s.h.opts.Store.(Truncater)
	if !ok {
		return fmt.Errorf("%w: %s from version %d", ErrCannotFork, s.key, from)
	}
	srcs, err := s.holders(from)
	if err != nil {
		return fmt.Errorf("collab: drop %s from version %d: %w", s.key, from, err)
	}
	if err := s.cluster.MarkReplaced(context.Background(), from, srcs); err != nil {
		return fmt.Errorf("collab: note the clients of %s's replaced history: %w", s.key, err)
	}
	if s.replaced == nil {
		s.replaced = make(map[string]uint64, len(srcs))
	}
	for _, src := range srcs {
		if v, ok := s.replaced[src]; !ok || v > from {
			s.replaced[src] = from
		}
	}
	if err := t.Truncate(context.Background(), s.key, from); err != nil {
		return fmt.Errorf("collab: drop %s from version %d: %w", s.key, from, err)
	}
	if err := s.load(); err != nil {
		s.fatal = err
		return err
	}
	s.h.stats.forks.Add(1)
	s.h.log.Warn("collab: dropped records the cluster's history replaced; those that could be were offered to it again",
		"doc", s.key.String(), "from", from, "clients", len(srcs))
	s.dropAll(fmt.Errorf("%w: %s from version %d", ErrHistoryReplaced, s.key, from))
	return nil
}

// rebase reloads the session after Sync installed the commit point's
// snapshot as the base of the Store's log (Catchup.Rebased). Its
// subscribers' copies are still good, but may be at versions the Store
// no longer holds: they are dropped as after a failed session
// (ErrSessionFailed: they subscribe again by version, and a node that
// holds their versions, or this one with ErrOpsMissing, answers).
func (s *session) rebase() error {
	from := s.doc.head
	if err := s.load(); err != nil {
		s.fatal = err
		return err
	}
	s.h.log.Info("collab: installed the cluster's snapshot as the base of the document's log",
		"doc", s.key.String(), "from", from, "base", s.doc.head)
	if len(s.subs) > 0 || len(s.behind) > 0 || len(s.reading) > 0 {
		s.dropAll(fmt.Errorf("%w: %s: this node installed the cluster's snapshot at version %d as the base of its log", ErrSessionFailed, s.key, s.doc.head))
	}
	return nil
}

// holders returns the srcs of the clients that may hold the session's
// records from version from on: its connections and the records'
// authors. HTTP writers ("http:" srcs) and records offered again without
// a client are left out: no WebSocket client can use their src.
func (s *session) holders(from uint64) ([]string, error) {
	seen := make(map[string]struct{})
	add := func(src string) {
		if src != "" && !strings.Contains(src, ":") {
			seen[src] = struct{}{}
		}
	}
	for c := range s.subs {
		add(c.Src())
	}
	for c := range s.behind {
		add(c.Src())
	}
	for c := range s.pres {
		add(c.Src())
	}
	if from < s.doc.head {
		recs, err := s.records(from, s.doc.head)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			add(r.Src)
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// admitCopy refuses a fetch, subscribe or submit whose client's copy
// holds records a fork replaced (replacedCopy). Its session first syncs
// (unless fresh for it), so that it knows of forks on other nodes: for a
// fetch or subscribe that is a sync it makes anyway; a submit syncs only
// when its connection is not subscribed here, which is how a client that
// was dropped elsewhere comes back (ShareDB's client resends its op
// before it subscribes again). A subscriber's copy is checked at
// subscribe, and this node's forks note their clients at once.
func (s *session) admitCopy(r *job) error {
	if s.cluster == nil {
		return nil
	}
	var v *uint64
	src := r.conn.Src()
	switch r.kind {
	case jobFetch:
		v = r.from
	case jobSubmit:
		if !r.sub.HasVersion {
			return nil
		}
		v, src = &r.sub.Version, r.sub.Src
		if _, ok := s.subs[r.conn]; ok {
			return s.replacedCopy(src, v, false)
		}
	default:
		return nil
	}
	if err := s.syncFor(r); err != nil {
		return err
	}
	return s.replacedCopy(src, v, false)
}

// replacedCopy returns ErrHistoryReplaced (wrapped) when the client src was
// noted as holding records the cluster replaced (fork) and asks at
// version v, past the ones its copy is good below. A client that asks
// without a version (clean) or at a good one takes the cluster's
// history, and its note is cleared; that takes a round trip, and an
// error reaching the commit point is returned.
func (s *session) replacedCopy(src string, v *uint64, clean bool) error {
	if src == "" || len(s.replaced) == 0 {
		return nil
	}
	from, ok := s.replaced[src]
	switch {
	case !ok:
		return nil
	case v != nil && *v > from:
		s.h.stats.replacedRefused.Add(1)
		return fmt.Errorf("%w: %s: the copy at version %d holds records replaced from version %d", ErrHistoryReplaced, s.key, *v, from)
	case !clean:
		return nil
	}
	if err := s.cluster.ClearReplaced(context.Background(), src); err != nil {
		return err
	}
	delete(s.replaced, src)
	return nil
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
