package redisrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coedit/coedit/collab"
)

// EpochStore is what a Cluster needs of its node's store besides
// collab.Store: a durable note, per document, of the epoch whose history
// the stored records are a prefix of. storage.DB implements it. The note
// is the Cluster's to encode (encodeNote): the epoch, and the lineage
// the node knows of it.
type EpochStore interface {
	collab.Store
	// Epoch returns the note ("" when there is none).
	Epoch(ctx context.Context, key collab.Key) (string, error)
	// SetEpoch writes the note; a store without records of key may keep
	// none and returns false.
	SetEpoch(ctx context.Context, key collab.Key, epoch string) (bool, error)
}

// ClusterOptions configures NewCluster. The zero value of each field
// means its default, except Relay and Store, which are required.
type ClusterOptions struct {
	// Relay is the node's Redis relay. The Cluster does not close it.
	Relay *Relay
	// Store is the node's store (the Hub's): the records a document is
	// seeded or renewed with come from it, and it keeps the epoch notes.
	Store EpochStore
	// RetryFor bounds how long a commit or catch-up keeps retrying while
	// Redis cannot be reached, or is being renewed, before it fails with
	// an error wrapping collab.ErrUnavailable (the client then resends).
	// Redis restarting with its AOF takes well under it. Default 5s.
	RetryFor time.Duration
	// CallTimeout bounds one round trip to Redis. Default 2s.
	CallTimeout time.Duration
	// SnapshotEvery is how many versions Redis's snapshot of a document
	// may fall behind its head: a node that commits past that saves its
	// store's latest snapshot to Redis, which trims the stream behind it
	// to the newest TailLen records (base.go). Default TailLen/2.
	SnapshotEvery int
	// ReplacedTTL is how long Redis remembers the clients that may hold
	// records a fork dropped (replaced.go): a client that comes back
	// within it with such a copy is refused (collab.ErrHistoryReplaced)
	// and fetches the document anew; one that comes back later is
	// caught up by version as if its copy were good. Default 7 days.
	ReplacedTTL time.Duration
	// TurnTTL is how long a node's turn to commit to a document lasts
	// at most (turn.go): a node that lost a race to another takes the
	// next turn, and the other waits for its commit, or for this long if
	// it does not come (the node gave up or died). Default 250ms; a
	// negative value turns turns off (every node commits when it can).
	TurnTTL time.Duration
	// Logger receives the cluster's logs. Default the Relay's.
	Logger *slog.Logger
}

// Cluster is a coedit node's side of a cluster over Redis: the Hub's
// Relay (a collab.ClusterRelay) and Sequencer. Build the Hub with
//
//	c := redisrelay.NewCluster(redisrelay.ClusterOptions{Relay: r, Store: db})
//	hub := collab.NewHub(collab.Options{Store: db, Relay: c, Sequencer: c})
//
// One Cluster serves one Hub: it keeps, per document, the session's
// membership and the epoch it follows (follow.go says how it gets
// there). Its methods are safe for concurrent use.
type Cluster struct {
	opts  ClusterOptions
	r     *Relay
	log   *slog.Logger
	stats clusterCounters

	mu    sync.Mutex
	links map[collab.Key]*link
}

var (
	_ collab.ClusterRelay = (*Cluster)(nil)
	_ collab.Sequencer    = (*Cluster)(nil)
)

// NewCluster returns a Cluster over opts.Relay and opts.Store.
func NewCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.Relay == nil || opts.Store == nil {
		return nil, fmt.Errorf("%w: ClusterOptions needs a Relay and a Store", ErrInvalid)
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = 5 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Second
	}
	if opts.ReplacedTTL <= 0 {
		opts.ReplacedTTL = 7 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = opts.Relay.log
	}
	if opts.TurnTTL == 0 {
		opts.TurnTTL = 250 * time.Millisecond
	}
	if opts.SnapshotEvery <= 0 {
		opts.SnapshotEvery = max(1, opts.Relay.opts.TailLen/2)
	}
	return &Cluster{opts: opts, r: opts.Relay, log: opts.Logger, links: make(map[collab.Key]*link)}, nil
}

