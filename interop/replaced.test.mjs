// Interop: a real sharedb@7 client whose copy of a document came from a
// history the cluster replaced. Redis restarts empty while node A is ahead
// of node B; B seeds the document from its store and takes a new edit; A
// then finds its records replaced, offers them again and closes its
// subscriber with 4002. The client reconnects to B: it must not be caught
// up by version (its version names text the cluster no longer has); it is
// refused with ERR_HISTORY_REPLACED and, following the README's recipe,
// ends with the cluster's text.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cb, sleep, TEXT } from './harness.mjs';
import { redisAvailable, startRedis, startNode, Client } from './cluster.mjs';

const skip = redisAvailable() || process.env.CI ? false : 'redis-server is not installed';
const COLL = 'rp';

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

function within(ms, what, p) {
  let t;
  return Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

// followReplaced is the README's recovery recipe for the stock client:
// when a document is refused with ERR_HISTORY_REPLACED its copy came from
// a history the cluster replaced, so drop the Doc (connection.get then
// makes a new one, which subscribes without a version and takes the
// cluster's snapshot) and hand the new Doc to the application.
function followReplaced(doc, onDoc) {
  doc.on('error', (err) => {
    if (err.code !== 'ERR_HISTORY_REPLACED') return;
    const conn = doc.connection;
    doc.destroy(() => {
      const fresh = conn.get(doc.collection, doc.id);
      followReplaced(fresh, onDoc);
      fresh.subscribe((err) => {
        if (!err) onDoc(fresh);
      });
    });
  });
}

async function snapshotOf(node, id) {
  return (await fetch(`${node.base}/api/docs/${COLL}/${id}`)).json();
}

test('a sharedb client holding a replaced history is refused, not caught up by version, and recovers by the recipe', { skip }, async () => {
  const redis = await startRedis();
  cleanup.push(() => redis.stop());
  const a = await startNode({ redis: redis.addr, prefix: 'rp:', id: 'a' });
  const b = await startNode({ redis: redis.addr, prefix: 'rp:', id: 'b' });
  cleanup.push(() => a.stop(), () => b.stop());
  const id = 'forked';

  // x edits on A; B reads the first records and is stopped.
  const x = new Client(() => [a.wsURL, b.wsURL], 0);
  cleanup.push(() => x.close());
  let doc = x.conn.get(COLL, id);
  const replacedDocs = [];
  followReplaced(doc, (fresh) => {
    replacedDocs.push(fresh);
    doc = fresh;
  });
  await cb((k) => doc.create('', TEXT, k));
  await cb((k) => doc.subscribe(k));
  for (let i = 1; i <= 3; i++) await cb((k) => doc.submitOp([`<x${i}>`], k));
  const early = new Client(() => [b.wsURL], 0);
  const eb = early.conn.get(COLL, id);
  await cb((k) => eb.fetch(k));
  assert.equal(eb.version, 4, 'B holds the document up to version 4');
  early.close();
  await b.stop();

  // A goes on alone; then it is frozen while Redis restarts empty and B,
  // started again on its store, seeds the document and takes an edit.
  for (let i = 4; i <= 6; i++) await cb((k) => doc.submitOp([`<x${i}>`], k));
  assert.equal(doc.version, 7);
  a.proc.kill('SIGSTOP');
  let frozen = true;
  cleanup.push(() => frozen && a.proc.kill('SIGCONT'));
  await redis.restartEmpty();
  await b.start();
  const z = new Client(() => [b.wsURL], 0);
  cleanup.push(() => z.close());
  const zd = z.conn.get(COLL, id);
  await within(30000, 'z subscribes on B', cb((k) => zd.subscribe(k)));
  assert.equal(zd.version, 4, 'B seeded the document from its store at version 4');
  await within(30000, 'z edits on B', cb((k) => zd.submitOp([zd.data.length, '<z1>'], k)));

  // A wakes up; a read there makes its session sync: it finds its
  // records from version 4 replaced, offers them again and closes x with
  // 4002. x reconnects to B with its copy at version 7.
  a.proc.kill('SIGCONT');
  frozen = false;
  const w = new Client(() => [a.wsURL], 0);
  cleanup.push(() => w.close());
  const wd = w.conn.get(COLL, id);
  await within(30000, 'a read on A', cb((k) => wd.fetch(k)));

  const deadline = Date.now() + 30000;
  let want;
  for (;;) {
    want = await snapshotOf(b, id);
    const onA = await snapshotOf(a, id);
    if (replacedDocs.length > 0 && doc.version === want.v && onA.v === want.v && doc.data === want.data) break;
    if (Date.now() > deadline) {
      assert.fail(`x did not get the cluster's text: x v${doc.version} ${JSON.stringify(doc.data)}, cluster v${want.v} ${JSON.stringify(want.data)}; ` +
        `closes ${JSON.stringify(x.closes.map((c) => c.code))}, recovered ${replacedDocs.length}`);
    }
    await sleep(50);
  }
  assert.ok(x.closes.some((c) => c.code === 4002), `A closed x with 4002 (closes: ${JSON.stringify(x.closes)})`);
  for (const t of ['<x1>', '<x2>', '<x3>', '<x4>', '<x5>', '<x6>', '<z1>']) {
    assert.equal(want.data.split(t).length - 1, 1, `${t} is in the cluster's text once: ${want.data}`);
  }
  // x goes on editing the new history by version, like any client.
  await within(30000, 'x edits after recovering', cb((k) => doc.submitOp(['<x7>'], k)));
  await within(30000, 'z sees it', (async () => {
    while (!zd.data.includes('<x7>')) await sleep(20);
  })());
  assert.equal(zd.data, doc.data);
});
