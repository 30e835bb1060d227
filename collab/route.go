package collab

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
// replies carried and its own records.
func deliver(key Key, jobs []*job, out []outcome, recs []Record, subs map[Conn]struct{}) int {
	for i, j := range jobs {
		o := out[i]
		if o.err != nil {
			j.onSubmit(SubmitResult{}, o.err)
			continue
		}
		if j.conn != nil {
			for _, m := range o.res.Missed {
				j.conn.SendOp(key, m)
			}
		}
		j.onSubmit(o.res, nil)
	}
	if len(recs) == 0 {
		return 0
	}
	return broadcast(key, recs, subs, seen(jobs, out, recs[0].Version))
}

// seen returns, for each connection that submitted in a group whose new
// records start at version start, the version below which its replies
// carried every record of the group: its missed records and its ack
// cover the versions [ack-len(missed), ack], so when that range reaches
// back to what it has already been sent of the group, it has been sent
// everything up to its ack. The broadcasts skip those versions.
// Connections that have nothing to skip are absent.
func seen(jobs []*job, out []outcome, start uint64) map[Conn]uint64 {
	var has map[Conn]uint64
	for i, j := range jobs {
		o := out[i]
		if o.err != nil || j.conn == nil {
			continue
		}
		got, ok := has[j.conn]
		if !ok {
			got = start
		}
		if first := o.res.Version - uint64(len(o.res.Missed)); first <= got {
			if has == nil {
				has = make(map[Conn]uint64)
			}
			has[j.conn] = max(got, o.res.Version+1)
		}
	}
	return has
}

// broadcast sends each of recs to every subscriber that receives it, and
// returns how many it sent.
func broadcast(key Key, recs []Record, subs map[Conn]struct{}, has map[Conn]uint64) int {
	n := 0
	for _, rec := range recs {
		for c := range subs {
			if receives(c, rec, has) {
				c.SendOp(key, rec)
				n++
			}
		}
	}
	return n
}

// receives reports whether the subscriber c is sent rec as a broadcast:
// not its own record (its ack stands for it), and not one its replies
// already carried (has, from seen).
func receives(c Conn, rec Record, has map[Conn]uint64) bool {
	if rec.Src != "" && c.Src() == rec.Src {
		return false
	}
	if v, ok := has[c]; ok && rec.Version < v {
		return false
	}
	return true
}
