// Edge cases of the page's client found by a review (2026-12-07), each a
// defect the test failed on before its fix: an edit never sent after a 1013
// and another drop (A), reconnecting at full speed to a server that closes
// after each handshake (B), a handshake never answered (P), a carriage
// return put back as "␍" (C), carets of people who left coming back (D),
// a refused resubscribe never retried (E), our caret lost after a reload
// (F), an undo placed against no version (Y).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { State } from '../js/connection.js';
import ref from 'ot-text-unicode';
import { FakeSocket, URI, handshake, loaded, page, setup } from './fakes.mjs';

// A. A 1013 close sets Doc.refreshing (subscribe for a fresh snapshot). If
// that socket dropped too before the snapshot came, nothing cleared
// refreshing: the next connection subscribed by version (no snapshot) and
// flush() refused to send forever. Now the next connection asks for the
// fresh snapshot again.
test('A: edits are sent after a 1013 followed by a plain drop before the snapshot', () => {
  const { clock, ws, doc } = loaded('abc', 3);
  ws.serverClose(1013);
  clock.advance(1000);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'src1');
  assert.deepEqual(ws2.take(), [{ a: 's', c: 'docs', d: 'x', v: null }]);
  ws2.serverClose(1006); // lost before the snapshot arrived
  clock.advance(5000);
  const ws3 = FakeSocket.last();
  handshake(ws3, 'src1');
  assert.deepEqual(ws3.take(), [{ a: 's', c: 'docs', d: 'x', v: null }]);
  ws3.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 3, type: URI, data: 'abc' } });
  doc.submitOp([3, '!']);
  assert.equal(doc.text.s, 'abc!');
  const ops = ws3.take().filter((m) => m.a === 'op');
  assert.deepEqual(ops, [{ a: 'op', c: 'docs', d: 'x', v: 3, seq: 1, op: [3, '!'] }], `doc.refreshing=${doc.refreshing}: edit never sent`);
});

// B. Backoff is reset by every handshake except after 1013. A server that
// accepts the handshake and then closes at once (1011 session failed,
// 1012 Redis out of reach / contended, 1008) is reconnected to at the
// minimum delay forever.
test('B: a server that closes with 1012 right after each handshake is met with growing backoff', () => {
  const { clock, ws } = setup();
  let sock = ws;
  const delays = [];
  for (let i = 0; i < 6; i++) {
    handshake(sock, 'src1');
    sock.serverClose(1012);
    const d = clock.pendingDelays().filter((x) => x > 0);
    delays.push(Math.min(...d));
    clock.advance(Math.min(...d));
    sock = FakeSocket.last();
  }
  // minDelay 100, maxDelay 1600, jitter 0.5: a growing backoff would be 75,150,300,600,1200,1200
  assert.ok(delays[5] > delays[0], `delays stay flat: ${delays}`);
});

// P. No handshake timeout: a socket that opens but whose hs is never
// answered (half-open TCP, a hung proxy) leaves the connection in
// CONNECTING with no timer at all; pings only start once connected.
test('P: a handshake that is never answered is given up and retried', () => {
  const { clock, conn, ws } = setup();
  ws.open(); // hs sent, never answered
  clock.advance(10 * 60 * 1000);
  assert.notEqual(conn.state, State.CONNECTING, `still ${conn.state} after 10 min; timers pending: ${clock.pendingDelays().length}`);
});

// C. A carriage return is shown as "␍" in the textarea, and the binding
// builds its delete components from the textarea's text, so a deleted
// "\r" is recorded as {d: "␍"}. Undo inserts "␍" (U+240D) into the
// document instead of "\r", and a rollback of a refused op does the same
// to the local copy only, which then silently differs from the server's.
test('C1: undoing the deletion of a carriage return puts back "\\r", not "␍"', () => {
  const { ta, doc, ws } = page('a\r\nb');
  assert.equal(ta.value, 'a\u240d\nb');
  ta.setSelectionRange(2, 2);
  ta.value = 'a\nb'; // backspace over the shown ␍
  ta.setSelectionRange(1, 1);
  ta.fire('input');
  assert.equal(doc.text.s, 'a\nb');
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 1, src: 'me', seq: 1 });
  ta.fire('keydown', { key: 'z', ctrlKey: true });
  assert.equal(doc.text.s, 'a\r\nb', 'undo changed the line ending to U+240D');
});

