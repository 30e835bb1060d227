package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/storage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestParseServeFlags(t *testing.T) {
	def := serveConfig{Addr: "127.0.0.1:8080", DataDir: "./coedit-data", Sync: storage.SyncAlways, LogLevel: slog.LevelInfo, LogFormat: "text", ShutdownTimeout: 15 * time.Second}
	with := func(f func(*serveConfig)) serveConfig {
		c := def
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want serveConfig
	}{
		{"defaults", nil, nil, def},
		{"flags", []string{"--addr", "localhost:9000", "--data", "/srv/coedit", "--sync", "none", "--log-level", "debug", "--log-format", "json", "--shutdown-timeout", "3s"}, nil,
			with(func(c *serveConfig) {
				c.Addr, c.DataDir, c.Sync, c.LogLevel, c.LogFormat, c.ShutdownTimeout = "localhost:9000", "/srv/coedit", storage.SyncNone, slog.LevelDebug, "json", 3*time.Second
			})},
		{"env", nil, map[string]string{"COEDIT_ADDR": "127.0.0.1:1", "COEDIT_DATA": "d", "COEDIT_SYNC": "none", "COEDIT_INSECURE": "true"},
			with(func(c *serveConfig) {
				c.Addr, c.DataDir, c.Sync, c.Insecure = "127.0.0.1:1", "d", storage.SyncNone, true
			})},
		{"flag beats env", []string{"--sync=always", "--insecure=false"}, map[string]string{"COEDIT_SYNC": "none", "COEDIT_INSECURE": "1"}, def},
		{"bare --insecure", []string{"--insecure", "--data", "x"}, nil, with(func(c *serveConfig) { c.Insecure, c.DataDir = true, "x" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseServeFlags(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseServeFlags(%q, %v) = %+v, %v; want %+v", tc.args, tc.env, got, err, tc.want)
			}
		})
	}
	for _, args := range [][]string{
		{"--sync", "sometimes"}, {"--insecure=maybe"}, {"--log-level", "loud"}, {"--log-format", "xml"},
		{"--data", ""}, {"--addr", "8080"}, {"extra"}, {"--no-such-flag"},
	} {
		_, err := parseServeFlags(args, func(string) string { return "" }, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseServeFlags(%q) = %v, want a usage error", args, err)
		}
	}
	if _, err := parseServeFlags([]string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseServeFlags(-h) = %v, want flag.ErrHelp", err)
	}
}

func TestRunDispatch(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"bogus"}, 2, "", `unknown command "bogus"`},
		{[]string{"serve", "--sync", "x"}, 2, "", "unknown sync mode"},
		{[]string{"--sync", "x"}, 2, "", "unknown sync mode"}, // serve is the default
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errOut) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out.String(), errOut.String(), tc.code, tc.out, tc.errOut)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "127.9.9.9:0": true,
		":8080": false, "0.0.0.0:80": false, "[::]:80": false, "192.168.1.2:80": false, "example.com:80": false, "junk": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestNodeInProcess runs serve on port 0 in this process: it serves, a
// second node on the same data fails with the lock error, it shuts down
// cleanly when its context ends, and the data is there after a restart.
func TestNodeInProcess(t *testing.T) {
	addrs := make(chan string, 1)
	cfg := serveConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Sync: storage.SyncAlways, ShutdownTimeout: 10 * time.Second,
		lockTimeout: 100 * time.Millisecond, started: func(a string) { addrs <- a }}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, quiet) }()
	var url string
	select {
	case a := <-addrs:
		url = "http://" + a
	case err := <-done:
		t.Fatalf("serve = %v before it started", err)
	}
	if status, body := postJSON(t, url+"/api/docs/notes/n1/ops", `{"create":{"type":"text-unicode","data":"in process"}}`); status != http.StatusOK {
		t.Fatalf("POST create = %d %s", status, body)
	}
	cfg.started = nil
	if _, err := startNode(cfg, quiet); !errors.Is(err, storage.ErrLocked) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second startNode on the same data = %v, want the locked error", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve = %v after its context ended, want nil", err)
	}

	n, err := startNode(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	status, body := fetchURL(t, "http://"+n.addr()+"/api/docs/notes/n1")
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.close(cctx); err != nil {
		t.Fatalf("close = %v", err)
	}
	if status != http.StatusOK || !strings.Contains(body, `"data":"in process"`) {
		t.Fatalf("after restart GET = %d %s", status, body)
	}
	if _, err := startNode(serveConfig{Addr: "0.0.0.0:0", DataDir: t.TempDir()}, quiet); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("startNode on 0.0.0.0 without --insecure = %v, want a refusal", err)
	}
}
