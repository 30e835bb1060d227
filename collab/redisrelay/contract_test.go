package redisrelay_test

import (
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/collab/relaytest"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/storage"
)

// TestClusterContract runs the cluster seam's contract suite against
// Redis: every node its own client, Relay and Cluster, one key prefix
// per case.
func TestClusterContract(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	prefixes := map[*testing.T]string{}
	relaytest.Run(t, relaytest.Factory{
		Orders:    true,
		SharedLog: true,
		Node: func(t *testing.T, db *storage.DB) (collab.Relay, collab.Sequencer) {
			p, ok := prefixes[t]
			if !ok {
				p = prefix(t)
				prefixes[t] = p
			}
			c, err := redisrelay.NewCluster(redisrelay.ClusterOptions{Relay: node(t, srv.Addr(), p, redisrelay.Options{}), Store: db})
			if err != nil {
				t.Fatalf("NewCluster() = %v", err)
			}
			return c, c
		},
	})
}
