package editlog

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
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
