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
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
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
	// Drain is how long /ready answers 503 at shutdown, while the node
	// goes on serving, before it closes anything; part of
	// ShutdownTimeout.
	Drain time.Duration
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
	// AuthSecret turns authentication on (web.Options.AuthSecret); nil
	// leaves it off, which restricts the node to loopback unless
	// Insecure.
	AuthSecret []byte
	// Hosts are the public names the node answers for besides IP
	// addresses, localhost and the --addr host name
	// (web.Options.AllowedHosts).
	Hosts []string
	// MaxConns and MaxConnsPerAddr bound the WebSocket connections of
	// the node and of one client address.
	MaxConns        int
	MaxConnsPerAddr int
	// PprofAddr, if set, serves net/http/pprof on a separate listener.
	PprofAddr string
	// Redis, when set, makes the node one of a cluster over that Redis
	// (cluster.go: parseRedis); RedisPrefix starts its keys; NodeID
	// names the node in logs (generated when empty).
	Redis       string
	RedisPrefix string
	NodeID      string
	// Advertise, with Redis, is the address the other nodes reach this
	// one at; set, the node joins the roster that routes each document's
	// editors to one node (redisrelay.Roster, web/proxy.go).
	Advertise string
	// NodeTTL is redisrelay.Options.NodeTTL: how long after a node
	// stops its clients' presence is cleared on the others.
	NodeTTL time.Duration
	// CommitWait is storage.Options.CompanyWait: how long a small group
	// commit may wait for a commit of another document to share its
	// sync; 0 turns the wait off.
	CommitWait time.Duration
	// lockTimeout overrides storage.Options.LockTimeout (tests).
	lockTimeout time.Duration
	// started, if set, is called with the listening address once the
	// node serves (tests listen on port 0).
	started func(addr string)
	// pprofStarted, if set, is called with the pprof listener's address.
	pprofStarted func(addr string)
}

// parseServeFlags reads serve's flags. Each flag's default comes from its
// COEDIT_* variable in getenv when set (see setFromEnv), so a flag on the
// command line wins over the environment, which wins over the built-in
// default.
func parseServeFlags(args []string, getenv func(string) string, output io.Writer) (serveConfig, error) {
	cfg := serveConfig{Sync: storage.SyncAlways, LogLevel: slog.LevelInfo, LogFormat: "text"}
	fs := flag.NewFlagSet("coedit serve", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address, host:port")
	fs.StringVar(&cfg.DataDir, "data", "./coedit-data", "data directory; the store is "+dataFile+" inside it")
	fs.TextVar(&cfg.Sync, "sync", storage.SyncAlways, "always: fsync before acknowledging an op; none: no fsync, for benchmarks only")
	fs.DurationVar(&cfg.CommitWait, "commit-wait", storage.DefaultCompanyWait, "with --sync always: how long a small group commit may wait for a commit of another document to share its fsync, when other documents are committing often enough that one is likely; 0: never wait")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow a non-loopback --addr although no authentication is configured")
	fs.Func("log-level", "debug, info, warn or error (default info)", func(v string) error {
		return cfg.LogLevel.UnmarshalText([]byte(v))
	})
	fs.Func("log-format", "text or json (default text)", func(v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("want text or json, got %q", v)
		}
		cfg.LogFormat = v
		return nil
	})
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take, --drain included")
	fs.DurationVar(&cfg.Drain, "drain", 0, "at shutdown, how long /ready answers 503 while the node goes on serving, before it closes its connections and its listener: long enough for a load balancer to see it and send new clients elsewhere; 0: stop at once")
	fs.Float64Var(&cfg.OpsPerSecond, "ops-per-second", web.DefaultOpsPerSecond, "ops each WebSocket connection may submit per second, with bursts of twice as many; the limit on all messages is twice this, at least "+strconv.Itoa(web.DefaultMessagesPerSecond)+"; raise it to replay a long trace over --server")
	fs.Func("origins", "comma-separated browser origins (scheme://host[:port], or *) allowed to open a WebSocket or change documents; default: the server's own host and loopback origins", func(v string) (err error) {
		cfg.Origins, err = parseOrigins(v)
		return err
	})
	fs.IntVar(&cfg.MaxDocLen, "max-doc", collab.DefaultMaxDocLen, "largest document, in Unicode code points")
	secret, secretFile := secretFlags(fs)
	fs.Func("hosts", "comma-separated host names the server answers for (its public names), besides IP addresses, localhost and the --addr host; * turns the check against DNS rebinding off", func(v string) (err error) {
		cfg.Hosts, err = parseHosts(v)
		return err
	})
	fs.IntVar(&cfg.MaxConns, "max-conns", web.DefaultMaxConns, "most WebSocket connections the node holds; past it an upgrade gets 503")
	fs.IntVar(&cfg.MaxConnsPerAddr, "max-conns-per-addr", web.DefaultMaxConnsPerAddr, "most WebSocket connections from one client IP address; past it an upgrade gets 429 (behind a reverse proxy every client has the proxy's address: raise it to --max-conns and limit at the proxy)")
	fs.StringVar(&cfg.PprofAddr, "pprof", "", "serve net/http/pprof on this host:port, apart from --addr (loopback only unless --insecure); off when empty")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis of a cluster of nodes: redis://[user:password@]host:port[/db] (rediss:// for TLS) or host:port; a comma-separated list of seeds for a Redis Cluster; empty: a single node")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", "coedit:", "prefix of the cluster's Redis keys, so that several clusters can share a Redis")
	fs.StringVar(&cfg.Advertise, "advertise", "", "with --redis: host:port at which the other nodes reach this node's --addr; set on the nodes, each document's WebSocket editors that name it (/ws?doc=collection/id, as the page does) are passed to one node, which alone commits the document's ops")
	fs.StringVar(&cfg.NodeID, "node-id", "", "this node's name in logs (default: generated, and logged)")
	fs.DurationVar(&cfg.NodeTTL, "node-ttl", 15*time.Second, "with --redis: how long after a node stops (its heartbeat in Redis expires) the other nodes clear the presence (carets) of its clients")
	if err := setFromEnv(fs, getenv); err != nil {
		return serveConfig{}, &usageError{"serve: " + err.Error()}
	}
	if err := parseFlags(fs, args, "serve: ", output); err != nil {
		return serveConfig{}, err
	}
	if fs.NArg() > 0 {
		return serveConfig{}, &usageError{fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0))}
	}
	key, err := loadSecret(*secret, *secretFile)
	if err != nil {
		return serveConfig{}, &usageError{"serve: " + err.Error()}
	}
	cfg.AuthSecret = key
	if err := cfg.check(); err != nil {
		return serveConfig{}, &usageError{"serve: " + err.Error()}
	}
	return cfg, nil
}

