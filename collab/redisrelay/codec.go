package redisrelay

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// Values in Redis are compact JSON, readable with redis-cli:
//
//	record   {"v":version,"s":src,"q":seq,"k":kind,"o":op,"t":type,"d":data,"m":time}
//	snapshot {"v":version,"t":type,"d":data}
//	doorbell {"w":writer,"e":epoch,"r":[record,...]}  ("w" only for a
//	         commit that takes turns, so its writer can pass over it)
//
// A record's fields are all kept whatever its Kind (zero ones are
// omitted, an empty op is kept as []), so it reads back exactly as it
// was committed. Stream entries are named by version ("<v>-1"), so the
// stream is indexed by version, and hold the record in field "r".

// maxNumber bounds versions and seqs: the Lua scripts hold numbers as
// doubles, exact up to 2^53 (as JavaScript's, where ShareDB seqs come
// from).
const maxNumber = 1 << 53

type wireRecord struct {
	Version uint64 `json:"v"`
	Src     string `json:"s,omitempty"`
	Seq     uint64 `json:"q,omitempty"`
	Kind    uint8  `json:"k"`
	Op      *ot.Op `json:"o,omitempty"`
	Type    string `json:"t,omitempty"`
	Data    string `json:"d,omitempty"`
	Time    int64  `json:"m,omitempty"`
}

func encodeRecord(r *collab.Record) ([]byte, error) {
	if r.Version >= maxNumber || r.Seq >= maxNumber {
		return nil, fmt.Errorf("%w: version %d or seq %d is 2^53 or more", ErrInvalid, r.Version, r.Seq)
	}
	w := wireRecord{Version: r.Version, Src: r.Src, Seq: r.Seq, Kind: uint8(r.Kind), Type: r.Type, Data: r.Data, Time: r.Time}
	if r.Op != nil {
		w.Op = &r.Op
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("%w: record at version %d: %w", ErrInvalid, r.Version, err)
	}
	return b, nil
}

func decodeRecord(b []byte) (collab.Record, error) {
	var w wireRecord
	if err := json.Unmarshal(b, &w); err != nil {
		return collab.Record{}, fmt.Errorf("%w: record: %w", ErrCorrupt, err)
	}
	switch k := collab.OpKind(w.Kind); k {
	case collab.OpEdit, collab.OpCreate, collab.OpDelete:
	default:
		return collab.Record{}, fmt.Errorf("%w: record at version %d has kind %d", ErrCorrupt, w.Version, w.Kind)
	}
	r := collab.Record{Version: w.Version, Src: w.Src, Seq: w.Seq, Kind: collab.OpKind(w.Kind), Type: w.Type, Data: w.Data, Time: w.Time}
	if w.Op != nil {
		r.Op = *w.Op
		if r.Op == nil {
			r.Op = ot.Op{}
		}
	}
	return r, nil
}

type wireSnapshot struct {
	Version uint64 `json:"v"`
	Type    string `json:"t,omitempty"`
	Data    string `json:"d,omitempty"`
}

func encodeSnapshot(s *collab.Snapshot) ([]byte, error) {
	if s.Version >= maxNumber {
		return nil, fmt.Errorf("%w: snapshot version %d is 2^53 or more", ErrInvalid, s.Version)
	}
	return json.Marshal(wireSnapshot{Version: s.Version, Type: s.Type, Data: s.Data})
}

func decodeSnapshot(b []byte) (collab.Snapshot, error) {
	var w wireSnapshot
	if err := json.Unmarshal(b, &w); err != nil {
		return collab.Snapshot{}, fmt.Errorf("%w: snapshot: %w", ErrCorrupt, err)
	}
	return collab.Snapshot{Version: w.Version, Type: w.Type, Data: w.Data}, nil
}

type wireDoorbell struct {
	Epoch   string            `json:"e"`
	Records []json.RawMessage `json:"r"`
}

func decodeDoorbell(b []byte) (string, []collab.Record, error) {
	var w wireDoorbell
	if err := json.Unmarshal(b, &w); err != nil {
		return "", nil, fmt.Errorf("%w: doorbell: %w", ErrCorrupt, err)
	}
	recs := make([]collab.Record, len(w.Records))
	for i, raw := range w.Records {
		r, err := decodeRecord(raw)
		if err != nil {
			return "", nil, err
		}
		recs[i] = r
	}
	return w.Epoch, recs, nil
}

// streamID is the stream entry ID of the record at version v.
func streamID(v uint64) string { return strconv.FormatUint(v, 10) + "-1" }

// idVersion returns the version a stream entry ID names.
func idVersion(id string) (uint64, error) {
	ms, ok := strings.CutSuffix(id, "-1")
	v, err := strconv.ParseUint(ms, 10, 64)
	if !ok || err != nil {
		return 0, fmt.Errorf("%w: stream entry ID %q", ErrCorrupt, id)
	}
	return v, nil
}

// seqValue is a seqs hash value: "<seq> <version>".
func seqValue(e collab.SeqEntry) string {
	return strconv.FormatUint(e.Seq, 10) + " " + strconv.FormatUint(e.Version, 10)
}

func parseSeqValue(s string) (collab.SeqEntry, error) {
	a, b, ok := strings.Cut(s, " ")
	seq, err1 := strconv.ParseUint(a, 10, 64)
	v, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return collab.SeqEntry{}, fmt.Errorf("%w: seqs value %q", ErrCorrupt, s)
	}
	return collab.SeqEntry{Seq: seq, Version: v}, nil
}
