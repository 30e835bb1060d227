package editlog

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ReadFile reads an edit log or an editing trace from path; see Read. The
// log's Name is the file's base name without its extensions
// (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".gz").
func ReadFile(path string) (*Log, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("editlog: %w", err)
	}
	defer f.Close()
	l, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l.Name = baseName(path)
	return l, nil
}

// baseName strips the directory and the known extensions from path.
func baseName(path string) string {
	name := filepath.Base(path)
	name = strings.TrimSuffix(name, ".gz")
	for _, ext := range []string{".jsonl", ".json"} {
		name = strings.TrimSuffix(name, ext)
	}
	return name
}

// MaxLineSize is the longest line of an edit log Read accepts and Write
// writes, in bytes without its line end: 256 MiB. The longest line of a
// legal log holds two documents of a coedit server's largest size (16 Mi
// code points, collab.DefaultMaxDocLen): a header's initial and final
// texts, or an op that deletes one with its text and inserts the other.
// In JSON a code point takes at most 6 bytes (a control character is
// written \u001f, U+2028 \u2028; UTF-8 takes at most 4), so the two take
// at most 192 MiB, and the names, comment and numbers around them have
// 64 MiB more. A longer line is an error wrapping ErrFormat that names
// it, from Write as from Read, so that every log Write writes reads back.
// Read finds it once that much of the line is read: a few megabytes of
// gzip can inflate to one line of gigabytes, and reading it whole would
// end the process for want of memory.
const MaxLineSize = 2*maxDocLen*maxJSONRune + 64<<20

const (
	// maxDocLen is a coedit server's largest document by default, in code
	// points: collab.DefaultMaxDocLen, which a test checks (editlog does
	// not import collab).
	maxDocLen = 16 << 20
	// maxJSONRune is the most bytes a code point of a string takes in the
	// JSON Write writes.
	maxJSONRune = 6
)

// MaxTraceSize is the largest editing trace Read accepts, in bytes after
// decompression: 256 MiB, sixteen times the largest public trace
// (automerge-paper, 16 MB). A trace is one JSON document, read whole
// before it is parsed, and its records take several times its size; a
// larger one is an error wrapping ErrFormat, found once that much is
// read.
const MaxTraceSize = 256 << 20

// limits bounds what read holds in memory at once, and the lines write
// writes. Read and Write use MaxLineSize and MaxTraceSize; tests use
// smaller ones.
type limits struct {
	line, trace int
}

var defaultLimits = limits{line: MaxLineSize, trace: MaxTraceSize}

// utf8BOM is the UTF-8 byte order mark.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// gzipMagic starts every gzip stream (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// Read reads an edit log (JSON Lines, docs/editlog.md) or a sequential
// editing trace ({"startContent", "endContent", "txns"}, see ReadTrace)
// from r, gzip-compressed or not: it looks at the first bytes to tell.
// Every line is decoded strictly: unknown fields, keys in another case
// than the documented one, repeated keys, invalid UTF-8, lone surrogates
// and malformed ops are errors wrapping ErrFormat, and so are a line
// longer than MaxLineSize, a trace larger than MaxTraceSize and a
// damaged gzip stream. An error reading r is returned as it is. Read
// does not check versions; call Validate for that.
func Read(r io.Reader) (*Log, error) {
	l, _, err := read(r, defaultLimits)
	return l, err
}

// read is Read that also says whether r held an editing trace.
func read(r io.Reader, lim limits) (*Log, bool, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, gzipMagic) {
		zs, err := newGzipStream(br)
		if err != nil {
			return nil, false, err
		}
		defer zs.Close()
		br = bufio.NewReaderSize(zs, 64<<10)
	}
	// A byte order mark that an editor put in front is not JSON: skip it.
	if bom, _ := br.Peek(3); bytes.Equal(bom, utf8BOM) {
		br.Discard(3)
	}
	if isTrace(br) {
		// One byte more than the limit tells a trace of exactly the
		// limit from a larger one.
		data, err := io.ReadAll(io.LimitReader(br, int64(lim.trace)+1))
		switch {
		case errors.Is(err, ErrFormat):
			return nil, true, fmt.Errorf("trace: %w", err)
		case err != nil:
			return nil, true, fmt.Errorf("editlog: reading trace: %w", err)
		case len(data) > lim.trace:
			return nil, true, fmt.Errorf("%w: trace: larger than %d bytes (editlog.MaxTraceSize), decompressed", ErrFormat, lim.trace)
		}
		l, err := parseTrace(data)
		return l, true, err
	}
	l, err := readLines(br, lim.line)
	return l, false, err
}

// isTrace reports whether the JSON object at the start of br has a first
// key that only editing traces use.
func isTrace(br *bufio.Reader) bool {
	head, _ := br.Peek(256)
	head = bytes.TrimLeft(head, " \t\r\n")
	if len(head) == 0 || head[0] != '{' {
		return false
	}
	head = bytes.TrimLeft(head[1:], " \t\r\n")
	for _, key := range []string{`"startContent"`, `"endContent"`, `"txns"`} {
		if bytes.HasPrefix(head, []byte(key)) {
			return true
		}
	}
	return false
}

