package redisrelay

import (
	"testing"

	"github.com/coedit/coedit/collab"
)

// TestUntagInvertsTag: a document list entry names its document back,
// whatever bytes the collection and id hold.
func TestUntagInvertsTag(t *testing.T) {
	for _, k := range []collab.Key{
		{Collection: "docs", ID: "x"},
		{Collection: "a.b", ID: "c.d"},
		{Collection: "%2E", ID: "{}%"},
		{Collection: "é", ID: "💃.}{"},
	} {
		got, ok := untag(tag(k))
		if !ok || got != k {
			t.Errorf("untag(tag(%+v)) = %+v, %v; want it back", k, got, ok)
		}
	}
	for _, bad := range []string{"nodot", "a.%", "a.%4", "a.%41", ".x", "x."} {
		if k, ok := untag(bad); ok {
			t.Errorf("untag(%q) = %+v, true; want false", bad, k)
		}
	}
}
