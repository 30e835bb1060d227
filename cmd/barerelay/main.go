// Command barerelay serves bench/relay, the bare WebSocket relay that the
// performance comparison (scripts/bench.sh) uses as the ceiling for
// coedit and ShareDB:
//
//	barerelay --addr 127.0.0.1:8090
//
// and then `coedit bench --relay ws://127.0.0.1:8090/ws`. It runs until
// SIGINT or SIGTERM. It is a measuring instrument, not a server: see the
// package documentation of bench/relay.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coedit/coedit/bench/relay"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address, host:port")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "barerelay:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	rl := relay.New()
	srv := &http.Server{Handler: rl, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	// Serve returns when Shutdown below is called; run waits for it.
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("barerelay listening on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errShut := srv.Shutdown(sctx)
	errClose := rl.Close(sctx)
	if serveErr == nil {
		serveErr = <-served
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, errShut, errClose)
}
