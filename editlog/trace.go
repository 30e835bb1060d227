package editlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
// content as Final. A patch that runs past the end of the document, or
// one that neither deletes nor inserts, is an error.
func ReadTrace(r io.Reader) (*Log, error) {
	l, trace, err := read(r)
	if err != nil {
		return nil, err
	}
	if !trace {
		return nil, fmt.Errorf("%w: not an editing trace (no \"startContent\", \"endContent\" or \"txns\" first)", ErrFormat)
	}
	return l, nil
}

type wireTrace struct {
	StartContent *string   `json:"startContent"`
	EndContent   *string   `json:"endContent"`
	Txns         []wireTxn `json:"txns"`
}

type wireTxn struct {
	Time    string      `json:"time"`
	Patches []wirePatch `json:"patches"`
}

// wirePatch is [pos, delCount, insText].
type wirePatch struct {
	Pos, Del int
	Ins      string
}

// UnmarshalJSON decodes the three-element array strictly.
func (p *wirePatch) UnmarshalJSON(data []byte) error {
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil {
		return err
	}
	if len(parts) != 3 {
		return fmt.Errorf("patch %s: want [pos, delCount, insText]", data)
	}
	if err := json.Unmarshal(parts[0], &p.Pos); err != nil {
		return fmt.Errorf("patch position: %w", err)
	}
	if err := json.Unmarshal(parts[1], &p.Del); err != nil {
		return fmt.Errorf("patch delete count: %w", err)
	}
	if err := json.Unmarshal(parts[2], &p.Ins); err != nil {
		return fmt.Errorf("patch insert text: %w", err)
	}
	return nil
}

// parseTrace converts a whole trace document to a Log.
func parseTrace(data []byte) (*Log, error) {
	if err := checkJSONText(data); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	var w wireTrace
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: trace: %w", ErrFormat, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trace: data after the trace's object", ErrFormat)
	}
	if w.StartContent == nil || w.EndContent == nil || w.Txns == nil {
		return nil, fmt.Errorf("%w: trace: needs \"startContent\", \"endContent\" and \"txns\"", ErrFormat)
	}
	patches := 0
	for _, t := range w.Txns {
		patches += len(t.Patches)
	}
	if patches == 0 {
		return nil, fmt.Errorf("%w: trace: no patches: nothing to replay", ErrFormat)
	}
	l := &Log{
		Header: Header{
			Version:    FormatVersion,
			Type:       ot.URI,
			Initial:    *w.StartContent,
			HasInitial: true,
			Final:      *w.EndContent,
			HasFinal:   true,
			Comment:    fmt.Sprintf("imported from an editing trace: %d transactions, %d patches", len(w.Txns), patches),
		},
		Records: make([]Record, 0, patches),
	}
	docLen := utf8.RuneCountInString(*w.StartContent)
	v := l.InitialVersion()
	for ti, t := range w.Txns {
		var ts int64
		if t.Time != "" {
			tm, err := time.Parse(time.RFC3339Nano, t.Time)
			if err != nil {
				return nil, fmt.Errorf("%w: trace: txn %d: time: %w", ErrFormat, ti, err)
			}
			ts = tm.UnixMilli()
		}
		if len(t.Patches) == 0 {
			return nil, fmt.Errorf("%w: trace: txn %d has no patches", ErrFormat, ti)
		}
		for pi, p := range t.Patches {
			insLen := utf8.RuneCountInString(p.Ins)
			switch {
			case p.Pos < 0 || p.Del < 0:
				return nil, fmt.Errorf("%w: trace: txn %d patch %d: negative position or count %v", ErrFormat, ti, pi, [2]int{p.Pos, p.Del})
			case p.Pos > docLen || p.Del > docLen-p.Pos:
				return nil, fmt.Errorf("%w: trace: txn %d patch %d: [%d, %d] runs past the end of the document (%d code points)", ErrFormat, ti, pi, p.Pos, p.Del, docLen)
			case p.Del == 0 && insLen == 0:
				return nil, fmt.Errorf("%w: trace: txn %d patch %d neither deletes nor inserts", ErrFormat, ti, pi)
			}
			op := make(ot.Op, 0, 3)
			if p.Pos > 0 {
				op = append(op, ot.Component{Kind: ot.KindSkip, N: p.Pos})
			}
			if p.Del > 0 {
				op = append(op, ot.Component{Kind: ot.KindDelete, N: p.Del})
			}
			if insLen > 0 {
				op = append(op, ot.Component{Kind: ot.KindInsert, N: insLen, Text: p.Ins})
			}
			docLen += insLen - p.Del
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
