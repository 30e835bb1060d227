package main

import (
	"context"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/internal/rawio"
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
