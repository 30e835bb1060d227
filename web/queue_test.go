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
