// Interop: presence (the real sharedb@7 client's doc presence API) and the
// document list across two `coedit serve --redis` processes: carets cross
// nodes, are re-sent to a client that joins later, and disappear on the
// other node when their node is killed with SIGKILL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cb, connect, sleep, TEXT } from './harness.mjs';
import { redisAvailable, startRedis, startNode } from './cluster.mjs';

const skip = redisAvailable() || process.env.CI ? false : 'redis-server is not installed';
const NODE_TTL_MS = 1000;

let redis;
let nodes = [];

before(async () => {
  if (skip) return;
  redis = await startRedis();
  for (const id of ['pa', 'pb']) {
    nodes.push(await startNode({ redis: redis.addr, prefix: 'pres:', id, args: ['--node-ttl', `${NODE_TTL_MS}ms`] }));
  }
});
after(async () => {
  for (const n of nodes) await n.stop();
  await redis?.stop();
});

async function until(ms, what, cond) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

test('carets cross nodes, reach a late joiner, and vanish when their node is killed', { skip }, async () => {
  const [a, b] = nodes;
  // x on node A, y and (later) z on node B. x does not reconnect: when A
  // dies, x is gone with it.
  const x = connect(a.wsURL);
  const y = connect(b.wsURL);
  const docX = x.get('docs', 'carets');
  await cb((k) => docX.create('hello world', TEXT, k));
  await cb((k) => docX.subscribe(k));
  const docY = y.get('docs', 'carets');
  await cb((k) => docY.subscribe(k));
  const presX = x.getDocPresence('docs', 'carets');
  const presY = y.getDocPresence('docs', 'carets');
  await cb((k) => presX.subscribe(k));
  await cb((k) => presY.subscribe(k));

  const caret = presX.create('caret-x');
  await cb((k) => caret.submit({ index: 6, length: 5 }, k));
  await until(5000, "x's caret on node B", () => presY.remotePresences['caret-x']);
  assert.deepEqual(presY.remotePresences['caret-x'], { index: 6, length: 5 });

  // y types before the selection on B; x's caret follows on both sides.
  await cb((k) => docY.submitOp(['>> '], k));
  assert.deepEqual(presY.remotePresences['caret-x'], { index: 9, length: 5 });
  await until(5000, 'x to get the op', () => docX.version === docY.version);
  assert.deepEqual(caret.value, { index: 9, length: 5 });

  // x moves; y sees the move.
  await cb((k) => caret.submit({ index: 0, length: 0 }, k));
  await until(5000, "x's move on node B", () => presY.remotePresences['caret-x']?.index === 0);

  // z joins on B later: its subscribe asks x (on A) to re-send.
  const z = connect(b.wsURL);
  const docZ = z.get('docs', 'carets');
  await cb((k) => docZ.subscribe(k));
  const presZ = z.getDocPresence('docs', 'carets');
  await cb((k) => presZ.subscribe(k));
  await until(5000, "x's caret for the late joiner z", () => presZ.remotePresences['caret-x']);
  assert.deepEqual(presZ.remotePresences['caret-x'], { index: 0, length: 0 });

  // The document list of node B shows the document created on node A.
  const list = await (await fetch(`${b.base}/api/docs?collection=docs`)).json();
  assert.ok(list.docs.some((d) => d.id === 'carets' && d.v === 2), `node B lists ${JSON.stringify(list.docs)}`);

  // A dies without a word: x's caret goes from B's clients within about
  // two node TTLs (the key expires, then B waits a TTL with no news).
  const killed = Date.now();
  await a.kill9();
  await until(2 * NODE_TTL_MS + 3000, "x's caret cleared on node B", () => !presY.remotePresences['caret-x'] && !presZ.remotePresences['caret-x']);
  const took = Date.now() - killed;
  assert.ok(took >= NODE_TTL_MS / 2, `x's caret was cleared after ${took} ms, before A's heartbeat could expire`);
  y.close();
  z.close();
});