// ClusterStats are a Cluster's counters, for metrics. They only grow.
type ClusterStats struct {
	// Retries counts round trips repeated because Redis was unreachable.
	Retries uint64
	// Seeds counts documents this node seeded into an empty Redis
	// (Init), Renewals epochs it renewed after Redis restarted or lost
	// records.
	Seeds, Renewals uint64
	// Forks counts catch-ups that found the node's records replaced by
	// the cluster's history; Reoffered counts the records offered again
	// then, and Lost those that could not be (logged one by one).
	Forks, Reoffered, Lost uint64
	// Installs counts catch-ups that installed Redis's snapshot as the
	// base of the store's log (the node was behind Redis's tail);
	// Snapshots counts snapshots this node saved to Redis.
	Installs, Snapshots uint64
	// TurnWaits counts commits that found another node's turn
	// (turn.go) and waited; TurnDoorbells those of them that took the
	// records they missed from that node's doorbell.
	TurnWaits, TurnDoorbells uint64
}

type clusterCounters struct {
	retries, seeds, renewals, forks, reoffered, lost, installs, snapshots atomic.Uint64
	turnWaits, turnDoorbells                                              atomic.Uint64
}

// Stats returns the current counters.
func (c *Cluster) Stats() ClusterStats {
	s := &c.stats
	return ClusterStats{
		Retries: s.retries.Load(), Seeds: s.seeds.Load(), Renewals: s.renewals.Load(),
		Forks: s.forks.Load(), Reoffered: s.reoffered.Load(), Lost: s.lost.Load(),
		Installs: s.installs.Load(), Snapshots: s.snapshots.Load(),
		TurnWaits: s.turnWaits.Load(), TurnDoorbells: s.turnDoorbells.Load(),
	}
}

// link is one session's membership: its subscription and the epoch it
// follows. epoch and known are read by the subscriber's goroutine
// (deliver) and written by the session's (under mu); noted is the
// session's only.
type link struct {
	c   *Cluster
	key collab.Key
	m   collab.Member
	sub *Subscription

	mu    sync.Mutex
	epoch string // the history the session follows ("" before its first sync)
	known uint64 // the session holds every record below it
	// lineage is the lineage of the epoch the session follows, as it
	// last read it (or wrote it, seeding or renewing): a seed carries it
	// on. The session's goroutine alone uses it.
	lineage []Fork
	snapV   uint64 // Redis's snapshot is at this version or later (base.go)
	saving  bool   // a snapshot save to Redis is under way

	noted   string // the epoch the Store's note names, as far as known
	rebased bool   // Sync installed a base (base.go); the session's only
	forked  bool   // Sync forked in replace (nohistory.go); the session's only
	// renewDue: a commit of the session met Redis's restart, so its
	// next Sync renews the epoch (renewNow); the session's only.
	renewDue bool

	lost int // races lost in a row (turn.go); the session's only

	// uncertain is set from a failed commit call of the session's until
	// one succeeds: the failed commit may yet show up in Redis, and its
	// own doorbell is then all that tells this node (certain).
	uncertain atomic.Bool

	// A Sequence waiting for its turn (turn.go): the doorbells' records
	// from waitFrom on go to waitBuf, and wake is closed once some came.
	waiting  bool
	waitFrom uint64
	waitBuf  []collab.Record
	wake     chan struct{}
}

// Join implements collab.Relay; sessions of a Hub whose Relay is a
// Cluster join with JoinCluster.
func (c *Cluster) Join(key collab.Key, m collab.Member) (collab.RelayLink, error) {
	return c.JoinCluster(key, m)
}

// JoinCluster implements collab.ClusterRelay: it subscribes to the
// document's doorbells. The session then calls Sync before anything
// else.
func (c *Cluster) JoinCluster(key collab.Key, m collab.Member) (collab.ClusterLink, error) {
	if m.Deliver == nil || m.Resync == nil {
		return nil, fmt.Errorf("%w: a cluster member needs Deliver and Resync", ErrInvalid)
	}
	l := &link{c: c, key: key, m: m}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CallTimeout)
	defer cancel()
	sub, err := c.r.Subscribe(ctx, key, Handler{Deliver: l.deliver, Resync: m.Resync, OthersOnly: l.certain})
	if err != nil {
		return nil, c.unavailable(err)
	}
	l.sub = sub
	c.mu.Lock()
	c.links[key] = l
	c.mu.Unlock()
	return l, nil
}

// link returns key's current membership.
func (c *Cluster) link(key collab.Key) (*link, error) {
	c.mu.Lock()
	l := c.links[key]
	c.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("%w: %s has no session on this node", ErrInvalid, key)
	}
	return l, nil
}

