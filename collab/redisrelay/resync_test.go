package redisrelay_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab/redisrelay/redisrelaytest"
	"github.com/coedit/coedit/internal/redistest"
)

// syncBuffer is a log sink tests read while nodes write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFailedResyncIsTriedAgain: node a holds records 7..9 that Redis
// lost, and a subscriber keeps its session open. Redis restarts refusing
// scripts (an ACL without EVAL and EVALSHA, as a Redis still loading its
// AOF refuses them), so the sync a's resubscription asks for fails and
// gives up. Once Redis takes scripts again, a must sync by itself, with
// no request, and put its records back (a renewal to version 10): no
// node renews on a read with nothing to put back, so a's own sync is the
// only one that would. It used to stay behind until a request came.
func TestFailedResyncIsTriedAgain(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "users.acl")
	writeACL := func(rules string) {
		t.Helper()
		if err := os.WriteFile(acl, []byte("user default on nopass ~* &* "+rules+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeACL("+@all")
	first := ""
	logs := &syncBuffer{}
	cfg := nodeConfig{retryFor: 300 * time.Millisecond, logger: slog.New(slog.NewTextHandler(logs, nil))}
	r, nodes := startNodes(t, redistest.ServerOptions{AOF: true, Args: []string{"--aclfile", acl}}, cfg, "a")
	a := nodes[0]
	key := createDoc(t, a, "")
	editN(t, a, key, "x", 2, 9)
	subscribe(t, a, key, newTestConn("w"))
	raw := newClient(t, r.srv.Addr())
	first = head(t, a, key).Epoch
	redisrelaytest.LoseTail(t, raw, r.prefix, key, 7, 10)

	writeACL("+@all -eval -evalsha")
	r.srv.Kill()
	r.srv.Restart()
	waitFor(t, "a's resubscription's sync to fail", func() bool {
		return strings.Contains(logs.String(), "cannot catch up with the cluster")
	})
	writeACL("+@all")
	if err := raw.Do(ctx(t), "ACL", "LOAD").Err(); err != nil {
		t.Fatalf("ACL LOAD = %v", err)
	}
	waitFor(t, "a to put its records back by itself", func() bool {
		h, ok, err := a.relay.Head(ctx(t), key)
		return err == nil && ok && !h.Restarted && h.Version == 10
	})
	// a's records are back at their own versions in a renewed epoch,
	// not offered again. (The renewal's own count is not checked: ACL
	// LOAD may close a's connection under the renewal's reply, and the
	// retried call then finds the epoch renewed.)
	h := head(t, a, key)
	if below, ok := h.Shared(first); h.Epoch == first || !ok || below != 10 {
		t.Fatalf("Redis's head %+v: want a renewed epoch sharing %s below 10", h, first)
	}
	if st := a.cluster.Stats(); st.Forks != 0 || st.Reoffered != 0 {
		t.Fatalf("a: %+v, want nothing forked or offered again", st)
	}
	log := opLog(t, a, key)
	for v := 7; v < 10; v++ {
		if log[v].Src != "x" || log[v].Seq != uint64(v+1) {
			t.Fatalf("record %d is %s/%d, want x/%d", v, log[v].Src, log[v].Seq, v+1)
		}
	}
}
