package storage

import (
	"time"

	"github.com/coedit/coedit/collab"
)

// Waiting for company (Options.CompanyWait).
//
// Under light load spread over many documents, calls to Commit seldom
// meet: each arrives while no write is in flight, leads at once, and
// pays a sync of its own. On a VM a sync costs more CPU than the rest of
// an op's work in the store (docs/profile.md), so at 2,000 ops/s over
// 100 documents the store synced 0.7 times per op. A leader that waits a
// little before writing lets the next call share its sync, at the price
// of that wait added to its own ack.
//
// A fixed wait (MaxBatchDelay) puts that price on every batch, including
// a lone document's closed loop, whose next commit comes only as its
// clients answer the acks this write holds back: there the wait is all
// loss. So the leader waits only when company is likely, judged from the
// latest arrivals: calls for documents other than those in its batch,
// arrived recently and often enough that one more is a fair chance
// within the wait (companyMin). A batch that already carries
// companyBatch calls (or is full) does not wait either: one more shares
// its sync little. The wait ends at the first call that joins.

const (
	// arrivalRingSize is how many of the latest calls the leader looks
	// at.
	arrivalRingSize = 16
	// companyWindow is how far back, in waits, an arrival counts.
	companyWindow = 10
	// companyMin is how many arrivals from other documents the window
	// must hold for the leader to wait: at 2 in ten waits' time, 0.2 of
	// a call is expected in the wait, against the sync (tens of µs of
	// CPU) that a call sharing it saves.
	companyMin = 2
	// companyBatch is the batch size from which a leader never waits.
	companyBatch = 4
)

// arrival is one call to join: when, and for which document.
type arrival struct {
	at  int64 // monotonic nanoseconds (nanotime)
	key collab.Key
}

// arrivalRing holds the latest arrivals, newest at next-1. cmu guards it.
type arrivalRing struct {
	a    [arrivalRingSize]arrival
	next int
}

func (r *arrivalRing) add(at int64, key collab.Key) {
	r.a[r.next%arrivalRingSize] = arrival{at, key}
	r.next++
}

// clockStart anchors nanotime's monotonic clock.
var clockStart = time.Now()

// nanotime returns monotonic nanoseconds since clockStart.
func nanotime() int64 { return int64(time.Since(clockStart)) }

// companyDue reports whether a leader of batch should wait up to d for
// another call, as of now: when batch is small (and not full) and the
// ring holds at least companyMin calls for other documents within
// companyWindow waits of now. cmu is held.
func (db *DB) companyDue(batch []*commitReq, now int64, d time.Duration) bool {
	if d <= 0 || len(batch) >= min(companyBatch, db.opts.MaxBatch) || db.closed {
		return false
	}
	since := now - int64(companyWindow)*int64(d)
	n := 0
	for i := 1; i <= arrivalRingSize && i <= db.arrivals.next; i++ {
		a := &db.arrivals.a[(db.arrivals.next-i)%arrivalRingSize]
		if a.at < since {
			break
		}
		if inBatch(batch, a.key) {
			continue
		}
		if n++; n >= companyMin {
			return true
		}
	}
	return false
}

// inBatch reports whether a request for key is in batch.
func inBatch(batch []*commitReq, key collab.Key) bool {
	for _, r := range batch {
		if r.key == key {
			return true
		}
	}
	return false
}
