package redisrelay

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Relay's counters, for metrics. Counters only
// grow (since New).
type Stats struct {
	// Calls counts round trips to Redis (scripts), CallErrors the failed
	// ones, and CallTime their total duration: CallTime/Calls is the mean
	// latency (Options.Observe gives each one).
	Calls      uint64
	CallErrors uint64
	CallTime   time.Duration
	// Commits counts Commit calls that committed their records (Repeats
	// of those were a repeat of an earlier call that had committed).
	// Records counts the records they committed.
	Commits uint64
	Repeats uint64
	Records uint64
	// Conflicts, Duplicates, Waits and EpochErrors count Commit
	// outcomes.
	Conflicts   uint64
	Waits       uint64
	Duplicates  uint64
	EpochErrors uint64
	// GapReads counts Read calls, GapRecords the records they returned.
	GapReads   uint64
	GapRecords uint64
	// Doorbells counts pub/sub messages received and BadDoorbells those
	// that did not decode.
	Doorbells    uint64
	BadDoorbells uint64
	// OwnDoorbells counts the doorbells of this Relay's own commits that
	// were passed over for the OthersOnly handlers (the Cluster's).
	OwnDoorbells uint64
	// Resyncs counts Handler.Resync calls: one per subscribed document
	// each time its subscription is (re)confirmed.
	Resyncs uint64
	// Pipelines counts the pipelines that carried queued commit calls
	// (pipeline.go); the calls in them count in Calls.
	Pipelines uint64
}

type counters struct {
	calls, callErrors, callNanos       atomic.Uint64
	commits, repeats, records          atomic.Uint64
	conflicts, duplicates, epochErrors atomic.Uint64
	waits                              atomic.Uint64
	gapReads, gapRecords               atomic.Uint64
	doorbells, badDoorbells, resyncs   atomic.Uint64
	ownDoorbells                       atomic.Uint64
	pipelines                          atomic.Uint64
}

// Stats returns the current counters.
func (r *Relay) Stats() Stats {
	c := &r.stats
	return Stats{
		Calls:        c.calls.Load(),
		CallErrors:   c.callErrors.Load(),
		CallTime:     time.Duration(c.callNanos.Load()),
		Commits:      c.commits.Load(),
		Repeats:      c.repeats.Load(),
		Records:      c.records.Load(),
		Conflicts:    c.conflicts.Load(),
		Duplicates:   c.duplicates.Load(),
		Waits:        c.waits.Load(),
		EpochErrors:  c.epochErrors.Load(),
		GapReads:     c.gapReads.Load(),
		GapRecords:   c.gapRecords.Load(),
		Doorbells:    c.doorbells.Load(),
		BadDoorbells: c.badDoorbells.Load(),
		OwnDoorbells: c.ownDoorbells.Load(),
		Resyncs:      c.resyncs.Load(),
		Pipelines:    c.pipelines.Load(),
	}
}
