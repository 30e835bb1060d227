package redistest

import (
	"strings"
	"testing"
)

// TestServerKeepsAOFAcrossKill checks the promise the Redis tests build
// on: with AOF always, a write acknowledged before kill -9 is there
// after Restart, and RestartEmpty forgets it.
func TestServerKeepsAOFAcrossKill(t *testing.T) {
	s := StartServer(t, ServerOptions{AOF: true})
	if got, err := command(s.Addr(), "SET", "k", "v"); err != nil || got != "OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	s.Kill()
	if err := ping(s.Addr()); err == nil {
		t.Fatalf("PING after Kill succeeded")
	}
	s.Restart()
	if got, err := command(s.Addr(), "GET", "k"); err != nil || got != "v" {
		t.Fatalf("GET after Restart = %q, %v; want v", got, err)
	}
	s.RestartEmpty()
	if got, err := command(s.Addr(), "EXISTS", "k"); err != nil || got != "0" {
		t.Fatalf("EXISTS after RestartEmpty = %q, %v; want 0", got, err)
	}
}

// TestClusterStarts checks that the three masters agree on a working
// cluster that covers every slot.
func TestClusterStarts(t *testing.T) {
	c := StartCluster(t, ServerOptions{})
	info, err := command(c.Servers[0].Addr(), "CLUSTER", "INFO")
	if err != nil {
		t.Fatalf("CLUSTER INFO = %v", err)
	}
	for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:3"} {
		if !strings.Contains(info, want) {
			t.Errorf("CLUSTER INFO lacks %q:\n%s", want, info)
		}
	}
}
