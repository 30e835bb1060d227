package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/internal/rawio"
	"github.com/coedit/coedit/internal/redistest"
)

// (Linux only: elsewhere rawio.Wrap leaves connections as they are.)

// TestRedisClientDialsRaw: the go-redis clients --redis makes, single or
// cluster, dial plain TCP connections that read and write with raw system
// calls (rawio.Conn).
func TestRedisClientDialsRaw(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, in := range []string{l.Addr().String(), l.Addr().String() + ",127.0.0.1:1"} {
		spec, err := parseRedis(in)
		if err != nil {
			t.Fatal(err)
		}
		c := spec.client()
		var dial func(context.Context, string, string) (net.Conn, error)
		switch cl := c.(type) {
		case *redis.Client:
			dial = cl.Options().Dialer
		case *redis.ClusterClient:
			dial = cl.Options().Dialer
		}
		if dial == nil {
			t.Fatalf("%q: a %T without a dialer of its own", in, c)
		}
		conn, err := dial(context.Background(), "tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := conn.(*rawio.Conn); !ok {
			t.Errorf("%q: dialed a %T, want a *rawio.Conn", in, conn)
		}
		conn.Close()
		c.Close()
	}
}

// TestRedisClientRetriesAClosedPooledConn: the client's connections
// offer go-redis no socket to peek at before a pooled connection's reuse
// (rawio.Conn), so a connection Redis closed meanwhile shows at its first
// use; go-redis then retries on a new connection, and the call succeeds.
func TestRedisClientRetriesAClosedPooledConn(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	spec, err := parseRedis(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c := spec.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if err := c.Set(ctx, "k", i, 0).Err(); err != nil {
			t.Fatalf("SET before the kill: %v", err)
		}
		admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		if n, err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Result(); err != nil || n < 1 {
			t.Fatalf("CLIENT KILL of the client's connections = %d, %v; want at least one killed", n, err)
		}
		admin.Close()
		if v, err := c.Get(ctx, "k").Int(); err != nil || v != i {
			t.Fatalf("GET after Redis closed the pooled connection: %v, %v; want %d", v, err, i)
		}
	}
}
