// The client state machine (connection.js, document.js, presence.js) driven
// through its transport seam: a fake WebSocket plays the server, a manual
// clock runs the timers. reconnect.test.mjs has the recovery cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ref from 'ot-text-unicode';
import { State } from '../js/connection.js';
import { REFRESH_MS } from '../js/presence.js';
import { GAP_FETCH_WAIT_MS } from '../js/document.js';
import { FakeSocket, URI, handshake, loaded, setup } from './fakes.mjs';

test('handshake, subscribe with v null, snapshot load', () => {
  const { conn, ws } = setup();
  assert.equal(conn.state, State.CONNECTING);
  const hs = handshake(ws, 'abc');
  assert.deepEqual(hs, { a: 'hs', id: null, protocol: 1, protocolMinor: 2 });
  assert.equal(conn.state, State.CONNECTED);
  assert.equal(conn.id, 'abc');
  const doc = conn.get('docs', 'x');
  let loads = 0;
  doc.on('load', () => loads++);
  doc.subscribe();
  assert.deepEqual(ws.take(), [{ a: 's', c: 'docs', d: 'x', v: null }]);
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 5, type: URI, data: 'hi 😀' } });
  assert.equal(doc.version, 5);
  assert.equal(doc.text.s, 'hi 😀');
  assert.equal(loads, 1);
});

test('one op in flight, later ops composed, ack sends the next', () => {
  const { ws, doc } = loaded('hello');
  doc.submitOp([5, ' world']);
  assert.deepEqual(ws.take(), [{ a: 'op', c: 'docs', d: 'x', v: 3, seq: 1, op: [5, ' world'] }]);
  doc.submitOp([11, '!']);
  doc.submitOp([{ d: 'h' }, 'H']);
  assert.deepEqual(ws.take(), [], 'nothing sent while an op is in flight');
  assert.equal(doc.unacknowledged, 3);
  assert.equal(doc.text.s, 'Hello world!');
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: 1 });
  assert.equal(doc.version, 4);
  // The two pending ops went as one, deletes in the short form.
  assert.deepEqual(ws.take(), [{ a: 'op', c: 'docs', d: 'x', v: 4, seq: 2, op: [{ d: 1 }, 'H', 10, '!'] }]);
  assert.equal(doc.unacknowledged, 2);
  let idle = 0;
  doc.on('nothingPending', () => idle++);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'src1', seq: 2 });
  assert.equal(doc.version, 5);
  assert.equal(doc.unacknowledged, 0);
  assert.equal(idle, 1);
});

test('remote ops are transformed over inflight and pending ops and converge', () => {
  const { ws, doc } = loaded('abc');
  doc.submitOp([1, 'X']); // inflight: aXbc
  doc.submitOp([3, 'Y']); // pending: aXbYc
  ws.take();
  // Meanwhile the server committed someone else's ops at v3 and v4.
  const remote1 = ['0', 1, { d: 1 }]; // 0abc -> 0ac... on "abc": insert 0, skip a, delete b
  const remote2 = [3, '😀'];
  let server = ref.type.apply('abc', remote1);
  server = ref.type.apply(server, remote2);
  const events = [];
  doc.on('op', (op, info) => events.push(info.source));
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'other', seq: 1, op: remote1 });
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'other', seq: 2, op: remote2 });
  assert.deepEqual(events, ['remote', 'remote']);
  assert.equal(doc.version, 5);
  // The server transforms our inflight op over the two ops it missed.
  let mine = [1, 'X'];
  mine = ref.type.transform(mine, remote1, 'left');
  mine = ref.type.transform(mine, remote2, 'left');
  assert.deepEqual(doc.inflight.op, mine, 'inflight op as the server will commit it');
  server = ref.type.apply(server, mine);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 5, src: 'src1', seq: 1 });
  const [next] = ws.take();
  assert.equal(next.v, 6);
  server = ref.type.apply(server, next.op);
  assert.equal(doc.text.s, server);
});

