package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coedit/coedit/collab"
)

const (
	// defaultListLimit and maxListLimit bound GET /api/docs.
	defaultListLimit = 100
	maxListLimit     = 1000
	// opsPage is how many records GET .../ops reads from the hub at a
	// time, bounding its memory whatever the range; maxExports bounds the
	// exports that stream at once, so that clients which stop reading
	// cannot hold many pages (a later one waits, within its request's
	// time, then gets ERR_SERVER_BUSY).
	opsPage     = 256
	maxExports  = 8
	exportWait  = 5 * time.Second
	exportGrace = 5 * time.Second
)

// writeJSON writes v as the JSON response body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeRaw writes JSON bytes as the response body.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// writeError writes {"error":{"code","message"}} with the code's status,
// logging errors whose cause the client is not told.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	pe, internal := toProtoError(err)
	if internal {
		s.log.Error("http api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.met.countError(pe.Code)
	if pe.Code == CodeUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeRaw(w, pe.status(), []byte(`{"error":`+string(errorObject(pe))+`}`))
}

// authorize authenticates r and checks it may read key (write, when
// write is set); on failure it answers r and returns false. An
// authentication failure is 401, a document the token does not allow 403.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, key collab.Key, write bool) (identity, bool) {
	id, err := s.authenticate(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return id, false
	}
	switch {
	case write && !id.access.CanWrite(key):
		s.writeError(w, r, forbidden("your token does not allow writing "+key.String()))
		return id, false
	case !write && !id.access.CanRead(key):
		s.writeError(w, r, forbidden("your token does not allow reading "+key.String()))
		return id, false
	}
	return id, true
}

// pathKey reads the document key from the route's path values.
func (s *Server) pathKey(r *http.Request) (collab.Key, *protoError) {
	k := collab.Key{Collection: r.PathValue("collection"), ID: r.PathValue("id")}
	if perr := checkName("the collection", k.Collection, s.opts.MaxNameLen); perr != nil {
		return k, perr
	}
	return k, checkName("the id", k.ID, s.opts.MaxNameLen)
}

// queryUint reads a non-negative integer query parameter, def when absent.
func queryUint(r *http.Request, name string, def uint64) (uint64, *protoError) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badlyFormed(fmt.Sprintf("query parameter %q must be a non-negative integer", name))
	}
	return n, nil
}

// docInfo is one entry of GET /api/docs.
type docInfo struct {
	Collection string  `json:"collection"`
	ID         string  `json:"id"`
	Version    uint64  `json:"v"`
	Type       *string `json:"type"`
	Created    int64   `json:"created"`
	Modified   int64   `json:"modified"`
}

// serveList answers GET /api/docs?collection=&limit= with
// {"docs":[{collection,id,v,type,created,modified}]}, newest change first,
// listing only the documents the token may read.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request) {
	id, err := s.authenticate(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	limit, perr := queryUint(r, "limit", defaultListLimit)
	if perr != nil {
		s.writeError(w, r, perr)
		return
	}
	limit = max(1, min(limit, maxListLimit))
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	infos, err := s.listReadable(ctx, id.access, r.URL.Query().Get("collection"), int(limit))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	docs := make([]docInfo, 0, len(infos))
	for _, in := range infos {
		d := docInfo{Collection: in.Key.Collection, ID: in.Key.ID, Version: in.Version, Created: in.Created, Modified: in.Modified}
		if in.Type != "" {
			d.Type = &in.Type
		}
		docs = append(docs, d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"docs": docs})
}

// serveSnapshot answers GET /api/docs/{collection}/{id} with the current
// snapshot {v,type,data} (type null and no data if there is none).
func (s *Server) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	key, perr := s.pathKey(r)
	if perr != nil {
		s.writeError(w, r, perr)
		return
	}
	if _, ok := s.authorize(w, r, key, false); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	snap, err := s.hub.FetchWait(ctx, key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, encodeSnapshot(snap))
}

