// Interop: the real sharedb@7 client against a `coedit serve` process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, waitState, cb, sleep, serverSnapshot, serverOps, startRelay,
  TEXT, WebSocket, transformPosition,
} from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

function closeAll(...conns) {
  for (const c of conns) c.close();
}

// Deterministic PRNG so a failure can be replayed.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('create, subscribe and fetch', async () => {
  const a = connect(srv.wsURL);
  const b = connect(srv.wsURL);
  const c = connect(srv.wsURL);
  const docA = a.get('docs', 'basic');
  await cb((k) => docA.create('hello 🌍', TEXT, k));
  assert.equal(docA.version, 1);

  const docB = b.get('docs', 'basic');
  await cb((k) => docB.subscribe(k));
  assert.equal(docB.data, 'hello 🌍');
  assert.equal(docB.type.uri, TEXT);

  const docC = c.get('docs', 'basic');
  await cb((k) => docC.fetch(k));
  assert.equal(docC.data, 'hello 🌍');
  assert.equal(docC.version, 1);

  // An edit by A reaches B's subscription.
  const got = new Promise((r) => docB.once('op', r));
  await cb((k) => docA.submitOp([6, '🎉', { d: 1 }], k));
  await got;
  assert.equal(docB.data, 'hello 🎉');

  // A never-created document fetches as type null at version 0.
  const none = c.get('docs', 'never-created');
  await cb((k) => none.fetch(k));
  assert.equal(none.type, null);
  assert.equal(none.version, 0);

  // Creating an existing document is refused with ShareDB's code.
  const dup = c.get('docs', 'basic2');
  await cb((k) => dup.create('x', TEXT, k));
  const other = b.get('docs', 'basic2');
  const err = await cb((k) => other.create('y', TEXT, k)).then(() => null, (e) => e);
  assert.equal(err?.code, 'ERR_DOC_ALREADY_CREATED');

  const snap = await serverSnapshot(srv.base, 'docs', 'basic');
  assert.deepEqual(snap, { v: 2, type: TEXT, data: 'hello 🎉' });
  closeAll(a, b, c);
});

test('three clients on two documents converge to the server snapshot', async () => {
  const ids = ['conv-1', 'conv-2'];
  const conns = [0, 1, 2].map(() => connect(srv.wsURL));
  const seed = Number(process.env.COEDIT_SEED ?? 20261201);
  const rand = rng(seed);
  const pieces = ['a', 'bc', ' ', '😀', 'é', 'ü🎈x', '\n', '日本'];

  await cb((k) => conns[0].get('docs', ids[0]).create('start 🌱', TEXT, k));
  await cb((k) => conns[1].get('docs', ids[1]).create('', TEXT, k));
  const docs = conns.map((c) => ids.map((id) => c.get('docs', id)));
  for (const row of docs) for (const d of row) await cb((k) => d.subscribe(k));

  const edit = (doc) => {
    const len = [...doc.data].length;
    const pos = Math.floor(rand() * (len + 1));
    if (len > 0 && rand() < 0.3) {
      const n = 1 + Math.floor(rand() * Math.min(3, len - Math.min(pos, len - 1)));
      const at = Math.min(pos, len - 1);
      const del = Math.min(n, len - at);
      return at > 0 ? [at, { d: del }] : [{ d: del }];
    }
    const ins = pieces[Math.floor(rand() * pieces.length)];
    return pos > 0 ? [pos, ins] : [ins];
  };

  const work = conns.map(async (_, ci) => {
    for (let i = 0; i < 40; i++) {
      const doc = docs[ci][Math.floor(rand() * ids.length)];
      doc.submitOp(edit(doc));
      if (rand() < 0.5) await sleep(Math.floor(rand() * 4));
    }
  });
  await Promise.all(work);
  for (const row of docs) for (const d of row) await new Promise((r) => d.whenNothingPending(r));

  for (const id of ids) {
    const snap = await serverSnapshot(srv.base, 'docs', id);
    // Every client catches up to the server's head, then matches it.
    const deadline = Date.now() + 10000;
    for (const row of docs) {
      const d = row[ids.indexOf(id)];
      while (d.version < snap.v && Date.now() < deadline) await sleep(10);
      assert.equal(d.version, snap.v, `client version for ${id}`);
      assert.equal(d.data, snap.data, `client text for ${id}`);
    }
    // Every op in the log has a distinct (src, seq).
    const ops = await serverOps(srv.base, 'docs', id);
    assert.equal(ops.length, snap.v);
    const seen = new Set(ops.map((o) => `${o.src}/${o.seq}`));
    assert.equal(seen.size, ops.length);
  }
  closeAll(...conns);
});

