package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
	"github.com/coedit/coedit/web"
)

// dataFile is the bbolt file's name inside the data directory.
const dataFile = "coedit.db"

// serveConfig is what `coedit serve` runs with.
type serveConfig struct {
	Addr            string
	DataDir         string
	Sync            storage.SyncMode
	Insecure        bool
	LogLevel        slog.Level
	LogFormat       string // "text" or "json"
	ShutdownTimeout time.Duration
	// OpsPerSecond is each WebSocket connection's submit rate; its
	// token bucket holds twice as many (the burst). The bucket for all
	// messages follows it (see messageRate).
	OpsPerSecond float64
	// Origins are the browser origins allowed to open a WebSocket or
	// change documents over the HTTP API (web.Options.AllowedOrigins);
	// nil means web's default (the server's own host and loopback).
	Origins []string
	// MaxDocLen is the largest document, in code points.
	MaxDocLen int
	// lockTimeout overrides storage.Options.LockTimeout (tests).
	lockTimeout time.Duration
	// started, if set, is called with the listening address once the
	// node serves (tests listen on port 0).
	started func(addr string)
}

// parseServeFlags reads serve's flags. Each flag's default comes from its
// COEDIT_* variable in getenv when set, so a flag on the command line wins
// over the environment, which wins over the built-in default.
func parseServeFlags(args []string, getenv func(string) string, output io.Writer) (serveConfig, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("coedit serve", flag.ContinueOnError)
	fs.SetOutput(output)
	addr := fs.String("addr", env("COEDIT_ADDR", "127.0.0.1:8080"), "listen address, host:port (env COEDIT_ADDR)")
	data := fs.String("data", env("COEDIT_DATA", "./coedit-data"), "data directory; the store is "+dataFile+" inside it (env COEDIT_DATA)")
	syncMode := fs.String("sync", env("COEDIT_SYNC", "always"), "always: fsync before acknowledging an op; none: no fsync, for benchmarks only (env COEDIT_SYNC)")
	insecure := fs.String("insecure", env("COEDIT_INSECURE", "false"), "allow a non-loopback --addr although no authentication is configured (env COEDIT_INSECURE)")
	logLevel := fs.String("log-level", env("COEDIT_LOG_LEVEL", "info"), "debug, info, warn or error (env COEDIT_LOG_LEVEL)")
	logFormat := fs.String("log-format", env("COEDIT_LOG_FORMAT", "text"), "text or json (env COEDIT_LOG_FORMAT)")
	shutdown := fs.String("shutdown-timeout", env("COEDIT_SHUTDOWN_TIMEOUT", "15s"), "how long a graceful shutdown may take (env COEDIT_SHUTDOWN_TIMEOUT)")
	opsPerSecond := fs.String("ops-per-second", env("COEDIT_OPS_PER_SECOND", strconv.Itoa(web.DefaultOpsPerSecond)), "ops each WebSocket connection may submit per second, with bursts of twice as many; the limit on all messages is twice this, at least "+strconv.Itoa(web.DefaultMessagesPerSecond)+"; raise it to replay a long trace over --server (env COEDIT_OPS_PER_SECOND)")
	origins := fs.String("origins", getenv("COEDIT_ORIGINS"), "comma-separated browser origins (scheme://host[:port], or *) allowed to open a WebSocket or change documents; default: the server's own host and loopback origins (env COEDIT_ORIGINS)")
	maxDoc := fs.String("max-doc", env("COEDIT_MAX_DOC", strconv.Itoa(collab.DefaultMaxDocLen)), "largest document, in Unicode code points (env COEDIT_MAX_DOC)")
	if err := fs.Parse(normalizeBoolFlags(args, "insecure")); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return serveConfig{}, err
		}
		return serveConfig{}, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return serveConfig{}, &usageError{fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0))}
	}
	cfg := serveConfig{Addr: *addr, DataDir: *data, LogFormat: *logFormat}
	var err error
	if cfg.ShutdownTimeout, err = time.ParseDuration(*shutdown); err != nil || cfg.ShutdownTimeout <= 0 {
		return cfg, &usageError{fmt.Sprintf("serve: --shutdown-timeout: want a positive duration such as 15s, got %q", *shutdown)}
	}
	if cfg.OpsPerSecond, err = strconv.ParseFloat(*opsPerSecond, 64); err != nil || !(cfg.OpsPerSecond > 0) || math.IsInf(cfg.OpsPerSecond, 0) {
		return cfg, &usageError{fmt.Sprintf("serve: --ops-per-second: want a positive number, got %q", *opsPerSecond)}
	}
	if 4*cfg.OpsPerSecond > math.MaxInt32 {
		return cfg, &usageError{fmt.Sprintf("serve: --ops-per-second: %q is too large (at most %d)", *opsPerSecond, math.MaxInt32/4)}
	}
	if cfg.Origins, err = parseOrigins(*origins); err != nil {
		return cfg, &usageError{fmt.Sprintf("serve: --origins: %v", err)}
	}
	if cfg.MaxDocLen, err = strconv.Atoi(*maxDoc); err != nil || cfg.MaxDocLen <= 0 {
		return cfg, &usageError{fmt.Sprintf("serve: --max-doc: want a positive number of code points, got %q", *maxDoc)}
	}
	if cfg.Sync, err = storage.ParseSyncMode(*syncMode); err != nil {
		return cfg, &usageError{fmt.Sprintf("serve: --sync: %v", err)}
	}
	if cfg.Insecure, err = strconv.ParseBool(*insecure); err != nil {
		return cfg, &usageError{fmt.Sprintf("serve: --insecure: want true or false, got %q", *insecure)}
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return cfg, &usageError{fmt.Sprintf("serve: --log-level: %v", err)}
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return cfg, &usageError{fmt.Sprintf("serve: --log-format: want text or json, got %q", cfg.LogFormat)}
	}
	if cfg.DataDir == "" {
		return cfg, &usageError{"serve: --data must not be empty"}
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, &usageError{fmt.Sprintf("serve: --addr: %v", err)}
	}
	return cfg, nil
}

