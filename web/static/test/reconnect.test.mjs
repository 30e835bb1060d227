// The client's recovery (connection.js, document.js, catchup.js) driven
// through its transport seam, as in client.test.mjs: saved edits placed
// by a later page, a src taken by another connection (close 4000), a
// slow-consumer close (1013) and catching up over the HTTP op log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ref from 'ot-text-unicode';
import { Connection } from '../js/connection.js';
import { FakeClock, FakeSocket, URI, handshake, loaded, opsServer } from './fakes.mjs';

test('saved state brings unacknowledged edits back in a new page, placed on the document at their version', () => {
  const { ws, doc, conn } = loaded('abc', 7);
  doc.submitOp([3, 'd']);
  doc.submitOp([4, 'e']);
  ws.take();
  const saved = JSON.parse(JSON.stringify({ doc: doc.saveState(), id: conn.id, seq: conn.seq }));
  assert.equal(saved.doc.text, undefined, 'the text is not saved: it can be large');
  conn.close();
  // A new page, restored before it connects.
  const clock = new FakeClock();
  const conn2 = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: clock, id: saved.id, seq: saved.seq });
  const ws2 = FakeSocket.last();
  const doc2 = conn2.get('docs', 'x');
  assert.equal(doc2.restoreState(saved.doc), true);
  assert.equal(doc2.unacknowledged, 2);
  assert.deepEqual(doc2.saveState(), saved.doc, 'saved again as it came until placed');
  doc2.subscribe();
  const hs = handshake(ws2, 'src1');
  assert.equal(hs.id, 'src1');
  // First the document as it was at v7...
  const [nf] = ws2.take();
  assert.deepEqual(nf, { a: 'nf', c: 'docs', d: 'x', v: 7, id: nf.id });
  let loads = 0;
  doc2.on('load', () => loads++);
  ws2.deliver({ a: 'nf', id: nf.id, v: 7, type: URI, data: 'abc', m: null });
  assert.equal(loads, 1);
  assert.equal(doc2.text.s, 'abcde');
  // ...then subscribe there and resend.
  assert.deepEqual(ws2.take(), [
    { a: 's', c: 'docs', d: 'x', v: 7 },
    { a: 'op', c: 'docs', d: 'x', v: 7, src: 'src1', seq: 1, op: [3, 'd'] },
  ]);
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 7, src: 'src1', seq: 1 });
  // The next op takes the next seq of the old page's counter.
  assert.deepEqual(ws2.take(), [{ a: 'op', c: 'docs', d: 'x', v: 8, seq: 2, op: [4, 'e'] }]);
});

test('saved state the server cannot place (no document at its version) is reported lost and the document loads', () => {
  const clock = new FakeClock();
  const conn = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: clock, id: 'src1', seq: 5 });
  const ws = FakeSocket.last();
  const doc = conn.get('docs', 'x');
  doc.restoreState({ v: 9, type: URI, inflight: null, pending: [{ op: ['x'], count: 1 }] });
  doc.subscribe();
  const lost = [];
  doc.on('lost', (err) => lost.push(err.code));
  handshake(ws, 'src1');
  const [nf] = ws.take();
  ws.deliver({ ...nf, error: { code: 'ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT', message: 'no' } });
  assert.deepEqual(lost, ['ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT']);
  assert.equal(doc.hasPending, false);
  assert.deepEqual(ws.take(), [{ a: 's', c: 'docs', d: 'x', v: null }]);
});

test('restoring saved state asks again after an error that says nothing about the version', () => {
  const clock = new FakeClock();
  const conn = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: clock, id: 'src1', seq: 5 });
  const ws = FakeSocket.last();
  const doc = conn.get('docs', 'x');
  doc.restoreState({ v: 2, type: URI, inflight: null, pending: [{ op: [2, '!'], count: 1 }] });
  doc.subscribe();
  handshake(ws, 'src1');
  const [nf] = ws.take();
  ws.deliver({ ...nf, error: { code: 'ERR_UNKNOWN_ERROR', message: 'storage' } });
  assert.equal(doc.hasPending, true);
  assert.deepEqual(ws.take(), []);
  clock.advance(2000);
  const [again] = ws.take();
  assert.equal(again.a, 'nf');
  ws.deliver({ a: 'nf', id: again.id, v: 2, type: URI, data: 'ab', m: null });
  assert.equal(doc.text.s, 'ab!');
});