async function inflightCut({ forwardOp }) {
  const relay = await startRelay(srv.wsURL);
  const id = forwardOp ? 'cut-after-send' : 'cut-before-send';
  const setup = connect(srv.wsURL);
  await cb((k) => setup.get('docs', id).create('base', TEXT, k));
  setup.close();

  const socket = new WebSocket(relay.url);
  const conn = new (await import('sharedb/lib/client/index.js')).default.Connection(socket);
  const doc = conn.get('docs', id);
  await cb((k) => doc.subscribe(k));
  const src = conn.id;

  let cut;
  const cutDone = new Promise((r) => (cut = r));
  relay.state.onUp = (msg) => {
    if (msg.a !== 'op' || !msg.op) return;
    if (forwardOp) {
      // Let the op reach the server but lose everything it answers.
      relay.state.dropDown = true;
      setTimeout(() => {
        relay.cutAll();
        cut(msg);
      }, 150);
    } else {
      relay.cutAll();
      cut(msg);
    }
  };
  doc.submitOp([4, '!']);
  const sent = await cutDone;
  await waitState(conn, 'disconnected');
  // The client moves the unacknowledged op back to the head of its queue.
  assert.ok(doc.hasPending(), 'the op is still unacknowledged after the cut');
  assert.equal(doc.data, 'base!');

  if (forwardOp) {
    // The server committed the op; only its ack was lost. The resend must be
    // recognised as a duplicate, not applied again.
    const deadline = Date.now() + 5000;
    let committed = [];
    while (Date.now() < deadline) {
      committed = (await serverOps(srv.base, 'docs', id)).filter((o) => o.src === src && o.seq === sent.seq);
      if (committed.length) break;
      await sleep(20);
    }
    assert.equal(committed.length, 1, 'the op was committed before the client reconnected');
  }

  // Reconnect straight to the server: the client resends with its old src/seq.
  conn.bindToSocket(new WebSocket(srv.wsURL));
  await new Promise((r) => doc.whenNothingPending(r));
  assert.equal(conn.id, src, 'the client reclaimed its src');
  assert.equal(doc.data, 'base!');

  const snap = await serverSnapshot(srv.base, 'docs', id);
  assert.equal(snap.data, 'base!');
  const ops = await serverOps(srv.base, 'docs', id);
  const mine = ops.filter((o) => o.src === src && o.seq === sent.seq);
  assert.equal(mine.length, 1, `op (${src}, ${sent.seq}) appears once in ${JSON.stringify(ops)}`);
  conn.close();
  await relay.close();
}

test('an op whose ack was lost lands exactly once after reconnect', () => inflightCut({ forwardOp: true }));
test('an op cut before reaching the server lands once after reconnect', () => inflightCut({ forwardOp: false }));

test('subscribe at an old version receives the missed ops', async () => {
  const a = connect(srv.wsURL);
  const b = connect(srv.wsURL);
  const docA = a.get('docs', 'catchup');
  await cb((k) => docA.create('0', TEXT, k));
  const docB = b.get('docs', 'catchup');
  await cb((k) => docB.fetch(k));
  assert.equal(docB.version, 1);

  for (const s of ['1', '2', '😀']) await cb((k) => docA.submitOp([[...docA.data].length, s], k));
  const seen = [];
  docB.on('op', (op) => seen.push(op));
  await cb((k) => docB.subscribe(k)); // sends v:1, the server replays [1, 4)
  assert.deepEqual(seen, [[1, '1'], [2, '2'], [3, '😀']]);
  assert.equal(docB.version, 4);
  assert.equal(docB.data, '012😀');
  closeAll(a, b);
});

