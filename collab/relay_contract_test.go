package collab_test

import (
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/relaytest"
	"github.com/coedit/coedit/storage"
)

// TestLocalRelayContract runs the cluster seam's contract suite against
// LocalRelay and the single node's sequencer: the hubs of one case share
// one LocalRelay, and each document is written on one of them.
func TestLocalRelayContract(t *testing.T) {
	relays := map[*testing.T]*collab.LocalRelay{}
	relaytest.Run(t, relaytest.Factory{
		Node: func(t *testing.T, _ *storage.DB) (collab.Relay, collab.Sequencer) {
			r := relays[t]
			if r == nil {
				r = collab.NewLocalRelay(100)
				relays[t] = r
			}
			return r, nil
		},
	})
}
