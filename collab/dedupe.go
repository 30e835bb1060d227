package collab

import "fmt"

// resend is dedupe's verdict on a submission.
type resend struct {
	dup bool   // (src, seq) is already committed
	at  uint64 // the version it was committed at, when dup
}

// dedupe decides whether the submission (src, seq) made at version v is a
// resend of an op already committed, and at which version. last is src's
// entry in the seq table (known false when src has none); since returns
// the records from v to the head, and is called only when the answer
// depends on them. A src of "" opts out: never a resend.
//
// The rules, in order (seqs grow per src and document, so the seq table
// answers most resends without reading records):
//   - seq equal to the last committed seq: a resend, at that op's version,
//     if v is at or before that version (a resend is made before its
//     commit); a later v means a new op that reuses the seq (two tabs
//     restoring the same saved state, a client that lost its counter),
//     refused with ErrSeqReused: acknowledging it as the old op would
//     drop it while its client believes it saved. A v:null create has no
//     version to compare; its caller passes 0.
//   - seq below the last: a resend if (src, seq) is among the records
//     since the submission's version, else ErrStaleSeq (neither new nor a
//     resend).
//   - otherwise (a src the table does not know, or a higher seq): a resend
//     if (src, seq) is among those records (ShareDB's scan), else new.
//
// An error reading the records is returned as is.
func dedupe(src string, seq, v uint64, last SeqEntry, known bool, since func() ([]Record, error)) (resend, error) {
	if src == "" {
		return resend{}, nil
	}
	if known && seq == last.Seq {
		if v > last.Version {
			return resend{}, fmt.Errorf("%w: src %q seq %d was committed at version %d, before this op's version %d",
				ErrSeqReused, src, seq, last.Version, v)
		}
		return resend{dup: true, at: last.Version}, nil
	}
	recs, err := since()
	if err != nil {
		return resend{}, err
	}
	for _, r := range recs {
		if r.Src == src && r.Seq == seq {
			return resend{dup: true, at: r.Version}, nil
		}
	}
	if known && seq < last.Seq {
		return resend{}, fmt.Errorf("%w: src %q seq %d, last committed seq %d", ErrStaleSeq, src, seq, last.Seq)
	}
	return resend{}, nil
}
