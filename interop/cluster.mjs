// Helpers for the cluster interop tests: redis-server processes on free
// ports (one server, or a 3-master Redis Cluster), `coedit serve --redis`
// nodes that can be killed with SIGKILL and started again on their data
// directory, and sharedb clients that reconnect to another node when their
// socket closes, as an application using reconnecting-websocket would.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildCoedit, freePort, sleep, ShareDB, WebSocket } from './harness.mjs';

const procs = new Set();
process.on('exit', () => {
  for (const p of procs) {
    try {
      p.kill('SIGKILL');
    } catch {}
  }
});

// redisAvailable reports whether redis-server can run here. In CI it must.
export function redisAvailable() {
  const r = spawnSync('redis-server', ['--version']);
  const ok = r.status === 0;
  if (!ok && (process.env.CI === 'true' || process.env.CI === '1')) {
    throw new Error('redis-server is not installed; CI must install it (apt-get install redis-server)');
  }
  return ok;
}

// command sends one command to a Redis and returns its first reply line
// (or a bulk string's body).
export function command(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${args[0]} on ${port}: timeout`));
    }, 2000);
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('connect', () => {
      sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join(''));
    });
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\r\n');
      if (nl < 0) return;
      const first = buf.slice(0, nl);
      if (first[0] === '$') {
        const n = Number(first.slice(1));
        if (n < 0) return done('');
        if (buf.length < nl + 2 + n) return;
        return done(buf.slice(nl + 2, nl + 2 + n));
      }
      if (first[0] === '-') {
        clearTimeout(timer);
        sock.destroy();
        return reject(new Error(first.slice(1)));
      }
      done(first.slice(1));
    });
    function done(v) {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    }
  });
}

// startRedis runs redis-server on a free port in a temp dir (with the AOF
// and appendfsync always when aof is set) and waits for PONG.
export async function startRedis({ aof = false, args = [] } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'coedit-redis-'));
  const port = await freePort();
  const r = {
    port,
    addr: `127.0.0.1:${port}`,
    dir,
    proc: null,
    async start() {
      const a = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--protected-mode', 'no',
        '--logfile', 'redis.log', ...(aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']), ...args];
      const p = spawn('redis-server', a, { stdio: 'ignore' });
      procs.add(p);
      p.once('exit', () => procs.delete(p));
      this.proc = p;
      const deadline = Date.now() + 20000;
      for (;;) {
        try {
          if ((await command(port, 'PING')) === 'PONG') return;
        } catch {}
        if (p.exitCode !== null) throw new Error(`redis-server on ${port} exited`);
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer`);
        await sleep(20);
      }
    },
    async kill() {
      const p = this.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGCONT');
      const exited = new Promise((res) => p.once('exit', res));
      p.kill('SIGKILL');
      await exited;
    },
    async restart() {
      await this.kill();
      await this.start();
    },
    async restartEmpty() {
      await this.kill();
      for (const f of readdirSync(dir)) if (f !== 'redis.log') rmSync(path.join(dir, f), { recursive: true, force: true });
      await this.start();
    },
    pause() {
      this.proc.kill('SIGSTOP');
    },
    resume() {
      this.proc.kill('SIGCONT');
    },
    async stop() {
      await this.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await r.start();
  return r;
}

// startRedisCluster runs three cluster-mode redis-servers and joins them
// with redis-cli --cluster create. seeds is the list for --redis.
export async function startRedisCluster() {
  const servers = [];
  for (let i = 0; i < 3; i++) {
    const bus = await freePort();
    servers.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
      '--cluster-node-timeout', '2000', '--cluster-port', String(bus)] }));
  }
  const r = spawnSync('redis-cli', ['--cluster', 'create', ...servers.map((s) => s.addr), '--cluster-replicas', '0', '--cluster-yes']);
  if (r.status !== 0) throw new Error(`redis-cli --cluster create: ${r.stdout}${r.stderr}`);
  const deadline = Date.now() + 20000;
  for (const s of servers) {
    for (;;) {
      const info = await command(s.port, 'CLUSTER', 'INFO').catch(() => '');
      if (info.includes('cluster_state:ok')) break;
      if (Date.now() > deadline) throw new Error(`cluster node ${s.addr} not ok`);
      await sleep(50);
    }
  }
  return { servers, seeds: servers.map((s) => s.addr).join(','), stop: () => Promise.all(servers.map((s) => s.stop())) };
}

