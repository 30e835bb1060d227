// Interop: real sharedb@7 clients spread over three `coedit serve --redis`
// processes sharing one redis-server (and, last, a 3-master Redis Cluster),
// with nodes and Redis killed, paused and restarted under them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cb, sleep, startRelay, waitState, WebSocket } from './harness.mjs';
import { redisAvailable, startRedis, startRedisCluster, startNode, Client, opsOf, goroutines, command } from './cluster.mjs';

// Outside CI a machine without redis-server skips these; in CI (CI=true)
// they run and fail instead, since scripts/test.sh installs it.
const skip = redisAvailable() || process.env.CI ? false : 'redis-server is not installed';
const COLL = 'cl';

let redis;
let nodes = [];
const urls = () => nodes.map((n) => n.wsURL);

before(async () => {
  if (skip) return;
  redis = await startRedis({ aof: true });
  for (const id of ['a', 'b', 'c']) nodes.push(await startNode({ redis: redis.addr, prefix: 'it:', id }));
});
after(async () => {
  for (const n of nodes) await n.stop();
  await redis?.stop();
});

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

function within(ms, what, p) {
  let t;
  return Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

// clientsOn returns n clients spread over the nodes (client i starts on
// node i mod 3), closed when test t ends: a client left open reconnects
// for ever, so a failed test would keep the process from exiting.
function clientsOn(t, n, list = urls) {
  const clients = Array.from({ length: n }, (_, i) => new Client(list, i));
  t.after(() => closeAll(clients));
  return clients;
}

// Editing is a workload: each client inserts unique tokens (<run.client.op>)
// at random places of random documents; acked collects the tokens whose
// submit was acknowledged, errors the submits that failed.
class Editing {
  constructor(clients, ids, seed) {
    this.clients = clients;
    this.ids = ids;
    this.rand = rng(seed);
    this.acked = new Set();
    this.errors = [];
    this.docs = clients.map((c) => ids.map((id) => c.conn.get(COLL, id)));
    this.onAck = null;
    this.replaced = null; // the Docs dropped by followReplaced
    this.dropped = []; // tokens of their unacknowledged submits
  }

  // followReplaced makes every client follow the README's recipe for
  // ERR_HISTORY_REPLACED: the cluster replaced history its copy holds (a
  // fork, as when Redis lost acknowledged records and another node moved
  // on before this one offered them again), so the Doc is dropped and a
  // new one subscribes without a version. Its unacknowledged submits are
  // lost with it (the stock client has no rebase); they go to dropped,
  // not errors. Acknowledged ones were offered again by their node and
  // must still be in the text once (converge).
  followReplaced() {
    this.replaced = new Set();
    this.docs.forEach((row, ci) => row.forEach((d, j) => this.follow(ci, j, d)));
  }

  follow(ci, j, doc) {
    doc.on('error', (err) => {
      if (err.code === 'ERR_HISTORY_REPLACED') this.replace(ci, j, doc);
    });
  }

  replace(ci, j, doc) {
    if (this.replaced.has(doc)) return;
    this.replaced.add(doc);
    const conn = doc.connection;
    doc.destroy(() => {
      const fresh = conn.get(doc.collection, doc.id);
      this.follow(ci, j, fresh);
      this.docs[ci][j] = fresh;
      fresh.subscribe(() => {});
    });
  }

  async subscribe() {
    for (const row of this.docs) for (const d of row) await within(10000, 'subscribe', cb((k) => d.subscribe(k)));
  }

  // run makes each client submit n ops, pausing up to gap ms between them;
  // during(i) is awaited before op i of client 0 (to break things midway).
  async run(n, gap = 8, during = null) {
    const round = (this.round = (this.round ?? 0) + 1);
    await Promise.all(this.clients.map(async (c, ci) => {
      for (let i = 0; i < n; i++) {
        if (ci === 0 && during) await during(i);
        const j = Math.floor(this.rand() * this.ids.length);
        const doc = this.docs[ci][j];
        const token = `<${round}.${ci}.${i}>`;
        // Tokens go between tokens, never inside one, so that each stays
        // whole in the text (concurrent inserts at one place do not mix).
        const bounds = [0];
        for (let p = 0; p < doc.data.length; p++) if (doc.data[p] === '>') bounds.push(p + 1);
        const pos = bounds[Math.floor(this.rand() * bounds.length)];
        doc.submitOp(pos > 0 ? [pos, token] : [token], (err) => {
          if (err && this.replaced && (this.replaced.has(doc) || err.code === 'ERR_HISTORY_REPLACED')) {
            this.dropped.push(token);
            if (err.code === 'ERR_HISTORY_REPLACED') this.replace(ci, j, doc);
          } else if (err) this.errors.push(`${token}: ${err.code} ${err.message}`);
          else {
            this.acked.add(token);
            this.onAck?.(token);
          }
        });
        await sleep(Math.floor(this.rand() * gap));
      }
    }));
    for (const row of this.docs) for (const d of row) await within(30000, 'acks', new Promise((r) => d.whenNothingPending(r)));
  }
}

// converge waits until every node and client has the same text and version
// of each document, checks that every node's op log is the same, with
// versions 0..n-1 and each (src, seq) once, and that each acknowledged
// token is in the texts exactly once.
async function converge(live, work) {
  const texts = [];
  const logsByDoc = [];
  for (const id of work.ids) {
    let snaps;
    const deadline = Date.now() + 15000;
    for (;;) {
      snaps = await Promise.all(live.map(async (n) => (await fetch(`${n.base}/api/docs/${COLL}/${id}`)).json()));
      const same = snaps.every((s) => s.v === snaps[0].v && s.data === snaps[0].data);
      const clients = work.docs.every((row) => row[work.ids.indexOf(id)].version === snaps[0].v);
      if (same && clients) break;
      if (Date.now() > deadline) {
        assert.fail(`${id} did not converge: nodes ${JSON.stringify(snaps.map((s) => s.v))}, clients ${work.docs.map((row) => row[work.ids.indexOf(id)].version)}`);
      }
      await sleep(50);
    }
    for (const row of work.docs) assert.equal(row[work.ids.indexOf(id)].data, snaps[0].data, `a client's text of ${id}`);
    const logs = await Promise.all(live.map((n) => opsOf(n.base, COLL, id)));
    for (const [i, log] of logs.entries()) {
      assert.deepEqual(log, logs[0], `node ${live[i].id}'s op log of ${id} differs from node ${live[0].id}'s`);
    }
    const seen = new Set();
    logs[0].forEach((op, i) => {
      assert.equal(op.v, i, `op log of ${id}: version ${op.v} at ${i}`);
      const k = `${op.src}/${op.seq}`;
      assert.ok(!seen.has(k), `(src, seq) ${k} twice in the op log of ${id}`);
      seen.add(k);
    });
    texts.push(snaps[0].data);
    logsByDoc.push(logs[0]);
  }
  const all = texts.join('\n');
  for (const token of work.acked) {
    const n = all.split(token).length - 1;
    if (n !== 1) {
      const where = logsByDoc.flatMap((log, i) => log.filter((op) => JSON.stringify(op).includes(token)).map((op) => `${work.ids[i]}: ${JSON.stringify(op)}`));
      assert.fail(`acknowledged ${token} is in the texts ${n} times; in the op logs: ${where.join('; ') || 'nowhere'}`);
    }
  }
  assert.deepEqual(work.errors, [], 'no submit failed');
}

function closeAll(clients) {
  for (const c of clients) c.close();
}

test('clients on three nodes converge, each acknowledged op once in every op log', { skip }, async (t) => {
  const clients = clientsOn(t, 6);
  const work = new Editing(clients, ['conv-1', 'conv-2'], 101);
  await cb((k) => work.docs[0][0].create('', 'http://sharejs.org/types/text-unicode', k));
  await cb((k) => work.docs[1][1].create('', 'http://sharejs.org/types/text-unicode', k));
  await work.subscribe();
  await work.run(30);
  await converge(nodes, work);
});

test('an op whose ack was lost, resent to another node, lands once', { skip }, async (t) => {
  const setup = new Client(urls, 0);
  t.after(() => setup.close());
  await cb((k) => setup.conn.get(COLL, 'lost-ack').create('base', 'http://sharejs.org/types/text-unicode', k));
  setup.close();
  const relay = await startRelay(nodes[0].wsURL);
  const ShareDB = (await import('sharedb/lib/client/index.js')).default;
  const conn = new ShareDB.Connection(new WebSocket(relay.url));
  t.after(() => conn.close());
  t.after(() => relay.close());
  const doc = conn.get(COLL, 'lost-ack');
  await cb((k) => doc.subscribe(k));
  const src = conn.id;
  let sent;
  const cut = new Promise((r) => {
    relay.state.onUp = (msg) => {
      if (msg.a !== 'op' || !msg.op) return;
      relay.state.dropDown = true; // the op reaches node a; its ack is lost
      setTimeout(() => {
        relay.cutAll();
        sent = msg;
        r();
      }, 150);
    };
  });
  doc.submitOp([4, '!']);
  await cut;
  // The client must have seen the cut before it is bound to a new socket:
  // sharedb refuses to go from connected straight to connecting.
  await waitState(conn, 'disconnected');
  const deadline = Date.now() + 5000;
  while ((await opsOf(nodes[0].base, COLL, 'lost-ack')).filter((o) => o.src === src).length === 0) {
    assert.ok(Date.now() < deadline, 'node a committed the op');
    await sleep(20);
  }
  conn.bindToSocket(new WebSocket(nodes[1].wsURL)); // resent to node b
  await within(10000, 'ack', new Promise((r) => doc.whenNothingPending(r)));
  assert.equal(conn.id, src, 'the client reclaimed its src on node b');
  assert.equal(doc.data, 'base!');
  for (const n of nodes) {
    const mine = (await opsOf(n.base, COLL, 'lost-ack')).filter((o) => o.src === src && o.seq === sent.seq);
    assert.equal(mine.length, 1, `node ${n.id} has the op once`);
  }
});

test('CLIENT KILL TYPE pubsub: a subscriber on another node gets every op in order', { skip }, async (t) => {
  const [writer, reader] = [new Client(urls, 0), new Client(urls, 1)];
  t.after(() => closeAll([writer, reader]));
  const w = writer.conn.get(COLL, 'pubsub');
  await cb((k) => w.create('', 'http://sharejs.org/types/text-unicode', k));
  const r = reader.conn.get(COLL, 'pubsub');
  await cb((k) => r.subscribe(k));
  const versions = [];
  r.on('op', () => versions.push(r.version));
  const n = 90;
  for (let i = 0; i < n; i++) {
    if (i === 30 || i === 60) await command(redis.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    await cb((k) => w.submitOp([String(i % 10)], k));
  }
  const deadline = Date.now() + 10000;
  while (r.version < w.version && Date.now() < deadline) await sleep(20);
  assert.equal(r.data, w.data);
  assert.deepEqual(versions, Array.from({ length: n }, (_, i) => i + 2), 'every op once, in order');
});

test('kill -9 of a node under load: its clients move on, nothing acknowledged is lost, it catches up', { skip }, async (t) => {
  const clients = clientsOn(t, 6);
  const work = new Editing(clients, ['kill-1', 'kill-2'], 202);
  await cb((k) => work.docs[0][0].create('', 'http://sharejs.org/types/text-unicode', k));
  await cb((k) => work.docs[0][1].create('', 'http://sharejs.org/types/text-unicode', k));
  await work.subscribe();
  const victim = nodes[2];
  await work.run(40, 8, async (i) => {
    if (i === 12) await victim.kill9();
  });
  const live = nodes.slice(0, 2);
  // A document born while the node is down.
  const born = clients[0].conn.get(COLL, 'kill-born');
  await cb((k) => born.create('new', 'http://sharejs.org/types/text-unicode', k));
  await converge(live, work);
  await victim.start();
  await converge(nodes, work);
  const logs = await Promise.all(nodes.map((n) => opsOf(n.base, COLL, 'kill-born')));
  for (const log of logs) assert.deepEqual(log, logs[0], 'the restarted node has the document it never saw');
});

test('Redis kill -9 with appendfsync always: nothing lost, writes resume, no WebSocket closed', { skip }, async (t) => {
  const clients = clientsOn(t, 6);
  const work = new Editing(clients, ['aof-1', 'aof-2'], 303);
  await cb((k) => work.docs[0][0].create('', 'http://sharejs.org/types/text-unicode', k));
  await cb((k) => work.docs[0][1].create('', 'http://sharejs.org/types/text-unicode', k));
  await work.subscribe();
  let upAt = 0;
  let resumedAfter = -1;
  work.onAck = () => {
    if (upAt && resumedAfter < 0) resumedAfter = Date.now() - upAt;
  };
  await work.run(30, 8, async (i) => {
    if (i === 10) {
      await redis.kill();
      await sleep(300);
      await redis.start();
      upAt = Date.now();
    }
  });
  await converge(nodes, work);
  console.log(`# writes resumed ${resumedAfter} ms after Redis accepted connections again`);
  assert.ok(resumedAfter >= 0, 'an op was acknowledged after the restart');
  const byServer = clients.flatMap((c) => c.closes.filter((x) => !x.byTest));
  assert.deepEqual(byServer, [], 'no node closed a WebSocket');
});

test('Redis paused 10 s: submits wait or are resent, nothing lost, goroutines (beyond connections and sessions) back to baseline', { skip }, async (t) => {
  const clients = clientsOn(t, 6);
  const work = new Editing(clients, ['pause-1', 'pause-2'], 404);
  await cb((k) => work.docs[0][0].create('', 'http://sharejs.org/types/text-unicode', k));
  await cb((k) => work.docs[0][1].create('', 'http://sharejs.org/types/text-unicode', k));
  await work.subscribe();
  // Every node commits before the baseline, so that goroutines a node
  // starts once, at its first commit (the writer of the cluster's document
  // list), are in it.
  await work.run(2);
  await converge(nodes, work);
  const baseline = await Promise.all(nodes.map((n) => goroutines(n)));
  let resumedAt = 0;
  await work.run(20, 8, async (i) => {
    if (i === 5) {
      redis.pause();
      await sleep(10000);
      redis.resume();
      resumedAt = Date.now();
    }
  });
  await converge(nodes, work);
  console.log(`# converged ${Date.now() - resumedAt} ms after Redis resumed; sockets closed for a retry: ${clients.flatMap((c) => c.closes).filter((x) => x.code === 1012).length}`);
  const deadline = Date.now() + 15000;
  for (const [i, n] of nodes.entries()) {
    let g;
    while ((g = await goroutines(n)).count > baseline[i].count) {
      if (Date.now() > deadline) {
        const was = baseline[i].byStart;
        const more = Object.keys(g.byStart).filter((f) => g.byStart[f] !== (was[f] ?? 0)).map((f) => `${f} ${was[f] ?? 0} -> ${g.byStart[f]}`);
        assert.fail(`node ${n.id}: ${g.count} goroutines beyond connections, sessions and HTTP, baseline ${baseline[i].count}; by start function: ${more.join(', ')}`);
      }
      await sleep(100);
    }
  }
});

test('Redis restarted empty with one node behind: reseeded from the nodes, no version reused, nothing lost', { skip }, async (t) => {
  const behind = nodes[2];
  const live = nodes.slice(0, 2);
  const liveURLs = () => live.map((n) => n.wsURL);
  const clients = clientsOn(t, 4, liveURLs);
  const work = new Editing(clients, ['empty-1'], 505);
  await cb((k) => work.docs[0][0].create('', 'http://sharejs.org/types/text-unicode', k));
  await work.subscribe();
  // Redis comes back without records both live nodes acknowledged; a node
  // that had one the other had not yet seen offers it again, and if the
  // other committed at its version first, clients holding it are told
  // their copy was replaced (a fork, by design: decisions.md).
  work.followReplaced();
  await work.run(5);
  await converge(nodes, work); // node c has the start of the document
  await behind.stop();
  let upAt = 0;
  let reseeded = -1;
  work.onAck = () => {
    if (upAt && reseeded < 0) reseeded = Date.now() - upAt;
  };
  await work.run(25, 8, async (i) => {
    if (i === 10) {
      await redis.restartEmpty();
      upAt = Date.now();
    }
  });
  await converge(live, work);
  console.log(`# first write acknowledged ${reseeded} ms after Redis came back empty (reseed from the nodes' stores); copies replaced by a fork: ${work.replaced.size}, unacknowledged submits dropped with them: ${work.dropped.length}`);
  await behind.start();
  await converge(nodes, work);
});

test('three nodes over a 3-master Redis Cluster converge', { skip }, async (t) => {
  const rc = await startRedisCluster();
  const cnodes = [];
  try {
    for (const id of ['ca', 'cb', 'cc']) cnodes.push(await startNode({ redis: rc.seeds, prefix: 'rc:', id }));
    const clients = clientsOn(t, 6, () => cnodes.map((n) => n.wsURL));
    const work = new Editing(clients, ['rc-1', 'rc-2', 'rc-3'], 606);
    for (const [i, id] of work.ids.entries()) {
      await cb((k) => work.docs[i][i].create('', 'http://sharejs.org/types/text-unicode', k));
    }
    await work.subscribe();
    await work.run(20);
    await converge(cnodes, work);
  } finally {
    for (const n of cnodes) await n.stop();
    await rc.stop();
  }
});
