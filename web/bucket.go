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
// Limiter.Allow counts (it starts full), in 16 bytes instead of a pointer
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

// Allow reports whether a token is there now, and takes it if so.
func (b *tokenBucket) Allow() bool {
	return b.allowAt(int64(time.Since(b.rate.epoch)))
}

func (b *tokenBucket) allowAt(now int64) bool {
	for {
		old := b.tat.Load()
		t := max(old, now)
		if t-now > b.rate.slack {
			return false
		}
		if b.tat.CompareAndSwap(old, t+b.rate.interval) {
			return true
		}
	}
}