test('fetchSnapshot (nf) and fetchSnapshotByTimestamp (nt) return past versions', async () => {
  const a = connect(srv.wsURL);
  const doc = a.get('docs', 'history');
  await cb((k) => doc.create('a', TEXT, k));
  await cb((k) => doc.submitOp([1, 'b'], k));
  await sleep(20);
  const mid = Date.now();
  await sleep(20);
  await cb((k) => doc.submitOp([2, 'c'], k));

  const s1 = await cb((k) => a.fetchSnapshot('docs', 'history', 1, k));
  assert.equal(s1.v, 1);
  assert.equal(s1.data, 'a');
  const s0 = await cb((k) => a.fetchSnapshot('docs', 'history', 0, k));
  assert.equal(s0.v, 0);
  assert.equal(s0.type, null);
  const s2 = await cb((k) => a.fetchSnapshot('docs', 'history', 2, k));
  assert.equal(s2.data, 'ab');
  const head = await cb((k) => a.fetchSnapshot('docs', 'history', null, k));
  assert.equal(head.data, 'abc');
  const atMid = await cb((k) => a.fetchSnapshotByTimestamp('docs', 'history', mid, k));
  assert.equal(atMid.v, 2);
  assert.equal(atMid.data, 'ab');
  const future = await cb((k) => a.fetchSnapshot('docs', 'history', 99, k)).then(() => null, (e) => e);
  assert.equal(future?.code, 'ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT');
  a.close();
});

test('presence moves between two clients and shifts with remote edits', async () => {
  const a = connect(srv.wsURL);
  const b = connect(srv.wsURL);
  const docA = a.get('docs', 'presence');
  await cb((k) => docA.create('hello world', TEXT, k));
  await cb((k) => docA.subscribe(k));
  const docB = b.get('docs', 'presence');
  await cb((k) => docB.subscribe(k));

  const presA = a.getDocPresence('docs', 'presence');
  const presB = b.getDocPresence('docs', 'presence');
  await cb((k) => presA.subscribe(k));
  await cb((k) => presB.subscribe(k));

  const seenByB = [];
  presB.on('receive', (id, value) => seenByB.push({ id, value }));
  const local = presA.create('caret-a');
  await cb((k) => local.submit({ index: 6, length: 5 }, k));
  const deadline = Date.now() + 5000;
  while (!presB.remotePresences['caret-a'] && Date.now() < deadline) await sleep(10);
  assert.deepEqual(presB.remotePresences['caret-a'], { index: 6, length: 5 });

  // B types before A's selection: B's view of A's selection shifts.
  await cb((k) => docB.submitOp(['>> '], k));
  assert.deepEqual(presB.remotePresences['caret-a'], { index: 9, length: 5 });
  // A sees the op and its own local presence shifts too.
  while (docA.version < docB.version && Date.now() < deadline) await sleep(10);
  assert.deepEqual(local.value, { index: 9, length: 5 });

  // A moves; B sees the move.
  await cb((k) => local.submit({ index: 0, length: 0 }, k));
  while (presB.remotePresences['caret-a']?.index !== 0 && Date.now() < deadline) await sleep(10);
  assert.deepEqual(presB.remotePresences['caret-a'], { index: 0, length: 0 });
  assert.ok(seenByB.length >= 2);

  // A leaves: B sees the presence cleared.
  a.close();
  while (presB.remotePresences['caret-a'] && Date.now() < deadline) await sleep(10);
  assert.equal(presB.remotePresences['caret-a'], undefined);
  b.close();
});

test('presence transform rule: own inserts at the caret move it, others do not', () => {
  assert.equal(transformPosition(2, [2, 'xy'], false), 2);
  assert.equal(transformPosition(2, [2, 'xy'], true), 4);
  assert.equal(transformPosition(3, [1, { d: 5 }], false), 1);
  assert.equal(transformPosition(3, ['😀😀'], false), 5);
});
