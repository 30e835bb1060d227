package replay_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/collabtest"
	"github.com/coedit/coedit/collab/replay"
	"github.com/coedit/coedit/editlog"
)

// editLogs returns the hand-written edit logs in testdata/editlogs.
func editLogs(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "editlogs", "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no edit logs in testdata/editlogs (%v)", err)
	}
	return files
}

// TestReplayEditLogs replays every edit log through a fresh node, one op
// at a time and with a window of 8 ops in flight (group commit), and
// checks the final text, the acknowledged versions and the resends.
func TestReplayEditLogs(t *testing.T) {
	for _, file := range editLogs(t) {
		l, err := editlog.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !l.Header.HasFinal {
			t.Errorf("%s has no expected final text", file)
		}
		resends := 0
		for _, o := range l.Outcomes() {
			if o.Resend {
				resends++
			}
		}
		for _, window := range []int{1, 8} {
			t.Run(fmt.Sprintf("%s/window=%d", l.Name, window), func(t *testing.T) {
				srv := collabtest.Start(t)
				res := srv.Replay(t, l, replay.WithWindow(window))
				if res.Records != len(l.Records) || res.Duplicates != resends {
					t.Errorf("Replay(%s) = %d records, %d duplicates; want %d, %d", l.Name, res.Records, res.Duplicates, len(l.Records), resends)
				}
				if want := replay.KeyFor(l); res.Key != want || want.ID != l.Name {
					t.Errorf("Replay(%s) key = %v, want %v with id %q", l.Name, res.Key, want, l.Name)
				}
				// What the store holds is what was acknowledged.
				recs, err := srv.Hub.Ops(t.Context(), res.Key, 0, res.Final.Version)
				if err != nil || uint64(len(recs)) != res.Final.Version {
					t.Errorf("Hub.Ops(%v) = %d records, %v; want %d", res.Key, len(recs), err, res.Final.Version)
				}
			})
		}
	}
}

