package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/editlog"
	"github.com/coedit/coedit/ot"
)

// RemoteError is an error reply from a server (ShareDB's
// {"error":{"code","message"}}).
type RemoteError struct {
	Code    string
	Message string
}

// Error returns the code and message.
func (e *RemoteError) Error() string { return e.Code + ": " + e.Message }

// replyTimeout bounds the wait for any one reply from the server.
const replyTimeout = time.Minute

// rateLimited is the error code of a submit refused for a rate limit: it
// was not applied and may be sent again. A coedit server slows a
// connection over its rate instead, but a ShareDB server's middleware, or
// an older coedit, refuses.
const rateLimited = "ERR_RATE_LIMITED"

// redacted replaces a credential in a URL shown in messages.
const redacted = "REDACTED"

// RedactURL returns rawURL for messages and logs, with the value of its
// token query parameter (where a coedit server reads a token) replaced
// by REDACTED and any password by xxxxx (url.URL.Redacted). A URL that
// does not parse loses its whole query. Remote shows its URL only so; a
// caller that prints the URL it gave should do the same.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		if i := strings.IndexAny(rawURL, "?#"); i >= 0 {
			return rawURL[:i] + "?" + redacted
		}
		return rawURL
	}
	if u.RawQuery != "" {
		params := strings.Split(u.RawQuery, "&")
		for i, p := range params {
			name, _, _ := strings.Cut(p, "=")
			if key, err := url.QueryUnescape(name); err != nil || key == "token" {
				params[i] = name + "=" + redacted
			}
		}
		u.RawQuery = strings.Join(params, "&")
	}
	return u.Redacted()
}

// checkURL refuses a URL that does not parse before the dialer does: its
// error would quote the URL whole, token and all.
func checkURL(rawURL string) error {
	if _, err := url.Parse(rawURL); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return errors.New("does not parse")
	}
	return nil
}

// Remote replays l against a running coedit (or ShareDB) server at
// url (ws://host:port/ws) over its WebSocket protocol, with one
// connection per src. Each connection sends its src in the handshake to
// claim it (as a reconnecting ShareDB client does), submits each of its
// records with the recorded seq and base version, and waits for the
// acknowledgement, reading the ops it missed that the server sends first
// (their versions must run from the base version to the ack's). A
// header's initial text and records without a src go through one more
// connection, with seqs of its own. A submit the server rate-limits is
// sent again after a pause. The checks are Run's: the document must be
// fresh, every ack at the expected version, and the final document (as
// fetched) as the header expects, else a *MismatchError.
//
// A token the server requires goes in WithToken, which sends it in an
// Authorization header, or in the URL's token parameter; errors show the
// URL with the token redacted (RedactURL).
func Remote(ctx context.Context, url string, l *editlog.Log, opts ...Option) (Result, error) {
	cfg := newConfig(opts)
	res := Result{Key: cfg.key(l)}
	if err := l.Validate(); err != nil {
		return res, err
	}
	shown := RedactURL(url)
	if err := checkURL(url); err != nil {
		return res, fmt.Errorf("replay: server URL %s: %w", shown, err)
	}
	r := &remoteReplay{url: url, shown: shown, token: cfg.token, key: res.Key, max: cfg.conns, clients: map[string]*wsClient{}, srcs: map[string]string{}}
	defer r.close()
	anon, err := r.client(ctx, "")
	if err != nil {
		return res, err
	}
	snap, err := anon.fetch(ctx, res.Key)
	if err != nil {
		return res, err
	}
	if snap.Version != 0 {
		return res, fmt.Errorf("%w: %s is at version %d on %s; replay into a new document", ErrNotFresh, res.Key, snap.Version, shown)
	}
	start := time.Now()
	if l.Header.HasInitial {
		typ := l.Header.Type
		if typ == "" {
			typ = ot.URI
		}
		anon.seq++
		init := editlog.Record{Seq: anon.seq, Kind: editlog.Create, Type: typ, Data: l.Header.Initial}
		v, err := anon.submit(ctx, res.Key, &init, false, &res.RateLimited)
		if err != nil {
			return res, fmt.Errorf("replay: creating %s with the initial text: %w", res.Key, err)
		}
		if v != 0 {
			return res, fmt.Errorf("replay: initial create of %s acknowledged at version %d, want 0", res.Key, v)
		}
		res.Committed++
	}
	want := l.Outcomes()
	for i := range l.Records {
		rec := l.Records[i] // a copy: a src-less record gets the connection's seq
		where := fmt.Sprintf("%s (src %q seq %d v %d)", l.Where(i), rec.Src, rec.Seq, rec.V)
		c, err := r.client(ctx, rec.Src)
		if err != nil {
			return res, fmt.Errorf("replay: %s: %w", where, err)
		}
		if rec.Src == "" {
			c.seq++
			rec.Seq = c.seq
		}
		v, err := c.submit(ctx, res.Key, &rec, want[i].Resend, &res.RateLimited)
		res.Records++
		if err != nil {
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("replay: %s: %w", where, err)
		}
		if v != want[i].Version {
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("replay: %s: acknowledged at version %d, want %d", where, v, want[i].Version)
		}
		if want[i].Resend {
			res.Duplicates++
		} else {
			res.Committed++
		}
	}
	res.Elapsed = time.Since(start)
	if res.Final, err = anon.fetch(ctx, res.Key); err != nil {
		return res, err
	}
	return res, checkFinal(l, res.Key, res.Final)
}