// Ops implements collab.Relay: it reads a gap from the stream, under the
// epoch the session follows.
func (c *Cluster) Ops(ctx context.Context, key collab.Key, from, to uint64) ([]collab.Record, error) {
	l, err := c.link(key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
	defer cancel()
	return c.r.Read(ctx, key, l.current(), from, to)
}

// Sequence implements collab.Sequencer with Relay.Commit under the epoch
// the session follows. A Duplicate (the first record was committed
// before, maybe by another node that has not told this one yet) is
// answered as a conflict with the records from recs[0].Version on, so
// that the session adopts it and its dedupe acknowledges the resend at
// its version. An epoch error is collab.ErrResync; Redis out of reach
// for longer than RetryFor is collab.ErrUnavailable.
func (c *Cluster) Sequence(ctx context.Context, key collab.Key, recs []collab.Record) ([]collab.Record, error) {
	l, err := c.link(key)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, nil
	}
	l.note(ctx)
	expect := recs[0].Version
	if l.current() == "" {
		// The first commit of a document Redis has no state of (Sync
		// does not seed empty documents): seed it, empty, then commit.
		if expect != 0 {
			return nil, fmt.Errorf("%w: %s has no epoch at version %d", collab.ErrResync, key, expect)
		}
		var epoch string
		var won bool
		err := c.retry(ctx, func(ctx context.Context) (err error) {
			epoch, won, err = c.r.Init(ctx, key, Seed{})
			return err
		})
		if err != nil {
			return nil, err
		}
		if !won {
			return nil, fmt.Errorf("%w: %s was seeded by another node", collab.ErrResync, key)
		}
		c.stats.seeds.Add(1)
		l.follow(ctx, epoch, nil)
	}
	epoch := l.current()
	var res Result
	for waits := 0; ; waits++ {
		writer := c.r.writer
		if waits == maxTurnWaits || c.opts.TurnTTL < 0 {
			writer = "" // a turn that stays stuck: commit without turns
		}
		err = c.retry(ctx, func(ctx context.Context) error {
			var err error
			if writer == "" {
				res, err = c.r.Commit(ctx, key, epoch, expect, recs)
			} else {
				res, err = c.r.CommitInTurn(ctx, key, epoch, expect, recs, writer, l.lost >= reserveAfter, c.opts.TurnTTL)
			}
			if err == nil && res.Outcome == Duplicate && res.Version >= expect {
				res.Missed, err = c.r.Read(ctx, key, epoch, expect, maxNumber)
			}
			return err
		})
		if err != nil || res.Outcome != Wait {
			break
		}
		// Another node's turn (turn.go): its commit's doorbell brings
		// the records this one missed, and this node's turn is next.
		c.stats.turnWaits.Add(1)
		if missed := l.waitTurn(ctx, epoch, expect, res.Wait+time.Millisecond); len(missed) > 0 {
			c.stats.turnDoorbells.Add(1)
			l.lost++ // the session plans again, as after a conflict
			return missed, nil
		}
	}
	switch {
	case errors.Is(err, ErrEpoch):
		l.dueIfRestarted(err) // the session's Sync renews before it tries again
		return nil, fmt.Errorf("%w: %w", collab.ErrResync, err)
	case errors.Is(err, ErrStaleSeq):
		return nil, fmt.Errorf("%w: %w", collab.ErrStaleSeq, err)
	case err != nil:
		// The commit may have run in Redis with its answer lost, now or
		// later (a command still on its way): until this session commits
		// again, its own doorbells are delivered too, and it catches up
		// once (while the flag stays set no own doorbell is passed over,
		// so later failures need no catch-up of their own).
		if !l.uncertain.Swap(true) {
			l.m.Resync()
		}
		return nil, err
	}
	if res.Outcome == Conflict {
		l.lost++
	} else {
		l.lost = 0
	}
	switch res.Outcome {
	case Committed:
		// A commit that failed before this one can no longer commit
		// (Redis's head is past the version it expected).
		l.uncertain.Store(false)
		l.saw(expect + uint64(len(recs)))
		l.committed(expect + uint64(len(recs)))

		c.r.index.add(key, recs) // the cluster's document list (list.go)
		return nil, nil
	case Duplicate:
		if res.Version < expect || len(res.Missed) == 0 {
			// The session holds that record but did not find the resend:
			// its version is past the original's, which a real resend's
			// is not.
			return nil, fmt.Errorf("%w: src %q seq %d was committed at version %d", collab.ErrStaleSeq, recs[0].Src, recs[0].Seq, res.Version)
		}
		return res.Missed, nil
	}
	return res.Missed, nil
}

