// How a document gets back in step other than through the live stream of
// ops: reading the HTTP op log after the server closed it as a slow
// consumer (1013), and placing edits an earlier page saved on the document
// as it was when they were made. The functions work on a Doc (document.js)
// and use its OT state machine.
import { ServerError } from './events.js';

// Errors an "nf" may get that say nothing about the version asked for.
const transientErrors = new Set(['ERR_UNKNOWN_ERROR', 'ERR_RATE_LIMITED', 'ERR_SERVER_CLOSING']);
const restoreRetryDelay = 2000; // ms

/**
 * catchUpOverHTTP reads the ops since our version from the server's HTTP
 * op log and applies them as remote ops (our own op in flight, if among
 * them, counts as acknowledged), then resumes near the head. Nothing is
 * sent for this document meanwhile.
 */
export async function catchUpOverHTTP(doc) {
  const run = ++doc.catchUps;
  doc.catchingUp = true;
  let failed = null;
  try {
    for (;;) {
      const from = doc.version;
      const page = doc.connection.opsPage;
      const recs = await doc.connection.fetchOps(doc.collection, doc.id, from, from + page);
      if (run !== doc.catchUps) return;
      for (const r of recs) {
        if (doc.version == null) break; // reset: a fresh snapshot is on its way
        doc.onOp({ ...r, a: 'op', c: doc.collection, d: doc.id });
      }
      if (recs.length < page || doc.version == null || doc.version === from) break;
    }
  } catch (err) {
    failed = err;
  }
  if (run !== doc.catchUps) return;
  doc.catchingUp = false;
  if (!failed) doc.behind = false; // a 1013 meanwhile was about the flood we avoided
  // Without the op log, catch up by version after all: the backoff
  // keeps a server that drops us again from being hammered.
  if (failed) doc.connection.emit('error', failed);
  if (doc.version != null && doc.connection.connected) doc.resume();
}

/**
 * saveState returns what restoreState needs to bring back doc's
 * unacknowledged edits in a later page (JSON-safe), or null when there are
 * none.
 */
export function saveState(doc) {
  if (doc.restoring) return doc.restoring; // not placed yet: kept as it came
  if (!doc.hasPending || doc.version == null || doc.localCreate) return null;
  const strip = (p) => ({ op: p.op, count: p.count, src: p.src ?? null, seq: p.seq ?? null });
  // No text: it can be a megabyte, and a page saves before every send.
  // restoreState asks the server for the text at v instead.
  return {
    v: doc.version,
    type: doc.type,
    inflight: doc.inflight?.op ? strip(doc.inflight) : null,
    pending: doc.pending.filter((p) => p.op).map(strip),
  };
}

/**
 * restoreState takes back state from saveState into doc, before its first
 * load. The edits are placed once the server has sent the document as it
 * was at the saved version (an "nf" request); a state from pages that
 * saved the text with it is placed at once.
 */
export function restoreState(doc, s) {
  if (doc.version != null || doc.restoring || !s) return false;
  if (typeof s.text !== 'string') {
    doc.restoring = { v: s.v, type: s.type, inflight: s.inflight ?? null, pending: s.pending ?? [] };
    doc.changed();
    if (doc.connection.connected) requestBase(doc);
    return true;
  }
  doc.version = s.v;
  doc.type = s.type;
  doc.text.set(s.text);
  takeOps(doc, s);
  doc.emit('load');
  doc.changed();
  return true;
}

// takeOps sets doc's inflight and pending from saved ops: an op saved in
// flight keeps its src and seq (it goes as a resend); one that never got a
// seq goes first among the pending.
function takeOps(doc, s) {
  doc.inflight = s.inflight && s.inflight.seq != null ? { ...s.inflight } : null;
  doc.pending = s.pending.map((p) => ({ op: p.op, count: p.count }));
  if (s.inflight && s.inflight.seq == null) doc.pending.unshift({ op: s.inflight.op, count: s.inflight.count });
}

/** requestBase asks for the document at the restored state's version. */
export function requestBase(doc) {
  doc.connection.request(doc, { a: 'nf', c: doc.collection, d: doc.id, v: doc.restoring.v });
}

/**
 * placeRestored puts the restored edits on the document as it was at their
 * version (msg, the answer to requestBase), then catches up.
 */
export function placeRestored(doc, msg) {
  const r = doc.restoring;
  if (msg.error && transientErrors.has(msg.error.code)) {
    // Not an answer about the version: ask again in a while.
    doc.connection.timers.setTimeout(() => {
      if (doc.restoring === r && doc.connection.connected) requestBase(doc);
    }, restoreRetryDelay);
    return;
  }
  doc.restoring = null;
  try {
    if (msg.error) throw new ServerError(msg.error);
    if (msg.type == null || msg.v !== r.v) throw new Error(`the document at v${r.v} is not there`);
    doc.version = msg.v;
    doc.type = msg.type;
    doc.text.set(msg.data ?? '');
    takeOps(doc, r);
    if (doc.inflight) doc.text.apply(doc.inflight.op);
    for (const p of doc.pending) doc.text.apply(p.op);
  } catch (err) {
    // The server cannot say what the edits were made on: they cannot be
    // placed. Load the document as it is.
    doc.emit('lost', err);
    doc.hardReset();
    return;
  }
  doc.emit('load');
  doc.changed();
  doc.resume();
}
