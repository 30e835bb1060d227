package collab

import "math"

// outcome is one submit's result within a group commit.
type outcome struct {
	res SubmitResult
	err error
}

// deliver sends what a committed group owes, in this order: to each
// submit's connection the records it missed and then (to every submit) its
// reply; then each of recs, the group's new records, to the subscribers
// that have not been sent it. recs is empty when the group committed
// nothing. It returns the number of broadcasts sent.
//
// A connection sees every version once and in order (see seen): its
// missed records end just below its ack, and the broadcasts skip what its
// replies carried and its own records. A submitter that is subscribed is
// not sent the missed records older than the group: a subscriber has been
// sent every record below the head (the session's invariant: a connection
// joins subs only once it has been sent everything up to the head, and
// every record committed or adopted since went to it as a broadcast, a
// missed record, or its own ack), so they are already in its queue, in
// order. ShareDB sends them again; its client drops the copies.
//
// Each record of the group is encoded once for everyone it goes to, as a
// missed record or a broadcast (frames).
//
// With early (not nil: recs's frames), the subscribers that have no
// submit in the group were sent recs already (session.sendEarly): the
// broadcasts go only to the submitters' connections that subscribe, with
// the frames made then.
func deliver(key Key, jobs []*job, out []outcome, recs []Record, subs map[Conn]struct{}, early *frames) int {
	start := uint64(math.MaxUint64) // no new records: every missed one is older
	if len(recs) > 0 {
		start = recs[0].Version
	}
	f := frames{key: key, recs: recs}
	if early != nil {
		f.encs = early.encs // what sendEarly encoded, reused
	}
	// sent is how far each submitter was sent in this group: a resend in
	// the same group as its original, from the same connection, carries
	// the same missed records, which it must not get twice.
	var sent connVersions
	for i, j := range jobs {
		o := out[i]
		if o.err != nil {
			j.onSubmit(SubmitResult{}, o.err)
			continue
		}
		if j.conn != nil {
			_, sub := subs[j.conn]
			done, _ := sent.get(j.conn)
			for _, m := range o.res.Missed {
				if m.Version < done {
					continue
				}
				if m.Version < start {
					if !sub {
						j.conn.SendOp(key, m)
					}
					continue
				}
				f.send(j.conn, m)
			}
			if v := o.res.Version + 1; v > done {
				sent.set(j.conn, v)
			}
		}
		j.onSubmit(o.res, nil)
	}
	if len(recs) == 0 {
		return 0
	}
	var has connVersions
	seen(jobs, out, start, &has)
	if early != nil {
		return f.broadcastTo(submitters(jobs, subs), &has)
	}
	return f.broadcast(subs, &has)
}

// submitters returns the connections, each once, of jobs that are in subs.
func submitters(jobs []*job, subs map[Conn]struct{}) []Conn {
	var cs []Conn
	var in connVersions
	for _, j := range jobs {
		if j.conn == nil {
			continue
		}
		if _, ok := subs[j.conn]; !ok {
			continue
		}
		if _, dup := in.get(j.conn); dup {
			continue
		}
		in.set(j.conn, 0)
		cs = append(cs, j.conn)
	}
	return cs
}

// seen returns, for each connection that submitted in a group whose new
// records start at version start, the version below which its replies
// carried every record of the group: its missed records and its ack
// cover the versions [ack-len(missed), ack], so when that range reaches
// back to what it has already been sent of the group, it has been sent
// everything up to its ack. The broadcasts skip those versions.
// Connections that have nothing to skip are absent.
func seen(jobs []*job, out []outcome, start uint64, has *connVersions) {
	for i, j := range jobs {
		o := out[i]
		if o.err != nil || j.conn == nil {
			continue
		}
		got, ok := has.get(j.conn)
		if !ok {
			got = start
		}
		if first := o.res.Version - uint64(len(o.res.Missed)); first <= got {
			has.set(j.conn, max(got, o.res.Version+1))
		}
	}
}

