package collab

import (
	"context"
	"sync"
)

// Relay carries committed records between the nodes that run a session
// for the same document, so that those sessions stay in step (DESIGN.md
// §7). A session joins the relay when it starts, publishes every batch of
// records it commits, and applies the records other nodes publish.
//
// Delivery is at most once and unordered: a record may be lost,
// duplicated or overtaken. The session copes: it applies records in
// version order, skips those it already has, and fills a gap from Ops
// before going on. A Relay is only a doorbell and a shared log; it does
// not decide the order of ops (in a cluster the commit point does).
//
// A Relay that is also the cluster's commit point and shared log
// implements ClusterRelay (cluster.go); its sessions then follow the
// commit point's head, not only what the relay delivers.
//
// Implementations must be safe for concurrent use.
type Relay interface {
	// Join connects key's session on this node to the other nodes. m
	// receives what the relay has for the session; its functions are
	// called from any goroutine, must not block, and may still be called
	// briefly after Leave.
	Join(key Key, m Member) (RelayLink, error)
	// Ops returns the shared log's records of key with from <= Version
	// < to, in order, to fill a gap. It may return fewer than asked (a
	// trimmed log); the caller then waits for a later record.
	Ops(ctx context.Context, key Key, from, to uint64) ([]Record, error)
}

// Member is a session's side of a Relay membership: what the relay calls
// when it has something for the session.
type Member struct {
	// Deliver receives records other members committed, in version order
	// within one call. epoch names the history they belong to: "" for a
	// relay without epochs (LocalRelay); in a cluster, the commit
	// point's epoch (see ClusterLink), and a session drops records of an
	// epoch that is not the one it follows and catches up instead.
	Deliver func(epoch string, recs []Record)
	// Resync asks the session to catch up with the commit point: the
	// relay may have lost deliveries (its connection broke and was
	// re-established) or saw records of another epoch. A relay without
	// a commit point (LocalRelay) never calls it; it may be nil then.
	Resync func()
}

// RelayLink is one session's membership of a Relay.
type RelayLink interface {
	// Publish announces records this node has just committed durably,
	// in version order. It must not block for long.
	Publish(recs []Record)
	// Leave ends the membership.
	Leave()
}

// LocalRelay is the in-process Relay. A Hub without Options.Relay uses a
// private one, where each document has one member and Publish reaches
// nobody: a single node, whose sessions order their documents' ops
// themselves. Hubs in one process that share a LocalRelay receive each
// other's records; each persists them to its own Store before passing
// them on. LocalRelay does not order ops: only one member may accept
// submits for a given document (the others serve it read-only), which is
// what the tests of the remote path need.
type LocalRelay struct {
	keep int

	mu    sync.Mutex
	links map[Key]map[*localLink]struct{}
	logs  map[Key][]Record
}

var _ Relay = (*LocalRelay)(nil)

// NewLocalRelay returns a LocalRelay that keeps the last keep published
// records of each document for Ops (0 keeps none).
func NewLocalRelay(keep int) *LocalRelay {
	return &LocalRelay{
		keep:  max(keep, 0),
		links: make(map[Key]map[*localLink]struct{}),
		logs:  make(map[Key][]Record),
	}
}

// Join implements Relay.
func (r *LocalRelay) Join(key Key, mem Member) (RelayLink, error) {
	l := &localLink{r: r, key: key, deliver: mem.Deliver}
	r.mu.Lock()
	m := r.links[key]
	if m == nil {
		m = make(map[*localLink]struct{})
		r.links[key] = m
	}
	m[l] = struct{}{}
	r.mu.Unlock()
	return l, nil
}

// Ops implements Relay from the records kept in memory.
func (r *LocalRelay) Ops(ctx context.Context, key Key, from, to uint64) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	log := r.logs[key]
	if len(log) == 0 || from >= to {
		return nil, nil
	}
	first := log[0].Version
	last := first + uint64(len(log))
	if from < first || from >= last {
		return nil, nil
	}
	end := min(to, last)
	return append([]Record(nil), log[from-first:end-first]...), nil
}

type localLink struct {
	r       *LocalRelay
	key     Key
	deliver func(string, []Record)
}

// Publish implements RelayLink: it keeps recs in the log and hands them
// to the key's other members.
func (l *localLink) Publish(recs []Record) {
	if len(recs) == 0 {
		return
	}
	r := l.r
	r.mu.Lock()
	if r.keep > 0 {
		log := r.logs[l.key]
		if n := len(log); n > 0 && log[n-1].Version+1 != recs[0].Version {
			log = nil // not contiguous: start over rather than keep a gap
		}
		log = append(log, recs...)
		if len(log) > r.keep {
			log = append([]Record(nil), log[len(log)-r.keep:]...)
		}
		r.logs[l.key] = log
	}
	var to []*localLink
	for o := range r.links[l.key] {
		if o != l {
			to = append(to, o)
		}
	}
	r.mu.Unlock()
	for _, o := range to {
		o.deliver("", recs)
	}
}

// Leave implements RelayLink.
func (l *localLink) Leave() {
	r := l.r
	r.mu.Lock()
	if m := r.links[l.key]; m != nil {
		delete(m, l)
		if len(m) == 0 {
			delete(r.links, l.key)
		}
	}
	r.mu.Unlock()
}
