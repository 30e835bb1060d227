package web

import (
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// TestPingWheel turns the server's ping wheel by hand (PingInterval is an
// hour, so its timer stays out of the way) and checks that a connection
// is pinged at the pingSlots-th turn after it opened, not before, and at
// every pingSlots-th turn after that: once every PingInterval.
func TestPingWheel(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, PingInterval: time.Hour, PongTimeout: 2 * time.Hour}, collab.Options{})
	addr := strings.TrimPrefix(strings.TrimSuffix(ts.wsURL, "/ws"), "ws://")
	a := rawDial(t, addr)
	// pinged reads c's frames up to the reply to a fetch sent now and
	// reports whether a ping came before it: a ping marked due before the
	// fetch is written first.
	pinged := func(c *rawClient) bool {
		t.Helper()
		c.send(t, `{"a":"f","c":"t","d":"x","v":null}`)
		ping := false
		for {
			op, p := c.frame(t)
			switch {
			case op == 0x9:
				if ping {
					t.Fatal("two pings in one turn")
				}
				ping = true
			case op == 0x1 && strings.Contains(string(p), `"a":"f"`):
				return ping
			}
		}
	}
	var b *rawClient
	bOpened := 0
	for turn := 1; turn <= 3*pingSlots; turn++ {
		ts.srv.pingTurn()
		if got, want := pinged(a), turn%pingSlots == 0; got != want {
			t.Fatalf("a, opened before turn 1: pinged at turn %d: %v, want %v", turn, got, want)
		}
		if b != nil {
			if got, want := pinged(b), (turn-bOpened)%pingSlots == 0; got != want {
				t.Fatalf("b, opened after turn %d: pinged at turn %d: %v, want %v", bOpened, turn, got, want)
			}
		}
		if turn == 5 {
			b, bOpened = rawDial(t, addr), turn
		}
	}
	a.nc.Close()
	b.nc.Close()
}
