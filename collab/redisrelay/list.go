package redisrelay

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/redis/go-redis/v9"
)

// This file keeps the cluster's list of documents (GET /api/docs): every
// node's bbolt holds only the documents its sessions saw, so the list
// lives in Redis.
//
//	<prefix>docs                      sorted set: member <tag>, score the
//	                                  document's modification time (Unix ms)
//	<prefix>docs:<collection>         the same, for one collection
//	<prefix>{<collection>.<id>}:info  hash: v head, t type ("" deleted),
//	                                  c created, m modified (Unix ms)
//
// The sorted sets live outside the document's slot, so the commit script
// cannot write them in a Redis Cluster; the node that committed writes
// them just after, off the commit's path (docIndex): each commit's
// document is queued, and one goroutine writes what piled up in one
// pipeline, at most every indexEvery (100 ms). The info hash is written by a script that keeps the highest
// version, so two nodes' writes can land in any order; the sorted sets
// keep the highest score (ZADD GT). A node killed between an ack and that
// write (up to indexEvery) leaves the document's entry behind
// until its next commit; the Hub's list also reads the node's own store,
// so the node lists it itself when it comes back.

// docIndex queues documents to write to the list. Its goroutine starts
// with the first commit and stops in close, after writing what is queued.
type docIndex struct {
	r    *Relay
	wake chan struct{}
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	started bool
	closed  bool
	pending map[collab.Key]*indexEntry
}

// indexEntry is what a document's list entry becomes.
type indexEntry struct {
	v, created, modified int64
	typ                  string
	typeKnown            bool // t and c come with this entry (a create or delete)
}

func newDocIndex(r *Relay) *docIndex {
	return &docIndex{r: r, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		pending: make(map[collab.Key]*indexEntry)}
}

// add queues key after recs were committed.
func (x *docIndex) add(key collab.Key, recs []collab.Record) {
	if len(recs) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	if !x.started {
		x.started = true
		go x.run()
	}
	e := x.pending[key]
	if e == nil {
		e = &indexEntry{}
		x.pending[key] = e
	}
	for _, r := range recs {
		e.v = max(e.v, int64(r.Version)+1)
		e.modified = max(e.modified, r.Time)
		switch r.Kind {
		case collab.OpCreate:
			e.typ, e.created, e.typeKnown = r.Type, r.Time, true
		case collab.OpDelete:
			e.typ, e.typeKnown = "", true
		}
	}
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// indexEvery is the least time between two writes of the list: what is
// queued meanwhile goes in one pipeline, once per document. Writing after
// each commit doubled Redis's writes per commit, and with appendfsync
// always a write that lands apart from the commits costs Redis an fsync
// of its own, on the thread that runs every commit (scenario 7).
const indexEvery = 100 * time.Millisecond

// run writes what is queued until close, at most once per indexEvery.
func (x *docIndex) run() {
	defer close(x.done)
	pace := time.NewTimer(0)
	for {
		select {
		case <-x.wake:
		case <-x.quit:
			pace.Stop()
			x.flush()
			return
		}
		select {
		case <-pace.C:
		case <-x.quit:
			x.flush()
			return
		}
		x.flush()
		pace.Reset(indexEvery)
	}
}

// flush writes the queued entries in one pipeline. Entries that fail
// (Redis away) are queued again unless newer ones came meanwhile.
func (x *docIndex) flush() {
	x.mu.Lock()
	batch := x.pending
	x.pending = make(map[collab.Key]*indexEntry)
	x.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	r := x.r
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, e := range batch {
			m := tag(key)
			args := []any{e.v, e.modified}
			if e.typeKnown {
				args = append(args, e.typ)
				if e.created > 0 {
					args = append(args, e.created) // a delete keeps it
				}
			}
			// Eval, not Run: in a pipeline a NOSCRIPT shows only at the end.
			indexScript.Eval(ctx, p, []string{r.infoKey(key)}, args...)
			z := redis.ZAddArgs{GT: true, Members: []redis.Z{{Score: float64(e.modified), Member: m}}}
			p.ZAddArgs(ctx, r.opts.Prefix+"docs", z)
			p.ZAddArgs(ctx, r.opts.Prefix+"docs:"+escape(key.Collection), z)
		}
		return nil
	})
	if err == nil {
		return
	}
	r.log.Warn("redisrelay: cannot update the document list; will retry with the next commit", "docs", len(batch), "err", err)
	x.mu.Lock()
	for key, e := range batch {
		if _, newer := x.pending[key]; !newer {
			x.pending[key] = e
		}
	}
	x.mu.Unlock()
}

