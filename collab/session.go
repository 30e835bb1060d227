package collab

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coedit/coedit/ot"
)

// jobKind says what a job asks of a session.
type jobKind uint8

const (
	jobSubmit jobKind = iota + 1
	jobFetch
	jobUnsubscribe
	jobPresence
	jobClearPresence
	jobDisconnect
	jobRemote
	jobExpirePresence
	jobResume
	jobSync           // catch up with the cluster's commit point (cluster.go)
	jobRemotePresence // presence from another node (presence_relay.go)
)

// bounded reports whether jobs of kind k count against Options.MaxInbox
// and are dropped when their connection has closed: the requests a
// client makes. The others (leaving, clearing, remote records, a
// catch-up's return) must always reach the session and are bounded
// otherwise.
func (k jobKind) bounded() bool {
	return k == jobSubmit || k == jobFetch || k == jobPresence || k == jobRemotePresence
}

// job is one message in a session's inbox: a request from a Hub method,
// or records from the Relay. (The name keeps it apart from web's request,
// a parsed protocol message.)
type job struct {
	kind jobKind
	conn Conn
	sub  Submission // jobSubmit
	from *uint64    // jobFetch
	join bool       // jobFetch: subscribe
	// pres is the update (jobPresence, jobRemotePresence), or names the
	// channel (jobClearPresence) and the presence too (jobExpirePresence).
	// A pointer: a submit, the common job, would carry its 120 bytes.
	pres *PresenceUpdate
	recs []Record  // jobRemote
	task *readTask // jobResume
	// missed are records a catch-up read for a submit without a Conn:
	// they come first in its result's Missed.
	missed []Record
	epoch  string    // jobRemote: the history recs belong to
	at     time.Time // when it was queued (cluster.go: fresh)

	onSubmit   func(SubmitResult, error)
	onSnapshot func(Snapshot, error)
	onPresence func(PresenceUpdate, error)
	onDone     func(error)
}

// fail answers r with err.
func (r *job) fail(err error) {
	switch r.kind {
	case jobSubmit:
		r.onSubmit(SubmitResult{}, err)
	case jobFetch:
		r.onSnapshot(Snapshot{}, err)
	case jobPresence:
		r.onPresence(PresenceUpdate{}, err)
	case jobUnsubscribe:
		r.onDone(err)
	case jobSync:
		if r.onDone != nil {
			r.onDone(err)
		}
	}
}

// presKey names one presence of a connection in a session.
type presKey struct {
	channel, id string
}

// session owns one document. Its run goroutine is the only one that
// touches the fields below "owned by run"; other goroutines talk to it
// through enqueue. It starts in Hub.send and stops when it has been idle
// for Options.IdleTimeout (no subscribers, no presence, no catch-up out,
// empty inbox), when the Hub closes (once its catch-ups are back), or when
// its state cannot be loaded. Hub.wg waits for it.
type session struct {
	h   *Hub
	key Key

	mu      sync.Mutex
	queue   []*job
	spare   []*job // an emptied batch, for queue to reuse (take, recycle)
	nqueued int    // bounded jobs in queue (Options.MaxInbox)
	stopped bool   // refuses requests: the session is stopping
	closing bool   // the Hub is closing: drain the inbox and stop
	wake    chan struct{}

	// Owned by run.
	doc     docState
	window  []Record // the last records: versions [head-len(window), head)
	wbytes  int      // recordSize of the window's records, summed
	seqs    seqTable
	snapVer uint64 // version of the latest snapshot in the Store
	base    uint64 // the Store holds no records below it (BaseStore)
	subs    map[Conn]struct{}
	pres    map[Conn]map[presKey]PresenceUpdate
	// behind are the connections catching up on this document (see
	// catchup.go): they are out of subs until they are caught up, and
	// their later requests wait in their catchup. reading holds every
	// catch-up out at the Hub's readers, with or without a Conn; nheld
	// counts the requests held behind them.
	behind  map[Conn]*catchup
	reading map[*catchup]struct{}
	nheld   int
	link    RelayLink
	fatal   error     // state lost (a failed reload): stop
	outs    []outcome // reused by each group commit (outcomes)
	// pipe: group commits are pipelined (pipeline.go); outGroups are
	// those whose Store write is out or whose replies are not sent yet,
	// oldest first.
	pipe      bool
	outGroups []*outGroup
	rollback  error // a group's write failed: reload once none is out
	// rollbackFrom is the first version the failed write held.
	rollbackFrom uint64
	// In a cluster (cluster.go): the link as a ClusterLink (nil on a
	// single node), the epoch the session follows, and when its last
	// successful sync began.
	cluster ClusterLink
	// noter is cluster as a StoredNoter, if it is one: told after each
	// adopt's write (looked up once, not per adopted batch).
	noter    StoredNoter
	epoch    string
	syncedAt time.Time
	// group is the group commit under way (commitGroup), and early the
	// frames of its records when they went to the subscribers without a
	// submit in it before the Store write (commit.go, sendEarly; no
	// records: they did not), encoded once for those and the submitters
	// alike.
	group []*job
	early frames
	// aheadMiss is when a sync for ops ahead of the document last left
	// them ahead (commitGroup): for aheadWait after it, such ops are
	// refused without another sync.
	aheadMiss time.Time
	// replaced are the clients whose copies may hold records a fork
	// dropped, with the version each copy is good below, as of the last
	// sync (cluster.go).
	replaced map[string]uint64
	// syncRetries counts the failed syncs the relay asked for since the
	// last one that succeeded; syncRetrying is set while a retry is
	// armed (cluster.go, retrySync).
	syncRetries  int
	syncRetrying atomic.Bool
}

