// A small ShareDB protocol 1.2 client for text-unicode documents, in three
// modules: this one (Connection: one WebSocket that keeps itself connected,
// with reconnect backoff and jitter, pings and the handshake that issues or
// reclaims the src), document.js (Doc: the OT client state of one document
// and its exactly-once resends) and presence.js (presence channels).
//
// Nothing here touches the DOM: the WebSocket constructor, timers and the
// random source are options, so Node tests drive it with a fake socket.
import { Emitter, ServerError } from './events.js';
import { Doc } from './document.js';
import { PresenceChannel, DocPresence } from './presence.js';

/** Connection states, as Connection.state reports them. */
export const State = Object.freeze({
  CONNECTING: 'connecting', // socket opening or handshake under way
  CONNECTED: 'connected', // handshake done: messages flow
  RECONNECTING: 'reconnecting', // lost; a reconnect is scheduled
  OFFLINE: 'offline', // told the network is gone (setOnline(false)); waits for online
  CLOSED: 'closed', // close() was called; never reconnects
});

/**
 * Close codes the server ends a socket with that the client acts on (see
 * web/conn.go).
 */
export const CloseCode = Object.freeze({
  // The client did not read fast enough: reconnect more slowly and catch
  // up without asking the server for every op missed (Doc.onConnected).
  SLOW_CONSUMER: 1013,
  // A newer connection claimed this connection's src: take a fresh one.
  SRC_RECLAIMED: 4000,
});

const OPEN = 1; // WebSocket.OPEN

const defaultTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
  now: () => Date.now(),
};

