// Doc: one text-unicode document with ShareDB's client OT state (one op in
// flight, later ops composed into one pending op, remote ops transformed
// over ours) and the exactly-once rules for resending after a reconnect.
import * as ot from './ot.js';
import { Text } from './text.js';
import { Emitter, ServerError } from './events.js';
import { catchUpOverHTTP, placeRestored, requestBase, restoreState, saveState } from './catchup.js';
import { finishReplaced, HISTORY_REPLACED, startReplaced } from './replaced.js';

/**
 * Doc is one text-unicode document with ShareDB's client OT state.
 *
 * State: version (null until loaded), type (null if not created), text (a
 * Text), inflight (the op sent and not yet acknowledged), pending (ops not
 * sent yet; later local ops compose into the last one).
 *
 * Catching up: after a reconnect the document subscribes at its version and
 * the server sends the ops it missed. When the server closed the socket as
 * a slow consumer (1013) that stream is what overflowed, so the next
 * connection does not ask for it: with nothing pending the document takes
 * a fresh snapshot; with edits pending (which need every op in between to
 * be transformed) it reads the ops from the HTTP op log, a page at a time,
 * and then subscribes near the head. A server that answers a subscribe at
 * a version with its snapshot gets the same treatment.
 *
 * Events:
 *   'load' ()                          the whole text was replaced (first load, or re-fetch)
 *   'op' (op, {source, edits, src})    an op was applied; source 'local' or 'remote',
 *                                      edits are its UTF-16 changes (see Text.apply)
 *   'version' ()                       version or the unacknowledged count changed
 *   'nothingPending' ()                every local op is acknowledged
 *   'error' (err)                      an op was refused (the doc rolled it back)
 *   'del' ()                           the document was deleted
 *   'sending' (op)                     a new op got its (src, seq) and is about to leave;
 *                                      a page that saves unsent edits saves them now
 *   'lost' (err)                       restored edits could not be placed (the server
 *                                      could not send the document at their version)
 *   'replaced' ({kept, lost})          the server said our copy came from a history the
 *                                      cluster replaced (ERR_HISTORY_REPLACED, after a close
 *                                      4002): the text was fetched anew and `kept` unacknowledged
 *                                      edits were put back on it, `lost` could not be (replaced.js)
 */
