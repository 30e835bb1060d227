package editlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
	l, err := decodeTrace(data)
	if err != nil {
		return nil, fmt.Errorf("%w: trace: %w", ErrFormat, err)
	}
	return l, nil
}

// decodeTrace converts a trace's JSON text to a Log. As decodeLine does
// for a line, it checks the whole text with json.Valid once and then only
// finds where each value ends, instead of walking a json.Decoder token by
// token; the place of an error (txns[i].patches[j]) is formatted only
// when there is one, as a trace has hundreds of thousands of patches. Its
// errors do not wrap ErrFormat; parseTrace adds it.
func decodeTrace(data []byte) (*Log, error) {
	ms, err := members(data, "the trace")
	if err != nil {
		return nil, err
	}
	var start, end *string
	var txns []byte
	for _, m := range ms {
		switch m.key {
		case "startContent":
			start, err = traceString(m.value)
		case "endContent":
			end, err = traceString(m.value)
		case "txns":
			if !isNull(m.value) {
				if m.value[0] != '[' {
					return nil, fmt.Errorf("txns: want an array, not %s", describeTraceValue(m.value))
				}
				txns = m.value
			}
		default:
			if k, ok := caseVariant(m.key, traceKeys); ok {
				return nil, fmt.Errorf("the trace: %w", caseError(m.key, k))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.key, err)
		}
	}
	if start == nil || end == nil || txns == nil {
		return nil, errors.New("needs \"startContent\", \"endContent\" and \"txns\"")
	}

	// First the transactions and where their patches are, so that the
	// records, a few hundred thousand, are allocated once.
	type txn struct {
		time    int64
		patches int
	}
	var (
		txnList    []txn
		patchVals  [][]byte
		txnMembers []member // scratch, reused from one transaction to the next
		seen       keySet
		lastTime   []byte // the JSON text of the last time parsed
		lastMillis int64  // and its value
	)
	for ti, t := range appendElements(nil, txns) {
		if t[0] != '{' {
			return nil, fmt.Errorf("txns[%d]: want an object, not %s", ti, describeTraceValue(t))
		}
		if txnMembers, err = appendMembers(txnMembers[:0], t); err != nil {
			return nil, fmt.Errorf("txns[%d]: %w", ti, err)
		}
		seen.reset()
		var tx txn
		for _, m := range txnMembers {
			if !seen.add(m.key) {
				return nil, fmt.Errorf("txns[%d] has the key %q twice", ti, m.key)
			}
			switch m.key {
			case "time":
				// Transactions in a row mostly share a time (all but 143
				// of automerge-paper's 259,778): parse each once.
				if !bytes.Equal(m.value, lastTime) {
					if lastMillis, err = traceTime(m.value); err != nil {
						return nil, fmt.Errorf("txns[%d].time: %w", ti, err)
					}
					lastTime = m.value
				}
				tx.time = lastMillis
			case "patches":
				if isNull(m.value) {
					break
				}
				if m.value[0] != '[' {
					return nil, fmt.Errorf("txns[%d].patches: want an array, not %s", ti, describeTraceValue(m.value))
				}
				n := len(patchVals)
				patchVals = appendElements(patchVals, m.value)
				tx.patches = len(patchVals) - n
			default:
				if k, ok := caseVariant(m.key, txnKeys); ok {
					return nil, fmt.Errorf("txns[%d]: %w", ti, caseError(m.key, k))
				}
			}
		}
		if tx.patches == 0 {
			return nil, fmt.Errorf("txns[%d] has no patches", ti)
		}
		txnList = append(txnList, tx)
	}
	if len(patchVals) == 0 {
		return nil, errors.New("no patches: nothing to replay")
	}

	l := &Log{
		Header: Header{
			Version:    FormatVersion,
			Type:       ot.URI,
			Initial:    *start,
			HasInitial: true,
			Final:      *end,
			HasFinal:   true,
			Comment:    fmt.Sprintf("imported from an editing trace: %d transactions, %d patches", len(txnList), len(patchVals)),
		},
		Records: make([]Record, 0, len(patchVals)),
	}
	docLen := utf8.RuneCountInString(*start)
	v := l.InitialVersion()
	var parts [][]byte // scratch, reused from one patch to the next
	for ti, tx := range txnList {
		for pi, pv := range patchVals[:tx.patches] {
			var p patch
			if p, parts, err = decodePatch(pv, parts); err != nil {
				return nil, fmt.Errorf("txns[%d].patches[%d]: %w", ti, pi, err)
			}
			insLen := utf8.RuneCountInString(p.ins)
			switch {
			case p.pos < 0 || p.del < 0:
				return nil, fmt.Errorf("txns[%d].patches[%d]: negative position or count %v", ti, pi, [2]int{p.pos, p.del})
			case p.pos > docLen || p.del > docLen-p.pos:
				return nil, fmt.Errorf("txns[%d].patches[%d]: [%d, %d] runs past the end of the document (%d code points)", ti, pi, p.pos, p.del, docLen)
			case p.del == 0 && insLen == 0:
				return nil, fmt.Errorf("txns[%d].patches[%d] neither deletes nor inserts", ti, pi)
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
				Time: tx.time,
			})
			v++
		}
		patchVals = patchVals[tx.patches:]
	}
	return l, nil
}

