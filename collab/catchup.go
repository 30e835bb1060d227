package collab

import "errors"

// This file is the session's side of catch-ups: requests made at a
// version older than the session's in-memory window (a subscribe or fetch
// from an old version, a submit made long ago). Serving them needs the
// Store's op log, and reading it on the session goroutine stalled the
// document for everyone (issue 9, item 5: 40 fetches from version 0 of a
// 100,000-op document held another client's submit for 8 s). So the
// session hands such a request to the Hub's readers (readers.go), which
// read the records below the window in chunks and send them to the
// request's Conn as its send queue drains (Pacer), then give the request
// back; the session serves the rest from its window and, if the window
// moved on meanwhile, hands it out again for the gap.
//
// While a connection catches up on a document, the session sends it
// nothing else of that document: it is out of the subscriber set (live
// records would overtake the old ones), its later requests wait behind
// the catch-up in order, and when the catch-up reaches the window the
// session sends the rest and puts it back in the set, in one step on its
// goroutine, so the connection sees every version once, in order, with
// no gap (issue 9, item 6: a client more than a send queue behind could
// never catch up when the whole catch-up was queued at once).

// catchup is one request out at the readers, and what waits behind it.
// The session owns it; the readers own the readTask that carries it.
type catchup struct {
	job *job
	// wasSub: the connection was a subscriber when the catch-up began,
	// so it joins again at the end.
	wasSub bool
	// head is the session's head when the catch-up began.
	head uint64
	// held are the connection's later requests to this document.
	held []*job
}

// admit decides whether r is served now. It is not when r's connection
// is catching up on this document (r waits behind it; past
// Options.MaxInbox held requests, a request fails with ErrBusy), when
// the connection has closed (a request is dropped with ErrConnClosed:
// nobody would read the answer), or when r needs records older than the
// window (it goes to the readers).
func (s *session) admit(r *job) bool {
	if c := r.conn; c != nil {
		if cu := s.behind[c]; cu != nil {
			if r.kind.bounded() && s.nheld >= s.h.opts.MaxInbox {
				r.fail(s.busy())
				return false
			}
			cu.held = append(cu.held, r)
			s.nheld++
			return false
		}
		if r.kind.bounded() && c.Closed() {
			r.fail(ErrConnClosed)
			return false
		}
		if err := s.admitCopy(r); err != nil {
			r.fail(err)
			return false
		}
	}
	if from, ok := s.catchUpFrom(r); ok {
		s.startCatchUp(r, from)
		return false
	}
	return true
}

// catchUpFrom returns the version from which r needs records the window
// does not hold, if it needs any.
func (s *session) catchUpFrom(r *job) (uint64, bool) {
	ws := s.windowStart()
	switch r.kind {
	case jobFetch:
		// Without a Conn the records are not sent, so not read.
		if r.conn == nil || r.from == nil || *r.from >= ws {
			return 0, false
		}
		return *r.from, true
	case jobSubmit:
		sub := r.sub
		if !sub.HasVersion || sub.Version >= ws || checkSubmission(sub) != nil {
			return 0, false
		}
		if last, ok := s.seqs.last[sub.Src]; sub.Src != "" && ok && sub.Seq == last.Seq && sub.Version > last.Version {
			return 0, false // a reused seq, refused without reading (dedupe)
		}
		if last, ok := s.seqs.last[sub.Src]; sub.Version < s.base && sub.Src != "" && ok && sub.Seq == last.Seq {
			// A resend made before the Store's base (BaseStore): the
			// records it missed are not on this node, but the seq
			// table knows it. It is acknowledged without them (dedupe;
			// the client finds its version behind and fetches).
			return 0, false
		}
		return sub.Version, true
	}
	return 0, false
}

// startCatchUp hands r to the readers for the records [from, head).
func (s *session) startCatchUp(r *job, from uint64) {
	// The readers read the Store, and the connection leaves subs: no
	// group may be out (pipeline.go).
	s.drain()
	cu := &catchup{job: r, head: s.doc.head}
	c := r.conn
	if c != nil {
		_, cu.wasSub = s.subs[c]
		delete(s.subs, c)
		s.behind[c] = cu
	}
	s.reading[cu] = struct{}{}
	s.h.stats.catchUps.Add(1)
	t := &readTask{s: s, key: s.key, cu: cu, conn: c, from: from, to: s.doc.head}
	if p, ok := c.(Pacer); ok {
		t.pacer = p
	}
	if r.kind == jobSubmit {
		sub := r.sub
		t.sub = &sub
		if cu.wasSub {
			t.sentBelow = cu.head
		}
	}
	if !s.h.reads.add(s.h, t) {
		t.err = ErrClosed
		s.resume(t)
	}
}

