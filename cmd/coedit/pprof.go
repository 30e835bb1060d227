package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves net/http/pprof on its own listener at addr, so that a
// running node can be profiled under load (`go tool pprof
// http://ADDR/debug/pprof/profile`) without exposing the profiler on the
// public listener. Like --addr, a non-loopback address needs --insecure:
// profiles reveal document contents and the endpoints cost CPU. It
// returns the address it listens on and adds a closer that shuts the
// listener down and waits for its goroutine.
func startPprof(n *node, cfg serveConfig, log *slog.Logger) (string, error) {
	if !cfg.Insecure && !isLoopback(cfg.PprofAddr) {
		return "", &usageError{fmt.Sprintf("serve: refusing to serve --pprof on %s: it is not a loopback address; pass --insecure to serve it anyway", cfg.PprofAddr)}
	}
	ln, err := net.Listen("tcp", cfg.PprofAddr)
	if err != nil {
		return "", fmt.Errorf("serve: --pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan struct{})
	// This goroutine ends when the closer below closes the server, and
	// the closer waits for it.
	go func() {
		defer close(served)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server failed", "err", err)
		}
	}()
	// Close, not Shutdown: a 30 s CPU profile in flight must not hold up
	// the node's shutdown.
	n.closers.add("pprof server", func(context.Context) error {
		err := srv.Close()
		<-served
		return err
	})
	log.Info("pprof serving", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return ln.Addr().String(), nil
}
