package editlog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/coedit/coedit/ot"
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

// utf8BOM is the UTF-8 byte order mark.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// gzipMagic starts every gzip stream (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// Read reads an edit log (JSON Lines, docs/editlog.md) or a sequential
// editing trace ({"startContent", "endContent", "txns"}, see ReadTrace)
// from r, gzip-compressed or not: it looks at the first bytes to tell.
// Every line is decoded strictly: unknown fields, invalid UTF-8, lone
// surrogates and malformed ops are errors wrapping ErrFormat. Read does
// not check versions; call Validate for that.
func Read(r io.Reader) (*Log, error) {
	l, _, err := read(r)
	return l, err
}

// read is Read that also says whether r held an editing trace.
func read(r io.Reader) (*Log, bool, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, false, fmt.Errorf("%w: gzip: %w", ErrFormat, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	// A byte order mark that an editor put in front is not JSON: skip it.
	if bom, _ := br.Peek(3); bytes.Equal(bom, utf8BOM) {
		br.Discard(3)
	}
	if isTrace(br) {
		data, err := io.ReadAll(br)
		if err != nil {
			return nil, true, fmt.Errorf("editlog: reading trace: %w", err)
		}
		l, err := parseTrace(data)
		return l, true, err
	}
	l, err := readLines(br)
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

// readLines reads an edit log, one JSON value per line.
func readLines(br *bufio.Reader) (*Log, error) {
	l := &Log{}
	lineNo := 0
	seenRecord := false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			line = bytes.TrimSpace(line)
			if len(line) > 0 {
				if isHeaderLine(line) {
					if seenRecord || l.Header.Version != 0 {
						return nil, fmt.Errorf("%w: line %d: a header may only be the first line", ErrFormat, lineNo)
					}
					h, err := decodeHeader(line)
					if err != nil {
						return nil, fmt.Errorf("line %d: %w", lineNo, err)
					}
					l.Header = h
				} else {
					rec, err := decodeRecord(line)
					if err != nil {
						return nil, fmt.Errorf("line %d: %w", lineNo, err)
					}
					rec.Line = lineNo
					l.Records = append(l.Records, rec)
					seenRecord = true
				}
			}
		}
		if errors.Is(err, io.EOF) {
			if len(l.Records) == 0 {
				// Nothing to replay: most likely the export of a document
				// that does not exist (an empty 200), maybe behind a header
				// made from its snapshot, which must not pass for a replay
				// that matched.
				what := "no header and no records"
				if l.Header.Version != 0 {
					what = "a header but no records"
				}
				return nil, fmt.Errorf("%w: %s: nothing to replay (the export of a document that does not exist is empty)", ErrFormat, what)
			}
			return l, nil
		}
		if err != nil {
			return nil, fmt.Errorf("editlog: reading line %d: %w", lineNo+1, err)
		}
	}
}

