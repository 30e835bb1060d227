package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/editlog"
	"github.com/coedit/coedit/internal/words"
	"github.com/coedit/coedit/ot"
)

// DefaultCollection is the collection a log replays into when neither an
// option nor its header names one.
const DefaultCollection = "editlog"

// ErrMismatch is wrapped by the error Run and Remote return when the
// replay ran but the final document is not the one the log expects (a
// *MismatchError).
var ErrMismatch = errors.New("replay: final document differs from the edit log's")

// ErrNotFresh is returned when the document a log would replay into
// already has a version: replay needs a document that was never written.
var ErrNotFresh = errors.New("replay: document already exists")

// Result is what a replay did.
type Result struct {
	// Key is the document the log replayed into.
	Key collab.Key
	// Final is the document after the last record.
	Final collab.Snapshot
	// Records is the number of records submitted (resends included, the
	// initial create of a header's initial text not).
	Records int
	// Committed is the number of versions the replay committed (the
	// initial create included).
	Committed int
	// Duplicates is the number of resends acknowledged as already
	// committed.
	Duplicates int
	// RateLimited is the number of submits a server refused for its
	// per-connection rate limit and that were sent again (Remote
	// only).
	RateLimited int
	// Elapsed is the time from the first submit to the last
	// acknowledgement.
	Elapsed time.Duration
}

// OpsPerSec is the records submitted per second of Elapsed.
func (r Result) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Records) / r.Elapsed.Seconds()
}

// String summarises the result on one line.
func (r Result) String() string {
	return fmt.Sprintf("%s into %s in %v (%.0f ops/s), %d committed, %s acknowledged, final version %d, %s",
		words.Count(r.Records, "op"), r.Key, words.Round(r.Elapsed), r.OpsPerSec(), r.Committed, words.Count(r.Duplicates, "duplicate"),
		r.Final.Version, words.Count(utf8.RuneCountInString(r.Final.Data), "code point"))
}

// MismatchError says how the final document differs from the log's
// expectation. It unwraps to ErrMismatch.
type MismatchError struct {
	Key collab.Key
	// Got is the final document.
	Got collab.Snapshot
	// Diff locates the first difference from the header's final text;
	// nil when the text matches and something else differs.
	Diff *editlog.Mismatch
	// Problems lists what differs, one sentence each.
	Problems []string
}

// Error lists the problems and shows where the text first differs.
func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "final document %s at version %d: %s", e.Key, e.Got.Version, strings.Join(e.Problems, "; "))
	if e.Diff != nil {
		b.WriteString("\n")
		b.WriteString(e.Diff.String())
	}
	return b.String()
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Option configures Run and Remote.
type Option func(*config)

type config struct {
	collection, id string
	window         int
	conns          int
	token          string
}

// WithKey replays into collection/id instead of the names from the log's
// header; an empty string keeps that part.
func WithKey(collection, id string) Option {
	return func(c *config) {
		if collection != "" {
			c.collection = collection
		}
		if id != "" {
			c.id = id
		}
	}
}

// WithWindow lets up to n submits be in flight at once (default 1: each
// record waits for the previous acknowledgement). A session takes
// submits in the order they were made and may commit several in one
// store transaction, so a window shows group commit's throughput while
// every record still commits at the version the log says. Only the
// in-process Run uses it. n below 1 counts as 1.
func WithWindow(n int) Option {
	return func(c *config) { c.window = max(1, n) }
}

// WithConns lets Remote hold up to n WebSockets open at once (default
// 64), one per src; past it the one used longest ago is closed, and its
// src reconnects (claiming its src back) when it has a record again. A
// server bounds connections per address (coedit's --max-conns-per-addr,
// 256 by default), and an op log exported from it may hold more srcs
// than that: every HTTP submit without a src has one of its own. n below
// 2 counts as 2: one connection serves the records without a src and the
// initial create, and at least one more the srcs.
func WithConns(n int) Option {
	return func(c *config) { c.conns = max(2, n) }
}

// WithToken makes Remote send token in an Authorization: Bearer header
// when it opens a WebSocket, as a coedit server with authentication on
// accepts at the upgrade. Unlike a token in the URL's query, it stays
// out of the URL that proxies log and that messages show.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

