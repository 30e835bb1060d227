package redisrelay

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/coedit/coedit/collab"
)

// Outcome is what Commit did with a batch.
type Outcome uint8

const (
	// Committed: the records are in Redis at versions Result.Version,
	// Result.Version+1, ... (also when this call repeated one that had
	// committed them and lost the answer).
	Committed Outcome = iota + 1
	// Duplicate: the first record's (src, seq) was committed before, at
	// Result.Version; nothing was written. The batch was not this call's
	// repeat (that is Committed), so it came from a resend. The batch's
	// other records, if any, are committed again without the first.
	Duplicate
	// Conflict: Redis's head is Result.Version, not the expected version;
	// Result.Missed holds the records the caller lacks. Nothing was
	// written: catch up, transform, and commit again.
	Conflict
	// Wait (CommitInTurn only): the caller is at Redis's head
	// (Result.Version), but the next commit is another writer's turn,
	// for at most Result.Wait more. Nothing was written: wait for that
	// writer's doorbell (or the time), then commit again, which will
	// answer Conflict with its records.
	Wait
)

var outcomeNames = [...]string{Committed: "committed", Duplicate: "duplicate", Conflict: "conflict", Wait: "wait"}

// String returns the outcome's name.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result is Commit's answer.
type Result struct {
	Outcome Outcome
	// Version is the first record's version (Committed), the version the
	// first record's (src, seq) was committed at (Duplicate), or Redis's
	// head (Conflict).
	Version uint64
	// Missed are the records [expect, Version) for a Conflict, in order.
	Missed []collab.Record
	// Wait is how much longer the turn of another writer lasts (Wait).
	Wait time.Duration
}

// Commit orders recs after the records before version expect, in one Lua
// script (see doc.go): it checks epoch, then whether the same batch is
// already there (a repeat: Committed), then the first record's (src,
// seq) (Duplicate), then that Redis's head is expect (else Conflict),
// and only then appends recs to the stream at versions expect,
// expect+1, ..., updates the seqs, trims and publishes a doorbell.
//
// recs[i].Version must be expect+i. The other records' (src, seq) are
// not checked: a caller at Redis's head knows every committed seq, and
// deduplicates its batch itself.
//
// Commit is idempotent: after an error wrapping ErrUnavailable the
// outcome is unknown, and the caller repeats the call with the same
// records (same Time too), which answers Committed if the first call
// committed them. Errors: *EpochError (re-join first), ErrStaleSeq,
// ErrTrimmed (a Conflict whose missed records are gone: Load),
// ErrUnavailable, ErrInvalid.
func (r *Relay) Commit(ctx context.Context, key collab.Key, epoch string, expect uint64, recs []collab.Record) (Result, error) {
	return r.commit(ctx, key, epoch, expect, recs, "", 0, "0")
}

// CommitInTurn is Commit for a writer that takes turns with the
// document's other writers (turn.go): writer names it, and it waits for
// another writer's turn (outcome Wait). With reserve, a Conflict also
// gives it the next turn (or the one after), for at most ttl.
func (r *Relay) CommitInTurn(ctx context.Context, key collab.Key, epoch string, expect uint64, recs []collab.Record, writer string, reserve bool, ttl time.Duration) (Result, error) {
	if writer == "" || ttl <= 0 {
		return Result{}, fmt.Errorf("%w: a turn needs a writer and a ttl", ErrInvalid)
	}
	if writer != r.writer && !plainInJSON(writer) { // writerName made r.writer plain
		// It leads the doorbell as it is (scripts.go's publish).
		return Result{}, fmt.Errorf("%w: writer %q holds a control character, quote, backslash or invalid byte", ErrInvalid, writer)
	}
	res := "0"
	if reserve {
		res = "1"
	}
	return r.commit(ctx, key, epoch, expect, recs, writer, max(1, ttl.Milliseconds()), res)
}

// commitArgs returns the commit script's keys and arguments.
func (r *Relay) commitArgs(key collab.Key, epoch string, expect uint64, recs []collab.Record, writer string, ttlMs int64, reserve string) ([]string, []any, error) {
	args := make([]any, 0, 8+3*len(recs))
	args = append(args, epoch, expect, r.opts.TailLen, r.opts.MaxTailLen, r.pubCmd, writer, ttlMs, reserve)
	args, err := appendRecords(args, expect, recs)
	if err != nil {
		return nil, nil, err
	}
	k := r.keys(key)
	return []string{k.meta, k.log, k.seqs, k.channel, k.turn}, args, nil
}

