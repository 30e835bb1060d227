// Saved edits (saved.js): a page's unsent edits go to one later page only,
// and are saved before each new seq leaves, so no (src, seq) is ever used
// for two different ops. Web Locks and localStorage are played by fakes.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SavedEdits } from '../js/saved.js';
import { Connection } from '../js/connection.js';
import { FakeClock, FakeLocks, FakeSocket, FakeStorage } from './fakes.mjs';

const URI = 'http://sharejs.org/types/text-unicode';
let n = 0;
const random = () => (++n).toString(16).padStart(16, '0');

function page(storage, locks, id = 'x') {
  return SavedEdits.claim({ storage, locks, collection: 'docs', id, random });
}

const state = (text) => ({ doc: { v: 3, type: URI, inflight: null, pending: [{ op: [3, text], count: 1 }] }, src: 's1', seq: 4 });

test('edits a closed page saved go to exactly one of two pages opened at once', async () => {
  const storage = new FakeStorage();
  const locks = new FakeLocks();
  const first = await page(storage, locks);
  assert.equal(first.state, null);
  first.save(state('mine'));
  first.release(); // the page is closed
  const [b, c] = await Promise.all([page(storage, locks), page(storage, locks)]);
  const restored = [b, c].filter((p) => p.state);
  assert.equal(restored.length, 1, 'one page restores them');
  assert.equal(restored[0].key, first.key, 'in the slot it took over');
  assert.deepEqual(restored[0].connectionOptions(), { id: 's1', seq: 4 });
  const other = [b, c].find((p) => !p.state);
  assert.notEqual(other.key, first.key);
  assert.deepEqual(other.connectionOptions(), {});
});

test('a page never takes the edits of a page that is still open', async () => {
  const storage = new FakeStorage();
  const locks = new FakeLocks();
  const open = await page(storage, locks);
  open.save(state('offline edits'));
  const next = await page(storage, locks);
  assert.equal(next.state, null);
  assert.notEqual(next.key, open.key);
  // Another document's saved edits are not this one's.
  open.release();
  assert.equal((await page(storage, locks, 'y')).state, null);
});

test('a page waits a moment for a slot whose page is unloading (a reload)', async () => {
  const storage = new FakeStorage();
  const locks = new FakeLocks();
  const old = await page(storage, locks);
  old.save(state('reloaded'));
  const claiming = page(storage, locks);
  setTimeout(() => old.release(), 20);
  assert.equal((await claiming).state?.doc.pending[0].op[1], 'reloaded');
});

test('of several left slots a page adopts the oldest and leaves the rest for the next page', async () => {
  const storage = new FakeStorage();
  const locks = new FakeLocks();
  const a = await page(storage, locks);
  const b = await page(storage, locks);
  a.save(state('older'));
  await new Promise((r) => setTimeout(r, 5));
  b.save(state('newer'));
  a.release();
  b.release();
  assert.equal((await page(storage, locks)).state.doc.pending[0].op[1], 'older');
  assert.equal((await page(storage, locks)).state.doc.pending[0].op[1], 'newer');
  assert.equal((await page(storage, locks)).state, null);
});

test('edits saved under the key of pages before slots are adopted the same way, by one page', async () => {
  const storage = new FakeStorage();
  const locks = new FakeLocks();
  storage.setItem('coedit:unsaved:docs/x', JSON.stringify(state('legacy')));
  const [b, c] = await Promise.all([page(storage, locks), page(storage, locks)]);
  assert.deepEqual([b, c].map((p) => p.state?.doc.pending[0].op[1] ?? null).sort(), ['legacy', null].sort());
});

test('without Web Locks or storage nothing is saved', async () => {
  assert.equal(await page(new FakeStorage(), undefined), null);
  assert.equal(await page(null, new FakeLocks()), null);
});

test('a save that fails leaves no stale state behind', async () => {
  const storage = new FakeStorage();
  const locks = new FakeLocks();
  const p = await page(storage, locks);
  assert.equal(p.save(state('one')), true);
  storage.full = true;
  assert.equal(p.save(state('two')), false);
  assert.equal(p.ok, false);
  assert.equal(storage.getItem(p.key), null, 'the older state is gone rather than restored later');
});

// The crash inside the save delay: the old page sent ops after its last
// periodic save. Because the state is saved before every new seq leaves,
// the next page resends the last op sent (a duplicate the server
// answers with its ack) and numbers new ops after it.
test('the state is saved before each new seq leaves, so a page after a crash never reuses a seq', async () => {
  const storage = new FakeStorage();
  const locks = new FakeLocks();
  const slot = await page(storage, locks);
  const clock = new FakeClock();
  const conn = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: clock });
  const ws = FakeSocket.last();
  ws.open();
  ws.deliver({ a: 'hs', protocol: 1, protocolMinor: 2, id: 'src1' });
  const doc = conn.get('docs', 'x');
  slot.track(conn, doc);
  doc.subscribe();
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 3, type: URI, data: 'abc' } });
  const savedWhenSent = [];
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    const m = JSON.parse(data);
    if (m.a === 'op') savedWhenSent.push(JSON.parse(storage.getItem(slot.key)));
    send(data);
  };
  doc.submitOp([3, 'd']);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 3, src: 'src1', seq: 1 });
  doc.submitOp([4, 'e']);
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'src1', seq: 2 });
  // Each op was on record, with its seq, before it was sent.
  assert.deepEqual(savedWhenSent.map((s) => [s.doc.inflight.seq, s.seq]), [[1, 2], [2, 3]]);
  // Crash: no pagehide, the periodic save never ran. The next page:
  slot.release();
  const next = await page(storage, locks);
  assert.deepEqual(next.connectionOptions(), { id: 'src1', seq: 3 });
  const conn2 = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: clock, ...next.connectionOptions() });
  const ws2 = FakeSocket.last();
  const doc2 = conn2.get('docs', 'x');
  doc2.restoreState(next.state.doc);
  doc2.subscribe();
  ws2.open();
  ws2.deliver({ a: 'hs', protocol: 1, protocolMinor: 2, id: 'src1' });
  const nf = ws2.sent.splice(0).find((m) => m.a === 'nf');
  ws2.deliver({ a: 'nf', id: nf.id, v: 4, type: URI, data: 'abcd', m: null });
  const sent = ws2.sent.splice(0);
  assert.deepEqual(sent.filter((m) => m.a === 'op'), [{ a: 'op', c: 'docs', d: 'x', v: 4, src: 'src1', seq: 2, op: [4, 'e'] }], 'the last op goes as a resend');
  ws2.deliver({ a: 'op', c: 'docs', d: 'x', v: 4, src: 'src1', seq: 2, op: [4, 'e'] });
  ws2.deliver({ a: 's', c: 'docs', d: 'x' });
  doc2.submitOp([5, 'f']);
  assert.deepEqual(ws2.sent.splice(0), [{ a: 'op', c: 'docs', d: 'x', v: 5, seq: 3, op: [5, 'f'] }], 'a new op gets a new seq');
});
