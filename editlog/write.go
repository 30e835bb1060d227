package editlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// Write writes l as JSON Lines: the header line when any header field
// that MarshalJSON writes is set (a Version of 0 is written as
// FormatVersion), then one line per record, in the canonical form Read
// accepts (field order src, seq, v, op|create|del, ts). A line longer
// than MaxLineSize, which Read would refuse, is an error wrapping
// ErrFormat: no line of a log within a coedit server's default limits is
// (see MaxLineSize), but a header's comment may be any length, and a
// server may be given a larger document limit. Write stops at the first
// error, with part of the log perhaps written.
func Write(w io.Writer, l *Log) error {
	return write(w, l, defaultLimits)
}

// write is Write with lines of at most lim.line bytes.
func write(w io.Writer, l *Log, lim limits) error {
	bw := bufio.NewWriter(w)
	line := func(b []byte, where string) error {
		if len(b) > lim.line {
			return fmt.Errorf("%w: %s is %d bytes as a line, more than the %d (editlog.MaxLineSize) Read accepts", ErrFormat, where, len(b), lim.line)
		}
		// An error writing to w sticks in bw; Flush returns it.
		bw.Write(b)
		bw.WriteByte('\n')
		return nil
	}
	if l.Header.written() {
		b, err := l.Header.MarshalJSON()
		if err != nil {
			return err
		}
		if err := line(b, "the header"); err != nil {
			return err
		}
	}
	for i := range l.Records {
		b, err := l.Records[i].MarshalJSON()
		if err != nil {
			return fmt.Errorf("editlog: %s: %w", l.Where(i), err)
		}
		if err := line(b, l.Where(i)); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("editlog: write: %w", err)
	}
	return nil
}

// written reports whether h has anything to write: a header built in
// code may leave Version 0, and dropping its line would drop the initial
// text (so the records' versions no longer fit) or the final-text check.
// Initial and Final without their Has flags are not written, so they do
// not count.
func (h *Header) written() bool {
	return h.Version != 0 || h.Collection != "" || h.ID != "" || h.Type != "" ||
		h.HasInitial || h.HasFinal || h.FinalVersion != 0 || h.Comment != ""
}

// wireHeader is the header line as Write writes it, in this field order.
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

// MarshalJSON encodes the header line. A zero Version is written as
// FormatVersion.
func (h Header) MarshalJSON() ([]byte, error) {
	w := wireHeader{
		Editlog:      h.Version,
		Collection:   h.Collection,
		ID:           h.ID,
		Type:         h.Type,
		FinalVersion: h.FinalVersion,
		Comment:      h.Comment,
	}
	if w.Editlog == 0 {
		w.Editlog = FormatVersion
	}
	if h.HasInitial {
		w.Initial = &h.Initial
	}
	if h.HasFinal {
		w.Final = &h.Final
	}
	return marshalNoEscape(w)
}

// UnmarshalJSON decodes a header line strictly (see Read).
func (h *Header) UnmarshalJSON(data []byte) error {
	ms, err := decodeLine(data)
	if err != nil {
		return err
	}
	if !isHeader(ms) {
		return fmt.Errorf("%w: header: no \"editlog\" key", ErrFormat)
	}
	v, err := decodeHeader(ms)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// MarshalJSON encodes the record as one edit-log line, without a newline.
func (r Record) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"src":`)
	if err := writeString(&b, r.Src); err != nil {
		return nil, err
	}
	b.WriteString(`,"seq":`)
	b.WriteString(strconv.FormatUint(r.Seq, 10))
	b.WriteString(`,"v":`)
	b.WriteString(strconv.FormatUint(r.V, 10))
	switch r.Kind {
	case Edit:
		op, err := r.Op.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"op":`)
		b.Write(op)
	case Create:
		b.WriteString(`,"create":{"type":`)
		if err := writeString(&b, r.Type); err != nil {
			return nil, err
		}
		b.WriteString(`,"data":`)
		if err := writeString(&b, r.Data); err != nil {
			return nil, err
		}
		b.WriteByte('}')
	case Delete:
		b.WriteString(`,"del":true`)
	default:
		return nil, fmt.Errorf("%w: record kind %v", ErrFormat, r.Kind)
	}
	if r.Time != 0 {
		b.WriteString(`,"ts":`)
		b.WriteString(strconv.FormatInt(r.Time, 10))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes one record line strictly (see Read). Line is left
// as it was.
func (r *Record) UnmarshalJSON(data []byte) error {
	ms, err := decodeLine(data)
	if err != nil {
		return err
	}
	v, err := decodeRecord(data, ms)
	if err != nil {
		return err
	}
	v.Line = r.Line
	*r = v
	return nil
}

// writeString writes s as a JSON string, leaving <, > and & as they are.
func writeString(b *bytes.Buffer, s string) error {
	enc, err := marshalNoEscape(s)
	if err != nil {
		return err
	}
	b.Write(enc)
	return nil
}

// marshalNoEscape is json.Marshal without HTML escaping and without the
// encoder's trailing newline.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("editlog: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
