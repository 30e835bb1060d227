package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/storage"
)

// TestPprofServedOnSeparateListener checks that --pprof serves the
// profiler on its own address, not on the node's public one, and that
// closing the node closes it.
func TestPprofServedOnSeparateListener(t *testing.T) {
	var pprofAddr string
	cfg := serveConfig{Addr: "127.0.0.1:0", PprofAddr: "127.0.0.1:0", DataDir: t.TempDir(), Sync: storage.SyncAlways,
		ShutdownTimeout: 10 * time.Second, pprofStarted: func(a string) { pprofAddr = a }}
	n, err := startNode(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := fetchURL(t, "http://"+pprofAddr+"/debug/pprof/"); status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET pprof index = %d %.200s", status, body)
	}
	if status, _ := fetchURL(t, "http://"+n.addr()+"/debug/pprof/"); status == http.StatusOK {
		t.Errorf("the public listener serves /debug/pprof/ (status %d), want it only on --pprof", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.close(ctx); err != nil {
		t.Fatalf("close = %v", err)
	}
	if _, err := http.Get("http://" + pprofAddr + "/debug/pprof/"); err == nil {
		t.Error("pprof still answers after the node closed")
	}
}

// TestPprofRefusesNonLoopback checks that --pprof on a non-loopback
// address needs --insecure, as --addr does.
func TestPprofRefusesNonLoopback(t *testing.T) {
	cfg := serveConfig{Addr: "127.0.0.1:0", PprofAddr: "0.0.0.0:0", DataDir: t.TempDir(), Sync: storage.SyncAlways}
	if n, err := startNode(context.Background(), cfg, quiet); err == nil {
		n.close(context.Background())
		t.Fatal("startNode with --pprof 0.0.0.0:0 and no --insecure succeeded, want a refusal")
	} else if !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("startNode = %v, want the --insecure refusal", err)
	}
}

func TestParsePprofFlag(t *testing.T) {
	cfg, err := parseServeFlags([]string{"--pprof", "127.0.0.1:6060"}, func(string) string { return "" }, nil)
	if err != nil || cfg.PprofAddr != "127.0.0.1:6060" {
		t.Fatalf("parse --pprof = %+v, %v", cfg.PprofAddr, err)
	}
	if _, err := parseServeFlags([]string{"--pprof", "nonsense"}, func(string) string { return "" }, nil); err == nil || !strings.Contains(err.Error(), "--pprof") {
		t.Fatalf("parse --pprof nonsense = %v, want a usage error", err)
	}
}
