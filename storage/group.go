package storage

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// Group commit, leader and followers. There is no committer goroutine:
// a Commit (or SaveSnapshot, Truncate) that finds no write in flight
// becomes the leader and writes its request on its own goroutine, with
// one frame and one sync (write, in commit.go); calls that arrive
// meanwhile queue and wait. When the leader is done it hands leadership
// to the oldest waiter, which writes everything queued by then as one
// batch, and so on until the queue is empty. So
//
//   - a lone commit costs no goroutine hand-off at all (the committer
//     cost two: caller to committer, committer back to caller), and a
//     waiter costs one wake-up, for its result or its turn to lead;
//   - no call waits for more than the write in flight when it arrived
//     and then its own batch's (and, for a small batch, its leader's
//     wait for company, company.go): a leader writes one batch and
//     passes on, and never writes another call's batch after its own;
//   - one goroutine writes at a time, as before (writeMu, which direct
//     also takes), and batches are written in the order they formed.
//
// cmu guards the queue and the leadership; the leader holds neither cmu
// nor anything else a reader needs while it writes. "The writer", in the
// other files, is whoever holds writeMu: the leader writing its batch, or
// direct (apply.go).

// enqueue runs r through a group commit and returns its result.
func (db *DB) enqueue(ctx context.Context, r *commitReq) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: commit %s: %w", r.key, err)
	}
	lead, err := db.join(r)
	if err != nil {
		return err
	}
	if lead {
		db.lead(r)
		return r.err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqCancelled) {
			// Whoever takes the queue next drops it.
			return fmt.Errorf("storage: commit %s: %w", r.key, ctx.Err())
		}
		// Taken: in a batch being written, or chosen to lead the next
		// one, which the others in the queue are waiting for.
		<-r.done
	}
	return db.finish(r)
}

// enqueueAsync runs r through a group commit like enqueue, and calls
// done with its result, without the caller waiting: r takes its place in
// the queue (or the leadership) here, so requests are batched in the
// order of the calls. A queued async request costs no goroutine while it
// waits: whoever writes it calls done, and when it is chosen to lead the
// next batch, the leader before starts a goroutine for it (lead).
func (db *DB) enqueueAsync(r *commitReq, done func(error)) {
	r.async = done
	lead, err := db.join(r)
	switch {
	case err != nil:
		done(err)
	case lead:
		// Taken already: requests queued before the goroutine leads
		// are batched after r.
		db.cmu.Unlock()
		go db.leadTaken(r)
	}
}

// join gives r its place: it makes r the leader, taken, and returns true
// with cmu held (the caller calls lead), or queues r and returns false.
// A closed store refuses r.
func (db *DB) join(r *commitReq) (bool, error) {
	db.cmu.Lock()
	if db.closed {
		db.cmu.Unlock()
		return false, fmt.Errorf("storage: commit %s: %w", r.key, ErrClosed)
	}
	if db.opts.CompanyWait > 0 {
		db.arrivals.add(nanotime(), r.key)
	}
	if !db.leading {
		db.leading = true
		r.state.Store(reqTaken)
		db.taken.Add(1)
		return true, nil
	}
	if r.async == nil {
		r.done = make(chan struct{}, 1)
	}
	db.queue = append(db.queue, r)
	if db.want > 0 && len(db.queue) >= db.want {
		db.kick()
	}
	db.cmu.Unlock()
	return false, nil
}

// finish completes a queued request once its done has fired: when it
// was chosen to lead the next batch, it writes that batch. It returns
// r's result.
func (db *DB) finish(r *commitReq) error {
	if r.lead {
		db.cmu.Lock()
		db.lead(r)
	}
	return r.err
}

