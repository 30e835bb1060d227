// Test harness for running the real sharedb@7 client against a `coedit serve`
// process: builds the binary once, starts servers on free ports, and wraps
// ot-text-unicode with the {index,length} presence transform coedit uses.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ShareDB from 'sharedb/lib/client/index.js';
import otText from 'ot-text-unicode';
import WebSocket, { WebSocketServer } from 'ws';
import * as ot from '../web/static/js/ot.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// The text type as the sharedb client registers it: the reference's
// algebra with the page's presence rule (web/static/js/ot.js: an insert
// exactly at a caret moves it only when the op is the caret owner's own),
// imported rather than copied so the tests exercise the page's code.
export const textType = {
  ...otText.type,
  transformPresence: ot.transformPresence,
};
export const transformPosition = ot.transformPosition;
ShareDB.types.register(textType);
export const TEXT = otText.type.uri;
export { ShareDB, WebSocket, WebSocketServer };

let binPath;
// buildCoedit builds cmd/coedit once per test process.
export function buildCoedit() {
  if (binPath) return binPath;
  if (process.env.COEDIT_BIN) return (binPath = process.env.COEDIT_BIN);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'coedit-bin-'));
  const out = path.join(dir, 'coedit');
  const r = spawnSync('go', ['build', '-o', out, './cmd/coedit'], { cwd: repoRoot, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('go build ./cmd/coedit failed');
  return (binPath = out);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// startServer runs `coedit serve` on a free port with a temp data dir and
// waits until /health answers.
export async function startServer({ dataDir, extraArgs = [] } = {}) {
  const bin = buildCoedit();
  const port = await freePort();
  const dir = dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'coedit-data-'));
  const proc = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`, '--data', dir, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`coedit serve exited early:\n${log}`);
    try {
      const r = await fetch(`${base}/health`);
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`coedit serve did not become healthy:\n${log}`);
    await sleep(50);
  }
  return {
    port,
    base,
    wsURL: `ws://127.0.0.1:${port}/ws`,
    dataDir: dir,
    log: () => log,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function connect(wsURL) {
  const socket = new WebSocket(wsURL);
  const conn = new ShareDB.Connection(socket);
  return conn;
}

export function waitState(conn, state, ms = 5000) {
  if (conn.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`connection never reached ${state} (is ${conn.state})`)), ms);
    const on = (s) => {
      if (s === state) {
        clearTimeout(t);
        conn.removeListener('state', on);
        resolve();
      }
    };
    conn.on('state', on);
  });
}

// cb turns a node-style call into a promise.
export function cb(fn) {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

export async function serverSnapshot(base, c, id) {
  const r = await fetch(`${base}/api/docs/${encodeURIComponent(c)}/${encodeURIComponent(id)}`);
  if (!r.ok) throw new Error(`GET snapshot: ${r.status} ${await r.text()}`);
  return r.json();
}

export async function serverOps(base, c, id) {
  const r = await fetch(`${base}/api/docs/${encodeURIComponent(c)}/${encodeURIComponent(id)}/ops`);
  if (!r.ok) throw new Error(`GET ops: ${r.status} ${await r.text()}`);
  const text = await r.text();
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

// A WebSocket relay between a client and the server whose directions can
// be cut: state.dropDown drops every server-to-client message (to lose an
// ack while the op itself reaches the server), state.dropUp(msg) drops the
// client-to-server messages it returns true for. A close the server sends
// reaches the client with its code (4000, 1013, ...).
export async function startRelay(targetURL) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const state = { dropDown: false, dropUp: null, onUp: null, pairs: [] };
  wss.on('connection', (client) => {
    const upstream = new WebSocket(targetURL);
    // Cutting a socket that is still connecting emits an error; a cut is
    // what the test wants, so errors are not failures here.
    upstream.on('error', () => {});
    client.on('error', () => {});
    const queue = [];
    upstream.on('open', () => queue.splice(0).forEach((m) => upstream.send(m)));
    client.on('message', (data) => {
      const msg = data.toString();
      const parsed = JSON.parse(msg);
      if (state.onUp) state.onUp(parsed, msg);
      if (state.dropUp?.(parsed)) return;
      if (upstream.readyState === WebSocket.OPEN) upstream.send(msg);
      else queue.push(msg);
    });
    upstream.on('message', (data) => {
      if (!state.dropDown && client.readyState === WebSocket.OPEN) client.send(data.toString());
    });
    client.on('close', () => upstream.terminate());
    upstream.on('close', (code, reason) => {
      if (validCloseCode(code) && client.readyState === WebSocket.OPEN) client.close(code, reason);
      else client.terminate();
    });
    state.pairs.push({ client, upstream });
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}`,
    state,
    cutAll() {
      for (const p of state.pairs) {
        p.client.terminate();
        p.upstream.terminate();
      }
    },
    close: () => new Promise((r) => wss.close(r)),
  };
}

// validCloseCode reports whether a close frame may carry code (1005 and
// 1006 only describe a close without one).
const validCloseCode = (code) => (code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999);