// serveOps answers GET /api/docs/{collection}/{id}/ops?from=&to= with the
// committed ops from <= v < to (default: all) as JSON Lines, one op per
// line in ShareDB's shape: v, src, seq, one of op, create {type,data} and
// del, and m {ts} (commit time, Unix ms). An error after the first line
// ends the stream with a line {"error":{...}}. An export running out of
// time, or still running when the server begins to close, ends with a
// retryable ERR_UNAVAILABLE that names the ?from= to ask for the rest.
func (s *Server) serveOps(w http.ResponseWriter, r *http.Request) {
	key, perr := s.pathKey(r)
	if perr == nil {
		if _, ok := s.authorize(w, r, key, false); !ok {
			return
		}
		var from, to uint64
		if from, perr = queryUint(r, "from", 0); perr == nil {
			if to, perr = queryUint(r, "to", math.MaxUint64); perr == nil {
				s.streamOps(w, r, key, from, to)
				return
			}
		}
	}
	s.writeError(w, r, perr)
}

func (s *Server) streamOps(w http.ResponseWriter, r *http.Request, key collab.Key, from, to uint64) {
	wait := time.NewTimer(min(s.opts.RequestTimeout/2, exportWait))
	defer wait.Stop()
	select {
	case s.exports <- struct{}{}:
		defer func() { <-s.exports }()
	case <-r.Context().Done():
		return // the client left
	case <-wait.C:
		w.Header().Set("Retry-After", "1")
		s.writeError(w, r, newError(CodeServerBusy, fmt.Sprintf("%d op exports are streaming: try again", maxExports)))
		return
	}
	// The export has RequestTimeout from here; the connection's deadlines
	// (Server.bound: past the read one, the server cancels the request's
	// context) come exportGrace later, so an export cut short still ends
	// with its error line, as the format promises.
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(s.opts.RequestTimeout + exportGrace))
	rc.SetWriteDeadline(time.Now().Add(s.opts.RequestTimeout + exportGrace))
	bw := bufio.NewWriterSize(w, 32<<10)
	started := false
	for from < to {
		end := to
		if to-from > opsPage {
			end = from + opsPage
		}
		var recs []collab.Record
		var err error
		if s.closingNow() {
			// The export would hold up the node's shutdown for as long as
			// its client takes to read it all (minutes, for a long history
			// read slowly): it ends here, and the client asks this node,
			// once back, or another for the rest.
			err = fmt.Errorf("%w: the server is shutting down: ask for the rest with ?from=%d", collab.ErrUnavailable, from)
			s.log.Info("op export cut short: the server is shutting down", "doc", key.String(), "from", from)
		} else {
			recs, err = s.hub.Ops(ctx, key, from, end)
			if err != nil && r.Context().Err() != nil {
				return // the client left
			}
			if err != nil && ctx.Err() != nil {
				// Out of time: the client asks for the rest.
				err = fmt.Errorf("%w: the export took longer than %v: ask for the rest with ?from=%d", collab.ErrUnavailable, s.opts.RequestTimeout, from)
				s.log.Info("op export out of time", "doc", key.String(), "from", from)
			}
		}
		if err != nil {
			if !started {
				s.writeError(w, r, err)
				return
			}
			pe, internal := toProtoError(err)
			if internal {
				s.log.Error("op export failed", "doc", key.String(), "from", from, "err", err)
			}
			bw.WriteString(`{"error":` + string(errorObject(pe)) + "}\n")
			break
		}
		if !started {
			w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		for _, rec := range recs {
			line, err := encodeRecord(rec, true)
			if err != nil {
				s.log.Error("cannot encode committed op", "doc", key.String(), "v", rec.Version, "err", err)
				bw.WriteString(`{"error":` + string(errorObject(newError(CodeUnknownError, "internal error"))) + "}\n")
				bw.Flush()
				return
			}
			bw.Write(line)
			bw.WriteByte('\n')
		}
		if uint64(len(recs)) < end-from {
			break // reached the head
		}
		from = end
	}
	if !started {
		w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
		w.WriteHeader(http.StatusOK)
	}
	bw.Flush()
}

// closingNow reports whether Close has begun. An op export checks it
// before each page: http.Server.Shutdown would wait for the export, which
// a client that reads slowly can stretch far past the shutdown's time.
func (s *Server) closingNow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// httpSrcPrefix starts the src of every op submitted over the HTTP API.
const httpSrcPrefix = "http:"

