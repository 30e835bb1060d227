package redisrelay

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab"
)

// A node that drops records the cluster's history replaced (a fork, see
// follow.go) notes in Redis which clients may hold them: the document's
// "replaced" hash maps each such src to the version its copy is good
// below. Every node reads the hash when its session syncs, so a client
// that comes back to any node with a copy past that version is refused
// with collab.ErrHistoryReplaced instead of being caught up by version
// onto a history its copy is not a prefix of. The hash expires
// ClusterOptions.ReplacedTTL after the last fork noted in it.

// markReplacedScript notes each src of ARGV[3..] with version ARGV[1],
// keeping a lower version noted before, and sets the hash to expire in
// ARGV[2] seconds.
var markReplacedScript = redis.NewScript(`
local from = tonumber(ARGV[1])
for i = 3, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur or tonumber(cur) > from then redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'ok'}
`)

// MarkReplaced notes that the clients srcs may hold key's records from
// version from on, which the cluster's history replaced.
func (r *Relay) MarkReplaced(ctx context.Context, key collab.Key, from uint64, srcs []string, ttl time.Duration) error {
	if len(srcs) == 0 {
		return nil
	}
	args := make([]any, 0, 2+len(srcs))
	args = append(args, from, max(1, int64(ttl/time.Second)))
	for _, s := range srcs {
		args = append(args, s)
	}
	_, err := r.run(ctx, "mark_replaced", markReplacedScript, []string{r.keys(key).replaced}, args...)
	return err
}

// Replaced returns the clients noted by MarkReplaced for key, each with
// the version its copy is good below.
func (r *Relay) Replaced(ctx context.Context, key collab.Key) (map[string]uint64, error) {
	start := time.Now()
	m, err := r.c.HGetAll(ctx, r.keys(key).replaced).Result()
	r.observe("replaced", start, &err)
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]uint64, len(m))
	for src, v := range m {
		if out[src], err = parseReplacedVersion(key, src, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseReplaced reads the replaced hash from a script's flat HGETALL
// reply (nil when empty).
func parseReplaced(key collab.Key, pairs []any) (map[string]uint64, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]uint64, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		src, _ := pairs[i].(string)
		v, _ := pairs[i+1].(string)
		n, err := parseReplacedVersion(key, src, v)
		if err != nil {
			return nil, err
		}
		out[src] = n
	}
	return out, nil
}

func parseReplacedVersion(key collab.Key, src, v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redisrelay: %s: replaced version %q of %s: %w", key, v, src, err)
	}
	return n, nil
}

// ClearReplaced forgets src for key: the client took the cluster's
// history (a fresh snapshot, or a catch-up from a version its copy is
// good at).
func (r *Relay) ClearReplaced(ctx context.Context, key collab.Key, src string) error {
	start := time.Now()
	err := r.c.HDel(ctx, r.keys(key).replaced, src).Err()
	r.observe("clear_replaced", start, &err)
	return err
}

// observe records a round trip that is not a script (see run).
func (r *Relay) observe(op string, start time.Time, err *error) {
	d := time.Since(start)
	r.stats.calls.Add(1)
	r.stats.callNanos.Add(uint64(d))
	if *err != nil {
		r.stats.callErrors.Add(1)
		*err = classify(op, *err)
	}
	if r.opts.Observe != nil {
		r.opts.Observe(op, d, *err)
	}
}

// MarkReplaced implements collab.ClusterLink.
func (l *link) MarkReplaced(ctx context.Context, from uint64, srcs []string) error {
	c := l.c
	return c.retry(ctx, func(ctx context.Context) error {
		return c.r.MarkReplaced(ctx, l.key, from, srcs, c.opts.ReplacedTTL)
	})
}

// ClearReplaced implements collab.ClusterLink.
func (l *link) ClearReplaced(ctx context.Context, src string) error {
	c := l.c
	return c.retry(ctx, func(ctx context.Context) error {
		return c.r.ClearReplaced(ctx, l.key, src)
	})
}
