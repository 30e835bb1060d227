package main

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coedit/coedit/storage"
)

var openingLog = regexp.MustCompile(`msg="coedit opening the store" (?:node=\S+ )?url=(\S+)`)

// TestOpeningAnswersAndInterrupt: while `coedit serve` opens its store
// (here it waits for the file's lock, which this test holds, as it would
// wait for a long crash recovery), it answers /health 200 "opening",
// /ready 503 and the API 503 ERR_UNAVAILABLE; SIGTERM then ends it at
// once, exit 0, saying it was interrupted. Before, nothing answered on
// the bound port until the open finished, and SIGTERM waited for it.
func TestOpeningAnswersAndInterrupt(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(filepath.Join(dir, dataFile), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The store waits 2 s for the lock, then fails: all that follows
	// takes a few milliseconds.
	c := runChildUntil(t, openingLog, "serve", "--addr", "127.0.0.1:0", "--data", dir)
	if c.url == "" {
		t.Fatalf("coedit serve exited before it opened the store (%v)", c.cmd.ProcessState)
	}
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/health", http.StatusOK, `"status":"opening"`},
		{"/ready", http.StatusServiceUnavailable, `"error":"opening the store"`},
		{"/api/docs/c/d", http.StatusServiceUnavailable, `"code":"ERR_UNAVAILABLE"`},
		{"/ws", http.StatusServiceUnavailable, `"code":"ERR_UNAVAILABLE"`},
	} {
		if status, body := fetchURL(t, c.url+tc.path); status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s while the store opens = %d %s, want %d with %s", tc.path, status, body, tc.status, tc.want)
		}
	}
	start := time.Now()
	if code := c.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM during the open = %d, want 0", code)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("exit %v after SIGTERM during the open, want at once", d)
	}
	if logs := c.logs.String(); !strings.Contains(logs, "interrupted while opening the store") || strings.Contains(logs, "locked by another process") {
		t.Errorf("logs after SIGTERM during the open do not say it was interrupted (or say the lock wait ran out)")
	}

	// The store opens as usual once the lock is free.
	db.Close()
	c2 := startServe(t, dir)
	if status, body := fetchURL(t, c2.url+"/ready"); status != http.StatusOK {
		t.Errorf("GET /ready once open = %d %s, want 200", status, body)
	}
	if code := c2.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}