func (r *Relay) commit(ctx context.Context, key collab.Key, epoch string, expect uint64, recs []collab.Record, writer string, ttlMs int64, reserve string) (Result, error) {
	if len(recs) == 0 || epoch == "" {
		return Result{}, fmt.Errorf("%w: commit of %d records with epoch %q", ErrInvalid, len(recs), epoch)
	}
	if expect+uint64(len(recs)) >= maxNumber {
		return Result{}, fmt.Errorf("%w: version %d is too large", ErrInvalid, expect)
	}
	keys, args, err := r.commitArgs(key, epoch, expect, recs, writer, ttlMs, reserve)
	if err != nil {
		return Result{}, err
	}
	v, err := r.runCommit(ctx, keys, args...)
	if err != nil {
		return Result{}, err
	}
	st := &r.stats
	switch reply(v, 0) {
	case "committed", "again":
		if reply(v, 0) == "again" {
			st.repeats.Add(1)
		} else {
			st.records.Add(uint64(len(recs)))
		}
		st.commits.Add(1)
		return Result{Outcome: Committed, Version: expect}, nil
	case "wait":
		st.waits.Add(1)
		return Result{Outcome: Wait, Version: replyUint(v, 1), Wait: time.Duration(max(0, replyInt(v, 2))) * time.Millisecond}, nil
	case "dup":
		st.duplicates.Add(1)
		return Result{Outcome: Duplicate, Version: replyUint(v, 1)}, nil
	case "stale":
		return r.findResend(ctx, key, epoch, recs[0], replyUint(v, 2))
	case "conflict":
		st.conflicts.Add(1)
		head := replyUint(v, 1)
		if entries, ok := v[len(v)-1].([]any); ok && len(v) == 3 && uint64(len(entries)) == head-expect {
			missed, err := decodeEntries(entries)
			if err == nil && len(missed) > 0 && missed[0].Version != expect {
				err = fmt.Errorf("%w: %s: conflict records start at %d, want %d", ErrCorrupt, key, missed[0].Version, expect)
			}
			if err == nil {
				r.stats.gapRecords.Add(uint64(len(missed)))
			}
			return Result{Outcome: Conflict, Version: head, Missed: missed}, err
		}
		missed, err := r.Read(ctx, key, epoch, expect, head)
		if err == nil && uint64(len(missed)) != head-expect {
			err = fmt.Errorf("%w: records %d..%d of %s for a conflict", ErrTrimmed, expect, head, key)
		}
		return Result{Outcome: Conflict, Version: head, Missed: missed}, err
	}
	st.epochErrors.Add(1)
	return Result{}, epochError(v)
}

// appendRecords adds the src, seq, encoded record triples a script takes
// for recs, checking that they are numbered from first.
func appendRecords(args []any, first uint64, recs []collab.Record) ([]any, error) {
	for i := range recs {
		rec := &recs[i]
		if rec.Version != first+uint64(i) {
			return nil, fmt.Errorf("%w: record %d has version %d, want %d", ErrInvalid, i, rec.Version, first+uint64(i))
		}
		b, err := encodeRecord(rec)
		if err != nil {
			return nil, err
		}
		args = append(args, rec.Src, rec.Seq, b)
	}
	return args, nil
}

// findResend answers a first record whose seq is below its src's last
// committed seq (last committed at version last): ShareDB's rule makes
// it a resend if the same (src, seq) is in the log, which is searched
// backwards from last.
func (r *Relay) findResend(ctx context.Context, key collab.Key, epoch string, rec collab.Record, last uint64) (Result, error) {
	to := last
	for to > 0 {
		from := to - min(to, readPage)
		recs, _, err := r.read(ctx, key, epoch, from, to)
		if err != nil {
			return Result{}, err
		}
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Src == rec.Src && recs[i].Seq == rec.Seq {
				r.stats.duplicates.Add(1)
				return Result{Outcome: Duplicate, Version: recs[i].Version}, nil
			}
		}
		if len(recs) == 0 || recs[0].Version != from {
			break // trimmed below
		}
		to = from
	}
	return Result{}, fmt.Errorf("%w: src %q seq %d in %s", ErrStaleSeq, rec.Src, rec.Seq, key)
}

// epochError turns a script's refusal into an *EpochError.
func epochError(v []any) error {
	switch reply(v, 0) {
	case "absent":
		return &EpochError{Reason: EpochAbsent}
	case "epoch":
		return &EpochError{Reason: EpochChanged, Epoch: reply(v, 1)}
	case "restarted":
		return &EpochError{Reason: EpochRestarted, Epoch: reply(v, 1)}
	case "behind":
		return &EpochError{Reason: EpochBehind, Head: replyUint(v, 1)}
	}
	return fmt.Errorf("%w: unexpected script reply %v", ErrCorrupt, v)
}

// reply returns element i of a script reply as a string ("" if missing).
func reply(v []any, i int) string {
	if i >= len(v) {
		return ""
	}
	switch x := v[i].(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

// replyInt returns element i of a script reply as a signed number (0 if
// it is not one).
func replyInt(v []any, i int) int64 {
	n, _ := strconv.ParseInt(reply(v, i), 10, 64)
	return n
}

// replyUint returns element i of a script reply as a number (0 if it is
// not one).
func replyUint(v []any, i int) uint64 {
	n, _ := strconv.ParseUint(reply(v, i), 10, 64)
	return n
}