func newConfig(opts []Option) config {
	c := config{window: 1, conns: 64}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// KeyFor returns the document a log replays into: the collection and id
// from WithKey, else from the log's header, else DefaultCollection and
// the log's Name ("doc" when it has none).
func KeyFor(l *editlog.Log, opts ...Option) collab.Key {
	c := newConfig(opts)
	return c.key(l)
}

func (c config) key(l *editlog.Log) collab.Key {
	k := collab.Key{Collection: c.collection, ID: c.id}
	if k.Collection == "" {
		k.Collection = l.Header.Collection
	}
	if k.Collection == "" {
		k.Collection = DefaultCollection
	}
	if k.ID == "" {
		k.ID = l.Header.ID
	}
	if k.ID == "" {
		k.ID = l.Name
	}
	if k.ID == "" {
		k.ID = "doc"
	}
	return k
}

// Run submits every record of l to hub, in order, through the same
// path a client's submit takes (Hub.Submit with the record's src, seq and
// base version), and checks the outcome:
//
//   - the log must be valid (editlog.Log.Validate) and the document
//     fresh (version 0), else ErrNotFresh;
//   - a header's initial text is created first (src "", version 0);
//   - every record must commit at the next version, and every resend
//     must be acknowledged as a duplicate at its original version;
//     anything else stops the replay with an error naming the record;
//   - at the end the document must have the header's final text and
//     final version, when given; if not, Run returns the Result with a
//     *MismatchError (wrapping ErrMismatch) that shows where the texts
//     first differ.
func Run(ctx context.Context, hub *collab.Hub, l *editlog.Log, opts ...Option) (Result, error) {
	cfg := newConfig(opts)
	res := Result{Key: cfg.key(l)}
	if err := l.Validate(); err != nil {
		return res, err
	}
	snap, err := hub.FetchWait(ctx, res.Key)
	if err != nil {
		return res, fmt.Errorf("replay: fetch %s: %w", res.Key, err)
	}
	if snap.Version != 0 {
		return res, fmt.Errorf("%w: %s is at version %d; replay into a new document", ErrNotFresh, res.Key, snap.Version)
	}
	start := time.Now()
	if l.Header.HasInitial {
		typ := l.Header.Type
		if typ == "" {
			typ = ot.URI
		}
		r, err := hub.SubmitWait(ctx, res.Key, collab.Submission{
			Version: 0, HasVersion: true, Kind: collab.OpCreate, Type: typ, Data: l.Header.Initial,
		})
		if err != nil {
			return res, fmt.Errorf("replay: creating %s with the initial text: %w", res.Key, err)
		}
		if r.Version != 0 {
			return res, fmt.Errorf("replay: initial create of %s committed at version %d, want 0", res.Key, r.Version)
		}
		res.Committed++
	}
	if err := submitAll(ctx, hub, res.Key, l, cfg.window, &res); err != nil {
		res.Elapsed = time.Since(start)
		return res, err
	}
	res.Elapsed = time.Since(start)
	if res.Final, err = hub.FetchWait(ctx, res.Key); err != nil {
		return res, fmt.Errorf("replay: fetch %s: %w", res.Key, err)
	}
	return res, checkFinal(l, res.Key, res.Final)
}

// submission converts a record to what the hub takes.
func submission(r *editlog.Record) collab.Submission {
	s := collab.Submission{Src: r.Src, Seq: r.Seq, Version: r.V, HasVersion: true}
	switch r.Kind {
	case editlog.Edit:
		s.Kind, s.Op = collab.OpEdit, r.Op
	case editlog.Create:
		s.Kind, s.Type, s.Data = collab.OpCreate, r.Type, r.Data
	case editlog.Delete:
		s.Kind = collab.OpDelete
	}
	return s
}

// submitAll submits the records with up to window in flight and checks
// each acknowledgement against the log's expected outcome.
func submitAll(ctx context.Context, hub *collab.Hub, key collab.Key, l *editlog.Log, window int, res *Result) error {
	want := l.Outcomes()
	type reply struct {
		r   collab.SubmitResult
		err error
	}
	got := make([]reply, len(l.Records))
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed bool
	)
	slots := make(chan struct{}, window)
	submitted := 0
	for i := range l.Records {
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return fmt.Errorf("replay: replay of %s stopped at %s: %w", key, l.Where(i), ctx.Err())
		}
		wg.Add(1)
		submitted++
		hub.Submit(key, nil, submission(&l.Records[i]), func(r collab.SubmitResult, err error) {
			got[i] = reply{r, err}
			if err != nil {
				mu.Lock()
				failed = true
				mu.Unlock()
			}
			<-slots
			wg.Done()
		})
	}
	wg.Wait()
	for i := range submitted {
		rec, g, w := &l.Records[i], got[i], want[i]
		where := fmt.Sprintf("%s (src %q seq %d v %d)", l.Where(i), rec.Src, rec.Seq, rec.V)
		res.Records++
		switch {
		case g.err != nil:
			return fmt.Errorf("replay: %s: %w", where, g.err)
		case w.Resend && !g.r.Duplicate:
			return fmt.Errorf("replay: %s: a resend was applied again at version %d, want an acknowledgement at version %d", where, g.r.Version, w.Version)
		case !w.Resend && g.r.Duplicate:
			return fmt.Errorf("replay: %s: acknowledged as a duplicate of version %d, but the log commits it at version %d", where, g.r.Version, w.Version)
		case g.r.Version != w.Version:
			return fmt.Errorf("replay: %s: acknowledged at version %d, want %d", where, g.r.Version, w.Version)
		}
		if g.r.Duplicate {
			res.Duplicates++
		} else {
			res.Committed++
		}
	}
	return nil
}

// checkFinal compares the final document with the header's expectations.
func checkFinal(l *editlog.Log, key collab.Key, got collab.Snapshot) error {
	h := &l.Header
	e := &MismatchError{Key: key, Got: got}
	if want := l.Head(); got.Version != want {
		e.Problems = append(e.Problems, fmt.Sprintf("version %d, want %d", got.Version, want))
	}
	if h.HasFinal {
		if got.Type == "" {
			e.Problems = append(e.Problems, "the document does not exist (deleted or never created), want the final text")
		} else if e.Diff = editlog.Compare(got.Data, h.Final); e.Diff != nil {
			e.Problems = append(e.Problems, "the text differs from the log's final text")
		}
	}
	if len(e.Problems) > 0 {
		return e
	}
	return nil
}