test('duplicates are ignored and a gap asks for the missing ops', () => {
  const { ws, doc } = loaded('abc', 3);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 2, src: 'o', seq: 9, op: ['zzz'] });
  assert.equal(doc.text.s, 'abc');
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 5, src: 'o', seq: 9, op: ['zzz'] });
  assert.equal(doc.text.s, 'abc');
  assert.deepEqual(ws.take(), [{ a: 'f', c: 'docs', d: 'x', v: 3 }]);
  // A bare ack that is not ours is ignored.
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'o', seq: 1 });
  assert.equal(doc.version, 3);
});

// dropAndResubscribe closes ws as the server would, runs whileDown, lets
// the backoff pass, answers the new socket's handshake with the same src,
// and checks it resubscribes docs/x at version 3; it returns the new socket.
function dropAndResubscribe(ws, clock, whileDown = () => {}) {
  ws.serverClose(1006);
  whileDown();
  clock.advance(1000);
  const ws2 = FakeSocket.last();
  assert.notEqual(ws2, ws);
  handshake(ws2, 'src1');
  assert.deepEqual(ws2.take(), [{ a: 's', c: 'docs', d: 'x', v: 3 }]);
  return ws2;
}

test('a gap asks once until the fetch is answered, then again for a new gap', () => {
  const { ws, doc } = loaded('abc', 3);
  // A stream that lost version 3: every op after it is past the gap.
  for (let v = 4; v < 40; v++) ws.deliver({ a: 'op', c: 'docs', d: 'x', v, src: 'o', seq: v, op: ['z'] });
  assert.deepEqual(ws.take(), [{ a: 'f', c: 'docs', d: 'x', v: 3 }]);
  // The fetch's ops, then its answer.
  for (let v = 3; v < 40; v++) ws.deliver({ a: 'op', c: 'docs', d: 'x', v, src: 'o', seq: v, op: ['z'] });
  ws.deliver({ a: 'f', c: 'docs', d: 'x' });
  assert.equal(doc.version, 40);
  assert.equal(doc.text.s, 'z'.repeat(37) + 'abc');
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 41, src: 'o', seq: 41, op: ['z'] });
  assert.deepEqual(ws.take(), [{ a: 'f', c: 'docs', d: 'x', v: 40 }]);
});

test('a gap fetch left unanswered holds the next one back only for a while', () => {
  // No pings within the wait, so the socket stays the same.
  const { ws, conn, clock } = setup({ pingInterval: 60_000, pongTimeout: 60_000 });
  handshake(ws);
  conn.get('docs', 'x').subscribe();
  ws.take();
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 3, type: URI, data: 'abc' } });
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 5, src: 'o', seq: 5, op: ['z'] });
  assert.deepEqual(ws.take(), [{ a: 'f', c: 'docs', d: 'x', v: 3 }]);
  clock.advance(GAP_FETCH_WAIT_MS - 1);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 6, src: 'o', seq: 6, op: ['z'] });
  assert.deepEqual(ws.take().filter((m) => m.a === 'f'), []);
  clock.advance(1);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 7, src: 'o', seq: 7, op: ['z'] });
  assert.deepEqual(ws.take().filter((m) => m.a === 'f'), [{ a: 'f', c: 'docs', d: 'x', v: 3 }]);
});

test('a gap fetch cut by a disconnect does not hold the next one back', () => {
  const { ws, doc, clock } = loaded('abc', 3);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 5, src: 'o', seq: 5, op: ['z'] });
  assert.deepEqual(ws.take(), [{ a: 'f', c: 'docs', d: 'x', v: 3 }]);
  const ws2 = dropAndResubscribe(ws, clock);
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 7, src: 'o', seq: 7, op: ['z'] });
  assert.deepEqual(ws2.take(), [{ a: 'f', c: 'docs', d: 'x', v: 3 }]);
  assert.equal(doc.version, 3);
});

