package web

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// TestOptionsBurstFollowsRate checks that a burst left at zero follows
// the rate set beside it, not the default rate: a library caller that
// sets only OpsPerSecond used to get a bucket of 200 whatever the rate.
func TestOptionsBurstFollowsRate(t *testing.T) {
	hub := new(collab.Hub) // withDefaults only checks that there is one
	for _, tc := range []struct {
		in                     Options
		opsBurst, messageBurst int
	}{
		{Options{}, 2 * DefaultOpsPerSecond, 2 * DefaultMessagesPerSecond},
		{Options{OpsPerSecond: 1}, 2, 2 * DefaultMessagesPerSecond},
		{Options{OpsPerSecond: 0.2, MessagesPerSecond: 0.75}, 1, 2},
		{Options{OpsPerSecond: 5000, MessagesPerSecond: 12000}, 10000, 24000},
		{Options{OpsPerSecond: 1e300, MessagesPerSecond: 1e12}, math.MaxInt32, math.MaxInt32},
		{Options{OpsPerSecond: 1, OpsBurst: 7, MessagesBurst: 9}, 7, 9},
	} {
		tc.in.Hub = hub
		got, err := tc.in.withDefaults()
		if err != nil || got.OpsBurst != tc.opsBurst || got.MessagesBurst != tc.messageBurst {
			t.Errorf("Options{OpsPerSecond: %v, MessagesPerSecond: %v, OpsBurst: %d, MessagesBurst: %d}.withDefaults() bursts = %d, %d (err %v); want %d, %d",
				tc.in.OpsPerSecond, tc.in.MessagesPerSecond, tc.in.OpsBurst, tc.in.MessagesBurst, got.OpsBurst, got.MessagesBurst, err, tc.opsBurst, tc.messageBurst)
		}
	}
}

// TestRateAloneSizesTheBucket runs a server configured with only
// OpsPerSecond: 1 and sends three submits at once over a real socket: the
// bucket holds two, so the third waits a second for its token (and only
// it: the readers' waits add up to that second), and all three are
// acknowledged.
func TestRateAloneSizesTheBucket(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, OpsPerSecond: 1}, collab.Options{})
	c := ts.connect(t)
	start := time.Now()
	c.sendRaw(`{"a":"op","c":"docs","d":"r","v":null,"seq":1,"create":{"type":"text-unicode","data":""}}`)
	for seq := 2; seq <= 3; seq++ {
		c.sendf(`{"a":"op","c":"docs","d":"r","v":null,"seq":%d,"op":["x"]}`, seq)
	}
	var got []string
	for len(got) < 3 {
		m := c.recv()
		if m["a"] != "op" {
			continue
		}
		code := "ack"
		if e, ok := m["error"].(map[string]any); ok {
			code = fmt.Sprint(e["code"])
		}
		got = append(got, fmt.Sprint(m["seq"], ":", code))
	}
	elapsed := time.Since(start)
	slices.Sort(got)
	if want := []string{"1:ack", "2:ack", "3:ack"}; !slices.Equal(got, want) {
		t.Errorf("three submits with only OpsPerSecond 1 set = %q, want %q", got, want)
	}
	if elapsed < 900*time.Millisecond {
		t.Errorf("three submits with only OpsPerSecond 1 set acknowledged in %v, want the third to wait about a second", elapsed)
	}
	_, body := ts.httpDo(t, "GET", "/metrics", "", "", nil)
	var waited float64
	if _, err := fmt.Sscanf(grepLines(body, `coedit_rate_wait_seconds_total{limit="ops"}`), `coedit_rate_wait_seconds_total{limit="ops"} %g`, &waited); err != nil || waited < 0.9 || waited > 1 {
		t.Errorf("the ops waits add up to %g s (%v), want the third's second (burst 2)", waited, err)
	}
}

// TestOptionsAuthAndLimits: the connection limits default to their
// documented values, and an auth secret shorter than 32 bytes is refused.
func TestOptionsAuthAndLimits(t *testing.T) {
	hub := new(collab.Hub)
	got, err := Options{Hub: hub}.withDefaults()
	if err != nil || got.MaxConns != DefaultMaxConns || got.MaxConnsPerAddr != DefaultMaxConnsPerAddr || got.MaxBadFrames != 100 {
		t.Fatalf("defaults: MaxConns %d, MaxConnsPerAddr %d, MaxBadFrames %d, err %v", got.MaxConns, got.MaxConnsPerAddr, got.MaxBadFrames, err)
	}
	if _, err := (Options{Hub: hub, AuthSecret: []byte("too short")}).withDefaults(); err == nil {
		t.Fatal("a 9-byte AuthSecret was accepted")
	}
	if _, err := (Options{Hub: hub, AuthSecret: testSecret}).withDefaults(); err != nil {
		t.Fatalf("a 32-byte AuthSecret: %v", err)
	}
}
