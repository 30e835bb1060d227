package editlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/coedit/coedit/ot"
)

// TraceSrc is the client id ReadTrace gives every record of an imported
// editing trace: a trace is one author typing, one op after another.
const TraceSrc = "trace"

// ReadTrace reads a sequential editing trace, the format of
// github.com/josephg/editing-traces (gzip-compressed or not):
//
//	{"startContent": "...", "endContent": "...",
//	 "txns": [{"time": "2021-05-12T04:01:04.000Z",
//	           "patches": [[pos, delCount, "inserted"], ...]}, ...]}
//
// Positions and counts are in code points. Each patch becomes one Edit
// record against the document the previous patch left: Src TraceSrc, Seq
// 1, 2, 3..., V one more than the previous record's. The header has the
// start content as Initial (so the first record's V is 1) and the end
// content as Final. A patch that runs past the end of the document, one
// that neither deletes nor inserts, a trace without a patch, a key that
// repeats or that spells one of the format's in another case, and a
// trace larger than MaxTraceSize are errors wrapping ErrFormat; an error
// names its place as txns[i].patches[j], indices from 0. Keys the format
// does not have are ignored.
func ReadTrace(r io.Reader) (*Log, error) {
	l, trace, err := read(r, defaultLimits)
	if err != nil {
		return nil, err
	}
	if !trace {
		return nil, fmt.Errorf("%w: not an editing trace (no \"startContent\", \"endContent\" or \"txns\" first)", ErrFormat)
	}
	return l, nil
}

// wireTxn is a trace's transaction as read.
type wireTxn struct {
	time    string
	patches []wirePatch
}

// wirePatch is [pos, delCount, insText].
type wirePatch struct {
	pos, del int
	ins      string
}

// traceKeys and txnKeys are the keys a trace uses. Others are ignored,
// as the traces' format may grow, but one of these in another case is
// an error: encoding/json would have taken it for the key.
var (
	traceKeys = []string{"startContent", "endContent", "txns"}
	txnKeys   = []string{"time", "patches"}
)

// parseTrace converts a whole trace document to a Log. Errors name a
// place in the trace as txns[i].patches[j], indices from 0 as in the
// JSON.
func parseTrace(data []byte) (*Log, error) {
	if err := checkJSONText(data); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	d := &traceDecoder{dec: json.NewDecoder(bytes.NewReader(data)), size: len(data)}
	d.dec.UseNumber()
	start, end, txns, err := d.trace()
	if err != nil {
		return nil, fmt.Errorf("%w: trace: %w", ErrFormat, err)
	}
	if start == nil || end == nil || txns == nil {
		return nil, fmt.Errorf("%w: trace: needs \"startContent\", \"endContent\" and \"txns\"", ErrFormat)
	}
	patches := 0
	for _, t := range txns {
		patches += len(t.patches)
	}
	if patches == 0 {
		return nil, fmt.Errorf("%w: trace: no patches: nothing to replay", ErrFormat)
	}
	l := &Log{
		Header: Header{
			Version:    FormatVersion,
			Type:       ot.URI,
			Initial:    *start,
			HasInitial: true,
			Final:      *end,
			HasFinal:   true,
			Comment:    fmt.Sprintf("imported from an editing trace: %d transactions, %d patches", len(txns), patches),
		},
		Records: make([]Record, 0, patches),
	}
	docLen := utf8.RuneCountInString(*start)
	v := l.InitialVersion()
	for ti, t := range txns {
		var ts int64
		if t.time != "" {
			tm, err := time.Parse(time.RFC3339Nano, t.time)
			if err != nil {
				return nil, fmt.Errorf("%w: trace: txns[%d].time: %w", ErrFormat, ti, err)
			}
			ts = tm.UnixMilli()
		}
		if len(t.patches) == 0 {
			return nil, fmt.Errorf("%w: trace: txns[%d] has no patches", ErrFormat, ti)
		}
		for pi, p := range t.patches {
			insLen := utf8.RuneCountInString(p.ins)
			switch {
			case p.pos < 0 || p.del < 0:
				return nil, fmt.Errorf("%w: trace: txns[%d].patches[%d]: negative position or count %v", ErrFormat, ti, pi, [2]int{p.pos, p.del})
			case p.pos > docLen || p.del > docLen-p.pos:
				return nil, fmt.Errorf("%w: trace: txns[%d].patches[%d]: [%d, %d] runs past the end of the document (%d code points)", ErrFormat, ti, pi, p.pos, p.del, docLen)
			case p.del == 0 && insLen == 0:
				return nil, fmt.Errorf("%w: trace: txns[%d].patches[%d] neither deletes nor inserts", ErrFormat, ti, pi)
			}
			op := make(ot.Op, 0, 3)
			if p.pos > 0 {
				op = append(op, ot.Component{Kind: ot.KindSkip, N: p.pos})
			}
			if p.del > 0 {
				op = append(op, ot.Component{Kind: ot.KindDelete, N: p.del})
			}
			if insLen > 0 {
				op = append(op, ot.Component{Kind: ot.KindInsert, N: insLen, Text: p.ins})
			}
			docLen += insLen - p.del
			l.Records = append(l.Records, Record{
				Src:  TraceSrc,
				Seq:  uint64(len(l.Records) + 1),
				V:    v,
				Kind: Edit,
				Op:   op,
				Time: ts,
			})
			v++
		}
	}
	return l, nil
}