// storeOptions returns the store's options for cfg.
func (cfg serveConfig) storeOptions() storage.Options {
	wait := cfg.CommitWait
	if wait == 0 {
		wait = -1 // --commit-wait 0 turns the wait off; the store's 0 is its default
	}
	return storage.Options{Sync: cfg.Sync, LockTimeout: cfg.lockTimeout, CompanyWait: wait}
}

// check rejects values that parse but make no sense.
func (cfg serveConfig) check() error {
	switch {
	case cfg.DataDir == "":
		return errors.New("--data must not be empty")
	case cfg.ShutdownTimeout <= 0:
		return fmt.Errorf("--shutdown-timeout: want a positive duration such as 15s, got %v", cfg.ShutdownTimeout)
	case cfg.Drain < 0 || cfg.Drain >= cfg.ShutdownTimeout:
		return fmt.Errorf("--drain: want a duration from 0 to less than --shutdown-timeout (%v), which it is part of, got %v", cfg.ShutdownTimeout, cfg.Drain)
	case !(cfg.OpsPerSecond > 0) || math.IsInf(cfg.OpsPerSecond, 0):
		return fmt.Errorf("--ops-per-second: want a positive number, got %v", cfg.OpsPerSecond)
	case 4*cfg.OpsPerSecond > math.MaxInt32:
		return fmt.Errorf("--ops-per-second: %v is too large (at most %d)", cfg.OpsPerSecond, math.MaxInt32/4)
	case cfg.CommitWait < 0 || cfg.CommitWait > time.Second:
		return fmt.Errorf("--commit-wait: want a duration from 0 to 1s, such as 200us, got %v", cfg.CommitWait)
	case cfg.MaxDocLen <= 0:
		return fmt.Errorf("--max-doc: want a positive number of code points, got %d", cfg.MaxDocLen)
	case cfg.MaxConns <= 0:
		return fmt.Errorf("--max-conns: want a positive number, got %d", cfg.MaxConns)
	case cfg.MaxConnsPerAddr <= 0:
		return fmt.Errorf("--max-conns-per-addr: want a positive number, got %d", cfg.MaxConnsPerAddr)
	case strings.ContainsAny(cfg.RedisPrefix, "{}"):
		return fmt.Errorf("--redis-prefix: %q must not contain { or }", cfg.RedisPrefix)
	}
	if cfg.Advertise != "" && cfg.Redis == "" {
		return errors.New("--advertise: only a node of a cluster (--redis) routes editors to other nodes")
	}
	if cfg.Advertise != "" && isLoopback(cfg.Advertise) && !isLoopback(cfg.Addr) {
		return fmt.Errorf("--advertise %s: a loopback address, though --addr %s serves beyond this machine: the other nodes would reach themselves there", cfg.Advertise, cfg.Addr)
	}
	if cfg.Redis != "" {
		if _, err := parseRedis(cfg.Redis); err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if cfg.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.PprofAddr); err != nil {
			return fmt.Errorf("--pprof: %w", err)
		}
	}
	return nil
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