test('saved state of pages that kept the text is placed at once', () => {
  const clock = new FakeClock();
  const conn = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: clock, id: 'src1', seq: 2 });
  const ws = FakeSocket.last();
  const doc = conn.get('docs', 'x');
  doc.restoreState({ v: 3, type: URI, text: 'abcd', inflight: { op: [3, 'd'], count: 1, src: 'src1', seq: 1 }, pending: [] });
  assert.equal(doc.text.s, 'abcd');
  doc.subscribe();
  handshake(ws, 'src1');
  assert.deepEqual(ws.take(), [
    { a: 's', c: 'docs', d: 'x', v: 3 },
    { a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: 1, op: [3, 'd'] },
  ]);
});

test('close 4000 (src reclaimed): the connection takes a fresh src instead of reclaiming it back', () => {
  const { clock, conn, ws, doc } = loaded('abc', 3);
  ws.serverClose(4000);
  clock.advance(1000);
  const ws2 = FakeSocket.last();
  const hs = handshake(ws2, 'src2');
  assert.equal(hs.id, null, 'hs after 4000 asks for a new src');
  assert.equal(conn.id, 'src2');
  assert.equal(doc.version, 3);
  doc.submitOp([3, 'd']);
  const sent = ws2.take().filter((m) => m.a === 'op');
  assert.deepEqual(sent, [{ a: 'op', c: 'docs', d: 'x', v: 3, seq: 1, op: [3, 'd'] }]);
});

test('close 4000 with an op in flight: the catch-up shows it committed, so it is not sent again', () => {
  const { clock, ws, doc } = loaded('abc', 3);
  doc.submitOp([3, 'd']);
  ws.take();
  ws.serverClose(4000);
  clock.advance(1000);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'src2');
  // Subscribe at our version; the op stays put until the catch-up says whether it was committed.
  assert.deepEqual(ws2.take(), [{ a: 's', c: 'docs', d: 'x', v: 3 }]);
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: 1, op: [3, 'd'] });
  ws2.deliver({ a: 's', c: 'docs', d: 'x' });
  assert.deepEqual(ws2.take(), [], 'nothing resent');
  assert.equal(doc.version, 4);
  assert.equal(doc.hasPending, false);
  assert.equal(doc.text.s, 'abcd');
});

test('close 4000 with an op in flight: the catch-up lacks it, so it goes again as a new op under the new src', () => {
  const { clock, ws, doc } = loaded('abc', 3);
  doc.submitOp([3, 'd']);
  doc.submitOp([4, 'e']);
  ws.take();
  ws.serverClose(4000);
  clock.advance(1000);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'src2');
  assert.deepEqual(ws2.take(), [{ a: 's', c: 'docs', d: 'x', v: 3 }]);
  // Someone else's op came first; ours was never committed.
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'other', seq: 7, op: ['>'] });
  ws2.deliver({ a: 's', c: 'docs', d: 'x' });
  const [resent] = ws2.take();
  assert.deepEqual(resent, { a: 'op', c: 'docs', d: 'x', v: 4, seq: 2, op: [4, 'd'] }, 'a new seq, no src: the connection\'s new one');
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'src2', seq: 2 });
  assert.deepEqual(ws2.take(), [{ a: 'op', c: 'docs', d: 'x', v: 5, seq: 3, op: [5, 'e'] }]);
  assert.equal(doc.text.s, '>abcde');
});

