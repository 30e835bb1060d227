// How a document recovers when the server says its copy came from a history
// the cluster replaced (ERR_HISTORY_REPLACED: Redis lost records this page
// had seen and other nodes moved on; they were offered again as new ops at
// other versions). The page's version no longer names the text it holds, so
// it cannot catch up by version: it takes a fresh snapshot and puts its
// unacknowledged edits back on it. The functions work on a Doc
// (document.js) and use its OT state machine.
import * as ot from './ot.js';

/** HISTORY_REPLACED is the error code the server refuses such a copy with. */
export const HISTORY_REPLACED = 'ERR_HISTORY_REPLACED';

/**
 * startReplaced drops doc's state and asks for a fresh snapshot (which also
 * tells the server the page follows the new history), keeping what it needs
 * to put the unacknowledged edits back: the text they were made on (the
 * local text with them undone) and the edits. Edits that cannot be undone
 * (a delete without its text, a create) are counted as lost.
 */
export function startReplaced(doc) {
  if (doc.replacing) return;
  const ops = [doc.inflight, ...doc.pending].filter(Boolean);
  const count = (list) => list.reduce((n, p) => n + (p.count ?? 0), 0);
  let kept = null;
  let lost = count(ops) + (doc.restoring ? count([doc.restoring.inflight, ...doc.restoring.pending].filter(Boolean)) : 0);
  if (!doc.restoring && doc.type != null && doc.version != null && ops.length > 0 && ops.every((p) => p.op)) {
    let all = [];
    for (const p of ops) all = ot.compose(all, p.op);
    if (ot.isInvertible(all)) {
      const base = ot.apply(doc.text.s, ot.invert(all));
      kept = { base, ops: ops.map((p) => ({ op: p.op, count: p.count, src: p.src ?? null, seq: p.seq ?? null })) };
      lost = 0;
    }
  }
  doc.replacing = { kept, lost };
  doc.catchUps++; // stops an HTTP catch-up
  doc.catchingUp = doc.confirming = doc.refreshing = false;
  doc.restoring = null;
  doc.inflight = null;
  doc.pending = [];
  doc.localCreate = doc.awaitingCreate = false;
  doc.behind = false;
  doc.version = null;
  doc.history.clear();
  doc.changed();
  if (doc.connection.connected) doc.sendSubscribe(null);
}

/**
 * finishReplaced loads the fresh snapshot data and puts the kept edits on
 * it: each is transformed over the change from the text they were made on
 * to the fresh text, as if that change were a remote op. The edit that was
 * in flight goes again with its src and seq: if the old history had
 * committed it (its ack was lost), it was offered again and is in the fresh
 * text, and the server refuses it as a reused seq (onOpError then drops it
 * without telling the user). It emits 'replaced' with how many edits were
 * kept and lost.
 */
export function finishReplaced(doc, data) {
  const r = doc.replacing;
  doc.replacing = null;
  doc.refreshing = false;
  doc.version = data.v;
  doc.type = data.type ?? null;
  const fresh = doc.type == null ? '' : data.data ?? '';
  let text = fresh;
  let kept = 0;
  let lost = r.lost;
  const ops = r.kept?.ops ?? [];
  if (r.kept && doc.type != null) {
    let change = diff(r.kept.base, fresh);
    for (const p of ops) [p.op, change] = [ot.transform(p.op, change, 'left'), ot.transform(change, p.op, 'right')];
    for (const p of ops) {
      text = ot.apply(text, p.op);
      kept += p.count;
    }
    const [first, ...rest] = ops;
    if (first.seq != null && first.src === doc.connection.id) {
      doc.inflight = { op: first.op, count: first.count, src: first.src, seq: first.seq, replayed: true };
    } else {
      rest.unshift(first);
    }
    doc.pending = rest.map((p) => ({ op: p.op, count: p.count }));
  } else {
    lost += ops.reduce((n, p) => n + p.count, 0);
  }
  doc.text.set(text);
  doc.emit('load');
  doc.changed();
  doc.emit('replaced', { kept, lost });
  if (doc.inflight) doc.sendInflight();
}

/**
 * diff returns an op that turns a into b: keep their common start and end
 * (in code points), replace the middle.
 */
export function diff(a, b) {
  const ca = Array.from(a);
  const cb = Array.from(b);
  let start = 0;
  while (start < ca.length && start < cb.length && ca[start] === cb[start]) start++;
  let end = 0;
  while (end < ca.length - start && end < cb.length - start && ca[ca.length - 1 - end] === cb[cb.length - 1 - end]) end++;
  const del = ca.slice(start, ca.length - end).join('');
  const ins = cb.slice(start, cb.length - end).join('');
  return ot.normalize([start, ...(del ? [{ d: del }] : []), ...(ins ? [ins] : [])]);
}
