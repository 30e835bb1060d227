package redisrelay_test

import (
	"testing"

	"github.com/coedit/coedit/internal/redistest"
)

// BenchmarkClusterFetch measures a fetch on a node whose session of the
// document is open: each one syncs with Redis first (the cost a
// subscribe or fetch pays to answer with the cluster's state).
func BenchmarkClusterFetch(b *testing.B) {
	srv := redistest.StartServer(b, redistest.ServerOptions{})
	n := startNode(b, "a", srv.Addr(), prefix(b), nodeConfig{})
	key := docKey(1)
	submit(b, n, key, createSub("x", 1, "base"))
	for b.Loop() {
		fetch(b, n, key)
	}
}
