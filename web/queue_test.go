package web

import "testing"

func TestQueueKindsCountsActionsInOrder(t *testing.T) {
	q := [][]byte{
		[]byte(`{"a":"op","c":"docs","d":"x","v":1}`),
		[]byte(`{"a":"p","ch":"docs.x"}`),
		[]byte(`{"a":"op","c":"docs","d":"x","v":2}`),
		[]byte(`{"a":"pr","ch":"docs.x"}`),
		[]byte(`not json`),
	}
	if got, want := queueKinds(q), "op:2 p:1 pr:1 ?:1"; got != want {
		t.Fatalf("queueKinds = %q, want %q", got, want)
	}
	if got := queueKinds(nil); got != "" {
		t.Fatalf("queueKinds(nil) = %q, want empty", got)
	}
}

// TestDroppingCloseAfterAKeepingOne: a close that keeps the queue
// (closeAfterQueued: 1012, say) followed by one that drops it (4002: the
// queued ops belong to a replaced history) drops it; the first code
// stands.
func TestDroppingCloseAfterAKeepingOne(t *testing.T) {
	c := &conn{queue: [][]byte{[]byte(`{"a":"op"}`)}, queuedBytes: 10}
	c.startClosingKeepLocked(CloseRetry, "retry")
	if len(c.queue) != 1 || !c.closing {
		t.Fatalf("after a keeping close: queue %d, closing %v; want 1, true", len(c.queue), c.closing)
	}
	c.startClosingLocked(CloseHistoryReplaced, "replaced")
	if c.queue != nil || c.queuedBytes != 0 || c.closeCode != CloseRetry {
		t.Fatalf("after a dropping close: queue %d (%d bytes), code %d; want empty, %d", len(c.queue), c.queuedBytes, c.closeCode, CloseRetry)
	}
}