// remoteReplay holds the connections of one Remote, one per src, at
// most max of them open (WithConns).
type remoteReplay struct {
	url     string
	shown   string // url for messages, RedactURL
	token   string // WithToken's
	key     collab.Key
	max     int
	clients map[string]*wsClient
	// srcs maps a recorded src to the src the server gave its connection,
	// which a later connection for it claims back.
	srcs map[string]string
	tick uint64
}

// client returns the connection for src, dialling it on first use, or
// again (claiming its src back) after it was closed to make room. The
// records go one at a time, so no connection closed has an op in flight.
func (r *remoteReplay) client(ctx context.Context, src string) (*wsClient, error) {
	r.tick++
	if c := r.clients[src]; c != nil {
		c.used = r.tick
		return c, nil
	}
	if len(r.clients) >= r.max {
		oldest := ""
		for s, c := range r.clients {
			if s != "" && (oldest == "" || c.used < r.clients[oldest].used) {
				oldest = s
			}
		}
		r.clients[oldest].close()
		delete(r.clients, oldest)
	}
	claim := src
	if s, ok := r.srcs[src]; ok {
		claim = s
	}
	c, err := dial(ctx, r.url, r.shown, r.token, claim)
	if err != nil {
		return nil, err
	}
	if old, ok := r.srcs[src]; ok && c.src != old {
		c.close()
		return nil, fmt.Errorf("replay: reconnecting src %q: the server gave src %q, not its own %q back", src, c.src, old)
	}
	c.used = r.tick
	r.clients[src] = c
	r.srcs[src] = c.src
	return c, nil
}

func (r *remoteReplay) close() {
	for _, c := range r.clients {
		c.close()
	}
}

// wsMsg is any message a server sends; only the fields replay reads.
type wsMsg struct {
	A      string          `json:"a"`
	C      string          `json:"c"`
	D      string          `json:"d"`
	V      *uint64         `json:"v"`
	Src    string          `json:"src"`
	Seq    uint64          `json:"seq"`
	Op     json.RawMessage `json:"op"`
	Create json.RawMessage `json:"create"`
	Del    json.RawMessage `json:"del"`
	ID     json.RawMessage `json:"id"`
	Data   json.RawMessage `json:"data"`
	Error  *RemoteError    `json:"error"`
}

// UnmarshalJSON is needed only because RemoteError's fields are
// capitalised; the wire form is {"code","message"}.
func (e *RemoteError) UnmarshalJSON(data []byte) error {
	var w struct{ Code, Message string }
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	e.Code, e.Message = w.Code, w.Message
	return nil
}

// isOp reports whether m carries an op (a broadcast or a missed op),
// not an ack.
func (m *wsMsg) isOp() bool { return present(m.Op) || present(m.Create) || present(m.Del) }

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// wsClient is one ShareDB connection. Its reader goroutine answers pings
// and hands every message to in; it stops when the connection closes, and
// close waits for it.
type wsClient struct {
	conn   *websocket.Conn
	src    string // the src the server gave this connection
	seq    uint64 // the last seq used for records without a src
	used   uint64 // when it last served a record (remoteReplay.tick)
	in     chan wsMsg
	done   chan struct{}
	errMu  sync.Mutex
	errVal error // why the reader stopped
}

// dial connects to url (shown in errors as shown), authenticating with
// token when it is not empty, and claims src.
func dial(ctx context.Context, url, shown, token, src string) (*wsClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	var header http.Header
	if token != "" {
		header = http.Header{"Authorization": {"Bearer " + token}}
	}
	conn, resp, err := d.DialContext(ctx, url, header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("replay: dial %s: %w (HTTP %s)", shown, err, resp.Status)
		}
		return nil, fmt.Errorf("replay: dial %s: %w", shown, err)
	}
	c := &wsClient{conn: conn, in: make(chan wsMsg, 256), done: make(chan struct{})}
	go c.read()
	hs := map[string]any{"a": "hs", "id": nil, "protocol": 1, "protocolMinor": 2}
	if src != "" {
		hs["id"] = src
	}
	if err := c.write(hs); err != nil {
		c.close()
		return nil, err
	}
	for {
		m, err := c.recv(ctx)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("replay: handshake with %s: %w", shown, err)
		}
		if m.A != "hs" {
			continue // e.g. a legacy "init" greeting
		}
		if m.Error != nil {
			c.close()
			return nil, fmt.Errorf("replay: handshake with %s: %w", shown, m.Error)
		}
		if err := json.Unmarshal(m.ID, &c.src); err != nil || c.src == "" {
			c.close()
			return nil, fmt.Errorf("replay: handshake with %s: no src in the reply", shown)
		}
		return c, nil
	}
}