func newSession(h *Hub, key Key) *session {
	return &session{
		h:       h,
		key:     key,
		wake:    make(chan struct{}, 1),
		subs:    make(map[Conn]struct{}),
		pres:    make(map[Conn]map[presKey]PresenceUpdate),
		behind:  make(map[Conn]*catchup),
		reading: make(map[*catchup]struct{}),
	}
}

// errStopped is enqueue's error when the session has begun to stop.
var errStopped = errors.New("collab: session stopped")

// enqueue adds r to the inbox. It fails, without queuing r, with
// errStopped when the session has begun to stop, and with ErrBusy when
// r is a request and Options.MaxInbox requests wait already. It never
// blocks.
func (s *session) enqueue(r *job) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errStopped
	}
	if r.kind.bounded() {
		if s.nqueued >= s.h.opts.MaxInbox {
			s.mu.Unlock()
			return s.busy()
		}
		s.nqueued++
	}
	r.at = time.Now()
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	s.signal()
	return nil
}

// busy is the error for a request past Options.MaxInbox.
func (s *session) busy() error {
	s.h.stats.busy.Add(1)
	return fmt.Errorf("%w: %s has %d requests waiting", ErrBusy, s.key, s.h.opts.MaxInbox)
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// shutdown asks the session to drain its inbox and stop (Hub.Close).
func (s *session) shutdown() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.signal()
}

// take empties the inbox. The inbox goes on in the spare batch, if
// recycle left one.
func (s *session) take() ([]*job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue, s.spare = s.spare, nil
	s.nqueued = 0
	return q, s.closing
}

// maxSpare bounds the batch recycle keeps, so that a burst does not pin
// a big array in a session for its life.
const maxSpare = 256

// recycle gives take back a batch that handle is done with, so that
// the inbox does not allocate a new array after every batch.
func (s *session) recycle(batch []*job) {
	if cap(batch) > maxSpare {
		return
	}
	clear(batch)
	s.mu.Lock()
	if s.spare == nil {
		s.spare = batch[:0]
	}
	s.mu.Unlock()
}

// tryStop stops the session if its inbox is empty.
func (s *session) tryStop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		return false
	}
	s.stopped = true
	return true
}

// failAll stops the session and answers every queued request with err.
func (s *session) failAll(err error) {
	s.mu.Lock()
	s.stopped = true
	q := s.queue
	s.queue = nil
	s.nqueued = 0
	s.mu.Unlock()
	for _, r := range q {
		r.fail(err)
	}
}

func (s *session) idle() bool {
	return len(s.subs) == 0 && len(s.pres) == 0 && len(s.reading) == 0
}