test('a gap met while disconnected (the HTTP op log) does not hold the next fetch back', () => {
  const { ws, doc, clock } = loaded('abc', 3);
  const ws2 = dropAndResubscribe(ws, clock, () => {
    doc.onOp({ a: 'op', c: 'docs', d: 'x', v: 5, src: 'o', seq: 5, op: ['z'] }); // nothing can be sent
  });
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 7, src: 'o', seq: 7, op: ['z'] });
  assert.deepEqual(ws2.take(), [{ a: 'f', c: 'docs', d: 'x', v: 3 }]);
  assert.equal(doc.gapFetches, 1);
});

test('reconnect with backoff, hs with the old id, resubscribe at version, resend with src and seq', () => {
  const { clock, conn, ws, doc } = loaded('abc', 3);
  doc.submitOp([3, 'd']);
  const [sent] = ws.take();
  assert.equal(sent.src, undefined, 'first send leaves src out');
  ws.serverClose();
  assert.equal(conn.state, State.RECONNECTING);
  // random() = 0.5 and equal jitter: delay = cap/2 + 0.5*cap/2 = 0.75*cap.
  assert.deepEqual(clock.pendingDelays(), [75]);
  doc.submitOp([4, 'e']); // typed while disconnected
  clock.advance(74);
  assert.equal(FakeSocket.last(), ws, 'no new socket before the delay');
  clock.advance(1);
  const ws2 = FakeSocket.last();
  assert.notEqual(ws2, ws);
  // The second attempt fails too: the delay doubles.
  ws2.serverClose();
  assert.deepEqual(clock.pendingDelays(), [150]);
  clock.advance(150);
  const ws3 = FakeSocket.last();
  const hs = handshake(ws3, 'src1');
  assert.equal(hs.id, 'src1');
  assert.deepEqual(ws3.take(), [
    { a: 's', c: 'docs', d: 'x', v: 3 },
    { a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: 1, op: [3, 'd'] },
  ]);
  // The catch-up brings our own op (committed before the drop): it counts as the ack.
  ws3.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: 1, op: [3, 'd'] });
  ws3.deliver({ a: 's', c: 'docs', d: 'x' });
  assert.equal(doc.version, 4);
  assert.deepEqual(ws3.take(), [{ a: 'op', c: 'docs', d: 'x', v: 4, seq: 2, op: [4, 'e'] }]);
  // The server's answer to the resend (an ack at the original version) is now stale.
  ws3.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: 1 });
  assert.equal(doc.version, 4);
  ws3.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'src1', seq: 2 });
  assert.equal(doc.version, 5);
  assert.equal(doc.text.s, 'abcde');
  assert.equal(doc.hasPending, false);
});

test('backoff is capped and its jitter spreads clients', () => {
  const delays = [];
  for (const rnd of [0, 1 - 1e-9]) {
    const { clock, ws } = setup({ random: () => rnd });
    let sock = ws;
    const got = [];
    for (let i = 0; i < 7; i++) {
      sock.serverClose();
      got.push(clock.pendingDelays()[0]);
      clock.advance(got[got.length - 1]);
      sock = FakeSocket.last();
    }
    delays.push(got);
  }
  assert.deepEqual(delays[0], [50, 100, 200, 400, 800, 800, 800]);
  assert.deepEqual(delays[1], [100, 200, 400, 800, 1600, 1600, 1600]);
});

test('ping: idle connection pings, a dead one is replaced', () => {
  const { clock, conn, ws } = loaded('abc');
  clock.advance(1000);
  assert.deepEqual(ws.take(), [{ a: 'pp' }]);
  ws.deliver({ a: 'pp' });
  clock.advance(999);
  assert.deepEqual(ws.take(), []);
  clock.advance(1);
  assert.deepEqual(ws.take(), [{ a: 'pp' }]);
  // No answer this time.
  clock.advance(500);
  assert.equal(conn.state, State.RECONNECTING);
  assert.equal(ws.closed, true);
});