// readLines reads an edit log, one JSON value per line, none longer than
// maxLine bytes.
func readLines(br *bufio.Reader, maxLine int) (*Log, error) {
	l := &Log{}
	var buf []byte
	for lineNo := 1; ; lineNo++ {
		line, grown, err := readLine(br, buf, maxLine)
		buf = grown
		switch {
		case errors.Is(err, errLongLine):
			return nil, fmt.Errorf("%w: line %d is longer than %d bytes (editlog.MaxLineSize)", ErrFormat, lineNo, maxLine)
		case errors.Is(err, ErrFormat):
			// A damaged gzip stream: the line may be cut anywhere, so it
			// is not decoded.
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		case err != nil && err != io.EOF:
			return nil, fmt.Errorf("editlog: reading line %d: %w", lineNo, err)
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if err := l.add(line, lineNo); err != nil {
				return nil, err
			}
		}
		if err == io.EOF {
			break
		}
	}
	if len(l.Records) == 0 {
		// Nothing to replay: most likely the export of a document that
		// does not exist (an empty 200), maybe behind a header made from
		// its snapshot, which must not pass for a replay that matched.
		what := "no header and no records"
		if l.Header.Version != 0 {
			what = "a header but no records"
		}
		return nil, fmt.Errorf("%w: %s: nothing to replay (the export of a document that does not exist is empty)", ErrFormat, what)
	}
	return l, nil
}

// add decodes one non-blank line into l.
func (l *Log) add(line []byte, lineNo int) error {
	ms, err := decodeLine(line)
	if err != nil {
		return fmt.Errorf("line %d: %w", lineNo, err)
	}
	if isHeader(ms) {
		if len(l.Records) > 0 || l.Header.Version != 0 {
			return fmt.Errorf("%w: line %d: a header may only be the first line", ErrFormat, lineNo)
		}
		h, err := decodeHeader(ms)
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		l.Header = h
		return nil
	}
	rec, err := decodeRecord(line, ms)
	if err != nil {
		return fmt.Errorf("line %d: %w", lineNo, err)
	}
	rec.Line = lineNo
	l.Records = append(l.Records, rec)
	return nil
}

// errLongLine is readLine's error for a line longer than its limit.
var errLongLine = errors.New("editlog: line too long")

// readLine returns the next line of br without its "\n" or "\r\n", in
// br's buffer (valid until the next read) or in buf, which it may grow
// and returns for the next call. At the end of br it returns io.EOF,
// with the last line if that did not end in "\n". A line longer than
// max bytes is errLongLine, returned before more than one buffer past
// max is read.
func readLine(br *bufio.Reader, buf []byte, max int) (line, grown []byte, err error) {
	line, err = br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf = append(buf[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(buf) > max {
				return nil, buf, errLongLine
			}
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err == nil {
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	}
	if len(line) > max {
		return nil, buf, errLongLine
	}
	return line, buf, err
}

// gzipStream decompresses a gzip file of one or more members, as gzip -d
// reads concatenated files. It tells the file's faults (cut short,
// corrupt, a bad checksum, bytes after a member that are not another),
// which wrap ErrFormat, from errors reading the file, returned as they
// are.
type gzipStream struct {
	src *bufio.Reader
	zr  *gzip.Reader
	// err is the first error Read returned, returned again by every
	// later Read: a bufio.Reader's Peek drops an error it reports, and
	// asked again the gzip reader would give another.
	err error
}

func newGzipStream(src *bufio.Reader) (*gzipStream, error) {
	zr, err := gzip.NewReader(src)
	if err != nil {
		return nil, gzipFault(err)
	}
	// One member at a time, so that bytes after one that are not another
	// can be told from a member cut short.
	zr.Multistream(false)
	return &gzipStream{src: src, zr: zr}, nil
}

func (g *gzipStream) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.read(p)
	g.err = err
	return n, err
}

func (g *gzipStream) read(p []byte) (int, error) {
	for {
		n, err := g.zr.Read(p)
		if err != io.EOF {
			return n, gzipFault(err)
		}
		// The member ended with a good checksum; another may follow.
		if _, err := g.src.Peek(1); err != nil {
			return n, err // io.EOF at the end of the file
		}
		if err := g.zr.Reset(g.src); err != nil {
			if err = gzipFault(err); errors.Is(err, ErrFormat) {
				return n, fmt.Errorf("%w: gzip: the bytes after the compressed data are not another gzip member", ErrFormat)
			}
			return n, err
		}
		g.zr.Multistream(false)
		if n > 0 {
			return n, nil
		}
	}
}

// Close releases the decompressor; it does not close the file.
func (g *gzipStream) Close() error { return g.zr.Close() }

// gzipFault wraps ErrFormat around an error of the gzip reader that is
// the file's fault; any other error comes from reading the file.
func gzipFault(err error) error {
	var corrupt flate.CorruptInputError
	switch {
	case err == nil || err == io.EOF:
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The file ran out: the gzip and flate readers turn its io.EOF
		// into this.
		return fmt.Errorf("%w: gzip: the compressed data is cut short", ErrFormat)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.As(err, &corrupt):
		return fmt.Errorf("%w: gzip: %w", ErrFormat, err)
	}
	return err
}
