package redisrelay

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab"
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
		if !plainInJSON(w) {
			t.Fatalf("writerName(%q) = %q, which CommitInTurn would refuse", id, w)
		}
		if w2 := writerName(id); w2 == w {
			t.Fatalf("writerName(%q) gave %q twice", id, w)
		}
	}
	if w := writerName("node1"); !strings.HasPrefix(w, "node1.") {
		t.Fatalf("writerName(node1) = %q, want the node id first", w)
	}
}

// TestCommitInTurnRefusesAWriterJSONWouldEscape: a caller's own writer
// name leads the doorbell as it is, so one that JSON would have to
// escape is refused before Redis is asked, rather than published as a
// doorbell no subscriber can read.
func TestCommitInTurnRefusesAWriterJSONWouldEscape(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer c.Close()
	r, err := New(Options{Client: c, NodeID: "n"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := collab.Key{Collection: "c", ID: "d"}
	recs := []collab.Record{{Version: 1, Src: "s", Seq: 1, Kind: collab.OpEdit}}
	for _, w := range []string{`a"b`, `a\b`, "a\nb", "bad\xff"} {
		_, err := r.CommitInTurn(context.Background(), key, "e", 1, recs, w, false, time.Second)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("CommitInTurn with writer %q = %v, want ErrInvalid", w, err)
		}
	}
}