test('C2: a refused op that deleted a carriage return is rolled back to the server\'s text', () => {
  const { ta, doc, ws } = page('a\r\nb');
  ta.value = 'a\nb';
  ta.setSelectionRange(1, 1);
  ta.fire('input');
  const [op] = ws.take().filter((m) => m.a === 'op');
  ws.deliver({ ...op, error: { code: 'ERR_RATE_LIMITED', message: 'slow down' } });
  assert.equal(doc.text.s, 'a\r\nb', 'local copy diverged from the server (which still has \\r)');
});

// D. DocPresence.future keeps remote carets that arrived ahead of the
// document's version. Neither a later p:null for the same id (the user
// left) nor a disconnect (which clears every remote caret) removes them,
// so they are drained later as a caret of someone who has gone.
test('D1: a caret that left while its value waited for the document does not come back', () => {
  const { ws, doc, conn } = loaded('abc', 3);
  const pres = conn.docPresence(doc);
  pres.subscribe();
  ws.take();
  // The document is behind (say a gap fetch is out); B's caret is at v5.
  ws.deliver({ a: 'p', ch: 'docs.x', id: 'B', p: { index: 1, length: 0 }, pv: 1, c: 'docs', d: 'x', v: 5, t: URI, src: 'b' });
  ws.deliver({ a: 'p', ch: 'docs.x', id: 'B', p: null, pv: 2, src: 'b' }); // B leaves
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'o', seq: 1, op: ['x'] });
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'o', seq: 2, op: ['y'] });
  assert.equal(doc.version, 5);
  assert.equal(pres.remote.has('B'), false, `ghost caret: ${JSON.stringify(pres.remote.get('B'))}`);
});

test('D2: carets queued before a disconnect are not shown after it', () => {
  const { ws, doc, conn, clock } = loaded('abc', 3);
  const pres = conn.docPresence(doc);
  pres.subscribe();
  ws.take();
  ws.deliver({ a: 'p', ch: 'docs.x', id: 'B', p: { index: 1, length: 0 }, pv: 1, c: 'docs', d: 'x', v: 5, t: URI, src: 'b' });
  ws.serverClose(1006); // B goes away while we are disconnected
  clock.advance(1000);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'src1');
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'o', seq: 1, op: ['x'] });
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'o', seq: 2, op: ['y'] });
  ws2.deliver({ a: 's', c: 'docs', d: 'x' });
  assert.equal(pres.remote.has('B'), false, 'a caret from before the disconnect is shown though nobody re-sent it');
});

// E. A subscribe refused with an error while edits are pending is never
// retried on this connection: the document stays unsubscribed and the
// user stops seeing other people's edits until the socket happens to drop.
test('E: a refused resubscribe with edits pending is retried', () => {
  const { clock, conn, ws, doc } = loaded('abc', 3);
  conn.setOnline(false);
  doc.submitOp([3, '!']);
  conn.setOnline(true);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'src1');
  const [s, op] = ws2.take();
  assert.equal(s.a, 's');
  ws2.deliver({ ...s, error: { code: 'ERR_UNKNOWN_ERROR', message: 'storage' } });
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: op.seq }); // ack
  for (let i = 0; i < 60; i++) {
    clock.advance(1000);
    ws2.deliver({ a: 'pp' });
  }
  assert.equal(doc.hasPending, false);
  const subs = ws2.take().filter((m) => m.a === 's' || m.a === 'f');
  assert.ok(subs.length > 0, `doc.subscribed=${doc.subscribed}; no subscribe sent again in a minute`);
});

