package redisrelay

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestWriterNameGoesIntoJSONAsItIs: the commit script writes the writer
// name into each doorbell between quotes, unescaped, so the name must be
// a JSON string's content as it is, and two processes must never share
// one, whatever their node ids.
func TestWriterNameGoesIntoJSONAsItIs(t *testing.T) {
	for _, id := range []string{"node1", `q"1`, `q\2`, "tab\there", "del\x7f", "bad\xffutf8", "é-ü", ""} {
		w := writerName(id)
		var got struct {
			W string `json:"w"`
		}
		doc := `{"w":"` + w + `"}`
		if err := json.Unmarshal([]byte(doc), &got); err != nil || got.W != w {
			t.Fatalf("writerName(%q) = %q: %s decodes to %q, %v; want the name back", id, w, doc, got.W, err)
		}
		if strings.ContainsAny(w, "\"\\") {
			t.Fatalf("writerName(%q) = %q holds a quote or backslash", id, w)
		}
		if w2 := writerName(id); w2 == w {
			t.Fatalf("writerName(%q) gave %q twice", id, w)
		}
	}
	if w := writerName("node1"); !strings.HasPrefix(w, "node1.") {
		t.Fatalf("writerName(node1) = %q, want the node id first", w)
	}
}