/** randomId returns a random hex string of 2*bytes characters. */
export function randomId(bytes = 8) {
  const a = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Connection is one ShareDB connection that keeps itself connected.
 *
 * Options (all optional): WebSocket (constructor; default the global one),
 * timers ({setTimeout, clearTimeout, now}), random (() => [0,1)),
 * minDelay / maxDelay (reconnect backoff bounds, ms; default 250 / 10000),
 * handshakeTimeout (ms from opening a socket to the server's hs before it
 * is given up and retried; default 10000),
 * pingInterval (ms between pings while idle; default 15000), pongTimeout
 * (ms without any message after a ping before the socket counts as dead;
 * default 10000), id and seq (a src and next seq to start from, when
 * restoring unsent edits saved by an earlier page), fetch (the fetch
 * function for the HTTP op log; default the global one) and httpBase (the
 * server's HTTP origin; default the WebSocket URL's), opsPage (ops per
 * request when a document catches up over HTTP; default 1000).
 *
 * The src: the server issues one at the first handshake and the
 * connection sends it back in every later one, so that a resent op keeps
 * its (src, seq) and is not applied twice. When the server closes the
 * socket with 4000 another connection has claimed that src (a second
 * client restored the same saved state, or anything else that sent it in
 * its handshake): claiming it back would close the other one in turn, and
 * the two would evict each other forever, so the connection asks for a
 * fresh src instead and the documents settle what was in flight (see
 * Doc.resume). seq counts on across srcs, so no (src, seq) is ever
 * reused.
 *
 * Backoff: each failed attempt doubles the wait (with jitter) up to
 * maxDelay. Only a connection that has stayed up for maxDelay starts it
 * over (or the network coming back), not a handshake: a server that
 * answers the handshake and then closes at once (1011, 1012, 1013) is met
 * with a growing wait, not reconnected to at full speed.
 *
 * Events: 'state' (state, detail) on every state change (detail.code is
 * the close code when a socket closed), 'error' (error) for server errors
 * no document claims.
 */
export class Connection extends Emitter {
  constructor(url, opts = {}) {
    super();
    this.url = url;
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    this.timers = opts.timers ?? defaultTimers;
    this.random = opts.random ?? Math.random;
    this.minDelay = opts.minDelay ?? 250;
    this.maxDelay = opts.maxDelay ?? 10000;
    this.pingInterval = opts.pingInterval ?? 15000;
    this.pongTimeout = opts.pongTimeout ?? 10000;
    /** handshakeTimeout bounds the wait from opening a socket to the server's hs. */
    this.handshakeTimeout = opts.handshakeTimeout ?? 10000;
    this.hsTimer = null;
    this.fetch = opts.fetch ?? ((...args) => globalThis.fetch(...args));
    this.httpBase = opts.httpBase ?? httpOrigin(url);
    /** opsPage is how many ops one request of an HTTP catch-up asks for. */
    this.opsPage = opts.opsPage ?? 1000;
    /** id is the src the server gave at handshake (null before the first). */
    this.id = opts.id ?? null;
    this.seq = opts.seq ?? 1;
    this.state = State.CONNECTING;
    this.socket = null;
    this.docs = new Map();
    this.channels = new Map();
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastReceived = 0;
    this.pingSent = 0;
    /** retryAt is when the scheduled reconnect fires (timers.now() ms), or 0. */
    this.retryAt = 0;
    /** lastClose is the close code of the last socket the server closed, or null. */
    this.lastClose = null;
    this.connectedAt = 0;
    this.requests = new Map(); // request id -> the Doc an "nf" answer goes to
    this.nextRequest = 1;
    this.open();
  }

  /**
   * request sends msg (an "nf") with a fresh request id, routing its
   * answer to doc.receive. Answers lost with the socket are not waited
   * for: the document asks again when the connection is back.
   */
  request(doc, msg) {
    const id = this.nextRequest++;
    if (this.send({ ...msg, id })) this.requests.set(id, doc);
  }

  /** nextSeq returns the next op seq (one counter for all documents). */
  nextSeq() {
    return this.seq++;
  }

  /** get returns the Doc for collection/id, creating it once. */
  get(collection, id) {
    const key = `${collection}\u0000${id}`;
    let doc = this.docs.get(key);
    if (!doc) {
      doc = new Doc(this, collection, id);
      this.docs.set(key, doc);
    }
    return doc;
  }

  /** channel returns the untyped presence channel ch, creating it once. */
  channel(ch) {
    let c = this.channels.get(ch);
    if (!c) {
      c = new PresenceChannel(this, ch);
      this.channels.set(ch, c);
    }
    return c;
  }

  /**
   * docPresence returns the text presence of doc (channel
   * "collection.id"), creating it once.
   */
  docPresence(doc) {
    const ch = `${doc.collection}.${doc.id}`;
    let c = this.channels.get(ch);
    if (!c) {
      c = new DocPresence(this, doc);
      this.channels.set(ch, c);
    }
    return c;
  }

  get connected() {
    return this.state === State.CONNECTED;
  }

  /**
   * send sends msg if the handshake is done and reports whether it did.
   * Callers keep what they could not send and send it on 'connected'.
   */
  send(msg) {
    if (!this.connected || !this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(msg));
    return true;
  }

  /**
   * setOnline tells the connection whether the network is there (the
   * browser's online/offline events). Offline closes the socket and stops
   * retrying; online reconnects at once.
   */
  setOnline(online) {
    if (this.state === State.CLOSED) return;
    if (!online) {
      if (this.state === State.OFFLINE) return;
      this.drop(State.OFFLINE);
      return;
    }
    if (this.state === State.OFFLINE || this.state === State.RECONNECTING) {
      this.attempt = 0;
      this.clearRetry();
      this.open();
    }
  }

  /** reconnectNow skips the wait of a scheduled reconnect. */
  reconnectNow() {
    if (this.state === State.RECONNECTING) {
      this.clearRetry();
      this.open();
    }
  }

  /** close closes the socket for good. */
  close() {
    this.drop(State.CLOSED);
    for (const ch of this.channels.values()) ch.stopRefresh();
  }

  open() {
    this.setState(State.CONNECTING);
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (err) {
      this.emit('error', err);
      this.scheduleRetry();
      return;
    }
    this.socket = ws;
    // A socket that never opens, or whose hs is never answered (a
    // half-open TCP connection, a proxy that hangs), is given up and
    // retried: pings start only once connected.
    this.hsTimer = this.timers.setTimeout(() => {
      this.hsTimer = null;
      if (this.socket === ws && this.state === State.CONNECTING) this.drop(State.RECONNECTING);
    }, this.handshakeTimeout);
    ws.onopen = () => {
      if (this.socket !== ws) return;
      this.lastReceived = this.timers.now();
      ws.send(JSON.stringify({ a: 'hs', id: this.id, protocol: 1, protocolMinor: 2 }));
    };
    ws.onmessage = (ev) => {
      if (this.socket !== ws) return;
      this.lastReceived = this.timers.now();
      let msg;
      try {
        msg = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data));
      } catch (err) {
        this.emit('error', new Error(`bad message from server: ${err.message}`));
        return;
      }
      this.receive(msg);
    };
    ws.onclose = (ev) => {
      if (this.socket !== ws) return;
      this.drop(State.RECONNECTING, ev?.code ?? null);
    };
    ws.onerror = () => {}; // a close event follows
  }

  // drop forgets the current socket and tells everyone, then (for
  // RECONNECTING) schedules the next attempt. code is the close code the
  // server sent, if it closed the socket.
  drop(next, code = null) {
    const ws = this.socket;
    this.socket = null;
    this.stopPing();
    this.clearRetry();
    this.clearHandshakeTimer();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // closing a socket still connecting reports an error
      try {
        ws.close();
      } catch {
        // already closed
      }
    }
    this.lastClose = code;
    if (code === CloseCode.SRC_RECLAIMED) this.id = null; // the next handshake takes a fresh src
    this.requests.clear();
    const wasConnected = this.state === State.CONNECTED;
    this.setState(next, code == null ? {} : { code });
    if (wasConnected) {
      for (const doc of this.docs.values()) doc.onDisconnected(code === CloseCode.SLOW_CONSUMER);
      for (const ch of this.channels.values()) ch.onDisconnected();
    }
    if (next === State.RECONNECTING) this.scheduleRetry();
  }

  scheduleRetry() {
    // Exponential backoff with "equal jitter": half fixed, half random, so
    // a server restart is not met by every client at the same instant.
    const cap = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
    const delay = Math.round(cap / 2 + this.random() * (cap / 2));
    this.attempt++;
    if (this.state !== State.RECONNECTING) this.setState(State.RECONNECTING);
    this.retryAt = this.timers.now() + delay;
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.retryAt = 0;
      this.open();
    }, delay);
    this.emit('state', this.state, { retryAt: this.retryAt });
  }

  clearHandshakeTimer() {
    if (this.hsTimer != null) this.timers.clearTimeout(this.hsTimer);
    this.hsTimer = null;
  }

  clearRetry() {
    if (this.retryTimer != null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
  }

  setState(state, detail = {}) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state, detail);
  }

  receive(msg) {
    switch (msg.a) {
      case 'hs':
        if (this.state !== State.CONNECTING) return; // extra replies are ignored
        if (msg.error) {
          this.emit('error', new ServerError(msg.error));
          return;
        }
        if (msg.protocol !== 1) {
          this.emit('error', new Error(`server speaks protocol ${msg.protocol}, want 1`));
          this.drop(State.CLOSED);
          return;
        }
        this.id = msg.id;
        this.clearHandshakeTimer();
        this.connectedAt = this.timers.now();
        this.setState(State.CONNECTED);
        this.startPing();
        for (const doc of this.docs.values()) doc.onConnected();
        for (const ch of this.channels.values()) ch.onConnected();
        return;
      case 'init':
        return; // legacy greeting: we send hs ourselves
      case 'pp':
        return;
      case 's':
      case 'f':
      case 'u':
      case 'op': {
        const doc = this.docs.get(`${msg.c}\u0000${msg.d}`);
        if (doc) doc.receive(msg);
        else if (msg.error) this.emit('error', new ServerError(msg.error));
        return;
      }
      case 'nf': {
        const doc = this.requests.get(msg.id);
        this.requests.delete(msg.id);
        if (doc) doc.receive(msg);
        else if (msg.error) this.emit('error', new ServerError(msg.error));
        return;
      }
      case 'p':
      case 'ps':
      case 'pu':
      case 'pr': {
        const ch = this.channels.get(msg.ch);
        if (ch) ch.receive(msg);
        else if (msg.error) this.emit('error', new ServerError(msg.error));
        return;
      }
      default:
        if (msg.error) this.emit('error', new ServerError(msg.error));
    }
  }

  // startPing keeps an idle connection checked: after pingInterval with
  // nothing received it sends a ping, and if nothing at all arrives within
  // pongTimeout after that, the socket counts as dead (a browser can take
  // minutes to notice a silently dropped connection) and is replaced.
  startPing() {
    this.stopPing();
    this.pingSent = 0;
    const every = Math.max(1, Math.min(this.pingInterval, this.pongTimeout) / 2);
    const tick = () => {
      const now = this.timers.now();
      if (this.attempt > 0 && now - this.connectedAt >= this.maxDelay) this.attempt = 0; // up long enough
      const waiting = this.pingSent > 0 && this.lastReceived < this.pingSent;
      if (waiting && now - this.pingSent >= this.pongTimeout) {
        this.drop(State.RECONNECTING);
        return;
      }
      if (!waiting && now - this.lastReceived >= this.pingInterval) {
        this.pingSent = now;
        this.send({ a: 'pp' });
      }
      this.pingTimer = this.timers.setTimeout(tick, every);
    };
    this.pingTimer = this.timers.setTimeout(tick, every);
  }

  stopPing() {
    if (this.pingTimer != null) this.timers.clearTimeout(this.pingTimer);
    this.pingTimer = null;
  }

  /**
   * fetchOps reads the committed ops [from, to) of a document from the
   * server's HTTP op log (GET /api/docs/{c}/{id}/ops), as op records {v,
   * src, seq, op | create | del}. Plain HTTP has no send queue to
   * overflow, so a document far behind catches up this way (Doc).
   */
  async fetchOps(collection, id, from, to) {
    const url = `${this.httpBase}/api/docs/${encodeURIComponent(collection)}/${encodeURIComponent(id)}/ops?from=${from}&to=${to}`;
    const res = await this.fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    const body = await res.text();
    if (!res.ok) {
      let err;
      try {
        err = JSON.parse(body).error;
      } catch {
        err = { message: `GET ops answered ${res.status}` };
      }
      throw new ServerError(err);
    }
    const recs = [];
    for (const line of body.split('\n')) {
      if (line.trim() === '') continue;
      const rec = JSON.parse(line);
      if (rec.error) throw new ServerError(rec.error); // the stream broke off
      recs.push(rec);
    }
    return recs;
  }
}

// httpOrigin is the HTTP origin of a WebSocket URL (ws → http, wss → https).
function httpOrigin(wsURL) {
  const u = new URL(wsURL);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  return u.origin;
}
