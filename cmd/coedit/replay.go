package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/replay"
	"github.com/coedit/coedit/editlog"
	"github.com/coedit/coedit/internal/words"
	"github.com/coedit/coedit/storage"
)

// runReplay is `coedit replay [flags] FILE...`: it replays edit logs and
// editing traces (docs/editlog.md) offline through an in-process node, or
// against a running server with --server, and checks each final text.
// SIGINT and SIGTERM stop it.
func runReplay(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return replayCommand(ctx, args, os.Getenv, stdout, stderr)
}

// replayConfig is replay's command line.
type replayConfig struct {
	Files      []string
	Server     string
	Collection string
	ID         string
	Window     int
	Conns      int
	// Token authenticates to the server (Authorization: Bearer); from
	// --token or COEDIT_TOKEN.
	Token string
}

func parseReplayFlags(args []string, getenv func(string) string, output io.Writer) (replayConfig, error) {
	var cfg replayConfig
	fs := flag.NewFlagSet("coedit replay", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.Server, "server", "", "replay against the server at this WebSocket URL (ws://host:port/ws), one connection per src, instead of an in-process node")
	fs.StringVar(&cfg.Collection, "collection", "", "collection to replay into (default: the log's header, else "+replay.DefaultCollection+")")
	fs.StringVar(&cfg.ID, "id", "", "document id to replay into (default: the log's header, else the file name); only with one FILE")
	fs.IntVar(&cfg.Window, "window", 64, "in-process only: how many submits may wait in the session's inbox at once (1: each waits for the previous ack)")
	fs.IntVar(&cfg.Conns, "conns", 64, "with --server: how many WebSockets (one per src, and one for records without a src) stay open at once, at least 2; past it the one used longest ago closes and its src reconnects when needed (keep it below the server's --max-conns-per-addr)")
	// The token is set from the environment before the command line is
	// parsed, so that --token wins, and not as the flag's default, so
	// that -h does not print it.
	fs.StringVar(&cfg.Token, "token", "", "with --server: the token to send as Authorization: Bearer (env "+envName("token")+"); it is never printed, unlike a ?token= in --server's URL, which is redacted in messages but seen by proxies")
	if v := getenv(envName("token")); v != "" {
		cfg.Token = v
	}
	fs.Usage = func() {
		fmt.Fprint(output, `Usage: coedit replay [flags] FILE...

Replays each edit log (JSON Lines, see docs/editlog.md; an op log exported
from GET /api/docs/{collection}/{id}/ops is one) or editing trace
({startContent, endContent, txns}), gzipped or not, into a new document,
submitting every op with its recorded src, seq and base version, and checks
the final text against the log's. By default it runs an in-process node on a
temporary store (no network); --server replays against a running server.
Exits 1 when a replay fails or a final text differs.

Flags:
`)
		fs.PrintDefaults()
	}
	// Flags may come before or after the files.
	for {
		if err := parseFlags(fs, args, "", output); err != nil {
			return cfg, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		cfg.Files = append(cfg.Files, args[0])
		args = args[1:]
	}
	switch {
	case len(cfg.Files) == 0:
		return cfg, &usageError{"replay: no FILE given (see coedit replay -h)"}
	case cfg.ID != "" && len(cfg.Files) > 1:
		return cfg, &usageError{"replay: --id names one document, but there are several FILEs"}
	case cfg.Window < 1:
		return cfg, &usageError{"replay: --window must be at least 1"}
	case cfg.Conns < 2:
		// One connection serves the records without a src and the
		// initial create, and at least one more the srcs.
		return cfg, &usageError{"replay: --conns must be at least 2"}
	case cfg.Server != "" && !strings.HasPrefix(cfg.Server, "ws://") && !strings.HasPrefix(cfg.Server, "wss://"):
		return cfg, &usageError{fmt.Sprintf("replay: --server %q: want a WebSocket URL such as ws://127.0.0.1:8080/ws", replay.RedactURL(cfg.Server))}
	}
	return cfg, nil
}

// replayCommand runs the replay command with ctx; see runReplay.
func replayCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseReplayFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	failed := 0
	for _, file := range cfg.Files {
		if err := replayFile(ctx, cfg, file, stdout); err != nil {
			fmt.Fprintf(stderr, "coedit replay: %s: %v\n", file, err)
			failed++
		}
		if ctx.Err() != nil {
			break
		}
	}
	if failed > 0 {
		return fmt.Errorf("replay: %d of %d edit logs failed", failed, len(cfg.Files))
	}
	return nil
}

// replayFile replays one file and prints its figures.
func replayFile(ctx context.Context, cfg replayConfig, file string, stdout io.Writer) error {
	l, err := editlog.ReadFile(file)
	if err != nil {
		// ReadFile names the file, and so does an open's error; the
		// caller names it too.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		return errors.Unwrap(err)
	}
	opts := []replay.Option{replay.WithKey(cfg.Collection, cfg.ID), replay.WithWindow(cfg.Window), replay.WithConns(cfg.Conns), replay.WithToken(cfg.Token)}
	var res replay.Result
	where := "in-process"
	if cfg.Server != "" {
		where = replay.RedactURL(cfg.Server)
		res, err = replay.Remote(ctx, cfg.Server, l, opts...)
	} else {
		res, err = replayOffline(ctx, l, opts)
	}
	if errors.Is(err, replay.ErrNotFresh) {
		return fmt.Errorf("%w (choose another document with --id)", err)
	}
	if err != nil && !errors.Is(err, replay.ErrMismatch) {
		return err
	}
	verdict := "final text matches the log's"
	switch {
	case err != nil:
		verdict = "FINAL TEXT DIFFERS"
	case !l.Header.HasFinal:
		verdict = "the log has no expected final text"
	}
	fmt.Fprintf(stdout, "%s: %s into %s (%s) in %v: %.0f edits/s; final version %d, %s, %s acknowledged; %s\n",
		file, words.Count(res.Records, "edit"), res.Key, where, words.Round(res.Elapsed), res.OpsPerSec(),
		res.Final.Version, words.Count(utf8.RuneCountInString(res.Final.Data), "code point"), words.Count(res.Duplicates, "resend"), verdict)
	if res.RateLimited > 0 {
		fmt.Fprintf(stdout, "%s: the server rate-limited %d submits, which were sent again; its per-connection limit slows this replay\n", file, res.RateLimited)
	}
	return err
}

// replayOffline replays l into a new in-process node on a temporary bbolt
// store (no fsync), removed afterwards.
func replayOffline(ctx context.Context, l *editlog.Log, opts []replay.Option) (res replay.Result, err error) {
	dir, err := os.MkdirTemp("", "coedit-replay-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	db, err := storage.Open(filepath.Join(dir, "replay.db"), storage.Options{Sync: storage.SyncNone})
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	hub := collab.NewHub(collab.Options{Store: db, Logger: slog.New(slog.DiscardHandler)})
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if cerr := hub.Close(cctx); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return replay.Run(ctx, hub, l, opts...)
}
