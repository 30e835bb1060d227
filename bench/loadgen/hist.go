package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a log-linear latency histogram in the manner of HDR
// histograms: values (nanoseconds) fall in buckets whose width is 1/64 of
// their power of two, so every quantile it reports is within 1.6% of the
// true value, from 1 ns to about 290 years. Record is lock-free (one atomic
// add per bucket and a compare-and-swap loop for the maximum), so the
// generator's many reader goroutines record into one histogram without
// contending on a lock.
//
// The zero Histogram is empty and ready to use.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; wraps only after 584 years of latency
	max    atomic.Int64
}

const (
	histSubBits = 6 // 64 linear sub-buckets per power of two
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub // int64 values: the top exponent is 63-histSubBits
)

// bucketOf returns the bucket index of v >= 0. Values below 64 have a
// bucket each; above, the top histSubBits bits after the leading one pick
// the sub-bucket of v's power of two.
func bucketOf(v int64) int {
	if v < histSub {
		return int(max(v, 0))
	}
	exp := bits.Len64(uint64(v)) - histSubBits // >= 1
	return exp*histSub + int(uint64(v)>>(exp-1)) - histSub
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	exp, sub := i/histSub, i%histSub
	low := int64(histSub+sub) << (exp - 1)
	return low + (int64(1) << (exp - 1)) - 1
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Quantile returns the value at quantile q (0..1): the upper bound of the
// bucket holding it, capped at the maximum recorded, so that p100 is the
// exact maximum. An empty histogram gives 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = min(max(rank, 1), total)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Max returns the largest value recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the values recorded.
func (h *Histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Merge adds o's values into h. Neither needs to be quiet, but the result
// of merging a histogram that is being recorded into is approximate.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	for {
		m, v := h.max.Load(), o.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Reset empties h. Values recorded while it runs may be lost or kept.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.total.Store(0)
	h.sum.Store(0)
	h.max.Store(0)
}

// Summary is a histogram's figures, in milliseconds, for reports.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns h's figures.
func (h *Histogram) Summary() Summary {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Summary{Count: h.Count(), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
}