// parseHosts splits a comma-separated list of host names: "*", or names
// without scheme, port or path; an empty list is nil.
func parseHosts(list string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if h != "*" && (strings.ContainsAny(h, ":/@?# ") || net.ParseIP(h) != nil) {
			return nil, fmt.Errorf("host %q is not * or a host name (no scheme, port or path; IP addresses are always allowed)", h)
		}
		out = append(out, h)
	}
	return out, nil
}

// allowedHosts returns the names the node answers for: cfg.Hosts and the
// --addr host when it is a name.
func allowedHosts(cfg serveConfig) []string {
	hosts := slices.Clone(cfg.Hosts)
	if host, _, err := net.SplitHostPort(cfg.Addr); err == nil && host != "" && net.ParseIP(host) == nil && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	return hosts
}

// securityMode says how the node is exposed, for the startup log: "auth"
// with a secret, "loopback-only" without one on a loopback address,
// "INSECURE" without one on another address (only with --insecure).
func securityMode(cfg serveConfig) string {
	switch {
	case cfg.AuthSecret != nil:
		return "auth"
	case isLoopback(cfg.Addr):
		return "loopback-only"
	}
	return "INSECURE"
}

// messageRate is the rate for all of a connection's messages that goes
// with a submit rate: web's default, or twice the submit rate when that is
// more, so that a typing client's presence update beside each op, and a
// raised --ops-per-second, are not cut short by the message bucket.
func messageRate(opsPerSecond float64) float64 {
	return max(web.DefaultMessagesPerSecond, 2*opsPerSecond)
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
	if cfg.Redis != "" {
		if cfg.NodeID == "" {
			cfg.NodeID = newNodeID()
		}
		// Every line of a cluster's node names it, go-redis's included.
		log = log.With("node", cfg.NodeID)
	}
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log)
}

// serve runs a node until ctx ends, then shuts it down gracefully. If
// ctx ends while the store opens, it returns at once (openStore).
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger) error {
	n, err := startNode(ctx, cfg, log)
	if errors.Is(err, errOpenInterrupted) {
		log.Warn("interrupted while opening the store: nothing is lost, and the next start opens it again, going on with any recovery from where this one stopped")
		return nil
	}
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
	if serveErr == nil && cfg.Drain > 0 {
		n.drain(cfg.Drain, log)
	}
	if err := n.close(sctx); err != nil {
		return errors.Join(serveErr, err)
	}
	log.Info("stopped")
	return serveErr
}

// node is one running coedit server: store, hub, web server, listener.
type node struct {
	ln net.Listener
	// handler serves the listener: the opening answers until the node
	// serves (opening.go).
	handler handoff
	// draining is set once a shutdown has begun: /ready answers 503.
	draining atomic.Bool
	// closers closes everything startNode opened, in reverse order.
	closers closers
	// serveErr gets http.Server.Serve's error if it fails.
	serveErr chan error
}

