package redisrelay

import (
	"context"
	"time"

	"github.com/coedit/coedit/collab"
)

// Turns: how two nodes that both take submits for one document share it.
//
// Every node commits a document's records with the commit script, which
// refuses a batch made against an old head (Conflict) and hands back the
// records the loser missed; the loser's session adopts them, plans its
// submits again and tries again. With clients of one document on two
// nodes, both commit all the time, and the loser of each race is a round
// trip and a store write behind the winner when it tries again: it could
// lose many times in a row (collab's maxSequenceTries, then
// collab.ErrContended and a 1012 close for its clients).
//
// So the commit script keeps, per document, whose turn the next commit
// is (the "turn" hash, same hash tag): a node that lost reserveAfter
// races in a row takes the next turn (or the one after, if another node
// holds it); a node at the head whose turn it is not is answered Wait
// (and becomes next if it too lost that often); the holder's commit
// hands the turn on. A node answered Wait waits for the
// holder's doorbell, and takes the records it carries as the ones it
// missed (no second round trip), or, when the doorbell does not come
// (lost, or the holder gave up or died), for the turn to expire
// (ClusterOptions.TurnTTL after it was taken) and commits again. Under
// contention a node loses at most a few races in a row; without it
// nobody holds a turn and a commit costs one HMGET more in the script.
//
// Turns only order tries: the expect check, the (src, seq) check and the
// epoch are what keep the history right, as before, and a node that
// ignores turns (Relay.Commit) or outlives one is still answered
// correctly.

// reserveAfter is how many races in a row a node loses before it takes
// a turn. Each wait for a turn costs the waiter the holder's whole cycle
// (doorbell, adopt and its store write, plan, commit), so turns are for
// stopping a node from losing again and again, not for every race:
// scenario 7's open loop (2,000 ops/s) held its rate with 6 and fell to
// 1,000-1,300 ops/s with 2 when first measured, where the waits fed the
// backlog they were meant to drain; measured again, 1 and 2 held that
// rate, and 1 to 3 cut the closed loop's p99 by a quarter to a half, but
// with 2 (the only one run so) the other node's copy trailed the ack by
// 80 ms instead of 8-17 (docs/decisions.md, 2026-12-07). 6 stays well
// below collab's maxSequenceTries (32).
const reserveAfter = 6

// maxTurnWaits bounds the Waits one Sequence call takes before it commits
// without taking turns (a stuck turn cannot hold a session for long).
const maxTurnWaits = 8

// waitTurn waits until the link heard a doorbell past expect under
// epoch, for at most d, and returns the records [expect, heard) the
// doorbells carried if it has all of them.
func (l *link) waitTurn(ctx context.Context, epoch string, expect uint64, d time.Duration) []collab.Record {
	l.mu.Lock()
	if l.epoch != epoch {
		l.mu.Unlock()
		return nil
	}
	l.waitFrom, l.waitBuf, l.waiting = expect, l.waitBuf[:0], true
	ch := make(chan struct{})
	l.wake = ch
	l.mu.Unlock()
	t := time.NewTimer(d)
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	buf := l.waitBuf
	l.waiting, l.wake, l.waitBuf = false, nil, nil
	if l.epoch != epoch || len(buf) == 0 || buf[0].Version != expect {
		return nil
	}
	return buf
}

// heard is called by deliver (l.mu held) with the records one doorbell
// of the link's epoch carried: a Sequence waiting for its turn keeps
// those from its expected version on, and wakes once it has some.
func (l *link) heard(recs []collab.Record) {
	if !l.waiting {
		return
	}
	for _, r := range recs {
		switch {
		case r.Version < l.waitFrom:
		case r.Version == l.waitFrom+uint64(len(l.waitBuf)):
			l.waitBuf = append(l.waitBuf, r)
		default:
			// A gap (a doorbell was lost): what was kept is not all that
			// was missed; the commit that follows the wait reads it.
			l.waitBuf = l.waitBuf[:0]
			l.waitFrom = ^uint64(0)
		}
	}
	if l.wake != nil && len(l.waitBuf) > 0 {
		close(l.wake)
		l.wake = nil
	}
}
