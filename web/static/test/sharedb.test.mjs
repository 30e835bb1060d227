// The JS client against the reference server: a real ShareDB 7 backend
// (in-memory database, presence on) behind a real WebSocket server. Three
// clients edit at random at the same time while their sockets are cut and
// they go offline and back; every copy must end equal to the server's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ShareDB from 'sharedb';
import WebSocket, { WebSocketServer } from 'ws';
import * as ot from '../js/ot.js';
import { Connection } from '../js/connection.js';
import { rng, randomOp, int } from './gen.mjs';
import { wsStream } from '../../../bench/wsstream.mjs';

ShareDB.types.register(ot.type);

async function startServer() {
  const backend = new ShareDB({ presence: true, doNotForwardSendPresenceErrorsToClient: true });
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const sockets = new Set();
  wss.on('connection', (ws) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    backend.listen(wsStream(ws));
  });
  return {
    backend,
    url: `ws://127.0.0.1:${wss.address().port}`,
    sockets,
    async close() {
      for (const s of sockets) s.terminate();
      await new Promise((r) => wss.close(r));
      await new Promise((r) => backend.close(r));
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, cond, ms = 10000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function serverSnapshot(backend, c, d) {
  return new Promise((resolve, reject) => {
    backend.db.getSnapshot(c, d, null, null, (err, snap) => (err ? reject(err) : resolve(snap)));
  });
}

function client(url) {
  const conn = new Connection(url, { WebSocket, minDelay: 5, maxDelay: 40, pingInterval: 300, pongTimeout: 300 });
  conn.on('error', () => {});
  return conn;
}

test('three clients converge with the ShareDB server through drops and offline edits', async (t) => {
  const srv = await startServer();
  t.after(() => srv.close());
  const r = rng(42);
  const conns = [client(srv.url), client(srv.url), client(srv.url)];
  // A client left open reconnects for ever: a failed test would never exit.
  t.after(() => conns.forEach((c) => c.close()));
  const docs = conns.map((c) => c.get('docs', 'shared'));
  const pres = conns.map((c, i) => {
    const p = c.docPresence(docs[i]);
    p.subscribe();
    // Every remote caret the client ever shows must lie inside its text.
    p.on('update', (id, v) => {
      if (v) assert.ok(v.index >= 0 && v.index + v.length <= docs[i].text.cpLength, `client ${i}: caret ${JSON.stringify(v)} outside a ${docs[i].text.cpLength}-code point text`);
    });
    return p;
  });
  for (const d of docs) d.subscribe();
  await waitFor('first load', () => docs.every((d) => d.version != null));
  docs[0].create('start 😀\n');
  await waitFor('create', () => docs.every((d) => d.type != null && !d.hasPending));

  let drops = 0;
  let offline = 0;
  let edits = 0;
  // At least 600 random steps, and on until the server has committed more
  // than 40 versions: local ops compose while one is in flight, so how
  // many versions 600 steps make depends on how fast the round trips are.
  // A server that stops acknowledging ends the loop at its cap and fails
  // the count below.
  const head = () => Math.max(...docs.map((d) => d.version ?? 0));
  for (let step = 0; step < 6000 && (step < 600 || head() <= 40); step++) {
    const i = int(r, conns.length);
    const k = r();
    if (k < 0.7) {
      const doc = docs[i];
      if (doc.text.cpLength > 400) doc.submitOp([int(r, 300) + 1, { d: 50 }]);
      else doc.submitOp(randomOp(r, doc.text.s));
      edits++;
      if (r() < 0.3) {
        const n = doc.text.cpLength;
        const index = int(r, n + 1);
        pres[i].submit(`p${i}`, { index, length: int(r, n - index + 1) });
      }
    } else if (k < 0.75) {
      // Cut a socket from the server side (the client must notice and reconnect).
      const all = [...srv.sockets];
      if (all.length) {
        all[int(r, all.length)].terminate();
        drops++;
      }
    } else if (k < 0.78) {
      conns[i].setOnline(conns[i].state === 'offline');
      offline++;
    } else {
      await sleep(int(r, 4));
    }
  }
  for (const c of conns) c.setOnline(true);
  await waitFor(
    'all acknowledged',
    () => conns.every((c) => c.connected) && docs.every((d) => !d.hasPending),
    20000,
  );
  const snap = await serverSnapshot(srv.backend, 'docs', 'shared');
  await waitFor('all at the head', () => docs.every((d) => d.version === snap.v));
  for (const [i, d] of docs.entries()) {
    assert.equal(d.text.s, snap.data, `client ${i} text`);
  }
  // Ops typed while one is in flight are composed, so versions < edits.
  assert.ok(edits > 350 && snap.v > 40, `${edits} edits, ${snap.v} versions`);
  assert.ok(drops > 10 && offline > 5, `drops ${drops}, offline toggles ${offline}`);

  // Presence: each client sets a caret; everyone else sees exactly it.
  // The carets need 3 code points, which the random edits need not have
  // left (they delete a little more than they insert).
  docs[0].submitOp([docs[0].text.cpLength, 'tail']);
  await waitFor('the tail', () => docs.every((d) => d.version === snap.v + 1 && !d.hasPending));
  for (const [i, p] of pres.entries()) p.submit(`p${i}`, { index: i, length: 1 });
  await waitFor('presence', () =>
    pres.every((p, i) =>
      pres.every((_, j) => j === i || JSON.stringify(p.remote.get(`p${j}`)?.value) === JSON.stringify({ index: j, length: 1 })),
    ),
  );
  // And the carets move with an edit in front of them.
  docs[0].submitOp(['>>']);
  await waitFor('edit', () => docs.every((d) => d.version === snap.v + 2 && !d.hasPending));
  for (const [i, p] of pres.entries()) {
    for (let j = 0; j < 3; j++) {
      if (j === i) continue;
      assert.deepEqual(p.remote.get(`p${j}`).value, { index: j + 2, length: 1 }, `client ${i} sees p${j}`);
    }
  }
  // A client that leaves disappears from the others' presence.
  conns[2].close();
  await waitFor('leave', () => !pres[0].remote.has('p2') && !pres[1].remote.has('p2'));
});
