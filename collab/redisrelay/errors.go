package redisrelay

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrEpoch is wrapped by every *EpochError: Redis's state for the
	// document is not the history the caller holds (it is missing, has
	// another epoch, or Redis restarted since the epoch began). Writes
	// are refused until the caller re-joins (Head, then Init or Renew as
	// doc.go describes); it is retryable.
	ErrEpoch = errors.New("redisrelay: document epoch changed")
	// ErrUnavailable is wrapped around errors that say nothing about the
	// document: Redis cannot be reached, timed out, is loading its data,
	// or the context ended. The outcome of a write is then unknown:
	// repeat the same call (Commit is idempotent) once Redis is back.
	ErrUnavailable = errors.New("redisrelay: Redis unavailable")
	// ErrTrimmed means Redis no longer holds the records asked for: they
	// were trimmed from the document's stream. A caller that needs them
	// loads the snapshot instead (Load).
	ErrTrimmed = errors.New("redisrelay: records no longer in Redis")
	// ErrStaleSeq means a commit's first record has a seq below the last
	// one its src committed, and the record is not in Redis's tail: it is
	// neither new nor a recognisable resend.
	ErrStaleSeq = errors.New("redisrelay: seq below the last committed seq of its src")
	// ErrInvalid is wrapped by errors about the caller's arguments
	// (records that are not contiguous, oversized numbers, an op that
	// does not encode). Nothing was sent to Redis.
	ErrInvalid = errors.New("redisrelay: invalid argument")
	// ErrCorrupt means Redis holds a value this package cannot decode.
	ErrCorrupt = errors.New("redisrelay: malformed value in Redis")
	// ErrClosed is returned by Subscribe after Close.
	ErrClosed = errors.New("redisrelay: relay closed")
)

// EpochReason says why an EpochError was returned.
type EpochReason uint8

const (
	// EpochAbsent: Redis has no state for the document (it was never
	// seeded, or Redis lost its data). Seed it with Init.
	EpochAbsent EpochReason = iota + 1
	// EpochChanged: the document has another epoch than the caller's,
	// started by Init or Renew on some node. Head tells how much of the
	// caller's history the new one shares.
	EpochChanged
	// EpochRestarted: the epoch is the caller's, but Redis restarted (or
	// failed over) since it began, so Redis may have lost the newest
	// records. Renew starts a new epoch before any write.
	EpochRestarted
	// EpochBehind: the epoch is the caller's but Redis's head is below
	// the caller's version: Redis lost records the caller holds. Renew
	// with those records restores them.
	EpochBehind
)

var reasonNames = [...]string{EpochAbsent: "absent", EpochChanged: "changed", EpochRestarted: "restarted", EpochBehind: "behind"}

// String returns the reason's name.
func (r EpochReason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("EpochReason(%d)", r)
}

// EpochError says that Redis's state for a document is not the history
// the caller holds. It unwraps to ErrEpoch.
type EpochError struct {
	Reason EpochReason
	// Epoch is the document's epoch in Redis ("" when absent).
	Epoch string
	// Head is Redis's head version for EpochBehind.
	Head uint64
}

// Error describes the mismatch.
func (e *EpochError) Error() string {
	switch e.Reason {
	case EpochAbsent:
		return "redisrelay: document epoch changed: Redis has no state for the document"
	case EpochBehind:
		return fmt.Sprintf("redisrelay: document epoch changed: Redis's head %d is behind the caller", e.Head)
	}
	return fmt.Sprintf("redisrelay: document epoch changed: %s (Redis has epoch %s)", e.Reason, e.Epoch)
}

// Unwrap returns ErrEpoch.
func (e *EpochError) Unwrap() error { return ErrEpoch }

// retryablePrefixes are Redis error replies that mean "not now" rather
// than "no": the server is loading, busy with a script, or the cluster
// is reconfiguring.
var retryablePrefixes = []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "NOREPLICAS", "MOVED", "ASK"}

// classify wraps an error from go-redis: ErrUnavailable for transport,
// timeout and transient server errors, plain wrapping for the rest (a
// script error is a bug, not a reason to retry).
func classify(op string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range retryablePrefixes {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
			}
		}
		return fmt.Errorf("redisrelay: %s: %w", op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}