// startNode runs `coedit serve --redis` on a free port over dataDir (a new
// temp dir by default) and waits for /health. The node can be killed with
// SIGKILL and started again. args are further flags of coedit serve.
export async function startNode({ redis, prefix, id, dataDir, port, args = [] } = {}) {
  const bin = buildCoedit();
  const dir = dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'coedit-node-'));
  const n = {
    id,
    dataDir: dir,
    port: port ?? (await freePort()),
    pprofPort: await freePort(),
    proc: null,
    log: '',
    get base() {
      return `http://127.0.0.1:${this.port}`;
    },
    get wsURL() {
      return `ws://127.0.0.1:${this.port}/ws`;
    },
    async start() {
      this.log = '';
      const p = spawn(bin, ['serve', '--addr', `127.0.0.1:${this.port}`, '--data', dir, '--redis', redis,
        '--redis-prefix', prefix, '--node-id', id, '--ops-per-second', '1000',
        '--pprof', `127.0.0.1:${this.pprofPort}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      procs.add(p);
      this.expectExit = false;
      p.once('exit', (code, sig) => {
        procs.delete(p);
        if (!this.expectExit) console.error(`# coedit serve ${id} exited unexpectedly (${code ?? sig}):\n${this.log}`);
      });
      p.stdout.on('data', (d) => (this.log += d));
      p.stderr.on('data', (d) => (this.log += d));
      this.proc = p;
      const deadline = Date.now() + 20000;
      for (;;) {
        if (p.exitCode !== null) throw new Error(`coedit serve ${id} exited early:\n${this.log}`);
        try {
          if ((await fetch(`${this.base}/health`)).ok) return;
        } catch {}
        if (Date.now() > deadline) throw new Error(`coedit serve ${id} did not become healthy:\n${this.log}`);
        await sleep(50);
      }
    },
    async kill9() {
      const p = this.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      this.expectExit = true;
      const exited = new Promise((res) => p.once('exit', res));
      p.kill('SIGKILL');
      await exited;
    },
    async stop() {
      const p = this.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      this.expectExit = true;
      const exited = new Promise((res) => p.once('exit', res));
      p.kill('SIGTERM');
      await exited;
    },
  };
  await n.start();
  return n;
}

// Client is a sharedb Connection that, when its socket closes, connects
// again to the next node of urls() (round robin, skipping nodes that
// refuse), keeping its src so that its unacknowledged op is resent with the
// same src and seq. closes records every close: {code, url, byTest}.
export class Client {
  constructor(urls, first = 0) {
    this.urls = urls;
    this.next = first;
    this.closes = [];
    this.stopped = false;
    this.cutting = false;
    this.conn = new ShareDB.Connection(this.socket());
  }

  socket() {
    const url = this.urls()[this.next % this.urls().length];
    this.next++;
    const ws = new WebSocket(url);
    ws.on('error', () => {});
    ws.on('close', (code) => {
      this.closes.push({ code, url, byTest: this.cutting });
      if (this.stopped) return;
      setTimeout(() => {
        if (!this.stopped) this.conn.bindToSocket(this.socket());
      }, 50);
    });
    this.ws = ws;
    return ws;
  }

  // cut closes the socket from the client side (the test's doing).
  cut() {
    this.cutting = true;
    this.ws.terminate();
    setTimeout(() => (this.cutting = false), 10);
  }

  close() {
    this.stopped = true;
    this.conn.close();
  }
}

// opsOf returns a node's op log of a document.
export async function opsOf(base, c, id) {
  const r = await fetch(`${base}/api/docs/${encodeURIComponent(c)}/${encodeURIComponent(id)}/ops`);
  if (!r.ok) throw new Error(`GET ops on ${base}: ${r.status} ${await r.text()}`);
  return (await r.text()).split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

// goroutines counts a node's goroutines that must not outlive a
// disruption: all of them (its goroutine profile, from the --pprof
// listener) less the one each open WebSocket connection runs (its reader;
// a writer runs only while frames are queued, so the count settles back
// once nothing is sent), the one each running document session runs, and the HTTP
// server's own, which come and go with the test's HTTP requests (a
// keep-alive connection between requests, the read that watches a request
// in progress, a goroutine not yet started). Clients that retried
// elsewhere move connections and sessions between nodes; the rest is what
// a leak shows in. byStart counts the goroutines by the function each was
// started with, for a failure message.
export async function goroutines(n) {
  const profile = await (await fetch(`http://127.0.0.1:${n.pprofPort}/debug/pprof/goroutine?debug=1`)).text();
  const metrics = await (await fetch(`${n.base}/metrics`)).text();
  const gauge = (name) => {
    const m = metrics.match(new RegExp(`^${name} (\\d+)`, 'm'));
    if (!m) throw new Error(`${n.base}/metrics has no ${name}`);
    return Number(m[1]);
  };
  let total = 0;
  let http = 0;
  const byStart = {};
  for (const group of profile.split('\n\n')) {
    const head = group.match(/^(\d+) @/m);
    if (!head) continue;
    const count = Number(head[1]);
    const frames = [...group.matchAll(/^#\s+0x[0-9a-f]+\s+(\S+?)(?:\+0x[0-9a-f]+)?\s/gm)].map((m) => m[1]);
    const start = frames.at(-1) ?? '(not started)';
    byStart[start] = (byStart[start] ?? 0) + count;
    total += count;
    const websocket = frames.some((f) => f.startsWith('github.com/coedit/coedit/web.(*conn)'));
    if (frames.length === 0 || start === 'net/http.(*connReader).backgroundRead' || (start === 'net/http.(*conn).serve' && !websocket)) http += count;
  }
  return { count: total - http - gauge('coedit_connections') - gauge('coedit_sessions'), byStart };
}
