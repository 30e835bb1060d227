package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantilesWithinPrecision records random latencies spread
// over six orders of magnitude and checks each reported quantile against
// the exact one from the sorted values: never below it, and at most 1/64
// above it (one sub-bucket).
func TestHistogramQuantilesWithinPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 20000)
	for i := range vals {
		vals[i] = int64(float64(time.Microsecond) * float64(r.ExpFloat64()) * float64(int64(1)<<r.IntN(20)))
		h.Record(time.Duration(vals[i]))
	}
	slices.Sort(vals)
	for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := max(1, int(float64(len(vals))*q+0.999999))
		exact := vals[min(rank, len(vals))-1]
		got := int64(h.Quantile(q))
		if got < exact || float64(got-exact) > float64(exact)/64+1 {
			t.Errorf("Quantile(%v) = %d, want within 1/64 above %d", q, got, exact)
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) || h.Count() != uint64(len(vals)) {
		t.Errorf("Max, Count = %v, %d; want %v, %d", h.Max(), h.Count(), time.Duration(vals[len(vals)-1]), len(vals))
	}
}

// TestHistogramBucketsTile checks that consecutive buckets cover every
// value once: bucket i ends one below where bucket i+1 starts.
func TestHistogramBucketsTile(t *testing.T) {
	for i := 0; i < histBuckets-1; i++ {
		hi := bucketHigh(i)
		if bucketOf(hi) != i || bucketOf(hi+1) != i+1 {
			t.Fatalf("bucket %d ends at %d: bucketOf(%d) = %d, bucketOf(%d) = %d", i, hi, hi, bucketOf(hi), hi+1, bucketOf(hi+1))
		}
	}
}

func TestHistogramMergeAndReset(t *testing.T) {
	var a, b Histogram
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	b.Record(5 * time.Millisecond)
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != 5*time.Millisecond || a.Mean() != 3*time.Millisecond {
		t.Errorf("after Merge: Count, Max, Mean = %d, %v, %v; want 3, 5ms, 3ms", a.Count(), a.Max(), a.Mean())
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.5) != 0 || a.Max() != 0 {
		t.Errorf("after Reset: Count, p50, Max = %d, %v, %v; want zeros", a.Count(), a.Quantile(0.5), a.Max())
	}
}