// retry runs call with a CallTimeout each, again while it fails with
// ErrUnavailable and RetryFor has not passed since the first try; then
// the error wraps collab.ErrUnavailable too.
func (c *Cluster) retry(ctx context.Context, call func(ctx context.Context) error) error {
	deadline := time.Now().Add(c.opts.RetryFor)
	wait := 20 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		err := call(cctx)
		cancel()
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return c.unavailable(err)
		}
		c.stats.retries.Add(1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// unavailable wraps err, a failure to reach Redis, in
// collab.ErrUnavailable.
func (c *Cluster) unavailable(err error) error {
	if errors.Is(err, collab.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", collab.ErrUnavailable, err)
}

// current returns the epoch the session follows.
func (l *link) current() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// saw notes that the session holds every record below v.
func (l *link) saw(v uint64) {
	l.mu.Lock()
	l.known = max(l.known, v)
	l.mu.Unlock()
}

// forget notes that the session holds nothing at or past v any more (a
// fork cut its log back to v): deliver must not drop the new history's
// doorbells below the old head as known.
func (l *link) forget(v uint64) {
	l.mu.Lock()
	l.known = min(l.known, v)
	l.mu.Unlock()
}

// certain is the subscription's Handler.OthersOnly: the session holds
// every commit of its own that made it into Redis, so its own doorbells
// need not be decoded.
func (l *link) certain() bool { return !l.uncertain.Load() }

// deliver is the subscription's Handler.Deliver. It drops what the
// session is known to hold (the subscriber passes over the doorbells of
// this node's turn-taking commits, but one committed without turns
// comes back) and hands the rest on; the session compares the epoch
// with its own.
func (l *link) deliver(epoch string, recs []collab.Record) {
	l.mu.Lock()
	cur, known := l.epoch, l.known
	if epoch == cur {
		l.heard(recs)
	}
	l.mu.Unlock()
	if epoch == cur {
		if len(recs) == 0 || recs[len(recs)-1].Version < known {
			return
		}
	}
	l.m.Deliver(epoch, recs)
}

// Publish implements collab.RelayLink: Commit published the doorbell
// already, in the same script.
func (l *link) Publish([]collab.Record) {}

// Leave implements collab.RelayLink.
func (l *link) Leave() {
	c := l.c
	c.mu.Lock()
	if c.links[l.key] == l {
		delete(c.links, l.key)
	}
	c.mu.Unlock()
	l.sub.Close()
}

// note writes the epoch the session follows to the Store's note if the
// note may name another one (the note could not be written while the
// Store had no records of the document). A failure is only logged: a
// missing or older note costs a longer catch-up after a restart, never
// a wrong one (follow.go).
func (l *link) note(ctx context.Context) {
	epoch := l.current()
	if epoch == "" || epoch == l.noted {
		return
	}
	set, err := l.c.opts.Store.SetEpoch(ctx, l.key, encodeNote(epoch, l.lineage))
	if err != nil {
		l.c.log.Warn("redisrelay: cannot note a document's epoch", "doc", l.key.String(), "epoch", epoch, "err", err)
		return
	}
	if set {
		l.noted = epoch
	}
}

// encodeNote is the Store's note of an epoch and its lineage: the epoch,
// then a space and the lineage as the meta hash holds it, if it has one.
// (Epochs are hex digits; notes from before the lineage are the epoch
// alone.)
func encodeNote(epoch string, lineage []Fork) string {
	if len(lineage) == 0 {
		return epoch
	}
	return epoch + " " + encodeLineage(lineage)
}

// decodeNote reads encodeNote's note. A lineage it cannot read is left
// out: the node then knows less of its history, as before notes had one.
func decodeNote(note string) (epoch string, lineage []Fork) {
	epoch, l, _ := strings.Cut(note, " ")
	lineage, _ = decodeLineage(l)
	return epoch, lineage
}

// setEpoch sets the epoch the session follows (read under mu by other
// goroutines: current).
func (l *link) setEpoch(epoch string) {
	l.mu.Lock()
	l.epoch = epoch
	l.mu.Unlock()
}

// follow makes the session follow epoch, whose lineage is lineage, from
// now on and notes both.
func (l *link) follow(ctx context.Context, epoch string, lineage []Fork) {
	l.setEpoch(epoch)
	l.lineage = lineage
	l.note(ctx)
}
