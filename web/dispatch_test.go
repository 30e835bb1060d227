package web

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coedit/coedit/collab"
)

// TestSrcFixedByDocumentAndChannelActions: once a connection has made an
// accepted request that involves a document or presence channel, a later
// handshake cannot change its src; unsubscribes, history reads, pings,
// queries and refused requests leave it free to reclaim one.
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
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.connect(t)
			c.t = t
			c.sendRaw(strings.ReplaceAll(tc.req, "ID", fmt.Sprint(i)))
			c.recv()
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
