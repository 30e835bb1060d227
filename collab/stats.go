package collab

import "sync/atomic"

// Stats is a snapshot of a Hub's counters, for metrics. Counters only grow
// (since NewHub); Sessions and Conns are current values.
type Stats struct {
	// Sessions is the number of running document sessions.
	Sessions int
	// Conns is the number of connections the Hub tracks: those
	// subscribed to a document or presence channel, or with presence.
	Conns int
	// SessionsStarted and SessionsStopped count session lifetimes.
	SessionsStarted uint64
	SessionsStopped uint64
	// Submits counts submits a session processed, whatever the outcome.
	Submits uint64
	// SubmitErrors counts submits refused by a session (invalid, too
	// large, conflicting, or failed to commit).
	SubmitErrors uint64
	// Duplicates counts resends acknowledged at their original version.
	Duplicates uint64
	// OpsCommitted counts records committed by this node's submits.
	OpsCommitted uint64
	// CommitBatches counts Store.Commit calls for submits: OpsCommitted
	// divided by CommitBatches is the average group commit size.
	CommitBatches uint64
	// CommitErrors counts failed Store.Commit calls.
	CommitErrors uint64
	// RemoteRecords counts records other nodes committed that this node
	// applied: from the Relay, or returned by a Sequencer conflict.
	RemoteRecords uint64
	// CommitConflicts counts group commits the Sequencer refused because
	// other nodes had committed first; each is adopted, planned again and
	// retried (see ErrContended).
	CommitConflicts uint64
	// Syncs counts catch-ups with a cluster's commit point, SyncErrors
	// the failed ones, and Forks those that dropped records the
	// cluster's history replaced (cluster.go).
	Syncs      uint64
	SyncErrors uint64
	Forks      uint64
	// ReplacedRefused counts requests refused with ErrHistoryReplaced:
	// their client's copy held records a fork dropped.
	ReplacedRefused uint64
	// Broadcasts counts records sent to subscribers (one per receiver).
	Broadcasts uint64
	// Presence counts presence updates relayed.
	Presence uint64
	// CatchUps counts requests made at a version older than their
	// session's in-memory window, whose records the Hub's readers read
	// from the Store (and sent) off the session goroutine.
	CatchUps uint64
	// Busy counts requests refused with ErrBusy: their session had
	// Options.MaxInbox requests waiting.
	Busy uint64
}

// counters are the Hub's atomic counters behind Stats.
type counters struct {
	sessionsStarted atomic.Uint64
	sessionsStopped atomic.Uint64
	submits         atomic.Uint64
	submitErrors    atomic.Uint64
	duplicates      atomic.Uint64
	opsCommitted    atomic.Uint64
	commitBatches   atomic.Uint64
	commitErrors    atomic.Uint64
	remoteRecords   atomic.Uint64
	commitConflicts atomic.Uint64
	syncs           atomic.Uint64
	syncErrors      atomic.Uint64
	forks           atomic.Uint64
	replacedRefused atomic.Uint64
	broadcasts      atomic.Uint64
	presence        atomic.Uint64
	catchUps        atomic.Uint64
	busy            atomic.Uint64
}

// Stats returns the Hub's current counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	sessions := len(h.sessions)
	h.mu.Unlock()
	h.pmu.Lock()
	conns := len(h.conns)
	h.pmu.Unlock()
	c := &h.stats
	return Stats{
		Sessions:        sessions,
		Conns:           conns,
		SessionsStarted: c.sessionsStarted.Load(),
		SessionsStopped: c.sessionsStopped.Load(),
		Submits:         c.submits.Load(),
		SubmitErrors:    c.submitErrors.Load(),
		Duplicates:      c.duplicates.Load(),
		OpsCommitted:    c.opsCommitted.Load(),
		CommitBatches:   c.commitBatches.Load(),
		CommitErrors:    c.commitErrors.Load(),
		RemoteRecords:   c.remoteRecords.Load(),
		CommitConflicts: c.commitConflicts.Load(),
		Syncs:           c.syncs.Load(),
		SyncErrors:      c.syncErrors.Load(),
		Forks:           c.forks.Load(),
		ReplacedRefused: c.replacedRefused.Load(),
		Broadcasts:      c.broadcasts.Load(),
		Presence:        c.presence.Load(),
		CatchUps:        c.catchUps.Load(),
		Busy:            c.busy.Load(),
	}
}
