// The page's client against a real `coedit serve` when its src is taken by
// another connection (close 4000): it must take a fresh src instead of
// claiming its own back, and settle the op it had in flight exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer, startRelay, serverSnapshot, serverOps } from '../../../interop/harness.mjs';
import { Connection } from '../js/connection.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, cond, ms = 10000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// client opens a Connection that counts the close codes it was sent.
function client(url, opts = {}) {
  const conn = new Connection(url, { WebSocket, minDelay: 5, maxDelay: 40, ...opts });
  conn.closes = [];
  conn.on('state', (_, detail) => detail.code != null && conn.closes.push(detail.code));
  conn.on('error', () => {});
  return conn;
}

// setup starts a server and a relay, and a client A (through the relay)
// that has created doc with text.
async function setup(t, id, text) {
  const srv = await startServer();
  t.after(() => srv.stop());
  const relay = await startRelay(srv.wsURL);
  t.after(() => relay.close());
  const a = client(relay.url);
  t.after(() => a.close());
  const doc = a.get('docs', id);
  doc.subscribe();
  await waitFor('load', () => doc.version != null);
  doc.create(text);
  await waitFor('create acknowledged', () => a.connected && !doc.hasPending);
  return { srv, relay, a, doc };
}

// claim connects B with A's src, which the server then takes from A.
async function claim(t, srv, a) {
  const src = a.id;
  const b = client(srv.wsURL, { id: src });
  t.after(() => b.close());
  await waitFor('B connected', () => b.connected);
  assert.equal(b.id, src, 'B claimed the src');
  return { b, src };
}

async function settled(what, a, b, src, doc) {
  await waitFor(what, () => a.connected && a.id !== src && !doc.hasPending);
  // Both stay connected, each with its own src: nobody claims it back.
  await sleep(300);
  assert.ok(a.connected && b.connected, `A ${a.state}, B ${b.state}`);
  assert.notEqual(a.id, src);
  assert.equal(b.id, src);
  assert.deepEqual(a.closes, [4000]);
  assert.deepEqual(b.closes, []);
}

test('a connection whose src another connection claims (4000) takes a fresh src, and the two stop evicting each other', async (t) => {
  const { srv, a, doc } = await setup(t, 'claimed', 'abc');
  const { b, src } = await claim(t, srv, a);
  await settled('A on a fresh src', a, b, src, doc);
  doc.submitOp([3, '!']);
  await waitFor('edit saved', () => !doc.hasPending);
  assert.equal((await serverSnapshot(srv.base, 'docs', 'claimed')).data, 'abc!');
});

test('after a 4000, an op in flight that the server had committed (its ack lost) is not applied again', async (t) => {
  const { srv, relay, a, doc } = await setup(t, 'committed', 'abc');
  relay.state.dropDown = true;
  doc.submitOp([3, 'X']);
  for (let i = 0; (await serverSnapshot(srv.base, 'docs', 'committed')).data !== 'abcX'; i++) {
    assert.ok(i < 500, 'the op never reached the server');
    await sleep(10);
  }
  assert.ok(doc.hasPending, 'A never saw the ack');
  relay.state.dropDown = false;
  const { b, src } = await claim(t, srv, a);
  await settled('A settled its op', a, b, src, doc);
  assert.equal(doc.text.s, 'abcX');
  const ops = await serverOps(srv.base, 'docs', 'committed');
  assert.equal(ops.length, 2, `ops: ${JSON.stringify(ops)}`);
  assert.equal((await serverSnapshot(srv.base, 'docs', 'committed')).data, 'abcX');
});

test('after a 4000, an op in flight that never reached the server is sent again, under the new src', async (t) => {
  const { srv, relay, a, doc } = await setup(t, 'lost', 'abc');
  relay.state.dropUp = (msg) => msg.a === 'op';
  doc.submitOp([3, 'Y']);
  await sleep(100);
  const lostSrc = a.id;
  relay.state.dropUp = null;
  const { b, src } = await claim(t, srv, a);
  assert.equal(src, lostSrc);
  await settled('A resent its op', a, b, src, doc);
  const ops = await serverOps(srv.base, 'docs', 'lost');
  assert.equal(ops.length, 2, `ops: ${JSON.stringify(ops)}`);
  assert.equal(ops[1].src, a.id, 'committed under the new src');
  assert.equal((await serverSnapshot(srv.base, 'docs', 'lost')).data, 'abcY');
});
