package web

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestTokenBucketMatchesLimiter drives tokenBucket and x/time/rate's
// Limiter through the same calls at the same (simulated) times and
// checks that they allow the same ones.
func TestTokenBucketMatchesLimiter(t *testing.T) {
	epoch := time.Now()
	cases := []struct {
		perSecond float64
		burst     int
		step      time.Duration // between calls
	}{
		{100, 200, 3 * time.Millisecond},
		{100, 5, 2 * time.Millisecond},
		{1000, 2000, 100 * time.Microsecond},
		{3, 6, 100 * time.Millisecond},
		{100.0 / 60, 100, 200 * time.Millisecond},
		{1, 1, 300 * time.Millisecond},
		{0.5, 3, 700 * time.Millisecond},
	}
	for _, tc := range cases {
		lim := rate.NewLimiter(rate.Limit(tc.perSecond), tc.burst)
		b := newTokenBucket(newBucketRate(epoch, tc.perSecond, tc.burst))
		allowed := 0
		for i := range 5000 {
			// Bursts of calls at one instant, then a pause.
			at := time.Duration(i/7) * tc.step * 7
			if i%7 != 0 {
				at += tc.step / 3
			}
			want := lim.AllowN(epoch.Add(at), 1)
			if _, got := b.takeWithin(int64(at), 0); got != want {
				t.Fatalf("rate %g burst %d: call %d at %v: allowed %v, Limiter %v", tc.perSecond, tc.burst, i, at, got, want)
			}
			if want {
				allowed++
			}
		}
		if allowed == 0 || allowed == 5000 {
			t.Fatalf("rate %g burst %d: %d of 5000 allowed: the case tests nothing", tc.perSecond, tc.burst, allowed)
		}
	}
}

// TestTokenBucketTakeMatchesReserve: Take waits what x/time/rate's
// Limiter says a reservation must wait, for calls that come faster than
// the rate and slower, and takeWithin takes only what it may wait for.
func TestTokenBucketTakeMatchesReserve(t *testing.T) {
	epoch := time.Now()
	for _, tc := range []struct {
		perSecond float64
		burst     int
		step      time.Duration
	}{
		{100, 200, 3 * time.Millisecond},
		{100, 5, 2 * time.Millisecond},
		{20, 4, 70 * time.Millisecond},
		{1, 2, 100 * time.Millisecond},
	} {
		lim := rate.NewLimiter(rate.Limit(tc.perSecond), tc.burst)
		b := newTokenBucket(newBucketRate(epoch, tc.perSecond, tc.burst))
		waited := 0
		for i := range 2000 {
			at := time.Duration(i) * tc.step
			if i%100 >= 50 {
				at = time.Duration(i-i%100+50) * tc.step // half of each hundred at one instant
			}
			want := lim.ReserveN(epoch.Add(at), 1).DelayFrom(epoch.Add(at))
			got := time.Duration(b.takeAt(int64(at)))
			// The Limiter counts in float tokens, the bucket in whole
			// nanosecond intervals: they may differ by the rounding.
			if d := got - want; d < -time.Microsecond || d > time.Microsecond {
				t.Fatalf("rate %g burst %d: call %d at %v waits %v, Limiter %v", tc.perSecond, tc.burst, i, at, got, want)
			}
			if got > 0 {
				waited++
			}
		}
		if waited == 0 {
			t.Fatalf("rate %g burst %d: no call waited: the case tests nothing", tc.perSecond, tc.burst)
		}
	}
	b := newTokenBucket(newBucketRate(epoch, 10, 1))
	if w, ok := b.takeWithin(0, 0); !ok || w != 0 {
		t.Fatalf("first call: %v, %v; want the burst's token at once", w, ok)
	}
	if w, ok := b.takeWithin(0, int64(50*time.Millisecond)); ok || w != int64(100*time.Millisecond) {
		t.Fatalf("second call, may wait 50 ms: %v, %v; want refused, owed 100 ms", time.Duration(w), ok)
	}
	if w, ok := b.takeWithin(0, int64(100*time.Millisecond)); !ok || w != int64(100*time.Millisecond) {
		t.Fatalf("second call, may wait 100 ms: %v, %v; want taken, 100 ms to wait", time.Duration(w), ok)
	}
}

// TestTokenBucketEdges: a huge rate allows everything, a zero rate only
// the burst.
func TestTokenBucketEdges(t *testing.T) {
	epoch := time.Now()
	b := newTokenBucket(newBucketRate(epoch, 1e12, 1))
	for i := range 1000 {
		if _, ok := b.takeWithin(int64(i), 0); !ok {
			t.Fatalf("rate 1e12: call %d refused", i)
		}
	}
	z := newTokenBucket(newBucketRate(epoch, 0, 3))
	for i := range 3 {
		if _, ok := z.takeWithin(int64(i), 0); !ok {
			t.Fatalf("rate 0 burst 3: call %d refused", i)
		}
	}
	if _, ok := z.takeWithin(int64(100*24*time.Hour), 0); ok {
		t.Fatal("rate 0: a token came back within 100 days")
	}
	m := newTokenBucket(newBucketRate(epoch, 1e-30, math.MaxInt32))
	if _, ok := m.takeWithin(0, 0); !ok {
		t.Fatal("tiny rate, huge burst: first call refused")
	}
}

// TestTokenBucketConcurrent: goroutines racing for a bucket that gets no
// tokens back share exactly its burst.
func TestTokenBucketConcurrent(t *testing.T) {
	b := newTokenBucket(newBucketRate(time.Now(), 1e-9, 1000))
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if _, ok := b.takeWithin(int64(time.Since(b.rate.epoch)), 0); ok {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 1000 {
		t.Fatalf("%d allowed, want the burst of 1000", n)
	}
}
