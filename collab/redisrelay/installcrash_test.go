package redisrelay_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/storage"
	"github.com/redis/go-redis/v9"
)

// The test binary runs as a node process when installChildEnv is set:
// see installChild.
const installChildEnv = "COEDIT_REDISRELAY_INSTALL_CHILD" // "addr prefix path collection id"

func TestMain(m *testing.M) {
	if arg := os.Getenv(installChildEnv); arg != "" {
		os.Exit(installChild(arg))
	}
	os.Exit(m.Run())
}

// installChild runs a node on the store at path, as startNode with
// farConfig would, and fetches the document, which makes it install
// Redis's snapshot when its store is behind Redis's tail. It prints
// "fetching" before and "fetched <version>" after, then waits to be
// killed.
func installChild(arg string) int {
	f := strings.Fields(arg)
	if len(f) != 5 {
		fmt.Fprintln(os.Stderr, "child: bad argument", arg)
		return 2
	}
	addr, p, path, key := f[0], f[1], f[2], collab.Key{Collection: f[3], ID: f[4]}
	db, err := storage.Open(path, storage.Options{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: 1, DialTimeout: time.Second})
	log := slog.New(slog.DiscardHandler)
	r, err := redisrelay.New(redisrelay.Options{Client: c, Prefix: p, NodeID: "child", Logger: log, TailLen: farTail})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	cl, err := redisrelay.NewCluster(redisrelay.ClusterOptions{Relay: r, Store: db, SnapshotEvery: farSnap})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	hub := collab.NewHub(collab.Options{Store: db, Relay: cl, Sequencer: cl, Logger: log, SnapshotEvery: farSnap})
	fmt.Println("fetching")
	s, err := hub.FetchWait(context.Background(), key)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	fmt.Printf("fetched %d\n", s.Version)
	select {}
}

// TestClusterInstallKilled kills a node process while it installs
// Redis's snapshot of a big document as the base of its log, at a
// different moment each round. The store it leaves opens, passes Check,
// holds either its old state or the whole base, and a node on it then
// catches up and converges.
func TestClusterInstallKilled(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	a := startNode(t, "a", srv.Addr(), p, farConfig())
	key := docKey(4)
	// 1 MB of text, so that installing it takes a while.
	submit(t, a, key, createSub("a", 1, strings.Repeat("0123456789abcdef", 1<<16)))
	seq := uint64(2)
	b := startNode(t, "b", srv.Addr(), p, farConfig())
	fetch(t, b, key)
	b.stop(t)
	path := b.path

	rc := newClient(t, srv.Addr())
	// Round 0 lets the child finish and times it; the others kill it at
	// fractions of that time, before, during or after the install.
	fractions := []float64{-1, 0.6, 0.8, 0.9}
	var full time.Duration
	outcomes := map[string]int{}
	for round, f := range fractions {
		// Move a far past b's store.
		editN(t, a, key, "a", seq, farTail+10)
		seq += farTail + 10
		head := fetch(t, a, key).Version
		waitFor(t, "Redis's snapshot to follow the head", func() bool {
			_, _, sv := redisState(t, rc, p, key)
			return sv+farTail >= head
		})
		before := storeHead(t, path, key)

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), installChildEnv+"="+strings.Join([]string{srv.Addr(), p, path, key.Collection, key.ID}, " "))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		if !lines.Scan() || lines.Text() != "fetching" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child said %q", round, lines.Text())
		}
		start := time.Now()
		finished := false
		delay := time.Duration(f * float64(full))
		if f < 0 {
			finished = lines.Scan() && strings.HasPrefix(lines.Text(), "fetched")
			full = time.Since(start)
			delay = full
		} else {
			time.Sleep(delay)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if f >= 0 {
			finished = lines.Scan() && strings.HasPrefix(lines.Text(), "fetched")
		}
		cmd.Wait()

		after := storeHead(t, path, key)
		switch {
		case after == before:
			outcomes["old state"]++
		case after > before && after <= head:
			outcomes["base installed"]++
		default:
			t.Fatalf("round %d: store head %d after the kill, %d before, Redis at %d", round, after, before, head)
		}
		t.Logf("round %d: killed %v after the fetch began (finished: %v): store head %d -> %d, Redis at %d", round, delay, finished, before, after, head)

		cfg := farConfig()
		cfg.path = path
		n := startNode(t, fmt.Sprintf("b%d", round), srv.Addr(), p, cfg)
		fetch(t, n, key) // catches up
		base, err := n.db.Base(ctx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		sameFrom(t, key, base, a, n)
		if err := n.db.Check(ctx(t)); err != nil {
			t.Fatalf("round %d: Check after catching up = %v", round, err)
		}
		n.stop(t) // the next round moves a far past it again
	}
	t.Logf("outcomes: %v", outcomes)
}

// storeHead opens the store at path, checks it, and returns key's head.
func storeHead(t *testing.T, path string, key collab.Key) uint64 {
	t.Helper()
	db, err := storage.Open(path, storage.Options{LockTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	defer db.Close()
	if err := db.Check(ctx(t)); err != nil {
		t.Fatalf("Check = %v", err)
	}
	st, err := db.Load(ctx(t), key)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	return st.Snapshot.Version + uint64(len(st.Ops))
}