// startNode listens on cfg.Addr (first, so a bad or busy address fails
// before anything is opened) and answers there as a node that is opening
// (opening.go), opens the store, and serves. The caller must call close.
// If it fails, whatever it had opened is closed again; if ctx ends while
// the store opens, it fails at once with errOpenInterrupted.
func startNode(ctx context.Context, cfg serveConfig, log *slog.Logger) (_ *node, err error) {
	if cfg.AuthSecret == nil && !cfg.Insecure && !isLoopback(cfg.Addr) {
		return nil, &usageError{fmt.Sprintf("serve: refusing to listen on %s: it is not a loopback address and no authentication is configured; set --auth-secret-file (or --auth-secret, COEDIT_AUTH_SECRET), or pass --insecure to serve it to anyone", cfg.Addr)}
	}
	n := &node{serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.closers.close(context.Background()))
		}
	}()
	if n.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{
		Handler:           &n.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan struct{})
	// This goroutine ends when the http server closer below shuts the
	// server down, or the listener closer closes it on an error path,
	// and both wait for it.
	go func() {
		defer close(served)
		if err := srv.Serve(n.ln); !errors.Is(err, http.ErrServerClosed) {
			n.serveErr <- err
		}
	}()
	// On an error path before the node serves, the opening answers stop
	// at once; in a shutdown, the http server closer below has shut the
	// server down by the time this runs, and this does nothing.
	n.closers.add("listener", func(context.Context) error {
		err := srv.Close()
		<-served
		return err
	})
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("serve: data directory: %w", err)
	}
	path := filepath.Join(cfg.DataDir, dataFile)
	log.Info("coedit opening the store", "url", serveURL(n.ln.Addr()), "data", path)
	opening := time.Now()
	store, err := openStore(ctx, path, cfg.storeOptions())
	if errors.Is(err, storage.ErrLocked) {
		return nil, fmt.Errorf("serve: the data file %s is locked by another process: is another coedit serving --data %s? (%w)", path, cfg.DataDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	n.closers.add("store", func(context.Context) error { return store.Close() })
	for _, seg := range store.Kept() {
		log.Warn("coedit kept a segment of the op log that it could not read to its end, and that holds more than zeros after that point (a crash's torn last write, or damage): look at it, then delete it", "segment", seg)
	}
	startStoreWatch(store, log, &n.closers)
	if cfg.PprofAddr != "" {
		addr, err := startPprof(n, cfg, log)
		if err != nil {
			return nil, err
		}
		if cfg.pprofStarted != nil {
			cfg.pprofStarted(addr)
		}
	}
	hopts := collab.Options{Store: store, Logger: log, MaxDocLen: cfg.MaxDocLen}
	var cn *clusterNode
	var roster *redisrelay.Roster
	if cfg.Redis != "" {
		// Its sessions leave the relay as the hub closes, so the relay
		// closes after the hub (closers run newest first).
		if cn, err = startCluster(cfg, store, log, &n.closers); err != nil {
			return nil, err
		}
		hopts.Relay, hopts.Sequencer = cn.cluster, cn.cluster
	} else {
		// The only writer of its documents: a session plans its next
		// group commit while the store syncs the last
		// (collab/pipeline.go).
		hopts.Pipeline = true
	}
	// Closing the hub commits what its sessions hold and saves their
	// snapshots, so it must come before the store closes.
	hub := collab.NewHub(hopts)
	n.closers.add("hub", hub.Close)
	wopts := web.Options{
		Hub: hub,
		// web logs each request that fails, and each connection it
		// closes for a failure: repeats are held back (repeatHandler).
		Logger:            slog.New(newRepeatHandler(log.Handler())),
		AllowedOrigins:    cfg.Origins,
		OpsPerSecond:      cfg.OpsPerSecond,
		MessagesPerSecond: messageRate(cfg.OpsPerSecond),
		AuthSecret:        cfg.AuthSecret,
		AllowedHosts:      allowedHosts(cfg),
		MaxConns:          cfg.MaxConns,
		MaxConnsPerAddr:   cfg.MaxConnsPerAddr,
		Collectors:        []prometheus.Collector{newStoreCollector(store)},
	}
	// /ready fails while the store refuses commits because its applies
	// to bbolt fail (a full disk, say), so that a load balancer sends
	// clients elsewhere; and in a cluster while Redis does not answer.
	wopts.Ready = func(ctx context.Context) error {
		if n.draining.Load() {
			return errDraining
		}
		if err := store.Stalled(); err != nil {
			return err
		}
		if cn != nil {
			return cn.ready(ctx)
		}
		return nil
	}
	if cn != nil {
		wopts.Collectors = append(wopts.Collectors, cn.collectors(hub)...)
		if cfg.Advertise != "" {
			if roster, err = cn.relay.NewRoster(cfg.Advertise, redisrelay.RosterOptions{}); err != nil {
				return nil, fmt.Errorf("serve: --advertise: %w", err)
			}
			wopts.Router = roster
			wopts.Collectors = append(wopts.Collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "coedit_cluster_members",
				Help: "Nodes this node knows in the roster that routes each document's editors to one node (--advertise), itself included once its entry is in.",
			}, func() float64 { return float64(len(roster.Members())) }))
		}
	}
	ws, err := web.New(wopts)
	if err != nil {
		if roster != nil {
			roster.Close()
		}
		return nil, fmt.Errorf("serve: %w", err)
	}
	n.handler.serve(ws.Handler())
	// Shutdown stops accepting connections and lets HTTP requests in
	// flight finish within the closer's share of the shutdown. Those
	// still running then are cut: an op export to a client that reads
	// slowly, which the WebSockets' close (before this) told to stop at
	// its next page, but which waits to write what it has; a request
	// that waits on a stalled store. Their clients see the connection
	// close, as when a node fails, and ask again; no acknowledged op
	// depends on them, so the shutdown goes on and succeeds.
	n.closers.add("http server", func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if err != nil && ctx.Err() != nil {
			log.Warn("http requests still running when their share of the shutdown ran out were cut", "err", err)
			if err = srv.Close(); errors.Is(err, net.ErrClosed) {
				err = nil // Shutdown had closed the listener
			}
		}
		<-served
		return err
	})
	// Closers run newest first: the WebSockets close before the HTTP
	// server stops, so that their clients are told to go (1001, after
	// what is queued for them) at once rather than once the HTTP requests
	// have finished, and so that op exports, which stop at their next
	// page once web.Server.Close has begun (web/api.go), end before the
	// HTTP server waits for them. An upgrade that comes meanwhile is
	// refused with 503. web.Server.Close waits for each WebSocket to
	// leave the hub; http.Server.Shutdown does not track them.
	n.closers.add("websockets", ws.Close)
	if roster != nil {
		// Closers run newest first: the node leaves the roster, so that
		// the others stop passing editors to it, before it stops taking
		// upgrades.
		n.closers.add("roster", func(context.Context) error { roster.Close(); return nil })
	}
	// The mode, never the secret: the log says whether auth is on.
	mode := securityMode(cfg)
	attrs := []any{"url", serveURL(n.ln.Addr()), "data", path, "store_opened_in", time.Since(opening).Round(time.Millisecond), "sync", cfg.Sync.String(), "mode", mode,
		"hosts", strings.Join(allowedHosts(cfg), ","), "origins", strings.Join(cfg.Origins, ","),
		"max_conns", cfg.MaxConns, "max_conns_per_addr", cfg.MaxConnsPerAddr}
	switch mode {
	case "auth":
		log.Info("coedit serving", append(attrs, "auth", "on: every request needs a token")...)
	case "loopback-only":
		log.Info("coedit serving", append(attrs, "auth", "off: loopback only, every local client may read and write every document")...)
	default:
		log.Warn("coedit serving", append(attrs, "auth", "off on a network address: anyone who can reach it may read and write every document")...)
	}
	return n, nil
}

