package main

import (
	"context"
	"errors"
	"fmt"
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
func (c *closers) close(ctx context.Context) error {
	var errs []error
	for i := len(c.list) - 1; i >= 0; i-- {
		if err := c.list[i].close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", c.list[i].name, err))
		}
	}
	c.list = nil
	return errors.Join(errs...)
}