test('offline: no retries; online reconnects at once and sends the queued edits', () => {
  const { clock, conn, ws, doc } = loaded('abc');
  conn.setOnline(false);
  assert.equal(conn.state, State.OFFLINE);
  assert.equal(ws.closed, true);
  assert.deepEqual(clock.pendingDelays(), []);
  doc.submitOp([3, '1']);
  doc.submitOp([4, '2']);
  assert.equal(doc.unacknowledged, 2);
  conn.setOnline(true);
  const ws2 = FakeSocket.last();
  assert.notEqual(ws2, ws);
  handshake(ws2, 'src1');
  assert.deepEqual(ws2.take(), [
    { a: 's', c: 'docs', d: 'x', v: 3 },
    { a: 'op', c: 'docs', d: 'x', v: 3, seq: 1, op: [3, '12'] },
  ]);
});

test('a refused op is rolled back and the pending op kept', () => {
  const { ws, doc } = loaded('abc');
  const errors = [];
  doc.on('error', (e) => errors.push(e.code));
  doc.submitOp([1, { d: 'b' }]); // inflight: ac
  doc.submitOp([2, '!']); // pending: ac!
  const [sent] = ws.take();
  ws.deliver({ ...sent, error: { code: 'ERR_OT_OP_NOT_APPLIED', message: 'no' } });
  assert.deepEqual(errors, ['ERR_OT_OP_NOT_APPLIED']);
  assert.equal(doc.text.s, 'abc!');
  assert.deepEqual(ws.take(), [{ a: 'op', c: 'docs', d: 'x', v: 3, seq: 2, op: [3, '!'] }]);
});

test('create race: the winner\'s text goes first and our edits follow', () => {
  const s = setup();
  handshake(s.ws);
  const doc = s.conn.get('docs', 'new');
  doc.subscribe();
  s.ws.take();
  s.ws.deliver({ a: 's', c: 'docs', d: 'new', data: { v: 0, type: null } });
  doc.create('');
  doc.submitOp(['mine']);
  assert.deepEqual(s.ws.take(), [{ a: 'op', c: 'docs', d: 'new', v: 0, seq: 1, create: { type: URI, data: '' } }]);
  // Someone else's create and first edit were committed first.
  s.ws.deliver({ a: 'op', c: 'docs', d: 'new', v: 0, src: 'o', seq: 1, create: { type: URI, data: 'theirs ' } });
  s.ws.deliver({ a: 'op', c: 'docs', d: 'new', v: 1, src: 'o', seq: 2, op: [7, '!'] });
  s.ws.deliver({ a: 'op', c: 'docs', d: 'new', v: 0, seq: 1, error: { code: 'ERR_DOC_ALREADY_CREATED', message: 'exists' } });
  assert.equal(doc.text.s, 'minetheirs !');
  const [op] = s.ws.take();
  assert.equal(op.v, 2);
  // Server: "theirs !" then our op.
  assert.equal(ref.type.apply('theirs !', op.op), doc.text.s);
});

