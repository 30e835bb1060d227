package editlog_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/coedit/coedit/editlog"
	"github.com/coedit/coedit/ot"
)

// smallTrace has a multi-patch transaction in descending order, a patch
// that deletes and inserts, and positions past astral characters.
const smallTrace = `{
  "startContent": "ab",
  "endContent": "a😀Xyz!",
  "txns": [
    {"time": "2021-05-12T04:01:04.000Z", "patches": [[2, 0, "😀c"]]},
    {"time": "2021-05-12T04:01:05.250Z", "patches": [[4, 0, "!"], [3, 1, "Xyz"], [1, 1, ""]]}
  ]
}`

func TestReadTrace(t *testing.T) {
	l, err := editlog.ReadTrace(strings.NewReader(smallTrace))
	if err != nil {
		t.Fatalf("ReadTrace error: %v", err)
	}
	if err := l.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	h := l.Header
	if !h.HasInitial || h.Initial != "ab" || !h.HasFinal || h.Final != "a😀Xyz!" || h.Type != ot.URI {
		t.Errorf("header = %+v", h)
	}
	const t0, t1 = 1620792064000, 1620792065250
	want := []editlog.Record{
		{Src: "trace", Seq: 1, V: 1, Kind: editlog.Edit, Time: t0, Op: ot.Op{{Kind: ot.KindSkip, N: 2}, {Kind: ot.KindInsert, N: 2, Text: "😀c"}}},
		{Src: "trace", Seq: 2, V: 2, Kind: editlog.Edit, Time: t1, Op: ot.Op{{Kind: ot.KindSkip, N: 4}, {Kind: ot.KindInsert, N: 1, Text: "!"}}},
		{Src: "trace", Seq: 3, V: 3, Kind: editlog.Edit, Time: t1, Op: ot.Op{{Kind: ot.KindSkip, N: 3}, {Kind: ot.KindDelete, N: 1}, {Kind: ot.KindInsert, N: 3, Text: "Xyz"}}},
		{Src: "trace", Seq: 4, V: 4, Kind: editlog.Edit, Time: t1, Op: ot.Op{{Kind: ot.KindSkip, N: 1}, {Kind: ot.KindDelete, N: 1}}},
	}
	if !reflect.DeepEqual(l.Records, want) {
		t.Errorf("records = %+v\nwant %+v", l.Records, want)
	}
	if got := applyAll(t, l); got != h.Final {
		t.Errorf("applying the records gives %q, want %q", got, h.Final)
	}

	// The same trace gzipped reads the same.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(smallTrace))
	zw.Close()
	gz, err := editlog.Read(&buf)
	if err != nil {
		t.Fatalf("Read(gzipped trace) error: %v", err)
	}
	if !reflect.DeepEqual(gz, l) {
		t.Errorf("Read(gzipped trace) = %+v, want %+v", gz, l)
	}

	if _, err := editlog.ReadTrace(strings.NewReader(sample)); err == nil || !errors.Is(err, editlog.ErrFormat) {
		t.Errorf("ReadTrace(edit log) = %v, want an ErrFormat error", err)
	}
}

func TestReadTraceErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"past end", `{"startContent":"ab","endContent":"","txns":[{"time":"","patches":[[1,2,""]]}]}`, "txns[0].patches[0]: [1, 2] runs past the end"},
		{"pos past end", `{"startContent":"😀","endContent":"","txns":[{"time":"","patches":[[2,0,"x"]]}]}`, "runs past the end"},
		{"negative", `{"startContent":"ab","endContent":"","txns":[{"time":"","patches":[[-1,0,"x"]]}]}`, "negative"},
		{"empty patch", `{"startContent":"ab","endContent":"","txns":[{"time":"","patches":[[1,0,"x"],[1,0,""]]}]}`, "txns[0].patches[1] neither deletes nor inserts"},
		{"short patch", `{"startContent":"","endContent":"","txns":[{"time":"","patches":[[0,"x"]]}]}`, "txns[0].patches[0]: want [pos, delCount, insText]: the delete count is a string"},
		{"one-element patch", `{"startContent":"","endContent":"","txns":[{"patches":[[0]]}]}`, "txns[0].patches[0]: want [pos, delCount, insText]: the patch ends after 1 element"},
		{"two-element patch", `{"startContent":"","endContent":"","txns":[{"patches":[[0,0,"x"]]},{"patches":[[0,0,"y"],[0,0]]}]}`, "txns[1].patches[1]: want [pos, delCount, insText]: the patch ends after 2 elements"},
		{"empty patch array", `{"startContent":"","endContent":"","txns":[{"patches":[[]]}]}`, "txns[0].patches[0]: want [pos, delCount, insText]: the patch ends after 0 elements"},
		{"text not a string", `{"startContent":"","endContent":"","txns":[{"patches":[[0,0,5]]}]}`, "txns[0].patches[0]: want [pos, delCount, insText]: the inserted text is the number 5"},
		{"patches not an array", `{"startContent":"","endContent":"","txns":[{"patches":{}}]}`, "txns[0].patches: want an array, not an object"},
		{"txn not an object", `{"startContent":"","endContent":"","txns":[[0,0,"x"]]}`, "txns[0]: want an object, not an array"},
		{"txns not an array", `{"startContent":"","endContent":"","txns":{}}`, "txns: want an array, not an object"},
		{"content not a string", `{"startContent":1,"endContent":"","txns":[]}`, "startContent: want a string, not the number 1"},
		{"long patch", `{"startContent":"ab","endContent":"","txns":[{"patches":[[1,0,"X"]]},{"patches":[[1,0,"Y",4]]}]}`, "txns[1].patches[0]: want [pos, delCount, insText], not more"},
		{"patch not an array", `{"startContent":"","endContent":"","txns":[{"patches":[{"pos":0}]}]}`, "txns[0].patches[0]: want [pos, delCount, insText]: the patch is an object"},
		{"float pos", `{"startContent":"ab","endContent":"","txns":[{"patches":[[1,0,"X"]]},{"patches":[[1.5,0,"Y"]]}]}`, "txns[1].patches[0]: the position 1.5 is not an integer"},
		{"huge count", `{"startContent":"","endContent":"","txns":[{"patches":[[0,99999999999999999999,"Y"]]}]}`, "txns[0].patches[0]: the delete count 99999999999999999999 is not an integer"},
		{"no patches", `{"startContent":"","endContent":"","txns":[{"time":"","patches":[[0,0,"x"]]},{"time":""}]}`, "txns[1] has no patches"},
		{"bad time", `{"startContent":"","endContent":"","txns":[{"time":"yesterday","patches":[[0,0,"x"]]}]}`, "txns[0].time"},
		{"time not a string", `{"startContent":"","endContent":"","txns":[{"time":5,"patches":[[0,0,"x"]]}]}`, "txns[0].time: want a string, not the number 5"},
		{"key case", `{"startContent":"","endContent":"x","txns":[{"Patches":[[0,0,"x"]]}]}`, `txns[0]: unknown field "Patches" (keys are case-sensitive: "patches")`},
		{"top key case", `{"startContent":"","EndContent":"x","txns":[{"patches":[[0,0,"x"]]}]}`, `the trace: unknown field "EndContent"`},
		{"repeated key", `{"startContent":"","endContent":"x","endContent":"y","txns":[{"patches":[[0,0,"x"]]}]}`, `the trace has the key "endContent" twice`},
		{"repeated txn key", `{"startContent":"","endContent":"x","txns":[{"patches":[[0,0,"x"]],"patches":[[0,0,"y"]]}]}`, `txns[0] has the key "patches" twice`},
		{"syntax", `{"startContent":"","endContent":"x","txns":[{"patches":[[0,0,"x"]]},]}`, "byte 68: invalid character ']'"},
		{"cut short", `{"startContent":"","endContent":"x","txns":[{"patches":[[0,0,"x"`, "byte 64: the JSON ends early"},
		{"missing end", `{"startContent":"","txns":[]}`, "needs"},
		{"no txns", `{"startContent":"ab","endContent":"ab","txns":[]}`, "no patches"},
		{"lone surrogate", `{"startContent":"","endContent":"","txns":[{"time":"","patches":[[0,0,"\udc00"]]}]}`, "surrogate"},
		{"trailing data", `{"startContent":"","endContent":"x","txns":[{"time":"","patches":[[0,0,"x"]]}]} garbage`, "data after"},
		{"second object", `{"startContent":"","endContent":"x","txns":[]} {}`, "data after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := editlog.ReadTrace(strings.NewReader(tt.in))
			if err == nil || !errors.Is(err, editlog.ErrFormat) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadTrace(%s) = %v, want an ErrFormat error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

// TestPublicTraces imports the two public traces and applies every op
// with the ot package alone: the import must reproduce endContent.
func TestPublicTraces(t *testing.T) {
	for _, tc := range []struct {
		file             string
		records, finalCP int
	}{
		{"automerge-paper.json.gz", 259778, 104852},
		{"seph-blog1.json.gz", 137993, 56769},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "testdata", "traces", tc.file)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("trace missing: %v", err)
			}
			l, err := editlog.ReadFile(path)
			if err != nil {
				t.Fatalf("ReadFile(%s) error: %v", path, err)
			}
			if err := l.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if len(l.Records) != tc.records || l.Name != strings.TrimSuffix(tc.file, ".json.gz") {
				t.Errorf("ReadFile(%s) = %q with %d records, want %d", tc.file, l.Name, len(l.Records), tc.records)
			}
			if n := len([]rune(l.Header.Final)); n != tc.finalCP {
				t.Errorf("final text has %d code points, want %d", n, tc.finalCP)
			}
			if got := applyAll(t, l); got != l.Header.Final {
				t.Errorf("applying the records: %s", editlog.Compare(got, l.Header.Final))
			}
		})
	}
}

// applyAll applies a sequential log's ops in order with a Rope.
func applyAll(t *testing.T, l *editlog.Log) string {
	t.Helper()
	r := ot.NewRope(l.Header.Initial)
	for i, rec := range l.Records {
		if err := r.Apply(rec.Op); err != nil {
			t.Fatalf("%s: Apply(%v) error: %v", l.Where(i), rec.Op, err)
		}
	}
	return r.String()
}

// BenchmarkReadTrace reads each public trace from its gzip file, as
// coedit replay does before it submits a record.
func BenchmarkReadTrace(b *testing.B) {
	for _, file := range []string{"automerge-paper.json.gz", "seph-blog1.json.gz"} {
		b.Run(strings.TrimSuffix(file, ".json.gz"), func(b *testing.B) {
			path := filepath.Join("..", "testdata", "traces", file)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := editlog.ReadFile(path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