// close writes what is queued and stops.
func (x *docIndex) close() {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return
	}
	x.closed = true
	started := x.started
	x.mu.Unlock()
	if started {
		close(x.quit)
		<-x.done
	}
}

// indexScript writes a document's info unless it holds a later version:
// KEYS[1] info; ARGV v, m [, t [, c]].
var indexScript = redis.NewScript(`
local old = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if old > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'm', ARGV[2])
if ARGV[3] then redis.call('HSET', KEYS[1], 't', ARGV[3]) end
if ARGV[4] then redis.call('HSET', KEYS[1], 'c', ARGV[4]) end
return 1
`)

// List returns the cluster's documents of collection ("" for all), most
// recently modified first, at most limit of them (0 for all).
func (r *Relay) List(ctx context.Context, collection string, limit int) ([]collab.DocInfo, error) {
	zkey := r.opts.Prefix + "docs"
	if collection != "" {
		zkey += ":" + escape(collection)
	}
	stop := int64(limit) - 1
	members, err := r.c.ZRevRange(ctx, zkey, 0, stop).Result()
	if err != nil {
		return nil, classify("list", err)
	}
	keys := make([]collab.Key, 0, len(members))
	for _, m := range members {
		k, ok := untag(m)
		if !ok {
			r.log.Warn("redisrelay: a document list entry does not name a document", "entry", m)
			continue
		}
		keys = append(keys, k)
	}
	cmds := make([]*redis.SliceCmd, len(keys))
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HMGet(ctx, r.infoKey(k), "v", "t", "c", "m")
		}
		return nil
	})
	if err != nil {
		return nil, classify("list", err)
	}
	out := make([]collab.DocInfo, 0, len(keys))
	for i, k := range keys {
		vals := cmds[i].Val()
		if len(vals) != 4 || vals[0] == nil {
			continue // listed, info not written yet
		}
		in := collab.DocInfo{Key: k}
		in.Version = uint64(num(vals[0]))
		if s, ok := vals[1].(string); ok {
			in.Type = s
		}
		in.Created, in.Modified = num(vals[2]), num(vals[3])
		out = append(out, in)
	}
	return out, nil
}

// infoKey is the key of a document's list entry.
func (r *Relay) infoKey(k collab.Key) string { return r.opts.Prefix + "{" + tag(k) + "}:info" }

// num reads an integer HMGET field (0 when missing or malformed).
func num(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// untag is the inverse of tag.
func untag(s string) (collab.Key, bool) {
	coll, id, ok := strings.Cut(s, ".")
	if !ok {
		return collab.Key{}, false
	}
	c, ok1 := unescape(coll)
	i, ok2 := unescape(id)
	if !ok1 || !ok2 || c == "" || i == "" {
		return collab.Key{}, false
	}
	return collab.Key{Collection: c, ID: i}, true
}

func unescape(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		switch s[i+1 : i+3] {
		case "25":
			b.WriteByte('%')
		case "2E":
			b.WriteByte('.')
		case "7B":
			b.WriteByte('{')
		case "7D":
			b.WriteByte('}')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// List implements collab.ClusterLister with the Relay's list.
func (c *Cluster) List(ctx context.Context, collection string, limit int) ([]collab.DocInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
	defer cancel()
	infos, err := c.r.List(ctx, collection, limit)
	if errors.Is(err, ErrUnavailable) {
		return nil, c.unavailable(err)
	}
	return infos, err
}

var _ collab.ClusterLister = (*Cluster)(nil)
