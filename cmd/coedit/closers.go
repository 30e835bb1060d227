package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// closers is an ordered list of things to close. Whatever opens a
// resource adds its close right after opening it; close then runs them in
// reverse order, so what was opened last closes first. The same list
// serves an error path halfway through opening (only what was opened is
// closed) and a full shutdown, so the shutdown order is written once: as
// the order in which things are opened.
type closers struct {
	list []namedCloser
}

type namedCloser struct {
	name  string
	close func(ctx context.Context) error
}

// add appends fn, closed before everything added earlier.
func (c *closers) add(name string, fn func(ctx context.Context) error) {
	c.list = append(c.list, namedCloser{name, fn})
}

// close runs every closer, newest first, even after one fails, and
// empties the list, so a second call does nothing. It returns every
// failure, each prefixed with its closer's name.
//
// When ctx has a deadline, each closer gets an equal share of the time
// left among the closers still to run, itself included, and what it
// leaves unused passes on to those after it. A closer that waits on
// clients (HTTP requests in flight, WebSockets flushing their queues)
// would otherwise take the whole deadline, and the hub and the store,
// which close after them, would find it spent: the hub would give up on
// its sessions and the store close under them.
func (c *closers) close(ctx context.Context) error {
	var errs []error
	for i := len(c.list) - 1; i >= 0; i-- {
		cctx, cancel := share(ctx, i+1)
		err := c.list[i].close(cctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", c.list[i].name, err))
		}
	}
	c.list = nil
	return errors.Join(errs...)
}

// share returns ctx with a deadline of 1/n of the time left until ctx's
// own, or ctx as it is when it has none.
func share(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/time.Duration(n)))
}