// isHeaderLine reports whether line is an object with an "editlog" key.
func isHeaderLine(line []byte) bool {
	if !bytes.Contains(line, []byte(`"editlog"`)) {
		return false
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(line, &keys) != nil {
		return false // not an object; decodeRecord says what is wrong
	}
	_, ok := keys["editlog"]
	return ok
}

type wireHeader struct {
	Editlog      int     `json:"editlog"`
	Collection   string  `json:"collection,omitempty"`
	ID           string  `json:"id,omitempty"`
	Type         string  `json:"type,omitempty"`
	Initial      *string `json:"initial,omitempty"`
	Final        *string `json:"final,omitempty"`
	FinalVersion uint64  `json:"finalVersion,omitempty"`
	Comment      string  `json:"comment,omitempty"`
}

func decodeHeader(line []byte) (Header, error) {
	var w wireHeader
	if err := decodeStrict(line, &w); err != nil {
		return Header{}, fmt.Errorf("header: %w", err)
	}
	if w.Editlog != FormatVersion {
		return Header{}, fmt.Errorf("%w: header: format version %d, this reader knows %d", ErrFormat, w.Editlog, FormatVersion)
	}
	h := Header{
		Version:      w.Editlog,
		Collection:   w.Collection,
		ID:           w.ID,
		Type:         w.Type,
		FinalVersion: w.FinalVersion,
		Comment:      w.Comment,
	}
	if w.Initial != nil {
		h.Initial, h.HasInitial = *w.Initial, true
	}
	if w.Final != nil {
		h.Final, h.HasFinal = *w.Final, true
	}
	return h, nil
}

// wireRecord is a record line. Fields are pointers or raw so that absent
// and null can be told from zero values.
type wireRecord struct {
	Src    *string         `json:"src"`
	Seq    *uint64         `json:"seq"`
	V      *uint64         `json:"v"`
	Op     json.RawMessage `json:"op"`
	Create json.RawMessage `json:"create"`
	Del    json.RawMessage `json:"del"`
	TS     *int64          `json:"ts"`
	M      json.RawMessage `json:"m"`
	// c and d, when an exported op carries its document, are accepted
	// and ignored: the header or the replayer names the document.
	C *string `json:"c"`
	D *string `json:"d"`
}

type wireCreate struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// present reports whether a raw field was given a non-null value, as
// ShareDB's checkOp tests op.create != null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

func decodeRecord(line []byte) (Record, error) {
	if bytes.HasPrefix(line, []byte(`{"error":`)) {
		// GET .../ops ends a stream that failed midway with this line.
		return Record{}, fmt.Errorf("%w: the exported op log ends with a server error: %s", ErrFormat, line)
	}
	var w wireRecord
	if err := decodeStrict(line, &w); err != nil {
		return Record{}, err
	}
	var rec Record
	if w.Src != nil {
		rec.Src = *w.Src
	}
	if w.Seq != nil {
		rec.Seq = *w.Seq
	}
	if w.V == nil {
		return Record{}, fmt.Errorf("%w: missing \"v\" (the base version)", ErrFormat)
	}
	rec.V = *w.V
	kinds := 0
	if present(w.Op) {
		kinds++
		op, err := ot.Decode(w.Op)
		if err != nil {
			return Record{}, fmt.Errorf("%w: op: %w", ErrFormat, err)
		}
		rec.Kind, rec.Op = Edit, op
	}
	if present(w.Create) {
		kinds++
		var c wireCreate
		if err := decodeStrict(w.Create, &c); err != nil {
			return Record{}, fmt.Errorf("create: %w", err)
		}
		rec.Kind, rec.Type = Create, c.Type
		if present(c.Data) {
			if err := json.Unmarshal(c.Data, &rec.Data); err != nil {
				return Record{}, fmt.Errorf("%w: create: data must be a string: %w", ErrFormat, err)
			}
		}
	}
	if present(w.Del) {
		kinds++
		if !bytes.Equal(w.Del, []byte("true")) {
			return Record{}, fmt.Errorf("%w: \"del\" must be true, not %s", ErrFormat, w.Del)
		}
		rec.Kind = Delete
	}
	if kinds != 1 {
		return Record{}, fmt.Errorf("%w: a record needs exactly one of \"op\", \"create\", \"del\" (has %d)", ErrFormat, kinds)
	}
	if w.TS != nil {
		rec.Time = *w.TS
	}
	if present(w.M) {
		var m struct {
			TS *int64 `json:"ts"`
		}
		if err := json.Unmarshal(w.M, &m); err != nil {
			return Record{}, fmt.Errorf("%w: m: %w", ErrFormat, err)
		}
		if m.TS != nil {
			if w.TS != nil && *w.TS != *m.TS {
				return Record{}, fmt.Errorf("%w: \"ts\" %d and \"m.ts\" %d differ", ErrFormat, *w.TS, *m.TS)
			}
			rec.Time = *m.TS
		}
	}
	return rec, nil
}

// decodeStrict decodes one JSON object from data into v, rejecting
// unknown fields, trailing data, invalid UTF-8 and lone surrogates.
func decodeStrict(data []byte, v any) error {
	if err := checkJSONText(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: unexpected data after the JSON object", ErrFormat)
	}
	return nil
}
