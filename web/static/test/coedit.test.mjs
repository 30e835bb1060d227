// The JS client against a real `coedit serve` process (built once; the
// COEDIT_BIN env var names a prebuilt binary): concurrent random edits
// with astral characters, cut sockets and offline spells converge to the
// server's snapshot; presence moves between clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { startServer, serverSnapshot } from '../../../interop/harness.mjs';
import { Connection } from '../js/connection.js';
import { rng, randomOp, int } from './gen.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, cond, ms = 15000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// startRelay puts a WebSocket relay in front of the server, so the test
// can cut connections (the server gives no handle on them).
async function startRelay(target) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((res) => wss.once('listening', res));
  const pairs = new Set();
  wss.on('connection', (down) => {
    const up = new WebSocket(target);
    const early = [];
    const pair = { down, up };
    pairs.add(pair);
    const cut = () => {
      pairs.delete(pair);
      down.terminate();
      up.terminate();
    };
    for (const s of [down, up]) {
      s.on('error', cut);
      s.on('close', cut);
    }
    up.on('open', () => early.splice(0).forEach((m) => up.send(m)));
    down.on('message', (m) => (up.readyState === WebSocket.OPEN ? up.send(m.toString()) : early.push(m.toString())));
    up.on('message', (m) => down.readyState === WebSocket.OPEN && down.send(m.toString()));
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}`,
    cutAll() {
      for (const p of [...pairs]) {
        p.down.terminate();
        p.up.terminate();
      }
    },
    close: () => new Promise((res) => wss.close(res)),
  };
}

function client(url) {
  const conn = new Connection(url, { WebSocket, minDelay: 5, maxDelay: 40, pingInterval: 500, pongTimeout: 500 });
  conn.on('error', () => {});
  return conn;
}

test('clients converge with coedit serve through cut sockets and offline edits', async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  const relay = await startRelay(srv.wsURL);
  t.after(() => relay.close());
  const r = rng(7);
  const conns = [client(relay.url), client(relay.url), client(srv.wsURL)];
  // A client left open reconnects for ever: a failed test would never exit.
  t.after(() => conns.forEach((c) => c.close()));
  const docs = conns.map((c) => c.get('docs', 'jsclient'));
  const pres = conns.map((c, i) => {
    const p = c.docPresence(docs[i]);
    p.subscribe();
    p.on('update', (id, v) => {
      if (v) assert.ok(v.index + v.length <= docs[i].text.cpLength, `client ${i}: caret ${JSON.stringify(v)} past the end`);
    });
    return p;
  });
  for (const d of docs) d.subscribe();
  await waitFor('load', () => docs.every((d) => d.version != null));
  docs[0].create('🎉 start\n');
  await waitFor('create', () => docs.every((d) => d.type != null && !d.hasPending));

  // At least 500 random steps, and on until the server has committed more
  // than 20 versions: local ops compose while one is in flight, so how
  // many versions 500 steps make depends on how fast the round trips are
  // (a loaded machine made fewer than 20). A server that stops
  // acknowledging ends the loop at its cap and fails the count below.
  const head = () => Math.max(...docs.map((d) => d.version ?? 0));
  let edits = 0;
  for (let step = 0; step < 5000 && (step < 500 || head() <= 20); step++) {
    const i = int(r, conns.length);
    const k = r();
    if (k < 0.72) {
      const doc = docs[i];
      if (doc.text.cpLength > 400) doc.submitOp([int(r, 300) + 1, { d: 50 }]);
      else doc.submitOp(randomOp(r, doc.text.s));
      edits++;
      if (r() < 0.3) {
        const n = doc.text.cpLength;
        const index = int(r, n + 1);
        pres[i].submit(`p${i}`, { index, length: int(r, n - index + 1) });
      }
    } else if (k < 0.76) {
      relay.cutAll();
    } else if (k < 0.79) {
      conns[i].setOnline(conns[i].state === 'offline');
    } else {
      await sleep(int(r, 4));
    }
  }
  for (const c of conns) c.setOnline(true);
  await waitFor('all acknowledged', () => conns.every((c) => c.connected) && docs.every((d) => !d.hasPending), 30000);
  const snap = await serverSnapshot(srv.base, 'docs', 'jsclient');
  await waitFor('all at the head', () => docs.every((d) => d.version === snap.v));
  for (const [i, d] of docs.entries()) assert.equal(d.text.s, snap.data, `client ${i} text`);
  assert.ok(edits > 300 && snap.v > 20, `${edits} edits, ${snap.v} versions`);

  // The carets need 4 code points, which the random edits need not have
  // left (they delete a little more than they insert).
  docs[0].submitOp([docs[0].text.cpLength, 'tail']);
  await waitFor('the tail', () => docs.every((d) => d.version === snap.v + 1 && !d.hasPending));
  for (const [i, p] of pres.entries()) p.submit(`p${i}`, { index: i + 1, length: 1 });
  docs[1].submitOp(['>>']);
  const seen = () => pres.map((p) => Object.fromEntries([...p.remote].map(([id, v]) => [id, v.value])));
  await waitFor('presence after an edit in front', () =>
    pres.every((p, i) => pres.every((_, j) => j === i || JSON.stringify(p.remote.get(`p${j}`)?.value) === JSON.stringify({ index: j + 3, length: 1 }))),
  ).catch((err) => {
    throw new Error(`${err.message}: each client sees ${JSON.stringify(seen())}`);
  });
  conns[2].close();
  await waitFor('leave', () => !pres[0].remote.has('p2') && !pres[1].remote.has('p2'));
});
