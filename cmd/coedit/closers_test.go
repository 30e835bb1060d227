package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

// TestClosersCloseInReverse checks the shutdown list: newest first, every
// closer runs even after one fails, the failures come back named, and a
// second close does nothing.
func TestClosersCloseInReverse(t *testing.T) {
	var order []string
	var c closers
	boom := errors.New("boom")
	for _, name := range []string{"listener", "store", "hub", "websockets"} {
		c.add(name, func(context.Context) error {
			order = append(order, name)
			if name == "store" {
				return boom
			}
			return nil
		})
	}
	err := c.close(context.Background())
	if want := []string{"websockets", "hub", "store", "listener"}; !slices.Equal(order, want) {
		t.Errorf("close ran %q, want %q", order, want)
	}
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "close store: boom") {
		t.Errorf("close() = %v, want the store's error, named", err)
	}
	order = nil
	if err := c.close(context.Background()); err != nil || len(order) != 0 {
		t.Errorf("second close() = %v after running %q, want nil after nothing", err, order)
	}
}

// TestServeHelpNamesEnv checks that -h names each flag's environment
// variable, which setFromEnv adds from the flag's name.
func TestServeHelpNamesEnv(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseServeFlags([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseServeFlags(-h) = %v, want flag.ErrHelp", err)
	}
	for _, name := range []string{"COEDIT_ADDR", "COEDIT_DATA", "COEDIT_SYNC", "COEDIT_INSECURE", "COEDIT_LOG_LEVEL", "COEDIT_LOG_FORMAT",
		"COEDIT_SHUTDOWN_TIMEOUT", "COEDIT_OPS_PER_SECOND", "COEDIT_ORIGINS", "COEDIT_MAX_DOC"} {
		if !strings.Contains(out.String(), "(env "+name+")") {
			t.Errorf("serve -h does not mention %s:\n%s", name, out.String())
		}
	}
}
