package redisrelay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
)

// TestListOnRedisCluster: node B lists the documents node A created over
// a 3-master Redis Cluster (the list's sorted sets and each document's
// info hash live on different masters), with their versions and types,
// newest change first; a deleted document stays listed, typeless.
func TestListOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ServerOptions{})
	addr := strings.Join(cl.Addrs(), ",")
	p := prefix(t)
	a := startNode(t, "A", addr, p, nodeConfig{})
	b := startNode(t, "B", addr, p, nodeConfig{})
	var keys []collab.Key
	for i := range 6 {
		k := docKey(20 + i)
		keys = append(keys, k)
		submit(t, a, k, createSub("w", uint64(2*i+1), "text"))
		time.Sleep(2 * time.Millisecond) // distinct modification times
	}
	submit(t, a, keys[0], editSub("w", 100, 1, insertAt(0, "x")))
	time.Sleep(2 * time.Millisecond) // the delete is the newest change
	submit(t, a, keys[1], collab.Submission{Src: "w", Seq: 101, Version: 1, HasVersion: true, Kind: collab.OpDelete})

	want := []collab.Key{keys[1], keys[0], keys[5], keys[4], keys[3], keys[2]}
	var got []collab.DocInfo
	deadline := time.Now().Add(waitLimit)
	for {
		var err error
		got, err = b.hub.List(ctx(t), "notes", 0)
		if err != nil {
			t.Fatalf("B: List = %v", err)
		}
		if len(got) == len(want) && got[0].Key == keys[1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B: List = %+v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, in := range got {
		if in.Key != want[i] {
			t.Fatalf("B: List()[%d] = %v, want %v (all: %+v)", i, in.Key, want[i], got)
		}
		wantV, wantT := uint64(1), ot.URI
		switch in.Key {
		case keys[0]:
			wantV = 2
		case keys[1]:
			wantV, wantT = 2, ""
		}
		if in.Version != wantV || in.Type != wantT || in.Created == 0 || in.Modified < in.Created {
			t.Errorf("B: List() entry %+v, want version %d, type %q, created and modified set", in, wantV, wantT)
		}
	}
	if got, err := b.hub.List(ctx(t), "", 2); err != nil || len(got) != 2 || got[0].Key != keys[1] || got[1].Key != keys[0] {
		t.Errorf("B: List(\"\", 2) = %+v, %v; want %v, %v", got, err, keys[1], keys[0])
	}
	if got, err := b.hub.List(ctx(t), "other", 0); err != nil || len(got) != 0 {
		t.Errorf("B: List(\"other\") = %+v, %v; want none", got, err)
	}
}
