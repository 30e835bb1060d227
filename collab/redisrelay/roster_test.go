package redisrelay_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// TestRosterNamesOneNodePerDocument: three nodes that see the same
// members name the same node for every document and share the documents
// out; when one leaves, only its documents move, and the others agree on
// where; a member passed over as down is left out by the node that found
// it down only.
func TestRosterNamesOneNodePerDocument(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	ro := redisrelay.RosterOptions{MemberTTL: 300 * time.Millisecond, DownFor: time.Hour}
	addrs := []string{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}
	var rs []*redisrelay.Roster
	for _, a := range addrs {
		r, err := node(t, srv.Addr(), p, redisrelay.Options{}).NewRoster(a, ro)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		rs = append(rs, r)
	}
	waitFor(t, "every node knows the three", func() bool {
		for _, r := range rs {
			if len(r.Members()) != 3 || r.PeerToken() == "" || r.PeerToken() != rs[0].PeerToken() {
				return false
			}
		}
		return true
	})
	// owner is the node r names for doc, its own included.
	owner := func(i int, doc string) string {
		if o := rs[i].Route(doc); o != "" {
			return o
		}
		return addrs[i]
	}
	const docs = 600
	before := make(map[string]string)
	count := make(map[string]int)
	for d := 0; d < docs; d++ {
		doc := fmt.Sprintf("notes/%d", d)
		o := owner(0, doc)
		for i := 1; i < 3; i++ {
			if got := owner(i, doc); got != o {
				t.Fatalf("%s: node %d names %s, node 0 names %s", doc, i, got, o)
			}
		}
		before[doc] = o
		count[o]++
	}
	for _, a := range addrs {
		// A fair share is 200; rendezvous hashing gives each node a
		// binomial share, far above 100 unless the score is broken.
		if count[a] < 100 {
			t.Errorf("node %s serves %d of %d documents: %v", a, count[a], docs, count)
		}
	}

	rs[2].Close()
	waitFor(t, "the others drop the node that left", func() bool {
		return len(rs[0].Members()) == 2 && len(rs[1].Members()) == 2
	})
	for doc, o := range before {
		now0, now1 := owner(0, doc), owner(1, doc)
		if now0 != now1 {
			t.Fatalf("%s: after a node left, node 0 names %s and node 1 %s", doc, now0, now1)
		}
		if o != addrs[2] && now0 != o {
			t.Fatalf("%s moved from %s to %s, though its node stayed", doc, o, now0)
		}
	}

	// Node 0 finds node 1 down: it serves node 1's documents itself;
	// node 1 still names itself.
	rs[0].Down(addrs[1])
	for doc := range before {
		if owner(1, doc) == addrs[1] && owner(0, doc) != addrs[0] {
			t.Fatalf("%s: node 0 names %s after finding node 1 down", doc, owner(0, doc))
		}
	}
}

// TestRosterRefusesAnAddressPeersCannotReach: an advertised address
// must name a host and a port the other nodes can dial.
func TestRosterRefusesAnAddressPeersCannotReach(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	for _, a := range []string{"", "8080", ":8080", "0.0.0.0:8080", "[::]:8080", "host:0", "host:"} {
		if ro, err := r.NewRoster(a, redisrelay.RosterOptions{}); err == nil {
			ro.Close()
			t.Errorf("NewRoster(%q) took it", a)
		}
	}
}

// TestRosterSaysRedisDoesNotAnswer: a roster whose Redis is gone says
// that Redis does not answer, not that its commands may be refused (which
// sent operators after their ACLs during an outage), and says so again
// when Redis is back.
func TestRosterSaysRedisDoesNotAnswer(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	logs := &syncBuffer{}
	n := node(t, srv.Addr(), prefix(t), redisrelay.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	r, err := n.NewRoster("10.0.0.1:8080", redisrelay.RosterOptions{MemberTTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	waitFor(t, "the roster read", func() bool { return r.PeerToken() != "" })
	srv.Kill()
	waitFor(t, "the outage logged", func() bool { return strings.Contains(logs.String(), "Redis does not answer") })
	if strings.Contains(logs.String(), "commands allowed") {
		t.Fatalf("an outage logged as refused commands:\n%s", logs)
	}
	srv.Restart()
	waitFor(t, "the return logged", func() bool { return strings.Contains(logs.String(), "Redis answers again") })
}