// resume takes a catch-up back from the readers: records [.., t.to) were
// sent (or, without a Conn, collected). If the window has moved past
// t.to, or the connection cannot take the rest now, the readers get it
// again for [t.to, head); otherwise the session sends the rest from the
// window and serves the request, then the requests held behind it.
func (s *session) resume(t *readTask) {
	cu := t.cu
	if _, ok := s.reading[cu]; !ok {
		return // answered already: the session failed meanwhile
	}
	r := cu.job
	c := r.conn
	if t.err == nil && c != nil && c.Closed() {
		t.err = ErrConnClosed
	}
	if t.err == nil && !t.dup && (t.to < s.windowStart() || s.tooMuchFor(t.pacer, t.to)) {
		t.from, t.to = t.to, s.doc.head
		if s.h.reads.add(s.h, t) {
			return
		}
		t.err = ErrClosed
	}
	delete(s.reading, cu)
	if c != nil {
		delete(s.behind, c)
	}
	rejoin := func() {
		if c != nil && cu.wasSub {
			s.subs[c] = struct{}{}
		}
	}
	// catchUpAndRejoin rejoins a subscriber that has not been sent the
	// records committed while it was out: it had every record below
	// cu.head (subs' invariant, see deliver), no broadcast since, and
	// every record below sent by the readers or its reply. sent is where
	// those ended; it is sent the rest, from there to the head.
	catchUpAndRejoin := func(sent uint64) {
		if c == nil || !cu.wasSub {
			return
		}
		recs, err := s.records(max(sent, cu.head), s.doc.head)
		if err != nil {
			// It cannot be brought up to date: it subscribes again.
			s.drop(c, err)
			return
		}
		for _, rec := range recs {
			c.SendOp(s.key, rec)
		}
		s.subs[c] = struct{}{}
	}
	switch {
	case t.err != nil:
		// A failed subscribe leaves the connection out, as it always
		// has; a closed one is about to leave anyway.
		if !errors.Is(t.err, ErrConnClosed) && !(r.kind == jobFetch && r.join) {
			catchUpAndRejoin(t.from) // the readers sent up to t.from
		}
		r.fail(t.err)
	case r.kind == jobFetch:
		recs, _ := s.records(t.to, s.doc.head) // in the window
		for _, rec := range recs {
			c.SendOp(s.key, rec)
		}
		if r.join {
			s.subs[c] = struct{}{}
		}
		rejoin()
		r.onSnapshot(s.doc.snapshot(), nil)
	case t.dup:
		// The readers stopped at the resend's record: the connection is
		// sent the records committed while it was out after its ack.
		s.h.stats.submits.Add(1)
		s.h.stats.duplicates.Add(1)
		rec := t.dupRec
		r.onSubmit(SubmitResult{Version: rec.Version, Op: rec.Op, Missed: t.collected, Duplicate: true, Record: rec}, nil)
		// The readers sent up to the resend's record, and its ack stands
		// for the record itself.
		catchUpAndRejoin(rec.Version + 1)
	default:
		// A submit, rebased over the records the readers read: it is
		// now made at t.to, inside the window, and planned as usual.
		// The connection rejoins after its reply, sent what it still
		// lacks: a commit's reply carries the records from t.to up to it;
		// a duplicate's (its original committed meanwhile, from another
		// connection) those up to the original; a refusal's none.
		r.sub.Version = t.to
		r.sub.Op = t.sub.Op
		r.missed = t.collected
		var got SubmitResult
		var gotErr error
		reply := r.onSubmit
		r.onSubmit = func(res SubmitResult, err error) {
			got, gotErr = res, err
			reply(res, err)
		}
		s.submitGroup([]*job{r})
		s.drain()
		switch {
		case gotErr != nil:
			catchUpAndRejoin(t.to)
		case got.Duplicate:
			catchUpAndRejoin(max(t.to, got.Version+1))
		default:
			catchUpAndRejoin(got.Version + 1)
		}
	}
	held := cu.held
	cu.held = nil
	s.nheld -= len(held)
	s.handle(held)
}

// tooMuchFor reports whether the records from version from to the head
// (in the window) are more than the connection with pacer p can queue
// now (half its room, leaving the rest for its other traffic); they then
// go through the readers, which wait for room.
func (s *session) tooMuchFor(p Pacer, from uint64) bool {
	if p == nil || from >= s.doc.head {
		return false
	}
	recs, _ := s.records(from, s.doc.head)
	return p.Room().fits(recs) < len(recs)
}