// addr returns the address the node listens on.
func (n *node) addr() string { return n.ln.Addr().String() }

// errDraining is /ready's answer once a shutdown has begun.
var errDraining = errors.New("shutting down")

// drain makes /ready answer 503 and waits for d while the node goes on
// serving everything else, before close: a load balancer that checks
// /ready sees the node leave and sends new clients elsewhere, while those
// it still sends, before it has seen, are served rather than refused.
// WebSockets stay open meanwhile; close then tells them to go.
func (n *node) drain(d time.Duration, log *slog.Logger) {
	n.draining.Store(true)
	log.Info("draining: /ready answers 503 before the node stops", "for", d)
	time.Sleep(d)
}

// close shuts the node down in the reverse of the order startNode opened
// it: close every WebSocket and wait for each to leave the hub; stop
// accepting connections and let HTTP requests in flight finish, cutting
// those that take longer than their share of ctx; close the hub, which
// commits what its sessions hold and saves their snapshots; close the
// store. Each step gets a share of the time ctx leaves (closers.close).
// An op is acknowledged only once it is durable, so none is lost at any
// step.
func (n *node) close(ctx context.Context) error {
	return n.closers.close(ctx)
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

// serveURL is the address a local browser opens for a listener: a
// listener on every address (0.0.0.0, ::) is named localhost, where Go
// would print [::], which no browser opens.
func serveURL(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.IP.IsUnspecified() {
		return "http://" + net.JoinHostPort("localhost", strconv.Itoa(t.Port))
	}
	return "http://" + a.String()
}
