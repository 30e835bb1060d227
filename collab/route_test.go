package collab

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// logConn is a Conn that writes what it is sent to a log, one line per
// message: "op 5", or "ack 6" / "error" for its submits' replies.
type logConn struct {
	src string
	log *[]string
}

func (c *logConn) Src() string                       { return c.src }
func (c *logConn) SendOp(_ Key, rec Record)          { c.add(fmt.Sprint("op ", rec.Version)) }
func (c *logConn) SendPresence(PresenceUpdate)       {}
func (c *logConn) SendPresenceRequest(string)        {}
func (c *logConn) Drop(Key, error)                   { c.add("drop") }
func (c *logConn) Closed() bool                      { return false }
func (c *logConn) add(line string)                   { *c.log = append(*c.log, line) }
func (c *logConn) reply(res SubmitResult, err error) { c.add(replyLine(res, err)) }

func replyLine(res SubmitResult, err error) string {
	if err != nil {
		return "error"
	}
	return fmt.Sprint("ack ", res.Version)
}

// recs returns records [from, to), each made by srcs[v-from] when given.
func recsFrom(from, to uint64, srcs ...string) []Record {
	var out []Record
	for v := from; v < to; v++ {
		r := Record{Version: v, Kind: OpEdit}
		if i := int(v - from); i < len(srcs) {
			r.Src = srcs[i]
		}
		out = append(out, r)
	}
	return out
}