// TestReplayReportsMismatch checks that a wrong expectation is reported
// with where the texts differ, and that the other checks fire.
func TestReplayReportsMismatch(t *testing.T) {
	const body = `{"src":"a","seq":1,"v":0,"create":{"type":"text-unicode","data":"héllo\nwörld"}}
{"src":"b","seq":1,"v":1,"op":[8,"X"]}
`
	tests := []struct {
		name, header string
		want         []string
	}{
		{"other text", `{"editlog":1,"final":"héllo\nwöYrld"}`, []string{"code point 8 (line 2, column 3)", `got:  "Xrld"`, `want: "Yrld"`}},
		{"original text", `{"editlog":1,"final":"héllo\nwörld"}`, []string{"text differs", `after "héllo\nwö"`, `want: "rld"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := editlog.Read(strings.NewReader(tt.header + "\n" + body))
			if err != nil {
				t.Fatal(err)
			}
			srv := collabtest.Start(t)
			res, err := replay.Run(t.Context(), srv.Hub, l, replay.WithKey("c", tt.name))
			var me *replay.MismatchError
			if !errors.As(err, &me) || !errors.Is(err, replay.ErrMismatch) {
				t.Fatalf("Run = %v, want a *MismatchError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run error = %v\nwant it to contain %q", err, w)
				}
			}
			if res.Final.Data != "héllo\nwöXrld" || res.Final.Version != 2 {
				t.Errorf("Replay result final = %+v, want v2 %q", res.Final, "héllo\nwöXrld")
			}
		})
	}
}

func TestReplayErrors(t *testing.T) {
	srv := collabtest.Start(t)
	read := func(s string) *editlog.Log {
		l, err := editlog.Read(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	create := `{"src":"a","seq":1,"v":0,"create":{"type":"text-unicode","data":"abc"}}` + "\n"

	// An op that does not fit the document: the hub refuses it and the
	// error names the line.
	_, err := replay.Run(t.Context(), srv.Hub, read(create+`{"src":"a","seq":2,"v":1,"op":[5,"x"]}`), replay.WithKey("c", "past-end"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !errors.Is(err, collab.ErrInvalidOp) {
		t.Errorf("Replay(op past the end) = %v, want an ErrInvalidOp error naming line 2", err)
	}

	// An invalid log is refused before anything is submitted.
	_, err = replay.Run(t.Context(), srv.Hub, read(`{"src":"a","seq":1,"v":3,"del":true}`), replay.WithKey("c", "invalid"))
	if !errors.Is(err, editlog.ErrFormat) {
		t.Errorf("Replay(invalid log) = %v, want ErrFormat", err)
	}
	if snap, err := srv.Hub.FetchWait(t.Context(), collab.Key{Collection: "c", ID: "invalid"}); err != nil || snap.Version != 0 {
		t.Errorf("after an invalid log the document is %+v, %v; want untouched", snap, err)
	}

	// A log with no records replays nothing, whatever its header says: it
	// is refused rather than passed.
	empty := &editlog.Log{Header: editlog.Header{Version: 1, Initial: "abc", HasInitial: true, Final: "abc", HasFinal: true}}
	if _, err := replay.Run(t.Context(), srv.Hub, empty, replay.WithKey("c", "empty")); !errors.Is(err, editlog.ErrFormat) {
		t.Errorf("Replay(a header and no records) = %v, want ErrFormat", err)
	}

	// A document that exists already is not replayed into.
	l := read(create)
	if _, err := replay.Run(t.Context(), srv.Hub, l, replay.WithKey("c", "twice")); err != nil {
		t.Fatalf("first Replay: %v", err)
	}
	if _, err := replay.Run(t.Context(), srv.Hub, l, replay.WithKey("c", "twice")); !errors.Is(err, replay.ErrNotFresh) {
		t.Errorf("second Replay into the same document = %v, want ErrNotFresh", err)
	}
}

// TestResultString checks the summary of a replay of one op that took
// less than a millisecond: its time and its counts of one.
func TestResultString(t *testing.T) {
	r := replay.Result{
		Key:        collab.Key{Collection: "c", ID: "x"},
		Final:      collab.Snapshot{Version: 2, Type: "text-unicode", Data: "é"},
		Records:    1,
		Committed:  2,
		Duplicates: 1,
		Elapsed:    432100 * time.Nanosecond,
	}
	const want = "1 op into c/x in 432µs (2314 ops/s), 2 committed, 1 duplicate acknowledged, final version 2, 1 code point"
	if got := r.String(); got != want {
		t.Errorf("Result.String() = %q, want %q", got, want)
	}
	r.Records, r.Duplicates, r.Final.Data, r.Elapsed = 2, 0, "", 1234567*time.Microsecond
	const want2 = "2 ops into c/x in 1.235s (2 ops/s), 2 committed, 0 duplicates acknowledged, final version 2, 0 code points"
	if got := r.String(); got != want2 {
		t.Errorf("Result.String() = %q, want %q", got, want2)
	}
}

// traces caches each public trace: they are large, so each is read once
// for the test and the benchmarks.
var traces sync.Map // file name -> func() (*editlog.Log, error)

func loadTrace(tb testing.TB, name string) *editlog.Log {
	tb.Helper()
	f, _ := traces.LoadOrStore(name, sync.OnceValues(func() (*editlog.Log, error) {
		return editlog.ReadFile(filepath.Join("..", "..", "testdata", "traces", name))
	}))
	l, err := f.(func() (*editlog.Log, error))()
	if err != nil {
		tb.Fatalf("loading trace %s: %v", name, err)
	}
	return l
}

var traceFiles = []string{"automerge-paper.json.gz", "seph-blog1.json.gz"}

// TestReplayTraces replays both public editing traces through the full
// session path and checks that each ends at its endContent.
func TestReplayTraces(t *testing.T) {
	for _, name := range traceFiles {
		t.Run(name, func(t *testing.T) {
			l := loadTrace(t, name)
			srv := collabtest.Start(t)
			res := srv.Replay(t, l, replay.WithWindow(64))
			if res.Records != len(l.Records) || res.Final.Data != l.Header.Final {
				t.Errorf("Replay(%s) = %d records, final %d code points; want %d records and endContent",
					name, res.Records, len([]rune(res.Final.Data)), len(l.Records))
			}
			t.Logf("%s: %v", name, res)
		})
	}
}

// BenchmarkReplayTrace measures edits per second through the whole
// session path (Hub.Submit: dedupe, transform, rope, bbolt commit with
// SyncNone), one op in flight at a time and with a window of 64.
func BenchmarkReplayTrace(b *testing.B) {
	for _, name := range traceFiles {
		l := loadTrace(b, name)
		for _, window := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/window=%d", strings.TrimSuffix(name, ".json.gz"), window), func(b *testing.B) {
				var ops int
				var elapsed time.Duration
				for b.Loop() {
					b.StopTimer()
					srv := collabtest.Start(b)
					b.StartTimer()
					res := srv.Replay(b, l, replay.WithWindow(window))
					ops += res.Records
					elapsed += res.Elapsed
				}
				b.ReportMetric(float64(ops)/elapsed.Seconds(), "edits/s")
			})
		}
	}
}
