package editlog

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestReadLineLimit reads lines at and past the line limit. A line past
// it must be refused, naming it, once about the limit has been read: a
// small gzip file can inflate to one line of gigabytes.
func TestReadLineLimit(t *testing.T) {
	const limit = 100 << 10
	record := func(size int) string {
		// A create whose data pads the line to size bytes.
		const head, tail = `{"v":0,"create":{"type":"text-unicode","data":"`, `"}}`
		return head + strings.Repeat("a", size-len(head)-len(tail)) + tail
	}
	lim := limits{line: limit, trace: MaxTraceSize}

	in := `{"editlog":1}` + "\r\n" + record(limit) + "\r\n"
	if _, _, err := read(strings.NewReader(in), lim); err != nil {
		t.Errorf("read(a line of the limit, CRLF) = %v, want nil", err)
	}

	long := `{"editlog":1}` + "\n" + record(10*limit) + "\n"
	src := &countingReader{r: strings.NewReader(long)}
	_, _, err := read(src, lim)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 2 is longer than") {
		t.Errorf("read(a line of 10 times the limit) = %v, want an ErrFormat error naming line 2", err)
	}
	if max := limit + 3*64<<10; src.n > max {
		t.Errorf("read(a line of 10 times the limit) read %d bytes before refusing it, want at most %d", src.n, max)
	}

	// The same from gzip, the way a bomb comes.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, long)
	zw.Close()
	if _, _, err := read(&gz, lim); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 2 is longer than") {
		t.Errorf("read(gzip of a line of 10 times the limit) = %v, want an ErrFormat error naming line 2", err)
	}
}

// TestReadTraceLimit reads traces at and past the trace limit, which
// holds for the decompressed size.
func TestReadTraceLimit(t *testing.T) {
	trace := func(size int) string {
		const head, tail = `{"startContent":"","endContent":"x","txns":[{"patches":[[0,0,"x"]]}],"pad":"`, `"}`
		return head + strings.Repeat("a", size-len(head)-len(tail)) + tail
	}
	const limit = 64 << 10
	lim := limits{line: MaxLineSize, trace: limit}
	if _, _, err := read(strings.NewReader(trace(limit)), lim); err != nil {
		t.Errorf("read(a trace of the limit) = %v, want nil", err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, trace(100*limit))
	zw.Close()
	if _, _, err := read(&gz, lim); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "trace: larger than") {
		t.Errorf("read(gzip of a trace of 100 times the limit) = %v, want an ErrFormat error", err)
	}
}

// TestMaxLineSizeArithmetic checks what MaxLineSize is made of: coedit's
// document limit, and the most bytes a code point takes in the JSON
// Write writes, measured in each kind of string a line holds (header
// texts, a create's data, an op's inserted and deleted text) for every
// code point of the BMP, where the escaped ones are, and every 16th past
// it. The round trip below relies on both.
func TestMaxLineSizeArithmetic(t *testing.T) {
	if maxDocLen != collab.DefaultMaxDocLen {
		t.Errorf("maxDocLen = %d, want collab.DefaultMaxDocLen %d", maxDocLen, collab.DefaultMaxDocLen)
	}
	var b strings.Builder
	n := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf16.IsSurrogate(r) && (r <= 0xFFFF || r%16 == 0 || r == unicode.MaxRune) {
			b.WriteRune(r)
			n++
		}
	}
	text := b.String()
	l := &Log{
		Header: Header{Version: FormatVersion, Initial: text, HasInitial: true, Final: text, HasFinal: true, Comment: text},
		Records: []Record{
			{V: 1, Kind: Edit, Op: ot.Op{{Kind: ot.KindDelete, N: n, Text: text}, {Kind: ot.KindInsert, N: n, Text: text}}},
			{V: 2, Kind: Delete},
			{V: 3, Kind: Create, Type: "text-unicode", Data: text},
		},
	}
	var buf bytes.Buffer
	if err := Write(&buf, l); err != nil {
		t.Fatalf("Write(all those code points) = %v", err)
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n")) {
		if w := widestCodePoint(line); w > maxJSONRune {
			t.Errorf("line %d: a code point takes %d bytes, more than maxJSONRune (%d)", i+1, w, maxJSONRune)
		}
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatalf("Read(Write(all those code points)) = %v", err)
	}
	if got.Header != l.Header {
		t.Errorf("Read(Write(all those code points)): the header differs")
	}
	if got.Records[0].Op.String() != l.Records[0].Op.String() {
		t.Errorf("Read(Write(all those code points)): the op differs")
	}
	if got.Records[2].Data != text {
		t.Errorf("Read(Write(all those code points)): the create's data differs")
	}
}