// run is the session goroutine.
func (s *session) run() {
	defer s.h.wg.Done()
	defer s.h.forget(s)
	if err := s.load(); err != nil {
		// Every queued request gets the error; the next one starts a new
		// session, which tries again.
		s.failAll(err)
		return
	}
	link, err := s.join()
	if err != nil {
		s.failAll(fmt.Errorf("collab: join relay for %s: %w", s.key, err))
		return
	}
	s.link = link
	defer link.Leave()
	s.pipe = s.pipelined()

	timer := time.NewTimer(s.h.opts.IdleTimeout)
	defer timer.Stop()
	for {
		if len(s.outGroups) >= maxOutGroups {
			// Requests wait in the inbox, to make the next group, until
			// a write ends.
			s.awaitWrite()
			continue
		}
		batch, closing := s.take()
		if len(batch) > 0 {
			s.handle(batch)
			s.recycle(batch)
			s.flush()
			if s.fatal != nil {
				s.drain() // answers the groups out with the error
				s.failAll(s.fatal)
				s.dropAll(s.fatal)
				return
			}
			continue
		}
		if len(s.outGroups) > 0 {
			// Group commits are out: each write's end wakes the session.
			s.awaitWrite()
			continue
		}
		if len(s.reading) > 0 {
			// Catch-ups are out: their results come through the inbox
			// (quickly once the Hub closes, which cancels them).
			<-s.wake
			continue
		}
		if closing {
			s.saveSnapshot()
			if s.tryStop() {
				return
			}
			continue
		}
		timer.Reset(s.h.opts.IdleTimeout)
		select {
		case <-s.wake:
		case <-timer.C:
			if s.idle() {
				s.saveSnapshot()
				if s.tryStop() {
					return
				}
			}
		}
	}
}

// load reads the document from the Store.
func (s *session) load() error {
	st, err := s.h.opts.Store.Load(context.Background(), s.key)
	if err != nil {
		return fmt.Errorf("collab: load %s: %w", s.key, err)
	}
	d := docState{typ: st.Snapshot.Type, rope: ot.NewRope(st.Snapshot.Data), head: st.Snapshot.Version}
	for _, r := range st.Ops {
		if err := d.applyRecord(r); err != nil {
			return fmt.Errorf("collab: load %s: %w", s.key, err)
		}
	}
	s.doc = d
	s.window, s.wbytes = nil, 0
	for _, r := range st.Ops {
		s.push(r)
	}
	s.trimWindow()
	s.seqs = newSeqTable(st.Seqs, s.h.opts.SeqWindow, d.head)
	s.snapVer = st.Snapshot.Version
	s.base = 0
	if bs, ok := s.h.opts.Store.(BaseStore); ok {
		if s.base, err = bs.Base(context.Background(), s.key); err != nil {
			return fmt.Errorf("collab: load %s: %w", s.key, err)
		}
	}
	return nil
}

// reload replaces the in-memory state with the Store's, when the Store
// turned out to hold records the session lacks (see commit). If that
// fails too the session must stop: s.fatal wraps ErrSessionFailed.
func (s *session) reload() {
	if err := s.load(); err != nil {
		s.fatal = fmt.Errorf("%w: %s: %w", ErrSessionFailed, s.key, err)
	}
}

// dropAll tells every subscriber of a session that stops on err that it
// will be sent nothing more of this document (Conn.Drop), so that it
// subscribes again, and clears every presence held here for the others.
// The Hub's registry forgets those subscriptions and presences, so they
// no longer count against the connections' limits. Without it the
// subscribers of a failed session were dropped silently: still
// registered, never sent another op. Catch-ups out are answered with err,
// with the requests held behind them.
func (s *session) dropAll(err error) {
	for cu := range s.reading {
		delete(s.reading, cu)
		cu.job.fail(err)
		for _, r := range cu.held {
			r.fail(err)
		}
		if c := cu.job.conn; c != nil && (cu.wasSub || cu.job.kind == jobFetch && cu.job.join) {
			s.subs[c] = struct{}{} // dropped below
		}
	}
	clear(s.behind)
	for c := range s.pres {
		s.clearPresence(c, "", "")
		s.h.leaveDoc(c, s.key)
	}
	for c := range s.subs {
		s.drop(c, err)
	}
	clear(s.subs)
}

// drop tells c it will be sent nothing more of this document, so that it
// subscribes again (Conn.Drop), and has the Hub forget the subscription.
func (s *session) drop(c Conn, err error) {
	s.h.leaveDoc(c, s.key)
	c.Drop(s.key, err)
}

// saveSnapshot stores the head as the latest snapshot if it is newer. A
// failure loses nothing (the op log has it all), so it is only logged.
func (s *session) saveSnapshot() {
	if s.doc.head <= s.snapVer {
		return
	}
	snap := s.doc.snapshot()
	if err := s.h.opts.Store.SaveSnapshot(context.Background(), s.key, snap); err != nil {
		s.h.log.Warn("collab: cannot save snapshot", "doc", s.key.String(), "version", snap.Version, "err", err)
		return
	}
	s.snapVer = snap.Version
}