// GAP_FETCH_WAIT_MS is how long a fetch for a gap in the versions holds
// back the next one (Doc.fetchGap): the server answers every fetch, so this
// only bounds the wait should an answer be lost.
export const GAP_FETCH_WAIT_MS = 10_000;

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
    this.behind = false; // the last socket closed with 1013: do not catch up by version
    this.refreshing = false; // waiting for a fresh snapshot: hold local ops
    this.catchingUp = false; // reading the HTTP op log
    this.catchUps = 0; // counts HTTP catch-ups, so a superseded one stops
    this.confirming = false; // waiting for a catch-up to settle an op sent under a lost src
    // A fetch for the ops after a gap is out: every op past the gap
    // would ask again, and a far-behind catch-up has thousands of them.
    this.fetchingGap = false;
    this.gapFetchAt = 0; // when it was sent (timers.now() ms)
    this.gapFetches = 0; // fetches sent for gaps in the versions, for tests and debugging
    this.restoring = null; // saved state waiting for the document at its version
    this.replacing = null; // our history was replaced: a fresh snapshot is on its way (replaced.js)
    /** history caches recent committed ops by version, for presence catch-up. */
    this.history = new Map();
    this.historyLimit = 500;
  }

  /** unacknowledged is the number of local edits not yet acknowledged. */
  get unacknowledged() {
    const ops = this.restoring ? [this.restoring.inflight, ...this.restoring.pending] : [this.inflight, ...this.pending];
    return ops.reduce((n, p) => n + (p?.count ?? 0), 0);
  }

  /** hasPending reports whether any local op awaits acknowledgement. */
  get hasPending() {
    return this.inflight != null || this.pending.length > 0 || this.restoring != null;
  }

  /** subscribe asks for the document and its live ops, now and after every reconnect. */
  subscribe() {
    this.wantSubscribed = true;
    if (this.connection.connected && !this.restoring) this.sendSubscribe();
  }

  // sendSubscribe subscribes at version v (default: ours; null asks for
  // the snapshot).
  sendSubscribe(v = this.version) {
    this.connection.send({ a: 's', c: this.collection, d: this.id, v });
  }

  // retrySubscribe subscribes again after a refused subscribe, waiting 1 s
  // and doubling up to 30 s while refusals go on; the wait starts over
  // once a subscribe succeeds.
  retrySubscribe() {
    const t = this.connection.timers;
    if (this.subRetryTimer != null) return;
    this.subRetryWait = Math.min(30000, (this.subRetryWait ?? 500) * 2);
    this.subRetryTimer = t.setTimeout(() => {
      this.subRetryTimer = null;
      if (this.connection.connected && this.wantSubscribed && !this.subscribed && this.version != null) this.sendSubscribe();
    }, this.subRetryWait);
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
    if (this.version == null || this.awaitingCreate || this.refreshing || this.catchingUp) return;
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
      this.emit('sending', op);
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
    if (this.catchingUp) return; // resumes when the op log is read
    if (this.restoring) {
      requestBase(this); // resumes when it is placed
      return;
    }
    if (this.behind && this.version != null) {
      this.behind = false;
      if (this.hasPending) {
        catchUpOverHTTP(this);
        return;
      }
      if (this.wantSubscribed) {
        this.refreshing = true;
        this.sendSubscribe(null);
        return;
      }
    }
    this.resume();
  }

  /**
   * resume subscribes at our version (the server sends the ops we missed,
   * ours included) and resends the op in flight with its src and seq, so
   * the server applies it at most once.
   *
   * An op in flight under an earlier src (the server gave it to another
   * connection: close 4000) cannot be resent, since a submit must carry
   * its connection's src. It waits for the catch-up: the old socket had
   * delivered everything it sent before the server finished closing it,
   * and the server handles a document's requests in order, so the
   * catch-up holds the op if it was ever committed (then it counts as
   * acknowledged); if not, it never will be, and it goes again as a new op
   * (settleLostSrc).
   */
  resume() {
    const lost = this.lostSrc();
    if (this.wantSubscribed) this.sendSubscribe();
    else if (lost) this.catchUp();
    if (lost) this.confirming = true;
    else if (this.inflight) this.sendInflight();
    else this.flush();
  }

  // lostSrc reports whether the op in flight went out under a src this
  // connection no longer has.
  lostSrc() {
    return this.inflight != null && this.inflight.seq != null && this.inflight.src !== this.connection.id;
  }

  // settleLostSrc runs when the catch-up that resume asked for is complete.
  settleLostSrc() {
    this.confirming = false;
    if (!this.lostSrc()) return; // it was in the catch-up: acknowledged
    this.inflight.seq = null;
    this.inflight.src = null;
    this.sendInflight();
  }

  // onDisconnected: slow says the server closed the socket because we
  // did not read fast enough (1013).
  onDisconnected(slow = false) {
    if (this.subRetryTimer != null) this.connection.timers.clearTimeout(this.subRetryTimer);
    this.subRetryTimer = null; // the next connection subscribes anyway
    this.subscribed = false;
    this.confirming = false;
    this.fetchingGap = false;
    // A fresh snapshot asked for and lost with the socket is asked for
    // again on the next one; refreshing held local ops until it came, and
    // left set it held them for good.
    if (slow || this.refreshing) this.behind = true;
    this.refreshing = false;
  }

  receive(msg) {
    if (msg.a === 'nf') {
      if (this.restoring) placeRestored(this, msg);
      return;
    }
    // The server answers a document's requests in order: an answer to a
    // fetch comes after the ops of every fetch sent before it.
    if (msg.a === 'f') this.fetchingGap = false;
    if (msg.error?.code === HISTORY_REPLACED) return startReplaced(this);
    if (this.catchingUp) return; // resume subscribes again once the op log is read
    if (msg.a === 'op') {
      if (msg.error) this.onOpError(msg);
      else this.onOp(msg);
      return;
    }
    if (msg.error) {
      // A subscribe or fetch at a version the server cannot serve (ops
      // pruned): take a fresh snapshot if nothing local would be lost.
      const err = new ServerError(msg.error);
      err.action = msg.a; // what was refused: 's', 'f'
      this.emit('error', err);
      if (msg.a === 's' && this.version != null && !this.hasPending) {
        this.version = null;
        this.sendSubscribe();
      } else if (msg.a === 's' && this.wantSubscribed) {
        // With edits pending, try again later, backing off, rather than
        // stay unsubscribed (blind to everyone's edits) for as long as
        // the socket lives.
        this.retrySubscribe();
      }
      return;
    }
    if (msg.a === 's' || msg.a === 'f') {
      if (msg.a === 's') {
        this.subscribed = true;
        this.subRetryWait = null;
      }
      if (msg.data) this.loadSnapshot(msg.data);
      if (this.catchingUp) return;
      if (this.confirming && msg.a === (this.wantSubscribed ? 's' : 'f')) this.settleLostSrc();
      this.flush();
    }
  }

  loadSnapshot(data) {
    if (this.replacing) return finishReplaced(this, data);
    this.refreshing = false;
    if (this.version != null && this.hasPending) {
      // Our edits were made at our version and need every op since to be
      // transformed; a snapshot does not say what they were. (A server
      // answers a subscribe at a version with its snapshot when the
      // client is too far behind; we also get here when edits were made
      // while a fresh snapshot was on its way.) Read them over HTTP.
      if (data.v > this.version) catchUpOverHTTP(this);
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
      if (msg.v > this.version) return this.fetchGap();
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
    if (msg.v > this.version) return this.fetchGap();
    if (msg.create) this.remoteCreate(msg);
    else if (msg.del) this.remoteDelete(msg);
    else this.remoteOp(msg);
  }

  // catchUp asks for the ops we missed; they arrive as normal op messages.
  catchUp() {
    return this.connection.send({ a: 'f', c: this.collection, d: this.id, v: this.version });
  }

  // fetchGap is catchUp for a gap in the versions, once per gap: the ops
  // that follow the gap until the fetch is answered are dropped here and
  // come again with it. A fetch unanswered for GAP_FETCH_WAIT_MS no longer
  // holds the next back.
  fetchGap() {
    const now = this.connection.timers.now();
    if (this.fetchingGap && now - this.gapFetchAt < GAP_FETCH_WAIT_MS) return;
    if (!this.catchUp()) return; // not connected: the resubscribe catches up
    this.fetchingGap = true;
    this.gapFetchAt = now;
    this.gapFetches++;
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
    // refused: an edit of ours was refused and is undone; text is what it
    // (and, for a create, what was typed after it, which goes with it)
    // inserted, for the user to keep.
    err.refused = true;
    const inserted = (op) => (op ?? []).filter((c) => typeof c === 'string').join('');
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
      err.text = (failed.create.data ?? '') + this.pending.map((p) => inserted(p.op)).join('');
      this.emit('error', err);
      return this.hardReset();
    }
    // An edit put back after a replaced history (replaced.js) whose seq
    // was committed already: the old history had it, it was offered again
    // and it is in the text we fetched. Drop our copy of it quietly.
    const had = failed.replayed && (err.code === 'ERR_SEQ_REUSED' || err.code === 'ERR_STALE_SEQ');
    err.op = failed.op; // what was refused, and is about to be undone
    err.text = inserted(failed.op);
    if (!had) this.emit('error', err);
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
    this.catchUps++; // stops an HTTP catch-up
    this.catchingUp = this.confirming = this.refreshing = false;
    this.restoring = null;
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
    return saveState(this);
  }

  /**
   * restoreState takes back state from saveState, before the first load
   * (see catchup.js); it reports whether it did.
   */
  restoreState(s) {
    return restoreState(this, s);
  }
}

/** transformX transforms a client op and a server op against each other. */
export function transformX(client, server) {
  return [ot.transform(client, server, 'left'), ot.transform(server, client, 'right')];
}
