package collab

import (
	"errors"
	"testing"
)

// TestDedupe covers every rule of dedupe, and which of them read the
// records since the submission's version.
func TestDedupe(t *testing.T) {
	// The document is at version 7; a submission made at version 4 (v 0
	// below means 4) missed these.
	since := []Record{
		{Version: 4, Src: "a", Seq: 5},
		{Version: 5, Src: "b", Seq: 5},
		{Version: 6, Src: "a", Seq: 6},
	}
	errRead := errors.New("cannot read")
	tests := []struct {
		name     string
		src      string
		seq      uint64
		v        uint64
		last     SeqEntry
		known    bool
		readErr  error // what reading the records since the version gives
		want     resend
		wantErr  error
		wantRead bool
	}{
		{name: "no src opts out", src: "", seq: 5, want: resend{}},
		{name: "unknown src, new", src: "c", seq: 1, wantRead: true},
		{name: "unknown src found in the records (a pruned seq table)", src: "a", seq: 5, want: resend{dup: true, at: 4}, wantRead: true},
		{name: "higher seq, new", src: "a", seq: 7, last: SeqEntry{Seq: 6, Version: 6}, known: true, wantRead: true},
		{name: "same seq: resend at the seq table's version, no read", src: "a", seq: 6, last: SeqEntry{Seq: 6, Version: 6}, known: true,
			readErr: errRead, want: resend{dup: true, at: 6}},
		{name: "same seq made at its commit version: a resend", src: "a", seq: 6, v: 6, last: SeqEntry{Seq: 6, Version: 6}, known: true,
			readErr: errRead, want: resend{dup: true, at: 6}},
		// A resend is made at or before its commit version; a later one
		// is a new op reusing the seq (issue 9, item 1).
		{name: "same seq with a later version: refused, no read", src: "a", seq: 6, v: 7, last: SeqEntry{Seq: 6, Version: 6}, known: true,
			readErr: errRead, wantErr: ErrSeqReused},
		{name: "lower seq found in the records", src: "a", seq: 5, last: SeqEntry{Seq: 6, Version: 6}, known: true,
			want: resend{dup: true, at: 4}, wantRead: true},
		{name: "lower seq not in the records: stale", src: "a", seq: 3, last: SeqEntry{Seq: 6, Version: 6}, known: true,
			wantErr: ErrStaleSeq, wantRead: true},
		{name: "lower seq, records unreadable", src: "a", seq: 3, last: SeqEntry{Seq: 6, Version: 6}, known: true,
			readErr: errRead, wantErr: errRead, wantRead: true},
		{name: "same seq of another src is no resend", src: "c", seq: 5, last: SeqEntry{Seq: 4, Version: 1}, known: true, wantRead: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := false
			v := tt.v
			if v == 0 {
				v = 4
			}
			got, err := dedupe(tt.src, tt.seq, v, tt.last, tt.known, func() ([]Record, error) {
				read = true
				if tt.readErr != nil {
					return nil, tt.readErr
				}
				return since, nil
			})
			if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("dedupe(%q, %d, %d, %+v, %v) = %+v, %v; want %+v, %v", tt.src, tt.seq, v, tt.last, tt.known, got, err, tt.want, tt.wantErr)
			}
			if read != tt.wantRead {
				t.Errorf("dedupe read the records: %v, want %v", read, tt.wantRead)
			}
		})
	}
}