// traceDecoder walks a trace's JSON token by token, matching keys exactly
// and refusing repeated ones, and names the place of an error in the
// trace. Its errors do not wrap ErrFormat; parseTrace adds it.
type traceDecoder struct {
	dec  *json.Decoder
	size int // of the trace's text
}

// trace reads the whole trace: its start and end content (nil when
// absent or null) and its transactions (nil when absent or null).
func (d *traceDecoder) trace() (start, end *string, txns []wireTxn, err error) {
	err = d.object("the trace", traceKeys, func(key string) error {
		var err error
		switch key {
		case "startContent":
			start, err = d.optString(key)
		case "endContent":
			end, err = d.optString(key)
		case "txns":
			txns, err = d.txns()
		}
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, nil, nil, errors.New("data after the trace's object")
	}
	return start, end, txns, nil
}

func (d *traceDecoder) txns() ([]wireTxn, error) {
	txns := []wireTxn{}
	null, err := d.array("txns", func() error {
		ti := len(txns)
		var t wireTxn
		where := fmt.Sprintf("txns[%d]", ti)
		err := d.object(where, txnKeys, func(key string) error {
			var err error
			switch key {
			case "time":
				var s *string
				if s, err = d.optString(where + ".time"); s != nil {
					t.time = *s
				}
			case "patches":
				t.patches = []wirePatch{}
				_, err = d.array(where+".patches", func() error {
					p, err := d.patch(fmt.Sprintf("%s.patches[%d]", where, len(t.patches)))
					t.patches = append(t.patches, p)
					return err
				})
			}
			return err
		})
		txns = append(txns, t)
		return err
	})
	if null {
		return nil, err
	}
	return txns, err
}

// patch reads [pos, delCount, insText].
func (d *traceDecoder) patch(where string) (wirePatch, error) {
	var p wirePatch
	bad := func(what string, t json.Token) error {
		return fmt.Errorf("%s: want [pos, delCount, insText]: %s is %s", where, what, describeToken(t))
	}
	t, err := d.token()
	if err != nil {
		return p, err
	}
	if t != json.Delim('[') {
		return p, bad("the patch", t)
	}
	for i, what := range []string{"the position", "the delete count"} {
		if t, err = d.token(); err != nil {
			return p, err
		}
		n, ok := t.(json.Number)
		if !ok {
			return p, bad(what, t)
		}
		v, err := strconv.ParseInt(string(n), 10, 0)
		if err != nil {
			return p, fmt.Errorf("%s: %s %s is not an integer that fits in %d bits", where, what, n, strconv.IntSize)
		}
		if i == 0 {
			p.pos = int(v)
		} else {
			p.del = int(v)
		}
	}
	if t, err = d.token(); err != nil {
		return p, err
	}
	ins, ok := t.(string)
	if !ok {
		return p, bad("the inserted text", t)
	}
	p.ins = ins
	if t, err = d.token(); err != nil {
		return p, err
	}
	if t != json.Delim(']') {
		return p, fmt.Errorf("%s: want [pos, delCount, insText], not more", where)
	}
	return p, nil
}

// object reads an object, calling fn with the decoder at the value of
// each key in known and skipping the values of other keys.
func (d *traceDecoder) object(where string, known []string, fn func(key string) error) error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return fmt.Errorf("%s: want an object, not %s", where, describeToken(t))
	}
	var seen keySet
	for d.dec.More() {
		t, err := d.token()
		if err != nil {
			return err
		}
		key := t.(string) // the decoder allows only a string here
		if !seen.add(key) {
			return fmt.Errorf("%s has the key %q twice", where, key)
		}
		if slices.Contains(known, key) {
			err = fn(key)
		} else if k, ok := caseVariant(key, known); ok {
			err = fmt.Errorf("%s: %w", where, caseError(key, k))
		} else {
			var skip json.RawMessage
			err = d.decode(&skip)
		}
		if err != nil {
			return err
		}
	}
	_, err = d.token() // the closing brace
	return err
}

// array reads an array, calling fn with the decoder at each element. It
// reports whether the value was null instead.
func (d *traceDecoder) array(where string, fn func() error) (null bool, err error) {
	t, err := d.token()
	if err != nil {
		return false, err
	}
	if t == nil {
		return true, nil
	}
	if t != json.Delim('[') {
		return false, fmt.Errorf("%s: want an array, not %s", where, describeToken(t))
	}
	for d.dec.More() {
		if err := fn(); err != nil {
			return false, err
		}
	}
	_, err = d.token() // the closing bracket
	return false, err
}

// optString reads a string, or null (nil).
func (d *traceDecoder) optString(where string) (*string, error) {
	t, err := d.token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case nil:
		return nil, nil
	case string:
		return &t, nil
	}
	return nil, fmt.Errorf("%s: want a string, not %s", where, describeToken(t))
}

func (d *traceDecoder) token() (json.Token, error) {
	t, err := d.dec.Token()
	if err != nil {
		return nil, syntaxError(err, d.size)
	}
	return t, nil
}

func (d *traceDecoder) decode(v any) error {
	if err := d.dec.Decode(v); err != nil {
		return syntaxError(err, d.size)
	}
	return nil
}

// describeToken names a token for messages, with a number's value.
func describeToken(t json.Token) string {
	switch t := t.(type) {
	case json.Number:
		return "the number " + string(t)
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case bool:
		return strconv.FormatBool(t)
	case nil:
		return "null"
	}
	return fmt.Sprint(t)
}