// parseOrigins splits a comma-separated origin list. Each entry is "*" or
// scheme://host[:port] with nothing after the host; an empty list is nil.
func parseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
				return nil, fmt.Errorf("origin %q is not * or scheme://host[:port]", o)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// messageRate is the rate for all of a connection's messages that goes
// with a submit rate: web's default, or twice the submit rate when that is
// more, so that a typing client's presence update beside each op, and a
// raised --ops-per-second, are not cut short by the message bucket.
func messageRate(opsPerSecond float64) float64 {
	return max(web.DefaultMessagesPerSecond, 2*opsPerSecond)
}

// opsBurst is the token bucket size for a submit rate: twice the rate,
// at least 1; 0 (web's default) for an unset rate.
func opsBurst(perSecond float64) int {
	if perSecond <= 0 {
		return 0
	}
	return max(1, int(math.Ceil(2*perSecond)))
}

// normalizeBoolFlags turns a bare "--name" (or "-name") into
// "--name=true", so a flag that is a string for the sake of its
// environment default still works as a switch.
func normalizeBoolFlags(args []string, names ...string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		for _, n := range names {
			if a == "-"+n || a == "--"+n {
				a += "=true"
			}
		}
		out = append(out, a)
	}
	return out
}

// newLogger returns the process logger.
func newLogger(cfg serveConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runServe is `coedit serve`: it runs a node until SIGINT or SIGTERM.
func runServe(args []string) error {
	cfg, err := parseServeFlags(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log)
}

// serve runs a node until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger) error {
	n, err := startNode(cfg, log)
	if err != nil {
		return err
	}
	if cfg.started != nil {
		cfg.started(n.addr())
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-n.serveErr:
		log.Error("http server failed, shutting down", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := n.close(sctx); err != nil {
		return errors.Join(serveErr, err)
	}
	log.Info("stopped")
	return serveErr
}

// node is one running coedit server: store, hub, web server, listener.
type node struct {
	store *storage.DB
	hub   *collab.Hub
	web   *web.Server
	http  *http.Server
	ln    net.Listener
	// serveErr gets http.Server.Serve's error if it fails; served is
	// closed when Serve has returned.
	serveErr chan error
	served   chan struct{}
}

// startNode listens on cfg.Addr (first, so a bad or busy address fails
// before anything is opened), opens the store, and serves. The caller
// must call close.
func startNode(cfg serveConfig, log *slog.Logger) (*node, error) {
	if !cfg.Insecure && !isLoopback(cfg.Addr) {
		return nil, &usageError{fmt.Sprintf("serve: refusing to listen on %s: it is not a loopback address and no authentication is configured; pass --insecure to serve it anyway", cfg.Addr)}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	n, err := openNode(cfg, log, ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return n, nil
}

func openNode(cfg serveConfig, log *slog.Logger, ln net.Listener) (*node, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("serve: data directory: %w", err)
	}
	path := filepath.Join(cfg.DataDir, dataFile)
	store, err := storage.Open(path, storage.Options{Sync: cfg.Sync, LockTimeout: cfg.lockTimeout})
	if errors.Is(err, storage.ErrLocked) {
		return nil, fmt.Errorf("serve: the data file %s is locked by another process: is another coedit serving --data %s? (%w)", path, cfg.DataDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	hub := collab.NewHub(collab.Options{Store: store, Logger: log, MaxDocLen: cfg.MaxDocLen})
	ws, err := web.New(web.Options{
		Hub:               hub,
		Logger:            log,
		AllowedOrigins:    cfg.Origins,
		OpsPerSecond:      cfg.OpsPerSecond,
		OpsBurst:          opsBurst(cfg.OpsPerSecond),
		MessagesPerSecond: messageRate(cfg.OpsPerSecond),
		MessagesBurst:     opsBurst(messageRate(cfg.OpsPerSecond)),
		Collectors:        []prometheus.Collector{newStoreCollector(store)},
	})
	if err != nil {
		hub.Close(context.Background())
		store.Close()
		return nil, fmt.Errorf("serve: %w", err)
	}
	n := &node{
		store:    store,
		hub:      hub,
		web:      ws,
		ln:       ln,
		serveErr: make(chan error, 1),
		served:   make(chan struct{}),
	}
	n.http = &http.Server{
		Handler:           ws.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// This goroutine ends when close shuts the http.Server down; close
	// waits for it.
	go func() {
		defer close(n.served)
		if err := n.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			n.serveErr <- err
		}
	}()
	log.Info("coedit serving", "url", "http://"+ln.Addr().String(), "data", path, "sync", cfg.Sync.String())
	return n, nil
}

// addr returns the address the node listens on.
func (n *node) addr() string { return n.ln.Addr().String() }

// close shuts the node down, in this order: stop accepting connections
// and let HTTP requests in flight finish; close every WebSocket and wait
// for each to leave the hub; close the hub, which commits what its
// sessions hold and saves their snapshots; close the store. An op is
// acknowledged only once it is durable, so none is lost at any step.
func (n *node) close(ctx context.Context) error {
	errHTTP := n.http.Shutdown(ctx)
	<-n.served
	errWeb := n.web.Close(ctx)
	errHub := n.hub.Close(ctx)
	errStore := n.store.Close()
	return errors.Join(errHTTP, errWeb, errHub, errStore)
}

// isLoopback reports whether addr's host is a loopback name or address.
// An empty host (all interfaces) is not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