// TestDeliver: after a group commit, each connection is sent the records
// it missed and its ack, then the broadcasts it has not been sent, so
// that it sees every version once and in order.
func TestDeliver(t *testing.T) {
	type sub struct {
		conn string // "" for a submit without a Conn (the HTTP API)
		out  outcome
	}
	ack := func(v uint64, missed []Record) outcome {
		return outcome{res: SubmitResult{Version: v, Missed: missed}}
	}
	dup := func(v uint64, missed []Record) outcome {
		return outcome{res: SubmitResult{Version: v, Missed: missed, Duplicate: true}}
	}
	failed := outcome{err: errors.New("refused")}
	tests := []struct {
		name  string
		subs  []sub
		recs  []Record // the group's new records
		conns []string // subscribers
		want  map[string][]string
		// broadcasts is how many records deliver sends to subscribers
		// after the replies.
		broadcasts int
		// repeats: a connection is sent a version twice (only when a
		// client misbehaves).
		repeats bool
	}{
		{
			name: "two submitters at the same version",
			subs: []sub{{"a", ack(5, nil)}, {"b", ack(6, recsFrom(5, 6, "a"))}},
			recs: recsFrom(5, 7, "a", "b"), conns: []string{"a", "b", "watcher"},
			want: map[string][]string{
				"a":       {"ack 5", "op 6"},
				"b":       {"op 5", "ack 6"},
				"watcher": {"op 5", "op 6"},
			},
			broadcasts: 3,
		},
		{
			// A subscriber was sent the records before the group as they
			// were committed, so of what it missed it gets only the
			// group's.
			name: "a subscribed submit from far behind gets only the group's records again",
			subs: []sub{{"a", ack(5, nil)}, {"b", ack(6, recsFrom(3, 6, "x", "x", "a"))}, {"c", ack(7, recsFrom(5, 7, "a", "b"))}},
			recs: recsFrom(5, 8, "a", "b", "c"), conns: []string{"a", "b", "c"},
			want: map[string][]string{
				"a": {"ack 5", "op 6", "op 7"},
				"b": {"op 5", "ack 6", "op 7"},
				"c": {"op 5", "op 6", "ack 7"},
			},
			broadcasts: 3,
		},
		{
			name: "a submit from far behind that is not subscribed gets older records first",
			subs: []sub{{"a", ack(5, nil)}, {"b", ack(6, recsFrom(3, 6, "x", "x", "a"))}},
			recs: recsFrom(5, 7, "a", "b"), conns: []string{"a"},
			want: map[string][]string{
				"a": {"ack 5", "op 6"},
				"b": {"op 3", "op 4", "op 5", "ack 6"},
			},
			broadcasts: 1,
		},
		{
			name: "refused submits get their error and every broadcast",
			subs: []sub{{"a", failed}, {"b", ack(5, nil)}},
			recs: recsFrom(5, 6, "b"), conns: []string{"a", "b"},
			want:       map[string][]string{"a": {"error", "op 5"}, "b": {"ack 5"}},
			broadcasts: 1,
		},
		{
			// ShareDB's client resends before it subscribes again.
			name: "a resend of an old op: what it missed, its ack, then the group",
			subs: []sub{{"a", dup(2, recsFrom(1, 2, "x"))}, {"b", ack(5, nil)}},
			recs: recsFrom(5, 6, "b"), conns: []string{"b", "watcher"},
			want:       map[string][]string{"a": {"op 1", "ack 2"}, "b": {"ack 5"}, "watcher": {"op 5"}},
			broadcasts: 1,
		},
		{
			name: "a subscribed resend of an old op: its ack, then the group",
			subs: []sub{{"a", dup(2, recsFrom(1, 2, "x"))}, {"b", ack(5, nil)}},
			recs: recsFrom(5, 6, "b"), conns: []string{"a", "b"},
			want:       map[string][]string{"a": {"ack 2", "op 5"}, "b": {"ack 5"}},
			broadcasts: 1,
		},
		{
			// A client never resends an op before its ack; if it did, the
			// second ack repeats the first.
			name: "a resend inside the group",
			subs: []sub{{"a", ack(5, nil)}, {"b", ack(6, recsFrom(5, 6, "a"))}, {"a", dup(5, nil)}},
			recs: recsFrom(5, 7, "a", "b"), conns: []string{"a", "b"},
			want:       map[string][]string{"a": {"ack 5", "ack 5", "op 6"}, "b": {"op 5", "ack 6"}},
			broadcasts: 1, repeats: true,
		},
		{
			name: "submitters that are not subscribed get only their replies",
			subs: []sub{{"", ack(5, recsFrom(4, 5, "x"))}, {"a", ack(6, recsFrom(4, 6, "x", ""))}},
			recs: recsFrom(5, 7, "", "a"), conns: []string{"watcher"},
			want:       map[string][]string{"": {"ack 5"}, "a": {"op 4", "op 5", "ack 6"}, "watcher": {"op 5", "op 6"}},
			broadcasts: 2,
		},
		{
			name:  "a failed commit: errors, a resend of an older op still acked, no broadcast",
			subs:  []sub{{"a", failed}, {"b", dup(3, nil)}},
			conns: []string{"a", "b", "watcher"},
			want:  map[string][]string{"a": {"error"}, "b": {"ack 3"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := map[string]*[]string{}
			conns := map[string]*logConn{}
			conn := func(src string) *logConn {
				if conns[src] == nil {
					logs[src] = new([]string)
					conns[src] = &logConn{src: src, log: logs[src]}
				}
				return conns[src]
			}
			var jobs []*job
			var out []outcome
			for _, s := range tt.subs {
				c := conn(s.conn)
				j := &job{kind: jobSubmit, onSubmit: c.reply}
				if s.conn != "" {
					j.conn = c
				}
				jobs = append(jobs, j)
				out = append(out, s.out)
			}
			subs := map[Conn]struct{}{}
			for _, src := range tt.conns {
				subs[conn(src)] = struct{}{}
			}
			n := deliver(Key{"c", "d"}, jobs, out, tt.recs, subs, nil)
			for src, log := range logs {
				if !slices.Equal(*log, tt.want[src]) {
					t.Errorf("conn %q was sent %q, want %q", src, *log, tt.want[src])
				}
				if !tt.repeats && !increasing(*log) {
					t.Errorf("conn %q was sent %q: versions not once and in order", src, *log)
				}
			}
			if n != tt.broadcasts {
				t.Errorf("deliver counted %d broadcasts, want %d", n, tt.broadcasts)
			}
		})
	}
}

// increasing reports whether the versions of log's lines grow strictly.
func increasing(log []string) bool {
	last := -1
	for _, l := range log {
		var kind string
		var v int
		if _, err := fmt.Sscan(l, &kind, &v); err != nil {
			continue // "error"
		}
		if v <= last {
			return false
		}
		last = v
	}
	return true
}