// lead writes a batch of first, which is taken, and whatever is queued,
// delivers the batch's results, and hands leadership to the oldest waiter
// left or gives it up. It is called with cmu held and with db.leading
// set, and returns with cmu released; first's result is in first.err (and
// given to first.async, for an async request).
//
// A synchronous next leader is woken to lead on its caller's goroutine.
// An async one (a pipelined group commit, which nothing waits on) gets a
// goroutine of its own, started before this batch's results are
// delivered: the results ready their sessions on this P, each taking the
// P's next slot, so the new leader moves to the P's queue, where an idle
// P takes it at once. Its write and sync then run on one P while the
// sessions answer and plan on the other. Leading it here instead held
// this P in the sync (datasync) with the sessions queued behind it;
// yielding first made the sync wait until they had run.
func (db *DB) lead(first *commitReq) {
	var buf [16]*commitReq
	batch := db.takeQueued(append(buf[:0], first))
	switch {
	case db.opts.MaxBatchDelay > 0:
		if len(batch) < db.opts.MaxBatch && !db.closed {
			batch = db.wait(batch, db.opts.MaxBatchDelay, db.opts.MaxBatch-len(batch))
		}
	case db.opts.CompanyWait > 0 && db.companyDue(batch, nanotime(), db.opts.CompanyWait):
		db.companyWaits.Add(1)
		batch = db.wait(batch, db.opts.CompanyWait, 1)
	}
	db.cmu.Unlock()
	db.writeOrCrash(batch)
	db.cmu.Lock()
	next := db.successor()
	if next == nil {
		db.leading = false
		if db.closed {
			db.idle.Broadcast()
		}
	}
	db.cmu.Unlock()
	if next != nil {
		next.lead = true
		if next.async == nil {
			next.done <- struct{}{}
		} else {
			go db.leadTaken(next)
		}
	}
	for _, r := range batch {
		if r.async != nil {
			r.async(r.err)
		} else if r != first {
			r.done <- struct{}{}
		}
	}
	clear(batch)
}

// leadTaken takes cmu and leads r, an async request that join or the
// leader before chose to lead. It runs as a goroutine of its own, since
// no caller waits on an async request.
func (db *DB) leadTaken(r *commitReq) {
	db.cmu.Lock()
	db.lead(r)
}

// writeOrCrash writes batch, and ends the process if that panics: the
// leader is a caller's goroutine, maybe net/http's, which recovers
// panics, and would leave the store with a leader that never hands on
// and every later commit waiting for ever. A committer goroutine's panic
// ended the process; so does this, with the panic's stack, from a new
// goroutine that nothing recovers.
func (db *DB) writeOrCrash(batch []*commitReq) {
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			go panic(fmt.Sprintf("%v\n\noriginal stack:\n%s", r, stack))
			select {}
		}
	}()
	db.write(batch)
}

// takeQueued moves queued requests into batch, up to MaxBatch in all,
// dropping the cancelled ones. cmu is held.
func (db *DB) takeQueued(batch []*commitReq) []*commitReq {
	n := 0
	for n < len(db.queue) && len(batch) < db.opts.MaxBatch {
		r := db.queue[n]
		n++
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			db.taken.Add(1)
			batch = append(batch, r)
		}
	}
	db.dequeue(n)
	return batch
}

// successor takes the oldest request still queued, to lead the next
// batch, nil if none is. cmu is held.
func (db *DB) successor() *commitReq {
	for n := 0; n < len(db.queue); n++ {
		if r := db.queue[n]; r.state.CompareAndSwap(reqQueued, reqTaken) {
			db.taken.Add(1)
			db.dequeue(n + 1)
			return r
		}
	}
	db.dequeue(len(db.queue))
	return nil
}

// dequeue drops the first n requests of the queue. cmu is held.
func (db *DB) dequeue(n int) {
	if n == 0 {
		return
	}
	m := copy(db.queue, db.queue[n:])
	clear(db.queue[m:])
	db.queue = db.queue[:m]
}

// wait lets up to want more requests join batch (which has room for
// them), until that many are queued, d passes, or Close begins. cmu is
// held, and released while it waits.
func (db *DB) wait(batch []*commitReq, d time.Duration, want int) []*commitReq {
	db.want = want
	if len(db.queue) >= db.want {
		db.want = 0
		return db.takeQueued(batch)
	}
	db.cmu.Unlock()
	// One leader waits at a time, so one timer serves every wait; since
	// Go 1.23 a Reset timer delivers nothing from before it.
	if db.waitTimer == nil {
		db.waitTimer = time.NewTimer(d)
	} else {
		db.waitTimer.Reset(d)
	}
	select {
	case <-db.fill:
	case <-db.waitTimer.C:
	}
	db.waitTimer.Stop()
	db.cmu.Lock()
	db.want = 0
	// A kick sent after the timer fired must not cut the next wait short;
	// kicks are sent under cmu while want is set, so none follows this.
	select {
	case <-db.fill:
	default:
	}
	return db.takeQueued(batch)
}

// kick ends a leader's wait. cmu is held.
func (db *DB) kick() {
	select {
	case db.fill <- struct{}{}:
	default:
	}
}

// queued returns how many requests wait in the queue (cancelled ones
// included, until a leader drops them).
func (db *DB) queued() int {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	return len(db.queue)
}

// stopCommits makes new commits fail with ErrClosed and returns once the
// queued ones are written and no leader is left, for Close.
func (db *DB) stopCommits() {
	db.cmu.Lock()
	db.closed = true
	if db.want > 0 {
		db.kick()
	}
	for db.leading {
		db.idle.Wait()
	}
	db.cmu.Unlock()
}