// anonSrcPrefix starts the src given to a submit that brought none: a
// random one of its own (newSrc), used once. No client can send one: an
// HTTP writer's src starts with httpSrcPrefix, and a WebSocket src holds
// no ':'.
const anonSrcPrefix = "http-once:"

// An HTTP writer's src, with its prefix and subject MAC (see
// Server.httpSrc), must fit the engine's bound: this array's length is
// negative, and the build fails, if it does not.
var _ [collab.MaxSrcLen - len(httpSrcPrefix) - srcMACLen - 1 - maxClientSrcLen]struct{}

// encodeRecord encodes rec as a ShareDB op object {v,src,seq,op|create|del}
// with m {ts} when withMeta is set.
func encodeRecord(rec collab.Record, withMeta bool) ([]byte, error) {
	m := &msg{b: make([]byte, 0, 96)}
	m.b = append(m.b, `{"v":`...)
	m.b = appendUint(m.b, rec.Version)
	if rec.Src != "" {
		m.str("src", rec.Src).uint("seq", rec.Seq)
	}
	if err := appendRecordBody(m, rec); err != nil {
		return nil, err
	}
	if withMeta {
		m.key("m")
		m.b = append(m.b, `{"ts":`...)
		m.b = strconv.AppendInt(m.b, rec.Time, 10)
		m.b = append(m.b, '}')
	}
	return append(m.b, '}'), nil
}