// widestCodePoint returns the most bytes one code point takes in line, a
// line of JSON: an escape takes 2 or 6 bytes (12 for a surrogate pair),
// anything else its UTF-8 length.
func widestCodePoint(line []byte) int {
	widest := 0
	for i := 0; i < len(line); {
		var n int
		switch {
		case line[i] != '\\':
			_, n = utf8.DecodeRune(line[i:])
		case line[i+1] != 'u':
			n = 2
		default:
			n = 6
			if u, _ := strconv.ParseUint(string(line[i+2:i+6]), 16, 16); utf16.IsSurrogate(rune(u)) {
				n = 12
			}
		}
		widest = max(widest, n)
		i += n
	}
	return widest
}

// TestWriteReadLongestLines writes the longest lines of a legal log and
// reads them back, with the line limit MaxLineSize's formula gives for a
// smaller document limit: at coedit's own (16 Mi code points) the lines
// are 192 MiB, and the round trip takes 1.2 GB and 3.5 s (4 GB and 40 s
// with -race). A line one byte longer is refused by Write, and by Read.
func TestWriteReadLongestLines(t *testing.T) {
	const docLen = 64 << 10 // code points
	// Two texts of docLen code points that take maxJSONRune bytes each,
	// and 1 KiB for the rest of the line (MaxLineSize has 64 MiB).
	lim := limits{line: 2*docLen*maxJSONRune + 1<<10, trace: MaxTraceSize}
	worst := strings.Repeat("\x01", docLen) // \u0001
	l := &Log{
		Header: Header{
			Version: FormatVersion, Collection: "notes", ID: "longest", Type: ot.URI,
			Initial: worst, HasInitial: true, Final: worst, HasFinal: true, FinalVersion: 2,
		},
		Records: []Record{{
			Src: "a", Seq: 1, V: 1, Kind: Edit,
			Op: ot.Op{{Kind: ot.KindDelete, N: docLen, Text: worst}, {Kind: ot.KindInsert, N: docLen, Text: worst}},
		}},
	}
	if err := l.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	var buf bytes.Buffer
	if err := write(&buf, l, lim); err != nil {
		t.Fatalf("write(the longest lines) = %v, want nil", err)
	}
	for i, line := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
		if n := len(line); n > 0 && n < 2*docLen*maxJSONRune {
			t.Errorf("line %d is %d bytes, want at least %d: not the longest", i+1, n, 2*docLen*maxJSONRune)
		}
	}
	got, _, err := read(&buf, lim)
	if err != nil {
		t.Fatalf("read(write(the longest lines)) = %v, want nil", err)
	}
	got.Records[0].Line = 0
	if got.Header != l.Header || !reflect.DeepEqual(got.Records, l.Records) {
		t.Errorf("read(write(the longest lines)) differs from the log written")
	}

	// A comment that makes the header one byte longer than the limit.
	header, err := l.Header.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	l.Header.Comment = strings.Repeat("c", lim.line-len(header)-len(`,"comment":""`)+1)
	buf.Reset()
	want := fmt.Sprintf("the header is %d bytes as a line, more than the %d", lim.line+1, lim.line)
	if err := write(&buf, l, lim); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), want) {
		t.Errorf("write(a header of the limit + 1) = %v, want an ErrFormat error naming the header", err)
	}
	if err := write(&buf, l, limits{line: lim.line + 1}); err != nil {
		t.Fatalf("write(a header of the limit + 1, a larger limit) = %v", err)
	}
	if _, _, err := read(&buf, lim); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 1 is longer than") {
		t.Errorf("read(a header of the limit + 1) = %v, want an ErrFormat error naming line 1", err)
	}
}