// handle processes one inbox batch in order. Consecutive submits (up to
// Options.MaxBatch) share one commit; presence updates between them are
// handled after that commit, at the new head.
//
// Each request is first admitted (admit): one from a connection that is
// catching up waits behind it, one from a closed connection is dropped,
// and one that needs records older than the window goes to the readers.
// Admission happens just before a request is served, so it sees the
// window as the commits before it left it.
func (s *session) handle(batch []*job) {
	for i := 0; i < len(batch); {
		if batch[i].kind != jobSubmit {
			s.drain()
		}
		if s.fatal != nil {
			for _, r := range batch[i:] {
				r.fail(s.fatal)
			}
			return
		}
		r := batch[i]
		i++
		if !s.admit(r) {
			continue
		}
		if r.kind != jobSubmit {
			s.handleOne(r)
			continue
		}
		subs := []*job{r}
		var later []*job
		for ; i < len(batch); i++ {
			n := batch[i]
			if n.kind != jobSubmit && n.kind != jobPresence || n.kind == jobSubmit && len(subs) == s.h.opts.MaxBatch {
				break
			}
			if _, old := s.catchUpFrom(n); old && n.kind == jobSubmit {
				// It goes to the readers, and its connection leaves subs:
				// not while this group, which may owe that connection
				// broadcasts, is planned. It is admitted after the group.
				break
			}
			if !s.admit(n) {
				continue
			}
			if n.kind == jobSubmit {
				subs = append(subs, n)
			} else {
				later = append(later, n)
			}
		}
		s.submitGroup(subs)
		if len(later) > 0 {
			s.drain()
		}
		for _, p := range later {
			if s.fatal != nil {
				p.fail(s.fatal)
				continue
			}
			s.presence(p)
		}
	}
}

func (s *session) handleOne(r *job) {
	switch r.kind {
	case jobFetch:
		s.fetch(r)
	case jobUnsubscribe:
		delete(s.subs, r.conn)
		s.clearPresence(r.conn, "", "")
		r.onDone(nil)
	case jobPresence:
		s.presence(r)
	case jobClearPresence:
		s.clearPresence(r.conn, r.pres.Channel, "")
	case jobExpirePresence:
		s.clearPresence(r.conn, r.pres.Channel, r.pres.ID)
	case jobDisconnect:
		delete(s.subs, r.conn)
		s.clearPresence(r.conn, "", "")
	case jobRemote:
		s.remoteIn(r)
	case jobResume:
		s.resume(r.task)
	case jobSync:
		s.syncJob(r)
	case jobRemotePresence:
		s.remotePresence(*r.pres)
	}
}

// fetch answers a Subscribe or Fetch: join first, then the catch-up
// records, then the reply. Catch-ups from before the window went to the
// readers (admit); without a Conn there is nobody to send records to.
func (s *session) fetch(r *job) {
	if err := s.syncFor(r); err != nil {
		r.onSnapshot(Snapshot{}, err)
		return
	}
	if r.conn != nil {
		// A client whose copy a fork replaced: refused at its version,
		// its note cleared when it takes the cluster's history.
		if err := s.replacedCopy(r.conn.Src(), r.from, true); err != nil {
			r.onSnapshot(Snapshot{}, err)
			return
		}
	}
	if r.join {
		s.subs[r.conn] = struct{}{}
	}
	if r.conn != nil && r.from != nil && *r.from < s.doc.head {
		recs, err := s.records(*r.from, s.doc.head)
		if err != nil {
			if r.join {
				delete(s.subs, r.conn)
			}
			r.onSnapshot(Snapshot{}, err)
			return
		}
		for _, rec := range recs {
			r.conn.SendOp(s.key, rec)
		}
	}
	r.onSnapshot(s.doc.snapshot(), nil)
}

// deliverRemote is the Relay's callback: it queues records other nodes
// committed (or, with none, an epoch's announcement). A stopped session
// drops them; the next one loads them.
func (s *session) deliverRemote(epoch string, recs []Record) {
	if len(recs) == 0 && epoch == "" {
		return
	}
	_ = s.enqueue(&job{kind: jobRemote, recs: recs, epoch: epoch}) // a stopped session drops them
}
