package web

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coedit/coedit/collab"
)

// TestSrcFixedByDocumentAndChannelActions: the rule is that a
// connection's src cannot change once the Hub has seen the connection
// (collab.Conn: Src must not change from then on; ops, presence and the
// dedupe table carry it). So once a connection has made a request that
// reached the Hub with it, accepted or refused there, a later handshake
// cannot change its src. A request that never gave the Hub the connection
// (history reads, pings, queries, requests refused before the Hub) or
// that left nothing of it there (unsubscribes of what it never joined)
// leaves it free to reclaim one, as ShareDB lets every handshake do; for
// those the Hub is checked to hold nothing of the connection.
func TestSrcFixedByDocumentAndChannelActions(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	cases := []struct {
		name  string
		req   string
		fixes bool
	}{
		{"f", `{"a":"f","c":"docs","d":"x"}`, true},
		{"s", `{"a":"s","c":"docs","d":"x"}`, true},
		{"bf", `{"a":"bf","c":"docs","b":["x"]}`, true},
		{"bs", `{"a":"bs","c":"docs","b":["x"]}`, true},
		{"op", `{"a":"op","c":"docs","d":"new-ID","v":null,"seq":1,"create":{"type":"text-unicode","data":""}}`, true},
		{"p", `{"a":"p","ch":"room","id":"me","p":1,"pv":1}`, true},
		{"ps", `{"a":"ps","ch":"room","seq":1}`, true},
		{"pr", `{"a":"pr","ch":"room"}`, true},
		{"u", `{"a":"u","c":"docs","d":"x"}`, false},
		{"bu", `{"a":"bu","c":"docs","b":["x"]}`, false},
		{"pu", `{"a":"pu","ch":"room","seq":1}`, false},
		{"nf", `{"a":"nf","c":"docs","d":"x","id":1,"v":0}`, false},
		{"nt", `{"a":"nt","c":"docs","d":"x","id":1,"ts":0}`, false},
		{"pp", `{"a":"pp"}`, false},
		{"qu", `{"a":"qu","id":1}`, false},
		{"refused s", `{"a":"s","c":"docs"}`, false},
		{"refused op", `{"a":"op","c":"docs","d":"x","v":0,"op":[]}`, false},
		{"op the hub refuses", `{"a":"op","c":"docs","d":"none-ID","v":0,"seq":1,"op":["x"]}`, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The connections of the cases before have left the hub: for
			// the cases that must leave nothing there, and so that no
			// earlier connection's leaving (its presence going, after
			// "p") reaches this one between its reply and its handshake.
			waitFor(t, func() bool { return ts.hub.Stats().Conns == 0 })
			c := ts.connect(t)
			c.t = t
			c.sendRaw(strings.ReplaceAll(tc.req, "ID", fmt.Sprint(i)))
			c.recv()
			if !tc.fixes {
				if n := ts.hub.Stats().Conns; n != 0 {
					t.Fatalf("after %s the hub tracks %d connections; a src it may hold must not change", tc.req, n)
				}
			}
			issued, claim := c.src, fmt.Sprintf("claimed-%d", i)
			c.handshake(claim)
			want := claim
			if tc.fixes {
				want = issued
			}
			if c.src != want {
				t.Fatalf("hs after %s gave src %q, want %q", tc.req, c.src, want)
			}
		})
	}
}