func (c *wsClient) read() {
	defer close(c.done)
	defer close(c.in)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.errMu.Lock()
			c.errVal = err
			c.errMu.Unlock()
			return
		}
		var m wsMsg
		if err := json.Unmarshal(data, &m); err != nil {
			c.errMu.Lock()
			c.errVal = fmt.Errorf("undecodable message %.200q: %w", data, err)
			c.errMu.Unlock()
			return
		}
		c.in <- m
	}
}

// recv returns the next message, or why there is none.
func (c *wsClient) recv(ctx context.Context) (wsMsg, error) {
	t := time.NewTimer(replyTimeout)
	defer t.Stop()
	select {
	case m, ok := <-c.in:
		if !ok {
			c.errMu.Lock()
			defer c.errMu.Unlock()
			return m, fmt.Errorf("connection closed: %w", c.errVal)
		}
		return m, nil
	case <-ctx.Done():
		return wsMsg{}, ctx.Err()
	case <-t.C:
		return wsMsg{}, fmt.Errorf("no reply from the server in %v", replyTimeout)
	}
}

func (c *wsClient) write(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	c.conn.SetWriteDeadline(time.Now().Add(replyTimeout))
	if err := c.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		return fmt.Errorf("replay: write: %w", err)
	}
	return nil
}

func (c *wsClient) close() {
	c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "replay done"), time.Now().Add(time.Second))
	c.conn.Close()
	<-c.done
}

// fetch returns key's current snapshot ("f" with v null).
func (c *wsClient) fetch(ctx context.Context, key collab.Key) (collab.Snapshot, error) {
	if err := c.write(map[string]any{"a": "f", "c": key.Collection, "d": key.ID, "v": nil}); err != nil {
		return collab.Snapshot{}, err
	}
	for {
		m, err := c.recv(ctx)
		if err != nil {
			return collab.Snapshot{}, fmt.Errorf("replay: fetch %s: %w", key, err)
		}
		if m.A != "f" || m.C != key.Collection || m.D != key.ID {
			continue
		}
		if m.Error != nil {
			return collab.Snapshot{}, fmt.Errorf("replay: fetch %s: %w", key, m.Error)
		}
		var s struct {
			V    uint64  `json:"v"`
			Type *string `json:"type"`
			Data *string `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &s); err != nil {
			return collab.Snapshot{}, fmt.Errorf("replay: fetch %s: snapshot %s: %w", key, m.Data, err)
		}
		snap := collab.Snapshot{Version: s.V}
		if s.Type != nil {
			snap.Type = *s.Type
		}
		if s.Data != nil {
			snap.Data = *s.Data
		}
		return snap, nil
	}
}

// submit sends rec and returns the version of its acknowledgement. The
// ops the server sends before the ack must be those in [rec.V, ack) (not
// checked for a resend, whose ack is at its original version). A submit
// refused for the rate limit is sent again after a pause, and counted in
// *limited.
func (c *wsClient) submit(ctx context.Context, key collab.Key, rec *editlog.Record, resend bool, limited *int) (uint64, error) {
	msg := map[string]any{"a": "op", "c": key.Collection, "d": key.ID, "v": rec.V, "seq": rec.Seq}
	if resend {
		msg["src"] = c.src // a ShareDB client names its src when it resends
	}
	switch rec.Kind {
	case editlog.Edit:
		op, err := rec.Op.MarshalJSON()
		if err != nil {
			return 0, err
		}
		msg["op"] = json.RawMessage(op)
	case editlog.Create:
		msg["create"] = map[string]string{"type": rec.Type, "data": rec.Data}
	case editlog.Delete:
		msg["del"] = true
	}
	pause := 10 * time.Millisecond
	for {
		if err := c.write(msg); err != nil {
			return 0, err
		}
		next := rec.V
		for {
			m, err := c.recv(ctx)
			if err != nil {
				return 0, err
			}
			if m.A != "op" {
				continue
			}
			if m.Error != nil {
				if m.Error.Code != rateLimited {
					return 0, m.Error
				}
				*limited++
				break // not applied: send it again after a pause
			}
			own := m.Src == c.src && m.Seq == rec.Seq
			if own || !m.isOp() {
				// The ack (or, as a ShareDB client reads it, our own op).
				if !own || m.V == nil {
					return 0, fmt.Errorf("unexpected reply %+v", m)
				}
				if !resend && *m.V != next {
					return 0, fmt.Errorf("acknowledged at version %d after the missed ops up to version %d: the server sent %d of the %d ops committed since v %d",
						*m.V, next, next-rec.V, *m.V-rec.V, rec.V)
				}
				return *m.V, nil
			}
			if m.V == nil {
				return 0, fmt.Errorf("an op without a version: %+v", m)
			}
			if !resend {
				if *m.V != next {
					return 0, fmt.Errorf("missed op at version %d, want version %d next", *m.V, next)
				}
				next++
			}
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		pause = min(2*pause, time.Second)
	}
}