// connVersions maps connections to versions (seen's result). It holds a
// few in an array and more in a map, so that the usual group commit, of
// one or a few submitters, allocates nothing for it, and a big one does
// not scan a long list for every subscriber.
type connVersions struct {
	n    int
	few  [8]connVersion
	many map[Conn]uint64
}

type connVersion struct {
	c Conn
	v uint64
}

// get returns c's version; a nil m holds none.
func (m *connVersions) get(c Conn) (uint64, bool) {
	if m == nil {
		return 0, false
	}
	if m.many != nil {
		v, ok := m.many[c]
		return v, ok
	}
	for i := range m.n {
		if m.few[i].c == c {
			return m.few[i].v, true
		}
	}
	return 0, false
}

// set sets c's version.
func (m *connVersions) set(c Conn, v uint64) {
	if m.many != nil {
		m.many[c] = v
		return
	}
	for i := range m.n {
		if m.few[i].c == c {
			m.few[i].v = v
			return
		}
	}
	if m.n < len(m.few) {
		m.few[m.n] = connVersion{c, v}
		m.n++
		return
	}
	m.many = make(map[Conn]uint64, 2*len(m.few))
	for _, e := range m.few {
		m.many[e.c] = e.v
	}
	m.many[c] = v
}

// broadcast sends each of recs to every subscriber that receives it, and
// returns how many it sent. A record goes to the SharedSenders among them
// encoded once.
func broadcast(key Key, recs []Record, subs map[Conn]struct{}, has *connVersions) int {
	f := frames{key: key, recs: recs}
	return f.broadcast(subs, has)
}

// frames sends a group's records, recs (consecutive versions), encoding
// each once for all the SharedSenders it goes to.
type frames struct {
	key  Key
	recs []Record
	encs []any // by index in recs; made at the first shared send
	few  [4]any
}

// send sends rec, one of f.recs, to c.
func (f *frames) send(c Conn, rec Record) {
	ss, ok := c.(SharedSender)
	if !ok || len(f.recs) == 0 || rec.Version < f.recs[0].Version || rec.Version-f.recs[0].Version >= uint64(len(f.recs)) {
		c.SendOp(f.key, rec)
		return
	}
	i := int(rec.Version - f.recs[0].Version)
	if f.encs == nil {
		f.encs = f.few[:0]
		if len(f.recs) > len(f.few) {
			f.encs = make([]any, 0, len(f.recs))
		}
		f.encs = f.encs[:len(f.recs)]
	}
	if f.encs[i] == nil {
		f.encs[i] = ss.EncodeOp(f.key, rec)
		if f.encs[i] == nil {
			c.SendOp(f.key, rec) // reports the failure
			return
		}
	}
	ss.SendEncoded(f.key, rec, f.encs[i])
}

// broadcast sends each record to every subscriber that receives it, and
// returns how many it sent.
func (f *frames) broadcast(subs map[Conn]struct{}, has *connVersions) int {
	n := 0
	for _, rec := range f.recs {
		for c := range subs {
			if !receives(c, rec, has) {
				continue
			}
			n++
			f.send(c, rec)
		}
	}
	return n
}

// broadcastTo is broadcast to the connections cs.
func (f *frames) broadcastTo(cs []Conn, has *connVersions) int {
	n := 0
	for _, rec := range f.recs {
		for _, c := range cs {
			if !receives(c, rec, has) {
				continue
			}
			n++
			f.send(c, rec)
		}
	}
	return n
}

// receives reports whether the subscriber c is sent rec as a broadcast:
// not its own record (its ack stands for it), and not one its replies
// already carried (has, from seen).
func receives(c Conn, rec Record, has *connVersions) bool {
	if rec.Src != "" && c.Src() == rec.Src {
		return false
	}
	if v, ok := has.get(c); ok && rec.Version < v {
		return false
	}
	return true
}
