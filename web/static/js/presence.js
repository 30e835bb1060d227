// Presence: untyped channels (PresenceChannel) and a document's text
// presence (DocPresence), whose carets move with the document's ops.
import * as ot from './ot.js';
import { Emitter, ServerError } from './events.js';

/**
 * REFRESH_MS is how often a value that is still up is sent again. The
 * server drops a presence that has not been updated for 10 minutes
 * (collab.Options.PresenceTTL), so a client cannot pin it by posting once;
 * a page whose user sits still keeps its caret visible by re-sending it
 * well within that.
 */
export const REFRESH_MS = 4 * 60 * 1000;

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
    if (value !== null) this.scheduleRefresh();
  }

  /**
   * scheduleRefresh re-sends every local value still up after REFRESH_MS,
   * and again after that while any is up.
   */
  scheduleRefresh() {
    if (this.refreshTimer != null || this.connection.state === 'closed') return;
    const timers = this.connection.timers;
    this.refreshTimer = timers.setTimeout(() => {
      this.refreshTimer = null;
      let up = false;
      for (const [id, l] of this.local) {
        if (l.value === null) continue;
        up = true;
        l.pv++;
        l.sent = false;
        this.sendLocal(id);
      }
      if (up) this.scheduleRefresh();
    }, REFRESH_MS);
  }

  /** stopRefresh cancels the re-send timer (the connection closed for good). */
  stopRefresh() {
    if (this.refreshTimer == null) return;
    this.connection.timers.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
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

  onDisconnected() {
    // Values held for versions we did not have are as stale as the shown
    // ones: everyone sends theirs again to the next connection.
    this.future = [];
    super.onDisconnected();
  }

  onDocLoad() {
    for (const l of this.local.values()) l.value = null;
    if (this.remote.size) {
      this.remote.clear();
      this.emit('reset');
    }
  }

  receiveValue(msg) {
    // A later message for an id replaces any of its values still held for
    // a version we do not have: a leave (p null) must not be followed by
    // the caret it cleared.
    if (this.future.length) this.future = this.future.filter((m) => m.id !== msg.id || m.pv > msg.pv);
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
