// The page's client in a real cluster (two `coedit serve --redis` nodes, a
// real redis-server) when the node it is on forks: Redis restarts empty
// while node A is ahead of node B, B seeds the document and takes an edit,
// and A, frozen meanwhile with two of the page's edits unacknowledged,
// wakes up, finds its records replaced, offers them again and closes the
// page with 4002. The page must not catch up by version: it fetches the
// document anew, puts its two edits back on it, and ends with the
// cluster's text, having told the user.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { redisAvailable, startRedis, startNode } from '../../../interop/cluster.mjs';
import { Connection } from '../js/connection.js';
import { diff } from '../js/replaced.js';
import * as ot from '../js/ot.js';
import { URI, loaded } from './fakes.mjs';

const skip = redisAvailable() || process.env.CI ? false : 'redis-server is not installed';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

async function waitFor(what, cond, ms = 30000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// TappedWS records what each socket receives, in order, with its closes.
class TappedWS extends WebSocket {
  constructor(...args) {
    super(...args);
    this.received = [];
    this.on('message', (d) => this.received.push(JSON.parse(String(d))));
    this.on('close', (code) => this.received.push({ close: code }));
    TappedWS.all.push(this);
  }
}
TappedWS.all = [];

function client(url) {
  const conn = new Connection(url, { WebSocket: TappedWS, minDelay: 5, maxDelay: 40 });
  conn.closes = [];
  conn.on('state', (_, detail) => detail.code != null && conn.closes.push(detail.code));
  conn.on('error', () => {});
  cleanup.push(() => conn.close());
  return conn;
}

async function open(url, id) {
  const conn = client(url);
  const doc = conn.get('docs', id);
  doc.subscribe();
  await waitFor(`${id} loaded from ${url}`, () => doc.version != null);
  return doc;
}

// edit appends text and waits for its ack.
async function edit(doc, text) {
  doc.submitOp([doc.text.cpLength, text]);
  await waitFor(`${text} acknowledged`, () => !doc.hasPending);
}

const snapshotOf = async (node, id) => (await fetch(`${node.base}/api/docs/docs/${id}`)).json();

test('diff turns one text into the other, in code points', () => {
  for (const [a, b] of [['', ''], ['abc', 'abc'], ['abc', 'aXc'], ['a😀b', 'a😀😀b'], ['hello', ''], ['', 'hi'], ['aaa', 'aa']]) {
    assert.equal(ot.apply(a, diff(a, b)), b, `${a} -> ${b}`);
  }
});

test('the page, on a node that forks with its edits unacknowledged, fetches anew and keeps them', { skip }, async () => {
  const redis = await startRedis();
  cleanup.push(() => redis.stop());
  const a = await startNode({ redis: redis.addr, prefix: 'pg:', id: 'a' });
  const b = await startNode({ redis: redis.addr, prefix: 'pg:', id: 'b' });
  cleanup.push(() => a.stop(), () => b.stop());
  const id = 'forked';

  const x = await open(a.wsURL, id);
  x.create('');
  await waitFor('create acknowledged', () => !x.hasPending);
  for (let i = 1; i <= 3; i++) await edit(x, `<x${i}>`);
  const early = await open(b.wsURL, id);
  assert.equal(early.version, 4, 'B holds the document up to version 4');
  early.connection.close();
  await b.stop();
  for (let i = 4; i <= 6; i++) await edit(x, `<x${i}>`);
  assert.equal(x.version, 7);

  // A freezes; the page types twice (one edit goes out, one waits).
  a.proc.kill('SIGSTOP');
  let frozen = true;
  cleanup.push(() => frozen && a.proc.kill('SIGCONT'));
  const replaced = [];
  x.on('replaced', (info) => replaced.push(info));
  const sockets = TappedWS.all.length;
  const socket = x.connection.socket; // the page's, before any reconnect
  x.submitOp([x.text.cpLength, '<u1>']);
  const u1 = { src: x.inflight.src ?? x.connection.id, seq: x.inflight.seq };
  x.submitOp([0, '<u2>']);
  assert.ok(x.inflight && x.pending.length === 1, 'one edit in flight, one pending');

  await redis.restartEmpty();
  await b.start();
  const z = await open(b.wsURL, id);
  assert.equal(z.version, 4, 'B seeded the document from its store at version 4');
  await edit(z, '<z1>');

  a.proc.kill('SIGCONT');
  frozen = false;
  let want;
  await waitFor('the page has the cluster\'s text with its edits', async () => {
    want = await snapshotOf(b, id);
    const onA = await snapshotOf(a, id);
    return !x.hasPending && x.connection.connected && x.version === want.v && onA.v === want.v && x.text.s === want.data && want.data.includes('<u2>');
  }).catch((err) => {
    throw new Error(`${err.message}: page v${x.version} ${JSON.stringify(x.text.s)}, cluster v${want?.v} ${JSON.stringify(want?.data)}, closes ${x.connection.closes}`);
  });
  assert.ok(x.connection.closes.includes(4002), `A closed the page with 4002 (closes ${x.connection.closes})`);
  for (const t of ['<x1>', '<x2>', '<x3>', '<x4>', '<x5>', '<x6>', '<z1>', '<u1>', '<u2>']) {
    assert.equal(want.data.split(t).length - 1, 1, `${t} once in ${want.data}`);
  }
  assert.ok(want.data.startsWith('<u2>'), `the edit made at the start stays at the start: ${want.data}`);
  // Both edits are put back, unless A acknowledged the one in flight
  // before it closed the page: then that one is in the cluster's history
  // (A's log held it, and A offered it again with the others), and only
  // the pending one is put back. Which comes first depends on whether A
  // finished committing u1 in the old history before it stopped: seen
  // about once in six runs on a loaded machine, with u1 acknowledged at
  // version 7 and offered again at 8.
  const received = [socket, ...TappedWS.all.slice(sockets)].filter((ws) => ws.url === socket.url).flatMap((ws) => ws.received);
  const closedAt = received.findIndex((m) => m.close === 4002);
  const ackedFirst = received.slice(0, closedAt).some((m) => m.a === 'op' && m.src === u1.src && m.seq === u1.seq && m.op === undefined && !m.error);
  assert.deepEqual(replaced, [{ kept: ackedFirst ? 1 : 2, lost: 0 }], `u1 acknowledged before the close: ${ackedFirst}`);
  await waitFor('B\'s subscriber has it too', () => z.text.s === want.data);
});

// The cases the real fork above does not reach, with a fake socket as the
// server (fakes.mjs).
const refused = (m) => ({ ...m, error: { code: 'ERR_HISTORY_REPLACED', message: 'history replaced' } });

test('an edit in flight that the old history had committed is resent with its seq and, refused as reused, dropped quietly', () => {
  const { ws, doc } = loaded('abc', 3);
  const events = [];
  doc.on('replaced', (info) => events.push(['replaced', info]));
  doc.on('error', (err) => events.push(['error', err.code]));
  doc.submitOp([3, 'X']); // in flight: its ack is lost
  doc.submitOp([0, 'Y']); // pending
  const [sent] = ws.take();
  ws.deliver(refused({ a: 'op', c: 'docs', d: 'x', v: 3, seq: sent.seq }));
  assert.deepEqual(ws.take(), [{ a: 's', c: 'docs', d: 'x', v: null }], 'a fresh snapshot is asked for');
  assert.equal(doc.version, null);
  // The new history holds X (offered again) and Z from another node.
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 6, type: URI, data: 'abcXZ' } });
  assert.deepEqual(events, [['replaced', { kept: 2, lost: 0 }]]);
  assert.equal(doc.version, 6);
  const [resend] = ws.take();
  assert.deepEqual(resend, { a: 'op', c: 'docs', d: 'x', v: 6, src: 'src1', seq: sent.seq, op: [3, 'X'] }, 'X goes again with its src and seq');
  assert.equal(doc.text.s, 'YabcXXZ', 'until the server answers, X shows twice');
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 6, src: 'src1', seq: sent.seq, error: { code: 'ERR_SEQ_REUSED', message: 'seq reused' } });
  assert.equal(doc.text.s, 'YabcXZ', 'the copy of X is dropped');
  assert.deepEqual(events, [['replaced', { kept: 2, lost: 0 }]], 'and the user is not told an edit was refused');
  const [y] = ws.take();
  assert.deepEqual(y, { a: 'op', c: 'docs', d: 'x', v: 6, seq: sent.seq + 1, op: ['Y'] });
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 6, src: 'src1', seq: sent.seq + 1 });
  assert.equal(doc.version, 7);
  assert.equal(doc.hasPending, false);
});

test('edits that cannot be undone are reported lost, and the fresh text is loaded', () => {
  const { ws, doc } = loaded('abc', 3);
  const events = [];
  doc.on('replaced', (info) => events.push(info));
  doc.submitOp([1, { d: 1 }]); // a delete without its text: cannot be undone
  ws.take();
  ws.deliver(refused({ a: 's', c: 'docs', d: 'x' }));
  ws.take();
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 5, type: URI, data: 'abZc' } });
  assert.deepEqual(events, [{ kept: 0, lost: 1 }]);
  assert.equal(doc.text.s, 'abZc');
  assert.equal(doc.version, 5);
  assert.equal(doc.hasPending, false);
  assert.deepEqual(ws.take(), []);
});
