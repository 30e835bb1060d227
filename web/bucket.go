package web

import (
	"math"
	"sync/atomic"
	"time"
)

// bucketRate is the shape of a token bucket that many connections share:
// a token every interval, burst tokens at most. Durations are
// nanoseconds on the monotonic clock since epoch.
type bucketRate struct {
	epoch    time.Time
	interval int64 // 0: every call is allowed
	slack    int64 // (burst-1) * interval: how far ahead of now the bucket may run
}

// newBucketRate returns the rate of perSecond tokens a second with room
// for burst (at least 1). So that the arithmetic stays in an int64, a
// token comes back at least once every (math.MaxInt64/4)/burst
// nanoseconds (73 years over burst), however low perSecond is.
func newBucketRate(epoch time.Time, perSecond float64, burst int) *bucketRate {
	burst = max(burst, 1)
	longest := int64(math.MaxInt64/4) / int64(burst)
	r := &bucketRate{epoch: epoch, interval: longest}
	if perSecond > 0 && 1e9/perSecond < float64(longest) {
		r.interval = int64(1e9 / perSecond)
	}
	r.slack = int64(burst-1) * r.interval
	return r
}

// tokenBucket is one connection's token bucket, as golang.org/x/time/rate's
// Limiter counts (it starts full), in 16 bytes instead of a pointer
// to an 80-byte Limiter: every connection has two, for as long as it lives
// (scenario 5 of issue 11: memory per idle connection). It keeps the
// theoretical arrival time of the next token (the generic cell rate
// algorithm): a call is allowed when that time is at most slack ahead of
// now, and moves it one interval on. Safe for concurrent use.
type tokenBucket struct {
	rate *bucketRate
	tat  atomic.Int64 // nanoseconds since rate.epoch
}

func newTokenBucket(r *bucketRate) tokenBucket { return tokenBucket{rate: r} }

// Take takes a token whether or not one is there, and returns how long
// the caller must wait for it: zero within the burst, else the time
// until the bucket has earned it. A connection's reader waits that long
// before it answers the frame, so a client over the rate is slowed to
// it (and, once the socket's buffers fill, held back by TCP) rather than
// refused: a refused op is one the client rolls back, an edit lost.
func (b *tokenBucket) Take() time.Duration {
	return time.Duration(b.takeAt(int64(time.Since(b.rate.epoch))))
}

func (b *tokenBucket) takeAt(now int64) int64 {
	for {
		old := b.tat.Load()
		t := max(old, now)
		if b.tat.CompareAndSwap(old, t+b.rate.interval) {
			return max(t-now-b.rate.slack, 0)
		}
	}
}

// takeWithin takes a token if the caller need wait at most most for
// it, and returns the wait; else it takes nothing and returns the wait
// a token would need now.
func (b *tokenBucket) takeWithin(now, most int64) (int64, bool) {
	for {
		old := b.tat.Load()
		t := max(old, now)
		wait := max(t-now-b.rate.slack, 0)
		if wait > most {
			return wait, false
		}
		if b.tat.CompareAndSwap(old, t+b.rate.interval) {
			return wait, true
		}
	}
}

// full reports whether the bucket holds its whole burst at now: one
// made afresh would be the same.
func (b *tokenBucket) full(now int64) bool { return b.tat.Load() <= now }
