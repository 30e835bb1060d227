package web

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// TestCatchUpBehindASubmitHasNoGaps: what the browser's far-behind page
// does, over raw WebSockets and in rounds. Two connections with a send
// queue of 20 subscribe 3,000 ops behind; one sends its own op at its old
// version right after its subscribe, while a third client commits at the
// head. Each catching-up connection must see every version once in
// order (an op below the next version is a repeat, which clients pass
// over; one above it is a gap), never be closed, and end at the head;
// the one with the op gets its ack.
func TestCatchUpBehindASubmitHasNoGaps(t *testing.T) {
	const behind, live, rounds = 3000, 40, 20
	for round := range rounds {
		ts := startServer(t, Options{Logger: quiet, SendQueueMessages: 20}, collab.Options{})
		id := fmt.Sprintf("far%d", round)
		buildLongDoc(t, ts, collab.Key{Collection: "docs", ID: id}, behind)
		mine, other, w := ts.connect(t), ts.connect(t), ts.connect(t)
		mine.sendf(`{"a":"s","c":"docs","d":%q,"v":1}`, id)
		mine.sendf(`{"a":"op","c":"docs","d":%q,"v":1,"seq":1,"op":["mine "]}`, id)
		other.sendf(`{"a":"s","c":"docs","d":%q,"v":1}`, id)
		head := uint64(behind + live + 1)
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		wg.Add(1)
		go func() { // the live writer, one op in flight
			defer wg.Done()
			v := uint64(behind)
			for i := range live {
				w.sendf(`{"a":"op","c":"docs","d":%q,"v":%d,"seq":%d,"op":["!"]}`, id, v, i+1)
				for { // the ops it missed, then its ack
					m, err := w.tryRecv(20 * time.Second)
					if err != nil || m["a"] != "op" || m["v"] == nil {
						errs <- fmt.Errorf("round %d: writer's op %d: %v %v", round, i+1, m, err)
						return
					}
					v = uint64(m["v"].(float64)) + 1
					if m["src"] == w.src && m["seq"] == float64(i+1) && m["op"] == nil {
						break
					}
				}
				// A typist's pace. At the generator's full speed (an op
				// per round trip) a reader that is descheduled for a few
				// milliseconds has 20 broadcasts queued, which a queue of
				// 20 refuses as a slow consumer: 1013, correctly, and
				// nothing to do with the catch-up this test is about
				// (found with the queue's contents at the overflow: 20
				// of this writer's ops).
				time.Sleep(2 * time.Millisecond)
			}
		}()
		for i, c := range []*tclient{mine, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next, acked := uint64(1), c != mine
				for n := 0; next < head || !acked; n++ {
					if i == 1 && n%200 == 199 {
						time.Sleep(2 * time.Millisecond) // a slower reader: the queue fills
					}
					m, err := c.tryRecv(20 * time.Second)
					if err != nil {
						errs <- fmt.Errorf("round %d: %s at version %d of %d: %v", round, c.src, next, head, err)
						return
					}
					if m["a"] != "op" || m["v"] == nil {
						continue
					}
					v := uint64(m["v"].(float64))
					if c == mine && m["src"] == mine.src && m["seq"] == float64(1) && m["op"] == nil {
						acked = true
					}
					switch {
					case v > next:
						errs <- fmt.Errorf("round %d: %s expected version %d, got %v: a gap", round, c.src, next, m)
						return
					case v == next:
						next++
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
	}
}
