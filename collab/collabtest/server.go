package collabtest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/replay"
	"github.com/coedit/coedit/editlog"
	"github.com/coedit/coedit/storage"
)

// Server is an in-process coedit node for tests: a Hub over a bbolt
// store in a temporary directory. It has no network listener.
type Server struct {
	// Hub is the engine; tests may use every method of it.
	Hub *collab.Hub
	// DB is the store under Hub.
	DB *storage.DB
	// Path is the bbolt file.
	Path string
}

// Option configures Start.
type Option func(*startConfig)

type startConfig struct {
	store storage.Options
	hub   collab.Options
	wrap  func(*storage.DB) collab.Store
	check bool
}

// WithStorage sets the store's options. Start's default is
// storage.Options{Sync: storage.SyncNone}.
func WithStorage(o storage.Options) Option {
	return func(c *startConfig) { c.store = o }
}

// WithHub sets the hub's options, except two that Start sets as coedit
// serve does on a single node: Store, the server's store (or
// WithStoreWrapper's wrapper of it), and Pipeline, on unless
// WithStoreWrapper is given (the store's CommitAsync would bypass the
// wrapper). Without WithHub the options are the zero collab.Options
// (every documented default) with those two set.
func WithHub(o collab.Options) Option {
	return func(c *startConfig) { c.hub = o }
}

// WithStoreWrapper makes the hub use wrap(db) as its store instead of the
// store itself: a test's wrapper that makes it fail or wait.
func WithStoreWrapper(wrap func(*storage.DB) collab.Store) Option {
	return func(c *startConfig) { c.wrap = wrap }
}

// WithCheck makes the cleanup check the store's consistency
// (storage.DB.Check) after closing the hub. The check reads the whole
// store: for the small stores of most tests, not for a replayed trace.
func WithCheck() Option {
	return func(c *startConfig) { c.check = true }
}

// Start opens a bbolt store in tb.TempDir() and starts a Hub over it,
// with pipelined group commits as coedit serve runs a single node (see
// WithHub). It fails the test if the store cannot be opened. tb.Cleanup
// closes the hub (letting sessions finish their commits), checks the
// store if WithCheck asked, and closes it.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := startConfig{store: storage.Options{Sync: storage.SyncNone}}
	for _, o := range opts {
		o(&cfg)
	}
	path := filepath.Join(tb.TempDir(), "coedit.db")
	db, err := storage.Open(path, cfg.store)
	if err != nil {
		tb.Fatalf("collabtest.Start: %v", err)
	}
	cfg.hub.Store = db
	// As coedit serve runs a single node: group commits pipelined, unless
	// a wrapper stands between the Hub and the store's CommitAsync.
	cfg.hub.Pipeline = cfg.wrap == nil
	if cfg.wrap != nil {
		cfg.hub.Store = cfg.wrap(db)
	}
	s := &Server{Hub: collab.NewHub(cfg.hub), DB: db, Path: path}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Hub.Close(ctx); err != nil {
			tb.Errorf("collabtest: closing the hub: %v", err)
		}
		if cfg.check {
			if err := db.Check(ctx); err != nil {
				tb.Errorf("collabtest: store check: %v", err)
			}
		}
		if err := db.Close(); err != nil {
			tb.Errorf("collabtest: closing the store: %v", err)
		}
	})
	return s
}

// Replay replays l into s's hub (replay.Run) and returns the result. A final document that differs from the log's
// expected one is reported with tb.Errorf, showing where the texts first
// differ; any other failure (a record the hub refuses, a wrong version)
// stops the test with tb.Fatalf.
func (s *Server) Replay(tb testing.TB, l *editlog.Log, opts ...replay.Option) replay.Result {
	tb.Helper()
	res, err := replay.Run(tb.Context(), s.Hub, l, opts...)
	if err != nil {
		name := l.Name
		if name == "" {
			name = res.Key.String()
		}
		if errors.Is(err, replay.ErrMismatch) {
			tb.Errorf("replay %s: %v", name, err)
		} else {
			tb.Fatalf("replay %s: %v", name, err)
		}
	}
	return res
}

// ReplayFile reads an edit log or editing trace (editlog.ReadFile) and
// replays it with Replay. A file that cannot be read stops the test.
func (s *Server) ReplayFile(tb testing.TB, path string, opts ...replay.Option) replay.Result {
	tb.Helper()
	l, err := editlog.ReadFile(path)
	if err != nil {
		tb.Fatalf("collabtest: %v", err)
	}
	return s.Replay(tb, l, opts...)
}