// Y. The binding submits ops while the document has no version (after a
// hard reset, before the fresh snapshot): undo (and compositionend) call
// doc.submitOp without the check sync() makes. Doc.submitOp accepts it,
// loadSnapshot keeps it pending without applying it to the fresh text, and
// it is then sent: the server's text and ours differ.
test('Y: an undo between a hard reset and the fresh snapshot does not make the copies differ', () => {
  const { ta, doc, ws } = page('hello');
  ta.setSelectionRange(5, 5);
  ta.type(' world');
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 1, src: 'me', seq: 1 });
  ws.take();
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 2, src: 'o', seq: 1, op: [3] }); // malformed: hard reset
  assert.equal(doc.version, null);
  ta.fire('keydown', { key: 'z', ctrlKey: true }); // undo in the window
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 2, type: URI, data: 'hello world' } });
  let server = 'hello world';
  for (const m of ws.take().filter((x) => x.a === 'op')) server = ref.type.apply(server, m.op);
  assert.equal(doc.text.s, server, `client shows ${JSON.stringify(doc.text.s)}, server will hold ${JSON.stringify(server)}`);
});

// F. A 'load' (fresh snapshot after a 1013, a replaced history, a hard
// reset) nulls our own caret in DocPresence.onDocLoad, but the binding
// re-sends the selection only when its numbers changed, which a reload
// that keeps the text does not do: the next connection then announces
// p:null and our caret disappears for everyone until we move it.
test('F: after a reconnect that reloads the text, a newcomer\'s request is answered with our caret, not p:null', async () => {
  const { ta, doc, ws, binding } = page('hello world');
  const conn = doc.connection;
  const clock = conn.timers;
  const pres = conn.docPresence(doc);
  pres.subscribe();
  binding.on('selection', (sel) => pres.submit('me-p', sel));
  ta.setSelectionRange(5, 5);
  ta.fire('keyup');
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(pres.local.get('me-p').value, { index: 5, length: 0 });
  ws.serverClose(1013);
  clock.advance(5000);
  const ws2 = FakeSocket.last();
  handshake(ws2, 'me');
  ws2.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 1, type: URI, data: 'hello world' } });
  await new Promise((r) => setTimeout(r, 40));
  ws2.take();
  ws2.deliver({ a: 'pr', ch: 'docs.x' }); // someone joins and asks for everyone's caret
  const sent = ws2.take().filter((m) => m.a === 'p' && m.ch === 'docs.x');
  const last = sent[sent.length - 1];
  assert.ok(last && last.p != null, `our last presence message on the new socket: ${JSON.stringify(last)}`);
});

// R. A refused edit is told as such, with the text it inserted: for a
// refused create, with what was typed after it too, which the reset that
// follows drops. (A refused create was told as nothing, and its text
// lost without a word.)
test('R: a refused create reports the text typed on it', () => {
  const { ws, conn } = setup();
  handshake(ws);
  const doc = conn.get('docs', 'new');
  doc.subscribe();
  ws.take();
  ws.deliver({ a: 's', c: 'docs', d: 'new', data: { v: 0, type: null } });
  const errors = [];
  doc.on('error', (e) => errors.push(e));
  doc.create('');
  doc.submitOp(['hello']);
  doc.submitOp([5, ' 😀']);
  const [create] = ws.take().filter((m) => m.a === 'op');
  ws.deliver({ a: 'op', c: 'docs', d: 'new', src: create.src ?? 'src1', seq: create.seq, error: { code: 'ERR_FORBIDDEN', message: 'read only' } });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].refused, true);
  assert.equal(errors[0].text, 'hello 😀');
});

test('R: a refused edit reports its inserted text, a refused subscribe is not an edit', () => {
  const { ws, doc } = loaded('abc', 3);
  const errors = [];
  doc.on('error', (e) => errors.push(e));
  doc.submitOp([3, 'xyz']);
  const [op] = ws.take().filter((m) => m.a === 'op');
  ws.deliver({ ...op, error: { code: 'ERR_DOC_TOO_LARGE', message: 'too large' } });
  ws.deliver({ a: 's', c: 'docs', d: 'x', error: { code: 'ERR_FORBIDDEN', message: 'no' } });
  assert.deepEqual(errors.map((e) => [e.code, e.refused ?? false, e.text ?? null, e.action ?? null]), [
    ['ERR_DOC_TOO_LARGE', true, 'xyz', null],
    ['ERR_FORBIDDEN', false, null, 's'],
  ]);
});
