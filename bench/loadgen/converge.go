package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
)

// converged checks, once every op is acknowledged, that the clients of
// each document agree with each other and with a fresh fetch of it from
// every URL (for a cluster, from every node). It first waits, up to the
// ack timeout, for the last broadcasts to arrive: every live client of a
// document at the same version. It returns whether all agreed and, if not,
// the first disagreement.
func (s *setup) converged(ctx context.Context) (bool, string) {
	deadline := time.Now().Add(s.g.o.AckTimeout)
	for _, d := range s.docs {
		for {
			v, text, ok, issue := d.agreed()
			if ok {
				d.finalV, d.finalText = v, text
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return false, issue
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, url := range s.g.o.URLs {
		if issue := s.fetchAll(ctx, url); issue != "" {
			return false, issue
		}
	}
	return true, ""
}

// agreed reports whether d's live clients are at one version with one
// text, and returns them.
func (d *doc) agreed() (v uint64, text string, ok bool, issue string) {
	first := true
	for _, c := range d.clients {
		c.mu.Lock()
		cv, ct, skip := c.v, c.text.String(), c.dead
		busy := c.resyncing || c.inflight != nil
		c.mu.Unlock()
		if skip {
			continue
		}
		if busy {
			return 0, "", false, fmt.Sprintf("document %s: client %d still busy", d.id, c.idx)
		}
		if first {
			v, text, first = cv, ct, false
			continue
		}
		if cv != v {
			return 0, "", false, fmt.Sprintf("document %s: client 0 at version %d, client %d at %d", d.id, v, c.idx, cv)
		}
		if ct != text {
			return 0, "", false, fmt.Sprintf("document %s at version %d: clients' texts differ: %q and %q", d.id, v, text, ct)
		}
	}
	return v, text, true, ""
}

// fetchAll fetches every document from url on a new connection and
// compares each with what the clients hold.
func (s *setup) fetchAll(ctx context.Context, url string) string {
	ws, _, err := s.g.dial(ctx, url)
	if err != nil {
		return err.Error()
	}
	defer ws.Close()
	for _, d := range s.docs {
		if err := ws.WriteMessage(websocket.TextMessage, fetchFrame(s.g.collJSON, d.idJSON)); err != nil {
			return fmt.Sprintf("fetch %s from %s: %v", d.id, url, err)
		}
		f, err := readUntil(ws, `"f"`, d.idJSON)
		if err == nil && f.Error != nil {
			err = fmt.Errorf("%s", f.Error)
		}
		var snap snapshot
		if err == nil {
			err = json.Unmarshal(f.Data, &snap)
		}
		if err != nil {
			return fmt.Sprintf("fetch %s from %s: %v", d.id, url, err)
		}
		if snap.V != d.finalV || snap.Data != d.finalText {
			return fmt.Sprintf("document %s: the clients hold version %d %q, a fetch from %s gives version %d %q", d.id, d.finalV, d.finalText, url, snap.V, snap.Data)
		}
	}
	return ""
}
