package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
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

// TestClosersShareTheDeadline: a closer that waits until its context
// ends (an HTTP request that never finishes) takes only its share of the
// deadline, and the closers after it still get theirs; without a
// deadline, none is imposed.
func TestClosersShareTheDeadline(t *testing.T) {
	var c closers
	left := make(map[string]time.Duration)
	for _, name := range []string{"store", "hub"} {
		c.add(name, func(ctx context.Context) error {
			d, ok := ctx.Deadline()
			if !ok || ctx.Err() != nil {
				t.Errorf("%s: deadline %v, %v, err %v; want one ahead", name, d, ok, ctx.Err())
			}
			left[name] = time.Until(d)
			return nil
		})
	}
	c.add("http server", func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})
	const total = 600 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	start := time.Now()
	c.close(ctx)
	if d := time.Since(start); d < total/3-20*time.Millisecond || d > total/2 {
		t.Errorf("close took %v, want about a third of %v: the waiting closer's share", d, total)
	}
	// The hub gets half of the two thirds left, the store all it leaves.
	if h := left["hub"]; h < total/3-50*time.Millisecond || h > total/3+20*time.Millisecond {
		t.Errorf("the hub had %v, want about %v", h, total/3)
	}
	if s := left["store"]; s < total*2/3-80*time.Millisecond {
		t.Errorf("the store had %v, want about %v", s, total*2/3)
	}

	c.add("listener", func(ctx context.Context) error {
		if d, ok := ctx.Deadline(); ok {
			t.Errorf("without a deadline, the closer got one: %v", d)
		}
		return nil
	})
	c.close(context.Background())
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
