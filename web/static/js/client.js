// A small ShareDB protocol 1.2 client for text-unicode documents: one
// WebSocket per Connection, documents with the usual OT client state (one op
// in flight, later ops composed into one pending op), presence, automatic
// reconnect with exponential backoff and jitter, and resend after reconnect
// with the same src and seq so the server applies every op exactly once.
//
// Nothing here touches the DOM: the WebSocket constructor, timers and the
// random source are options, so Node tests drive it with a fake socket.
import * as ot from './ot.js';
import { Text } from './text.js';

/** Emitter is a minimal event emitter: on returns an unsubscribe function. */
export class Emitter {
  constructor() {
    this.listeners = new Map();
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }

  emit(type, ...args) {
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn(...args);
  }
}

/** Connection states, as Connection.state reports them. */
export const State = Object.freeze({
  CONNECTING: 'connecting', // socket opening or handshake under way
  CONNECTED: 'connected', // handshake done: messages flow
  RECONNECTING: 'reconnecting', // lost; a reconnect is scheduled
  OFFLINE: 'offline', // told the network is gone (setOnline(false)); waits for online
  CLOSED: 'closed', // close() was called; never reconnects
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
 * pingInterval (ms between pings while idle; default 15000), pongTimeout
 * (ms without any message after a ping before the socket counts as dead;
 * default 10000), id and seq (a src and next seq to start from, when
 * restoring unsent edits saved by an earlier page).
 *
 * Events: 'state' (state, detail) on every state change, 'error' (error)
 * for server errors no document claims.
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
    this.open();
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
    ws.onclose = () => {
      if (this.socket !== ws) return;
      this.drop(State.RECONNECTING);
    };
    ws.onerror = () => {}; // a close event follows
  }

  // drop forgets the current socket and tells everyone, then (for
  // RECONNECTING) schedules the next attempt.
  drop(next) {
    const ws = this.socket;
    this.socket = null;
    this.stopPing();
    this.clearRetry();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // closing a socket still connecting reports an error
      try {
        ws.close();
      } catch {
        // already closed
      }
    }
    const wasConnected = this.state === State.CONNECTED;
    this.setState(next);
    if (wasConnected) {
      for (const doc of this.docs.values()) doc.onDisconnected();
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

  clearRetry() {
    if (this.retryTimer != null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = 0;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state, {});
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
        this.attempt = 0;
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
}

/** ServerError is an error reply from the server ({code, message}). */
export class ServerError extends Error {
  constructor(e) {
    super(e?.message ?? String(e));
    this.code = e?.code ?? 'ERR_UNKNOWN';
  }
}

/**
 * Doc is one text-unicode document with ShareDB's client OT state.
 *
 * State: version (null until loaded), type (null if not created), text (a
 * Text), inflight (the op sent and not yet acknowledged), pending (ops not
 * sent yet; later local ops compose into the last one).
 *
 * Events:
 *   'load' ()                          the whole text was replaced (first load, or re-fetch)
 *   'op' (op, {source, edits, src})    an op was applied; source 'local' or 'remote',
 *                                      edits are its UTF-16 changes (see Text.apply)
 *   'version' ()                       version or the unacknowledged count changed
 *   'nothingPending' ()                every local op is acknowledged
 *   'error' (err)                      an op was refused (the doc rolled it back)
 *   'del' ()                           the document was deleted
 */
export class Doc extends Emitter {
  constructor(connection, collection, id) {
    super();
    this.connection = connection;
    this.collection = collection;
    this.id = id;
    this.version = null;
    this.type = null;
    this.text = new Text('');
    this.inflight = null;
    this.pending = [];
    this.wantSubscribed = false;
    this.subscribed = false;
    this.localCreate = false; // our create is not acknowledged yet
    this.awaitingCreate = false; // our create lost a race: wait for the winner's
    /** history caches recent committed ops by version, for presence catch-up. */
    this.history = new Map();
    this.historyLimit = 500;
  }

  /** unacknowledged is the number of local edits not yet acknowledged. */
  get unacknowledged() {
    return (this.inflight?.count ?? 0) + this.pending.reduce((n, p) => n + p.count, 0);
  }

  /** hasPending reports whether any local op awaits acknowledgement. */
  get hasPending() {
    return this.inflight != null || this.pending.length > 0;
  }

  /** subscribe asks for the document and its live ops, now and after every reconnect. */
  subscribe() {
    this.wantSubscribed = true;
    if (this.connection.connected) this.sendSubscribe();
  }

  sendSubscribe() {
    this.connection.send({ a: 's', c: this.collection, d: this.id, v: this.version });
  }

  /**
   * create creates the document with text data (locally at once; the
   * server is told when connected).
   */
  create(data = '') {
    if (this.type != null) throw new Error('document already exists');
    if (this.version == null) throw new Error('document not loaded');
    this.type = ot.URI;
    this.text.set(data);
    this.localCreate = true;
    this.pending.push({ create: { type: ot.URI, data }, count: 1 });
    this.emit('load');
    this.changed();
    this.flush();
  }

  /**
   * submitOp applies a local op (code points, against the current text)
   * and queues it for the server. It returns the UTF-16 edits it made.
   */
  submitOp(op, source = 'local') {
    if (this.type == null) throw new Error('document does not exist');
    op = ot.normalize(op);
    if (op.length === 0) return [];
    const edits = this.text.apply(op);
    const last = this.pending[this.pending.length - 1];
    if (last && last.op) {
      last.op = ot.compose(last.op, op);
      last.count++;
    } else {
      this.pending.push({ op, count: 1 });
    }
    this.emit('op', op, { source, edits, src: this.connection.id });
    this.changed();
    this.flush();
    return edits;
  }

  changed() {
    this.emit('version');
  }

  // flush sends the first pending op when nothing is in flight.
  flush() {
    if (!this.connection.connected || this.inflight || this.pending.length === 0) return;
    if (this.version == null || this.awaitingCreate) return;
    const next = this.pending[0];
    if (next.op && next.op.length === 0) {
      this.pending.shift();
      this.flush();
      return;
    }
    this.pending.shift();
    this.inflight = next;
    this.sendInflight();
  }

  sendInflight() {
    const op = this.inflight;
    const msg = { a: 'op', c: this.collection, d: this.id, v: this.version };
    if (op.seq == null) {
      op.seq = this.connection.nextSeq();
      op.src = this.connection.id;
    } else {
      msg.src = op.src; // a resend: the server dedupes by (src, seq)
    }
    msg.seq = op.seq;
    if (op.create) msg.create = op.create;
    else msg.op = ot.stripInvertible(op.op);
    this.connection.send(msg);
  }

  onConnected() {
    if (this.inflight?.superseded) this.inflight = null;
    if (this.wantSubscribed) this.sendSubscribe();
    if (this.inflight) this.sendInflight();
    else this.flush();
  }

  onDisconnected() {
    this.subscribed = false;
  }

  receive(msg) {
    if (msg.a === 'op') {
      if (msg.error) this.onOpError(msg);
      else this.onOp(msg);
      return;
    }
    if (msg.error) {
      // A subscribe or fetch at a version the server cannot serve (ops
      // pruned): take a fresh snapshot if nothing local would be lost.
      this.emit('error', new ServerError(msg.error));
      if (msg.a === 's' && this.version != null && !this.hasPending) {
        this.version = null;
        this.sendSubscribe();
      }
      return;
    }
    if (msg.a === 's' || msg.a === 'f') {
      if (msg.a === 's') this.subscribed = true;
      if (msg.data) this.loadSnapshot(msg.data);
      this.flush();
    }
  }

  loadSnapshot(data) {
    if (this.version != null && this.hasPending) {
      // We asked with a version, so this should not happen; keep our
      // edits and catch up by version instead.
      this.sendSubscribe();
      return;
    }
    this.version = data.v;
    this.type = data.type ?? null;
    this.text.set(this.type == null ? '' : data.data ?? '');
    this.history.clear();
    this.emit('load');
    this.changed();
  }

  isInflight(msg) {
    return this.inflight != null && this.inflight.src != null && msg.src === this.inflight.src && msg.seq === this.inflight.seq;
  }

  onOp(msg) {
    if (this.version == null) return;
    if (this.isInflight(msg)) {
      // The ack, or our own op coming back in a catch-up after reconnect.
      if (msg.v > this.version) return this.catchUp();
      if (msg.v < this.version) return; // cannot happen while inflight; ignore
      const done = this.inflight;
      this.inflight = null;
      if (done.create) {
        this.localCreate = false;
      } else {
        this.remember(this.version, done.op, done.src);
      }
      this.version++;
      this.changed();
      this.flush();
      if (!this.hasPending) this.emit('nothingPending');
      return;
    }
    if (msg.op === undefined && !msg.create && !msg.del) return; // a stale ack
    if (msg.v < this.version) return; // already have it
    if (msg.v > this.version) return this.catchUp();
    if (msg.create) this.remoteCreate(msg);
    else if (msg.del) this.remoteDelete(msg);
    else this.remoteOp(msg);
  }

  // catchUp asks for the ops we missed; they arrive as normal op messages.
  catchUp() {
    this.connection.send({ a: 'f', c: this.collection, d: this.id, v: this.version });
  }

  remember(v, op, src) {
    this.history.set(v, { op, src });
    if (this.history.size > this.historyLimit) this.history.delete(this.history.keys().next().value);
  }

  remoteOp(msg) {
    let op = msg.op;
    try {
      ot.checkOp(op);
    } catch (err) {
      this.emit('error', new Error(`server sent a bad op: ${err.message}`));
      return this.hardReset();
    }
    if (this.type == null) return this.hardReset();
    this.remember(msg.v, op, msg.src);
    // Our ops go left of the server's at the same place, as the server
    // transforms them (own ops "left", server ops "right").
    if (this.inflight?.op) [this.inflight.op, op] = transformX(this.inflight.op, op);
    for (const p of this.pending) if (p.op) [p.op, op] = transformX(p.op, op);
    this.version++;
    const edits = this.text.apply(op);
    this.emit('op', op, { source: 'remote', edits, src: msg.src });
    this.changed();
  }

  remoteCreate(msg) {
    this.remember(msg.v, null, msg.src);
    const data = msg.create.data ?? '';
    if (this.localCreate) {
      // Someone else created it first. Our edits were made on our own empty
      // create: put the winner's text in front of them.
      if (this.inflight?.create) this.inflight.superseded = true;
      this.pending = this.pending.filter((p) => !p.create);
      this.localCreate = false;
      this.awaitingCreate = false;
      this.version++;
      this.type = msg.create.type ?? ot.URI;
      if (data !== '') {
        let op = [data];
        if (this.inflight?.op) [this.inflight.op, op] = transformX(this.inflight.op, op);
        for (const p of this.pending) if (p.op) [p.op, op] = transformX(p.op, op);
        const edits = this.text.apply(op);
        this.emit('op', op, { source: 'remote', edits, src: msg.src });
      }
      this.changed();
      this.flush();
      return;
    }
    if (this.hasPending || this.type != null) return this.hardReset();
    this.version++;
    this.type = msg.create.type ?? ot.URI;
    this.text.set(data);
    this.emit('load');
    this.changed();
  }

  remoteDelete(msg) {
    this.remember(msg.v, null, msg.src);
    this.version++;
    this.type = null;
    this.inflight = null;
    this.pending = [];
    this.text.set('');
    this.emit('del');
    this.emit('load');
    this.changed();
  }

  onOpError(msg) {
    if (!this.inflight || msg.seq !== this.inflight.seq) {
      this.emit('error', new ServerError(msg.error));
      return;
    }
    const failed = this.inflight;
    this.inflight = null;
    const err = new ServerError(msg.error);
    if (failed.create) {
      if (err.code === 'ERR_DOC_ALREADY_CREATED') {
        if (!failed.superseded) {
          // The winner's create has not reached us yet: wait for it.
          this.awaitingCreate = true;
          this.catchUp();
        }
        this.flush();
        return;
      }
      this.emit('error', err);
      return this.hardReset();
    }
    this.emit('error', err);
    if (!ot.isInvertible(failed.op)) return this.hardReset();
    // Roll back: undo the refused op as if the server had sent its inverse.
    let op = ot.invert(failed.op);
    for (const p of this.pending) if (p.op) [p.op, op] = transformX(p.op, op);
    const edits = this.text.apply(op);
    this.emit('op', op, { source: 'rollback', edits, src: null });
    this.changed();
    this.flush();
  }

  // hardReset drops local state and loads the server's snapshot.
  hardReset() {
    this.inflight = null;
    this.pending = [];
    this.localCreate = false;
    this.awaitingCreate = false;
    this.version = null;
    this.history.clear();
    this.changed();
    if (this.connection.connected) this.sendSubscribe();
  }

  /**
   * saveState returns what restoreState needs to bring back unacknowledged
   * edits in a later page (JSON-safe), or null when there are none.
   */
  saveState() {
    if (!this.hasPending || this.version == null || this.localCreate) return null;
    const strip = (p) => ({ op: p.op, count: p.count, src: p.src ?? null, seq: p.seq ?? null });
    return {
      v: this.version,
      type: this.type,
      text: this.text.s,
      inflight: this.inflight?.op ? strip(this.inflight) : null,
      pending: this.pending.filter((p) => p.op).map(strip),
    };
  }

  /** restoreState puts back state from saveState, before the first load. */
  restoreState(s) {
    if (this.version != null || !s) return false;
    this.version = s.v;
    this.type = s.type;
    this.text.set(s.text);
    this.inflight = s.inflight && s.inflight.seq != null ? s.inflight : null;
    this.pending = s.pending.map((p) => ({ op: p.op, count: p.count }));
    if (s.inflight && s.inflight.seq == null) this.pending.unshift({ op: s.inflight.op, count: s.inflight.count });
    this.emit('load');
    this.changed();
    return true;
  }
}

/** transformX transforms a client op and a server op against each other. */
export function transformX(client, server) {
  return [ot.transform(client, server, 'left'), ot.transform(server, client, 'right')];
}

/**
 * PresenceChannel is an untyped presence channel: each client publishes
 * values under presence ids, and sees everyone else's.
 *
 * Events: 'update' (id, value, src) when a remote value changes (value null
 * when it leaves), 'reset' () when every remote value was dropped.
 */
export class PresenceChannel extends Emitter {
  constructor(connection, ch) {
    super();
    this.connection = connection;
    this.ch = ch;
    this.wantSubscribed = false;
    this.subSeq = 1;
    this.local = new Map(); // id -> {value, pv}
    this.remote = new Map(); // id -> {value, pv, src}
  }

  subscribe() {
    this.wantSubscribed = true;
    if (this.connection.connected) this.connection.send({ a: 'ps', ch: this.ch, seq: this.subSeq++ });
  }

  /** submit publishes value (null to leave) under presence id. */
  submit(id, value) {
    let l = this.local.get(id);
    if (!l) {
      l = { value: null, pv: 0, sent: false };
      this.local.set(id, l);
    }
    l.value = value;
    l.pv++;
    l.sent = false;
    this.sendLocal(id);
  }

  sendLocal(id) {
    const l = this.local.get(id);
    if (!l || l.sent) return;
    if (this.connection.send(this.message(id, l))) l.sent = true;
  }

  message(id, l) {
    return { a: 'p', ch: this.ch, id, p: l.value, pv: l.pv };
  }

  onConnected() {
    if (this.wantSubscribed) this.connection.send({ a: 'ps', ch: this.ch, seq: this.subSeq++ });
    for (const [id, l] of this.local) {
      l.sent = false;
      l.pv++;
      this.sendLocal(id);
    }
  }

  onDisconnected() {
    for (const l of this.local.values()) l.sent = false;
    if (this.remote.size) {
      this.remote.clear();
      this.emit('reset');
    }
  }

  receive(msg) {
    if (msg.error) {
      this.emit('error', new ServerError(msg.error));
      return;
    }
    if (msg.a === 'pr') {
      // Someone joined: send ours again.
      for (const [id, l] of this.local) {
        l.sent = false;
        this.sendLocal(id);
      }
      return;
    }
    if (msg.a !== 'p' || this.local.has(msg.id)) return; // our own echo
    const old = this.remote.get(msg.id);
    if (old && msg.pv < old.pv) return;
    this.receiveValue(msg, old);
  }

  receiveValue(msg) {
    if (msg.p == null) {
      if (this.remote.delete(msg.id)) this.emit('update', msg.id, null, msg.src);
      return;
    }
    this.remote.set(msg.id, { value: msg.p, pv: msg.pv, src: msg.src });
    this.emit('update', msg.id, msg.p, msg.src);
  }
}

/**
 * DocPresence is a document's text presence: values are {index, length}
 * in code points, kept in step with the document. Like ShareDB's, a local
 * value is sent only when the document has nothing pending, so the server
 * and every client read it at the same version; remote values are moved
 * over the ops the server and we applied since.
 */
export class DocPresence extends PresenceChannel {
  constructor(connection, doc) {
    super(connection, `${doc.collection}.${doc.id}`);
    this.doc = doc;
    this.future = []; // remote messages for versions we do not have yet
    doc.on('op', (op, info) => this.onDocOp(op, info));
    doc.on('load', () => this.onDocLoad());
    doc.on('nothingPending', () => {
      for (const id of this.local.keys()) this.sendLocal(id);
    });
    doc.on('version', () => this.drainFuture());
  }

  message(id, l) {
    return {
      a: 'p',
      ch: this.ch,
      id,
      p: l.value,
      pv: l.pv,
      c: this.doc.collection,
      d: this.doc.id,
      v: this.doc.version,
      t: this.doc.type ?? ot.URI,
    };
  }

  sendLocal(id) {
    if (this.doc.hasPending || this.doc.version == null || this.doc.type == null) return;
    super.sendLocal(id);
  }

  onDocOp(op, { source, src }) {
    const local = source !== 'remote';
    for (const l of this.local.values()) {
      if (l.value) l.value = ot.transformPresence(l.value, op, local);
    }
    for (const [id, r] of this.remote) {
      const moved = ot.transformPresence(r.value, op, !local && src != null && src === r.src);
      if (moved.index !== r.value.index || moved.length !== r.value.length) {
        r.value = moved;
        this.emit('update', id, moved, r.src);
      }
    }
  }

  onDocLoad() {
    for (const l of this.local.values()) l.value = null;
    if (this.remote.size) {
      this.remote.clear();
      this.emit('reset');
    }
  }

  receiveValue(msg) {
    if (msg.p == null) return super.receiveValue(msg);
    if (this.doc.version == null || msg.v > this.doc.version) {
      this.future.push(msg);
      return;
    }
    let p = msg.p;
    // Ops the server committed after the value's version...
    for (let v = msg.v; v < this.doc.version; v++) {
      const h = this.doc.history.get(v);
      if (!h) return; // too old to catch up: it will be sent again
      if (h.op == null) return; // created or deleted since
      p = ot.transformPresence(p, h.op, h.src === msg.src);
    }
    // ...and our own ops the server has not committed yet.
    if (this.doc.inflight?.op) p = ot.transformPresence(p, this.doc.inflight.op, false);
    for (const q of this.doc.pending) if (q.op) p = ot.transformPresence(p, q.op, false);
    super.receiveValue({ ...msg, p });
  }

  drainFuture() {
    if (this.future.length === 0 || this.doc.version == null) return;
    const ready = this.future.filter((m) => m.v <= this.doc.version);
    if (ready.length === 0) return;
    this.future = this.future.filter((m) => m.v > this.doc.version);
    for (const m of ready) {
      const old = this.remote.get(m.id);
      if (!old || m.pv >= old.pv) this.receiveValue(m);
    }
  }
}