test('close 1013 (slow consumer) with nothing pending: backoff grows and the next subscribe takes a fresh snapshot', () => {
  const { clock, conn, ws, doc } = loaded('abc', 3);
  const delays = [];
  let sock = ws;
  for (let i = 0; i < 4; i++) {
    sock.serverClose(1013);
    delays.push(clock.pendingDelays()[0]);
    clock.advance(delays[i]);
    sock = FakeSocket.last();
    handshake(sock, 'src1');
    assert.deepEqual(sock.take(), [{ a: 's', c: 'docs', d: 'x', v: null }], 'no catch-up by version after a 1013');
  }
  assert.deepEqual(delays, [75, 150, 300, 600], 'the backoff is not reset by a handshake after a 1013');
  sock.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 90000, type: URI, data: 'much later' } });
  assert.equal(doc.version, 90000);
  assert.equal(doc.text.s, 'much later');
  // Connected for a while (answering pings): the backoff starts over.
  for (let t = 0; t < conn.maxDelay + 400; t += 200) {
    clock.advance(200);
    sock.deliver({ a: 'pp' });
  }
  sock.serverClose();
  assert.deepEqual(clock.pendingDelays(), [75]);
});

test('close 1013 with edits pending: catch up over the HTTP op log, then subscribe at the new version and resend', async () => {
  const remote = [];
  let text = 'abc';
  for (let v = 3; v < 2503; v++) {
    const op = [v % 2 ? 'x' : 'y'];
    remote.push({ v, src: 'other', seq: v, op, m: { ts: 1 } });
    text = ref.type.apply(text, op);
  }
  const ops = opsServer(remote);
  const clock = new FakeClock();
  const conn = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: clock, random: () => 0.5, minDelay: 100, fetch: ops.fetch });
  const ws = FakeSocket.last();
  handshake(ws);
  const doc = conn.get('docs', 'x');
  doc.subscribe();
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 3, type: URI, data: 'abc' } });
  doc.submitOp([3, '!']);
  ws.take();
  ws.serverClose(1013);
  doc.submitOp([4, '?']);
  clock.advance(1000);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'src1');
  assert.deepEqual(ws2.take(), [], 'nothing on the socket while the op log is read');
  await waitUntil(() => doc.version === 2503);
  assert.deepEqual(ops.asked, [
    'http://test/api/docs/docs/x/ops?from=3&to=1003',
    'http://test/api/docs/docs/x/ops?from=1003&to=2003',
    'http://test/api/docs/docs/x/ops?from=2003&to=3003',
  ]);
  // Every remote op inserted at the start: ours moved after them.
  assert.deepEqual(transformOver([3, '!'], remote), [2503, '!']);
  assert.deepEqual(ws2.take(), [
    { a: 's', c: 'docs', d: 'x', v: 2503 },
    { a: 'op', c: 'docs', d: 'x', v: 2503, src: 'src1', seq: 1, op: [2503, '!'] },
  ]);
  assert.equal(doc.text.s, text + '!?');
});

test('a snapshot in answer to a subscribe at a version, with edits pending, is caught up over HTTP instead of resubscribing in a loop', async () => {
  const ops = opsServer([{ v: 3, src: 'other', seq: 1, op: ['>'] }, { v: 4, src: 'other', seq: 2, op: ['>'] }]);
  const clock = new FakeClock();
  const conn = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: clock, fetch: ops.fetch });
  const ws = FakeSocket.last();
  handshake(ws);
  const doc = conn.get('docs', 'x');
  doc.subscribe();
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 3, type: URI, data: 'abc' } });
  ws.take();
  conn.setOnline(false);
  doc.submitOp([3, '!']);
  conn.setOnline(true);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'src1');
  assert.deepEqual(ws2.take(), [
    { a: 's', c: 'docs', d: 'x', v: 3 },
    { a: 'op', c: 'docs', d: 'x', v: 3, seq: 1, op: [3, '!'] },
  ]);
  // A server that answers a far-behind subscribe with its snapshot.
  ws2.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 5, type: URI, data: '>>abc' } });
  await waitUntil(() => doc.version === 5);
  assert.equal(doc.text.s, '>>abc!');
  assert.deepEqual(ws2.take(), [
    { a: 's', c: 'docs', d: 'x', v: 5 },
    { a: 'op', c: 'docs', d: 'x', v: 5, src: 'src1', seq: 1, op: [5, '!'] },
  ]);
});

// transformOver transforms a client op over a list of committed records, as the server does.
function transformOver(op, records) {
  for (const r of records) op = ref.type.transform(op, r.op, 'left');
  return op;
}

async function waitUntil(cond) {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(cond(), 'condition never became true');
}