test('presence: sent when nothing is pending, remote values follow ops', () => {
  const { ws, doc, conn } = loaded('hello world', 3);
  const pres = conn.docPresence(doc);
  pres.subscribe();
  assert.deepEqual(ws.take(), [{ a: 'ps', ch: 'docs.x', seq: 1 }]);
  ws.deliver({ a: 'ps', ch: 'docs.x', seq: 1 });
  doc.submitOp([5, ',']); // hello, world
  ws.take();
  pres.submit('me', { index: 6, length: 0 });
  assert.deepEqual(ws.take(), [], 'held while an op is in flight');
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: 1 });
  assert.deepEqual(ws.take(), [
    { a: 'p', ch: 'docs.x', id: 'me', p: { index: 6, length: 0 }, pv: 1, c: 'docs', d: 'x', v: 4, t: URI },
  ]);
  // A remote caret at "world" (index 7 at v4).
  const seen = [];
  pres.on('update', (id, p) => seen.push([id, p]));
  ws.deliver({ a: 'p', ch: 'docs.x', id: 'bob', src: 'b', p: { index: 7, length: 5 }, pv: 1, c: 'docs', d: 'x', v: 4, t: URI });
  assert.deepEqual(seen.pop(), ['bob', { index: 7, length: 5 }]);
  // Our pending insert before it moves it.
  doc.submitOp(['>> ']);
  assert.deepEqual(seen.pop(), ['bob', { index: 10, length: 5 }]);
  // Bob's own insert at his caret moves it; someone else's does not.
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'b', seq: 1, op: [7, 'W'] });
  assert.deepEqual(seen.pop(), ['bob', { index: 11, length: 5 }]);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 5, src: 'c', seq: 1, op: [2, 'Q'] });
  assert.deepEqual(pres.remote.get('bob').value, { index: 12, length: 5 });
  // A stale value (v4) is caught up through the ops since, ours included.
  ws.deliver({ a: 'p', ch: 'docs.x', id: 'carol', src: 'd', p: { index: 1, length: 1 }, pv: 1, c: 'docs', d: 'x', v: 4, t: URI });
  assert.deepEqual(pres.remote.get('carol').value, { index: 4, length: 1 });
  // Leaving clears it; a stale pv is ignored.
  ws.deliver({ a: 'p', ch: 'docs.x', id: 'bob', src: 'b', p: { index: 0, length: 0 }, pv: 0, c: 'docs', d: 'x', v: 6, t: URI });
  assert.deepEqual(pres.remote.get('bob').value, { index: 12, length: 5 });
  ws.deliver({ a: 'p', ch: 'docs.x', id: 'bob', src: 'b', p: null, pv: 2 });
  assert.equal(pres.remote.has('bob'), false);
});

test('presence channel: resend on request and after reconnect, remote values dropped on disconnect', () => {
  const { ws, conn, clock } = loaded('abc');
  const users = conn.channel('users');
  users.subscribe();
  users.submit('me', { name: 'Ann', color: '#c00' });
  assert.deepEqual(ws.take(), [
    { a: 'ps', ch: 'users', seq: 1 },
    { a: 'p', ch: 'users', id: 'me', p: { name: 'Ann', color: '#c00' }, pv: 1 },
  ]);
  ws.deliver({ a: 'p', ch: 'users', id: 'bob', src: 'b', p: { name: 'Bob' }, pv: 3 });
  assert.equal(users.remote.size, 1);
  ws.deliver({ a: 'pr', ch: 'users' });
  assert.deepEqual(ws.take(), [{ a: 'p', ch: 'users', id: 'me', p: { name: 'Ann', color: '#c00' }, pv: 1 }]);
  ws.serverClose();
  assert.equal(users.remote.size, 0);
  clock.advance(100);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'src1');
  const sent = ws2.take().filter((m) => m.ch === 'users');
  assert.deepEqual(sent, [
    { a: 'ps', ch: 'users', seq: 2 },
    { a: 'p', ch: 'users', id: 'me', p: { name: 'Ann', color: '#c00' }, pv: 2 },
  ]);
});

test('presence: a value still up is re-sent before the server lets it expire, a cleared one is not', () => {
  // No pings in the way: this test is about the presence timer alone.
  const { ws, conn, clock } = setup({ pingInterval: 1e9, pongTimeout: 1e9 });
  handshake(ws);
  const users = conn.channel('users');
  users.submit('me', { name: 'Ann' });
  ws.take();
  clock.advance(REFRESH_MS);
  assert.deepEqual(ws.take().filter((m) => m.a === 'p'), [{ a: 'p', ch: 'users', id: 'me', p: { name: 'Ann' }, pv: 2 }]);
  clock.advance(REFRESH_MS);
  assert.deepEqual(ws.take().filter((m) => m.a === 'p').map((m) => m.pv), [3]);
  users.submit('me', null);
  ws.take();
  clock.advance(3 * REFRESH_MS);
  assert.deepEqual(ws.take().filter((m) => m.a === 'p'), []);
});