// serveSubmit answers POST /api/docs/{collection}/{id}/ops: the body is
// {v, src, seq, op|create|del} (src and seq together or neither; with
// them a resend is deduplicated; without, the op gets a src of its own,
// used once), the op is transformed and committed as
// a WebSocket submit is, and the reply is the committed op
// {v, src, seq, op|create|del} with "duplicate":true for a resend.
//
// It requires Content-Type application/json, which a cross-site page
// cannot send without a CORS preflight, and checks Origin like the
// WebSocket does. The preflight (cors.go) is granted only to the origins
// originAllowed accepts, so for every other origin the browser never
// sends the POST, and a client that skips the preflight is refused here
// by the same check. The token cookie rides along only where the
// preflight also granted credentials, which it does only for origins
// Options.AllowedOrigins names (not through "*", not by the loopback
// default): any other page must hold a token of its own to write.
func (s *Server) serveSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.writeError(w, r, newError(CodeOriginNotAllowed, "origin "+strconv.Quote(r.Header.Get("Origin"))+" is not allowed"))
		return
	}
	key, perr := s.pathKey(r)
	if perr != nil {
		s.writeError(w, r, perr)
		return
	}
	id, ok := s.authorize(w, r, key, true)
	if !ok {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		pe := badlyFormed("Content-Type must be application/json")
		writeRaw(w, http.StatusUnsupportedMediaType, []byte(`{"error":`+string(errorObject(pe))+`}`))
		return
	}
	if !s.paceSubmit(w, r, id) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxFrameSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeError(w, r, newError(CodeOpTooLarge, fmt.Sprintf("body is larger than %d bytes", s.opts.MaxFrameSize)))
			return
		}
		s.writeError(w, r, badlyFormed("reading the body: "+err.Error()))
		return
	}
	req := &request{action: "op"}
	if isNull, err := req.split(body); err != nil || isNull {
		s.writeError(w, r, badlyFormed("body must be a JSON object {v, src, seq, op|create|del}"))
		return
	}
	sub, perr := parseSubmission(req, s.opts.MaxOpSize)
	if perr != nil {
		s.writeError(w, r, perr)
		return
	}
	src, hasSrc, perr := req.str("src", maxClientSrcLen)
	if perr != nil {
		s.writeError(w, r, perr)
		return
	}
	if hasSrc != (sub.Seq != 0) {
		s.writeError(w, r, badlyFormed(`"src" and "seq" go together: both for exactly-once submits, or neither`))
		return
	}
	if hasSrc {
		// HTTP writers get their own src namespace: a WebSocket src never
		// contains ':' (validSrc), so a POST can never pose as a live
		// client (and have that client's next op dropped as its
		// "duplicate"), and no client can reclaim an integration's src.
		sub.Src = s.httpSrc(src, id)
	} else {
		// A submit without src and seq still gets an identity of its own,
		// as every ShareDB op has: in a cluster, two such submits of the
		// same op at the same version and millisecond make byte-identical
		// records, and the commit point could not tell the second from a
		// repeat of the first (a lost reply, retried): both would be
		// acknowledged at one version and one edit lost. With a src,
		// each is its own, and a retried one is known as a resend.
		sub.Src, sub.Seq = anonSrcPrefix+newSrc(), 1
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	res, err := s.hub.SubmitWait(ctx, key, sub)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The record as committed; for a resend, as committed the first time.
	rec := res.Record
	if rec.Kind == 0 {
		s.writeError(w, r, fmt.Errorf("web: duplicate submit: the record at version %d of %s could not be read", res.Version, key))
		return
	}
	body, err = encodeRecord(rec, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if res.Duplicate {
		body = append(body[:len(body)-1], `,"duplicate":true}`...)
	}
	writeRaw(w, http.StatusOK, body)
}

// httpPaceMost is the longest an HTTP submit over its address's op rate
// is held before it is served; one owed more is refused with 429 and
// Retry-After. A submit held for a short while costs its client less
// than a refusal and a retry, and one owed long would only hold the
// connection.
const httpPaceMost = time.Second

// paceSubmit takes the submit's token from its writer's bucket (httpKey),
// waiting for it as a WebSocket's reader would if it is owed within
// httpPaceMost, and reports whether to go on; it answers the request
// when not.
func (s *Server) paceSubmit(w http.ResponseWriter, r *http.Request, id identity) bool {
	key, who := httpKey(r, id)
	wait, ok := s.httpOps.take(key, httpPaceMost)
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		s.writeError(w, r, newError(CodeRateLimited, fmt.Sprintf("more than %g ops per second from %s", s.opts.OpsPerSecond, who)))
		return false
	}
	if wait <= 0 {
		return true
	}
	s.met.rateWaits.WithLabelValues("http_ops").Add(wait.Seconds())
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// httpKey is whose bucket an HTTP submit takes from, and how to name it
// in an error: with auth, the token's subject, so that writers behind
// one proxy address do not share one bucket (and one starve the others);
// without, the client's address, an IPv6 one by its /64, which one host
// is commonly given whole.
func httpKey(r *http.Request, id identity) (key, who string) {
	if sub := id.access.Subject; sub != "" {
		return "sub:" + sub, "this token's subject"
	}
	host := remoteHost(r.RemoteAddr)
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return "addr:" + host, "this address"
}

// serveAPIElse answers what no route of the HTTP API serves with a coded
// JSON error, as the API answers everything else: 405 with the methods
// allowed for a path the API serves, 404 for any other path under /api/.
// (The mux's own answers are plain text.)
func (s *Server) serveAPIElse(w http.ResponseWriter, r *http.Request) {
	allow := apiAllow(r)
	if allow == "" {
		s.writeError(w, r, newError(CodeNotFound, "the HTTP API has no "+r.URL.Path))
		return
	}
	w.Header().Set("Allow", allow)
	s.writeError(w, r, newError(CodeMethodNotAllowed, fmt.Sprintf("%s is not served for %s: use %s", r.Method, r.URL.Path, allow)))
}

// apiAllow returns the methods the HTTP API serves for r's path, as an
// Allow header lists them, or "" for a path it does not serve. It must
// agree with Handler's routes: serveAPIElse answers 405 with it, and a
// CORS preflight (cors.go) grants exactly these methods.
func apiAllow(r *http.Request) string {
	// Split where the mux splits, on the escaped path (a%2Fb is one id),
	// and read each part as the mux reads it, unescaped.
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/api/"), "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	switch {
	case len(parts) == 1 && (parts[0] == "docs" || parts[0] == "auth"),
		len(parts) == 3 && parts[0] == "docs" && parts[1] != "" && parts[2] != "":
		return "GET, HEAD"
	case len(parts) == 4 && parts[0] == "docs" && parts[1] != "" && parts[2] != "" && parts[3] == "ops":
		return "GET, HEAD, POST"
	}
	return ""
}
