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

// sample is a log with a header and every kind of record.
const sample = `{"editlog":1,"collection":"docs","id":"x","final":"héllo 😀 <b>","finalVersion":4,"comment":"every kind"}
{"src":"a","seq":1,"v":0,"create":{"type":"http://sharejs.org/types/text-unicode","data":"hello"},"ts":1700000000000}
{"src":"b","seq":1,"v":1,"op":[1,{"d":1},"é"]}
{"src":"a","seq":2,"v":1,"op":[5," 😀"],"ts":1700000000500}
{"src":"a","seq":2,"v":1,"op":[5," 😀"]}
{"src":"","seq":0,"v":3,"op":[7," <b>"]}
`

func TestReadWriteRoundTrip(t *testing.T) {
	l, err := editlog.Read(strings.NewReader(sample))
	if err != nil {
		t.Fatalf("Read(sample) error: %v", err)
	}
	if err := l.Validate(); err != nil {
		t.Fatalf("Validate(sample) = %v, want nil", err)
	}
	wantHeader := editlog.Header{Version: 1, Collection: "docs", ID: "x", Final: "héllo 😀 <b>", HasFinal: true, FinalVersion: 4, Comment: "every kind"}
	if l.Header != wantHeader {
		t.Errorf("Read(sample).Header = %+v, want %+v", l.Header, wantHeader)
	}
	wantRecs := []editlog.Record{
		{Src: "a", Seq: 1, V: 0, Kind: editlog.Create, Type: ot.URI, Data: "hello", Time: 1700000000000, Line: 2},
		{Src: "b", Seq: 1, V: 1, Kind: editlog.Edit, Op: ot.Op{{Kind: ot.KindSkip, N: 1}, {Kind: ot.KindDelete, N: 1}, {Kind: ot.KindInsert, N: 1, Text: "é"}}, Line: 3},
		{Src: "a", Seq: 2, V: 1, Kind: editlog.Edit, Op: ot.Op{{Kind: ot.KindSkip, N: 5}, {Kind: ot.KindInsert, N: 2, Text: " 😀"}}, Time: 1700000000500, Line: 4},
		{Src: "a", Seq: 2, V: 1, Kind: editlog.Edit, Op: ot.Op{{Kind: ot.KindSkip, N: 5}, {Kind: ot.KindInsert, N: 2, Text: " 😀"}}, Line: 5},
		{Src: "", Seq: 0, V: 3, Kind: editlog.Edit, Op: ot.Op{{Kind: ot.KindSkip, N: 7}, {Kind: ot.KindInsert, N: 4, Text: " <b>"}}, Line: 6},
	}
	if !reflect.DeepEqual(l.Records, wantRecs) {
		t.Errorf("Read(sample).Records = %+v\nwant %+v", l.Records, wantRecs)
	}
	wantOut := []editlog.Outcome{{Version: 0}, {Version: 1}, {Version: 2}, {Version: 2, Resend: true}, {Version: 3}}
	if got := l.Outcomes(); !reflect.DeepEqual(got, wantOut) {
		t.Errorf("Outcomes() = %+v, want %+v", got, wantOut)
	}
	if got := l.Head(); got != 4 {
		t.Errorf("Head() = %d, want 4", got)
	}

	var buf bytes.Buffer
	if err := editlog.Write(&buf, l); err != nil {
		t.Fatalf("Write error: %v", err)
	}
	// The canonical form keeps the text as UTF-8 and does not escape <.
	if !strings.Contains(buf.String(), `"data":"hello"`) || !strings.Contains(buf.String(), `" <b>"`) {
		t.Errorf("Write output is not canonical:\n%s", buf.String())
	}
	again, err := editlog.Read(&buf)
	if err != nil {
		t.Fatalf("Read(Write(sample)) error: %v", err)
	}
	if again.Header != l.Header {
		t.Errorf("header after round trip = %+v, want %+v", again.Header, l.Header)
	}
	for i := range again.Records {
		again.Records[i].Line = l.Records[i].Line
	}
	if !reflect.DeepEqual(again.Records, l.Records) {
		t.Errorf("records after round trip = %+v, want %+v", again.Records, l.Records)
	}
}