// patch is a trace's [pos, delCount, insText].
type patch struct {
	pos, del int
	ins      string
}

// decodePatch decodes the valid JSON value v as a patch. parts is
// scratch space for v's elements, returned for the next call. Errors
// do not name the patch; the caller does.
func decodePatch(v []byte, parts [][]byte) (patch, [][]byte, error) {
	const want = "want [pos, delCount, insText]"
	var p patch
	if v[0] != '[' {
		return p, parts, fmt.Errorf("%s: the patch is %s", want, describeTraceValue(v))
	}
	parts = appendElements(parts[:0], v)
	for i, what := range [...]string{"the position", "the delete count", "the inserted text"} {
		if i == len(parts) {
			s := "s"
			if i == 1 {
				s = ""
			}
			return p, parts, fmt.Errorf("%s: the patch ends after %d element%s", want, i, s)
		}
		e := parts[i]
		if i == 2 {
			if e[0] != '"' {
				return p, parts, fmt.Errorf("%s: %s is %s", want, what, describeTraceValue(e))
			}
			s, err := unquote(e)
			if err != nil {
				return p, parts, fmt.Errorf("%s: %w", what, err)
			}
			p.ins = s
			break
		}
		if !isNumber(e) {
			return p, parts, fmt.Errorf("%s: %s is %s", want, what, describeTraceValue(e))
		}
		n, err := strconv.ParseInt(string(e), 10, 0)
		if err != nil {
			return p, parts, fmt.Errorf("%s %s is not an integer that fits in %d bits", what, clip(e), strconv.IntSize)
		}
		if i == 0 {
			p.pos = int(n)
		} else {
			p.del = int(n)
		}
	}
	if len(parts) > 3 {
		return p, parts, fmt.Errorf("%s, not more", want)
	}
	return p, parts, nil
}

// traceString decodes a valid JSON value that must be a string or null
// (nil).
func traceString(v []byte) (*string, error) {
	if isNull(v) {
		return nil, nil
	}
	if v[0] != '"' {
		return nil, fmt.Errorf("want a string, not %s", describeTraceValue(v))
	}
	s, err := unquote(v)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// traceTime decodes a transaction's time, an RFC 3339 string, as Unix
// milliseconds; null or "" is 0.
func traceTime(v []byte) (int64, error) {
	s, err := traceString(v)
	if err != nil || s == nil || *s == "" {
		return 0, err
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

// isNumber reports whether the valid JSON value v is a number.
func isNumber(v []byte) bool {
	return v[0] == '-' || v[0] >= '0' && v[0] <= '9'
}

// describeTraceValue names the valid JSON value v for messages, with a
// number's value.
func describeTraceValue(v []byte) string {
	if isNumber(v) {
		return "the number " + clip(v)
	}
	return describeValue(v)
}