// TestWriteHeaderWithoutVersion writes a header built in code without
// its Version: the line must still be written, else the log read back
// starts at version 0 without its initial text and loses its final-text
// check.
func TestWriteHeaderWithoutVersion(t *testing.T) {
	op, err := ot.Decode([]byte(`[5," world"]`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header editlog.Header
	}{
		{"initial and final", editlog.Header{Initial: "hello", HasInitial: true, Final: "hello world", HasFinal: true}},
		{"comment only", editlog.Header{Comment: "why", Initial: "hello", HasInitial: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &editlog.Log{Header: tt.header, Records: []editlog.Record{{Src: "a", Seq: 1, V: 1, Kind: editlog.Edit, Op: op}}}
			if err := l.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			var buf bytes.Buffer
			if err := editlog.Write(&buf, l); err != nil {
				t.Fatalf("Write error: %v", err)
			}
			again, err := editlog.Read(&buf)
			if err != nil {
				t.Fatalf("Read(Write(l)) error: %v", err)
			}
			want := tt.header
			want.Version = editlog.FormatVersion
			if again.Header != want {
				t.Errorf("Read(Write(l)).Header = %+v, want %+v", again.Header, want)
			}
			if err := again.Validate(); err != nil {
				t.Errorf("Read(Write(l)).Validate() = %v, want nil", err)
			}
		})
	}
}

// TestReadExport reads the op log a server exports: no header, v is the
// commit version, m carries the timestamp (and maybe more).
func TestReadExport(t *testing.T) {
	const export = `{"v":0,"src":"c1","seq":1,"create":{"type":"http://sharejs.org/types/text-unicode","data":""},"m":{"ts":1}}
{"v":1,"src":"c1","seq":2,"op":["hi"],"m":{"ts":2,"other":true}}

{"v":2,"src":"c2","seq":1,"op":[2,"!"],"c":"docs","d":"x"}
{"v":3,"src":"c1","seq":3,"del":true,"m":{"ts":4,"data":{"v":3}}}
`
	l, err := editlog.Read(strings.NewReader(export))
	if err != nil {
		t.Fatalf("Read(export) error: %v", err)
	}
	if err := l.Validate(); err != nil {
		t.Fatalf("Validate(export) = %v, want nil", err)
	}
	if l.Header.Version != 0 || l.InitialVersion() != 0 {
		t.Errorf("export header = %+v, initial version %d; want none, 0", l.Header, l.InitialVersion())
	}
	if len(l.Records) != 4 || l.Records[1].Time != 2 || l.Records[3].Kind != editlog.Delete || l.Records[2].Line != 4 {
		t.Errorf("Read(export).Records = %+v", l.Records)
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown field", `{"src":"a","seq":1,"v":0,"sq":2,"del":true}`, `unknown field "sq"`},
		{"missing v", `{"src":"a","seq":1,"del":true}`, `missing "v"`},
		{"two kinds", `{"v":0,"op":["a"],"del":true}`, "exactly one"},
		{"no kind", `{"v":0,"op":null}`, "exactly one"},
		{"del false", `{"v":0,"del":false}`, `"del" must be true`},
		{"bad op", `{"v":0,"op":[3]}`, "trailing skip"},
		{"op not array", `{"v":0,"op":"abc"}`, "op"},
		{"create data number", `{"v":0,"create":{"type":"text-unicode","data":3}}`, `"data" must be a string`},
		{"create unknown field", `{"v":0,"create":{"type":"text-unicode","dat":""}}`, `unknown field "dat"`},
		{"lone high surrogate", `{"v":0,"create":{"type":"text-unicode","data":"a\ud83d"}}`, "lone high surrogate"},
		{"lone low surrogate", `{"v":0,"create":{"type":"text-unicode","data":"\ude00"}}`, "lone low surrogate"},
		{"surrogate in op", `{"v":0,"op":["\ud83d x"]}`, "surrogate"},
		{"invalid utf8", "{\"v\":0,\"create\":{\"type\":\"text-unicode\",\"data\":\"\xff\"}}", "invalid UTF-8"},
		{"negative seq", `{"src":"a","seq":-1,"v":0,"del":true}`, "seq"},
		{"ts and m.ts", `{"v":0,"del":true,"ts":1,"m":{"ts":2}}`, "differ"},
		{"trailing data", `{"v":0,"del":true} {}`, "after the JSON object"},
		{"not an object", `[1,2]`, "must be a JSON object, not an array"},
		{"header later", "{\"v\":0,\"del\":true}\n{\"editlog\":1}", "header may only be the first line"},
		{"header version", `{"editlog":2}`, "format version 2"},
		{"header unknown field", `{"editlog":1,"intial":""}`, `unknown field "intial"`},
		{"export error", `{"error":{"code":"ERR_UNKNOWN_ERROR","message":"disk"}}`, "ends with a server error"},
		{"bad gzip", "\x1f\x8b garbage", "gzip"},
		// encoding/json would take each of these keys for the field it
		// spells in another case.
		{"record key case", `{"SRC":"a","seq":1,"v":0,"del":true}`, `unknown field "SRC" (keys are case-sensitive: "src")`},
		{"header key case", `{"editlog":1,"Final":"x"}`, `header: unknown field "Final" (keys are case-sensitive: "final")`},
		{"header marker case", `{"Editlog":1,"final":"x"}`, `unknown field "Editlog" (keys are case-sensitive: "editlog")`},
		{"create key case", `{"v":0,"create":{"Type":"text-unicode"}}`, `create: unknown field "Type"`},
		{"m.ts case", `{"v":0,"del":true,"m":{"TS":5}}`, `m: unknown field "TS"`},
		// encoding/json would keep the last of two equal keys.
		{"repeated key", `{"src":"a","src":"b","seq":1,"v":5,"v":0,"del":true}`, `the key "src" twice`},
		{"repeated escaped key", `{"v":5,"\u0076":0,"del":true}`, `the key "v" twice`},
		{"repeated header key", `{"editlog":1,"final":"a","final":"b"}`, `the key "final" twice`},
		{"repeated create key", `{"v":0,"create":{"type":"text-unicode","data":"a","data":"b"}}`, `the key "data" twice`},
		{"repeated m key", `{"v":0,"del":true,"m":{"ts":1,"ts":2}}`, `the key "ts" twice`},
		// Errors name the field, not a Go type.
		{"negative v", `{"src":"a","seq":1,"v":-1,"del":true}`, `"v" must be an integer from 0 to 2^64-1, not -1`},
		{"fractional seq", `{"src":"a","seq":1.5,"v":0,"del":true}`, `"seq" must be an integer`},
		{"string ts", `{"v":0,"del":true,"ts":"now"}`, `"ts" must be an integer`},
		{"src number", `{"src":1,"seq":1,"v":0,"del":true}`, `"src" must be a string, not 1`},
		{"truncated line", `{"v":0,"del":tr`, "byte 15: the JSON ends early"},
		{"syntax", `{"v":0,x}`, "byte 7: invalid character 'x'"},
		{"empty", "", "no header and no records"},
		{"blank lines", "\n  \r\n\n", "no header and no records"},
		{"header only", `{"editlog":1,"initial":"abc","final":"abc"}` + "\n\n", "a header but no records"},
		{"header of a missing document", `{"editlog":1,"finalVersion":0}`, "a header but no records"},
		{"header final null", `{"editlog":1,"final":null,"finalVersion":0}` + "\n" + `{"v":0,"del":true}`, `"final" is null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := editlog.Read(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Read(%q) = %+v, nil; want error containing %q", tt.in, l, tt.want)
			}
			if !errors.Is(err, editlog.ErrFormat) {
				t.Errorf("Read(%q) error %v does not wrap ErrFormat", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Read(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
			}
			if strings.Contains(err.Error(), "Go ") || strings.Contains(err.Error(), "wire") {
				t.Errorf("Read(%q) error = %v, names a Go type", tt.in, err)
			}
		})
	}
}

// gzipped compresses s.
func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// errReader returns its data, then err.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestReadGzipFaults reads damaged gzip files: each is a malformed file
// (ErrFormat) and says it is the gzip stream, where the line it stopped
// in names it; an error reading the file is not a format error.
func TestReadGzipFaults(t *testing.T) {
	log := gzipped(sample)
	trace := gzipped(smallTrace)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"log cut short", log[:len(log)/2], "gzip: the compressed data is cut short"},
		{"log without its checksum", log[:len(log)-8], "gzip: the compressed data is cut short"},
		{"log with junk after it", append(bytes.Clone(log), "junk"...), "line 7: editlog: invalid edit log: gzip: the bytes after the compressed data are not another gzip member"},
		{"log with a bad checksum", append(bytes.Clone(log[:len(log)-8]), 0, 0, 0, 0, 0, 0, 0, 0), "gzip: invalid checksum"},
		{"trace cut short", trace[:len(trace)-20], "trace: editlog: invalid edit log: gzip: the compressed data is cut short"},
		{"trace with junk after it", append(bytes.Clone(trace), "0123456789abcdef"...), "gzip: the bytes after the compressed data are not another gzip member"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := editlog.Read(bytes.NewReader(tt.in))
			if !errors.Is(err, editlog.ErrFormat) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Read = %v, want an ErrFormat error containing %q", err, tt.want)
			}
		})
	}

	// Members concatenated, as gzip -d reads them, are one file.
	two := append(gzipped(sample), gzipped(`{"src":"c","seq":1,"v":4,"op":[1,"!"]}`+"\n")...)
	if l, err := editlog.Read(bytes.NewReader(two)); err != nil || len(l.Records) != 6 {
		t.Errorf("Read(two gzip members) = %v; want the 6 records of both", err)
	}

	// The file's reader failing is not the file's fault.
	disk := errors.New("disk on fire")
	for _, in := range [][]byte{log[:len(log)/2], []byte(sample[:len(sample)/2]), trace[:len(trace)/2]} {
		_, err := editlog.Read(&errReader{data: in, err: disk})
		if !errors.Is(err, disk) || errors.Is(err, editlog.ErrFormat) {
			t.Errorf("Read(failing reader) = %v, want the reader's error, not ErrFormat", err)
		}
	}
}

// TestReadSkipsAByteOrderMark: a log an editor saved with a UTF-8 byte
// order mark in front reads as without it.
func TestReadSkipsAByteOrderMark(t *testing.T) {
	l, err := editlog.Read(strings.NewReader("\xef\xbb\xbf" + `{"editlog":1,"initial":"a"}` + "\r\n" + `{"src":"x","seq":1,"v":1,"op":[1,"b"]}` + "\r\n"))
	if err != nil || !l.Header.HasInitial || len(l.Records) != 1 {
		t.Fatalf("Read(with a BOM) = %+v, %v; want the header and one record", l, err)
	}
}

// TestReadSurrogatePair checks that an escaped surrogate pair is one code
// point, as in the reference.
func TestReadSurrogatePair(t *testing.T) {
	l, err := editlog.Read(strings.NewReader(`{"v":0,"create":{"type":"text-unicode","data":"a\ud83d\ude00\\ud83d"}}`))
	if err != nil {
		t.Fatalf("Read error: %v", err)
	}
	if got, want := l.Records[0].Data, "a😀\\ud83d"; got != want {
		t.Errorf("Data = %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	const create = `{"src":"a","seq":1,"v":0,"create":{"type":"text-unicode","data":"abc"}}` + "\n"
	tests := []struct {
		name, in, want string // want "" means valid
	}{
		{"edit across the create", create + `{"src":"b","seq":1,"v":0,"op":["x"]}`, "before the create at version 0"},
		{"version ahead", create + `{"src":"a","seq":2,"v":2,"op":["x"]}`, "past the head 1"},
		{"edit before create", `{"src":"a","seq":1,"v":0,"op":["x"]}`, "does not exist"},
		{"create twice", create + `{"src":"b","seq":1,"v":1,"create":{"type":"text-unicode"}}`, "exists"},
		{"unknown type", `{"src":"a","seq":1,"v":0,"create":{"type":"json0"}}`, "unknown type"},
		{"seq without src", `{"seq":1,"v":0,"create":{"type":"text-unicode"}}`, "both a src and a seq"},
		{"src without seq", `{"src":"a","v":0,"create":{"type":"text-unicode"}}`, "both a src and a seq"},
		{"seq backwards", create + `{"src":"a","seq":3,"v":1,"op":["x"]}` + "\n" + `{"src":"a","seq":2,"v":2,"op":["y"]}`, "seq must grow"},
		{"resend ahead", create + `{"src":"a","seq":2,"v":1,"op":["x"]}` + "\n" + `{"src":"b","seq":1,"v":2,"op":["y"]}` + "\n" + `{"src":"a","seq":2,"v":3,"op":["x"]}`, "past its commit version 1"},
		{"resend ok", create + `{"src":"a","seq":2,"v":1,"op":["x"]}` + "\n" + `{"src":"b","seq":1,"v":2,"op":["y"]}` + "\n" + `{"src":"a","seq":2,"v":1,"op":["x"]}`, ""},
		{"edit over delete", create + `{"src":"b","seq":1,"v":1,"del":true}` + "\n" + `{"src":"c","seq":1,"v":1,"op":["x"]}`, "does not exist"},
		{"edit across delete and create", create + `{"src":"b","seq":1,"v":1,"del":true}` + "\n" + `{"src":"b","seq":2,"v":2,"create":{"type":"text-unicode"}}` + "\n" + `{"src":"c","seq":1,"v":1,"op":["x"]}`, "before the delete at version 1"},
		{"edit across create", create + `{"src":"b","seq":1,"v":1,"del":true}` + "\n" + `{"src":"b","seq":2,"v":2,"create":{"type":"text-unicode"}}` + "\n" + `{"src":"c","seq":1,"v":2,"op":["x"]}`, "before the create at version 2"},
		{"delete over edits", create + `{"src":"b","seq":1,"v":1,"op":["x"]}` + "\n" + `{"src":"c","seq":1,"v":1,"del":true}`, ""},
		{"create behind head", create + `{"src":"b","seq":1,"v":1,"del":true}` + "\n" + `{"src":"c","seq":1,"v":1,"create":{"type":"text-unicode"}}`, "never transformed"},
		{"final version", `{"editlog":1,"finalVersion":3}` + "\n" + create, "finalVersion 3"},
		{"final after delete", `{"editlog":1,"final":""}` + "\n" + create + `{"src":"a","seq":2,"v":1,"del":true}`, "deleted"},
		{"initial", `{"editlog":1,"initial":"abc","final":"abcx","finalVersion":2}` + "\n" + `{"src":"a","seq":1,"v":1,"op":[3,"x"]}`, ""},
		{"initial then create", `{"editlog":1,"initial":"abc"}` + "\n" + create, "exists"},
		{"header type", `{"editlog":1,"type":"json0","initial":""}` + "\n" + `{"src":"a","seq":1,"v":1,"op":["x"]}`, "unknown type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := editlog.Read(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Read(%q) error: %v", tt.in, err)
			}
			err = l.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate(%q) = %v, want nil", tt.in, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate(%q) = %v, want an error containing %q", tt.in, err, tt.want)
			case err != nil && !errors.Is(err, editlog.ErrFormat):
				t.Errorf("Validate(%q) = %v, does not wrap ErrFormat", tt.in, err)
			}
		})
	}
}

// TestValidateNoRecords: a log built in code with a header and no
// records replays nothing, so it must not pass for a replay that matched.
func TestValidateNoRecords(t *testing.T) {
	for _, l := range []*editlog.Log{
		{},
		{Header: editlog.Header{Version: 1, Initial: "abc", HasInitial: true, Final: "abc", HasFinal: true}},
	} {
		if err := l.Validate(); !errors.Is(err, editlog.ErrFormat) || !strings.Contains(err.Error(), "no records") {
			t.Errorf("Validate(%+v) = %v, want an ErrFormat error saying there are no records", l.Header, err)
		}
	}
}

// TestValidateNamesLine checks that an error points at the record's line.
func TestValidateNamesLine(t *testing.T) {
	in := "{\"editlog\":1,\"initial\":\"\"}\n\n{\"src\":\"a\",\"seq\":1,\"v\":1,\"op\":[\"x\"]}\n{\"src\":\"a\",\"seq\":2,\"v\":5,\"op\":[\"x\"]}\n"
	l, err := editlog.Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "line 4:") {
		t.Errorf("Validate() = %v, want an error naming line 4", err)
	}
}

func TestReadFileGzipAndName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "session.jsonl.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(sample))
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := editlog.ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile(%s) error: %v", path, err)
	}
	if l.Name != "session" || len(l.Records) != 5 {
		t.Errorf("ReadFile(%s) = name %q, %d records; want session, 5", path, l.Name, len(l.Records))
	}
	if _, err := editlog.ReadFile(filepath.Join(dir, "missing.jsonl")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
}

func TestCompare(t *testing.T) {
	long := strings.Repeat("x", 40)
	tests := []struct {
		got, want string
		wantM     *editlog.Mismatch
		wantText  string
	}{
		{"same", "same", nil, ""},
		{"abc", "abd", &editlog.Mismatch{Offset: 2, Line: 1, Col: 3, Before: "ab", Got: "c", Want: "d", GotLen: 3, WantLen: 3}, `after "ab"`},
		{"a😀\nb😀c", "a😀\nb😀", &editlog.Mismatch{Offset: 5, Line: 2, Col: 3, Before: "a😀\nb😀", Got: "c", Want: "", GotLen: 6, WantLen: 5}, "(end of text)"},
		{"", "z", &editlog.Mismatch{Offset: 0, Line: 1, Col: 1, Got: "", Want: "z", GotLen: 0, WantLen: 1}, "at the start"},
		{long + "1" + long, long + "2", &editlog.Mismatch{Offset: 40, Line: 1, Col: 41, Before: long[:24], Got: "1" + long[:23], Want: "2", GotLen: 81, WantLen: 41}, `…"xxx`},
	}
	for _, tt := range tests {
		m := editlog.Compare(tt.got, tt.want)
		if !reflect.DeepEqual(m, tt.wantM) {
			t.Errorf("Compare(%q, %q) = %+v, want %+v", tt.got, tt.want, m, tt.wantM)
			continue
		}
		if m != nil && !strings.Contains(m.String(), tt.wantText) {
			t.Errorf("Compare(%q, %q).String() = %q, want it to contain %q", tt.got, tt.want, m.String(), tt.wantText)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"startContent":"","endContent":"a","txns":[{"time":"2021-05-12T04:01:04.000Z","patches":[[0,0,"a"]]}]}`))
	f.Add([]byte(`{"v":0,"create":{"type":"text-unicode","data":"\ud83d\ude00"}}`))
	// Keys with escapes, brackets and quotes inside strings, metadata to
	// skip, CRLF: what members has to scan past.
	f.Add([]byte(`{"\u0076":0 , "src" : "a]}\"","seq":1,"op":["{[\\\"]}"],"m":{"x":[{"y":"]"}],"ts":-5}}` + "\r\n"))
	// The same for a trace: unknown keys holding brackets, escapes,
	// space around every token, a null time.
	f.Add([]byte(`{ "startContent" : "a]" , "x":[{"]":"[\""}], "endContent":"a]b\"" , "txns" : [ {"patches" : [ [ 2 , 0 , "b\u0022" ] ] , "time" : null , "y" : {"patches":1} } ] }`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := editlog.Read(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, editlog.ErrFormat) {
				t.Fatalf("Read error %v does not wrap ErrFormat", err)
			}
			return
		}
		if l.Validate() != nil {
			return
		}
		var buf bytes.Buffer
		if err := editlog.Write(&buf, l); err != nil {
			t.Fatalf("Write of a valid log: %v", err)
		}
		again, err := editlog.Read(&buf)
		if err != nil {
			t.Fatalf("Read(Write(l)) error: %v\n%s", err, buf.String())
		}
		for i := range again.Records {
			again.Records[i].Line = l.Records[i].Line
		}
		if again.Header != l.Header || !reflect.DeepEqual(again.Records, l.Records) {
			t.Fatalf("round trip changed the log:\n got %+v\nwant %+v", again, l)
		}
	})
}
