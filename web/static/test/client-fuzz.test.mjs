// Three page clients against an in-process stand-in for coedit
// (resend answered with missed ops then ack, (src, seq) dedupe, ERR_STALE_SEQ /
// ERR_SEQ_REUSED, refusals, closes 1006/1012/1013 with queued acks written first
// for 1012/1013), seeded. Edits insert unique tokens (with astral characters), so
// after healing every token not rolled back must be in the text exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ref from 'ot-text-unicode';
import { Connection } from '../js/connection.js';
import { FakeClock } from './fakes.mjs';
import { rng, int } from './gen.mjs';

const URI = 'http://sharejs.org/types/text-unicode';
const T = ref.type;

function world(seed, opts = {}) {
  const r = rng(seed);
  const clock = new FakeClock();
  const server = { text: 'hello 😀 world', log: [], head: 1, conns: new Set(), seqs: new Map(), nextSrc: 1 };
  server.texts = [];
  server.texts[1] = server.text;
  server.log[0] = { v: 0, src: 'init', seq: 1, create: { type: URI, data: server.text } };
  const pendingOpen = [];

  class NetSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.out = [];
      this.src = null;
      this.subscribed = false;
      pendingOpen.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('send on closed socket');
      handle(this, JSON.parse(data));
    }
    close() {
      this.readyState = 3;
      server.conns.delete(this);
    }
  }

  const push = (c, m) => c.out.push(m);
  const opMsg = (rec) => {
    const m = { a: 'op', c: 'docs', d: 'x', v: rec.v, src: rec.src, seq: rec.seq };
    if (rec.create) m.create = rec.create;
    else m.op = rec.op;
    return m;
  };

  function handle(c, m) {
    switch (m.a) {
      case 'hs':
        c.src = m.id && ![...server.conns].some((o) => o.src === m.id) ? m.id : `s${server.nextSrc++}`;
        server.conns.add(c);
        push(c, { a: 'hs', protocol: 1, protocolMinor: 2, id: c.src, type: 'http://sharejs.org/types/JSONv0' });
        return;
      case 's':
      case 'f':
        if (m.a === 's') c.subscribed = true;
        if (m.v == null) {
          push(c, { a: m.a, c: 'docs', d: 'x', data: { v: server.head, type: URI, data: server.text } });
          return;
        }
        for (let v = m.v; v < server.head; v++) push(c, opMsg(server.log[v]));
        push(c, { a: m.a, c: 'docs', d: 'x' });
        return;
      case 'op':
        return submit(c, m);
      case 'nf':
        if (m.v > server.head || m.v < 1) return push(c, { ...m, error: { code: 'ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT', message: 'x' } });
        return push(c, { a: 'nf', id: m.id, v: m.v, type: URI, data: server.texts[m.v], m: null });
      default:
        return; // presence etc.
    }
  }

  function submit(c, m) {
    const err = (code) => push(c, { ...m, error: { code, message: code } });
    if (m.src != null && m.src !== c.src) return err('ERR_SRC_MISMATCH');
    const src = c.src;
    let v = m.v;
    if (v > server.head) return err('ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT');
    for (let i = v; i < server.head; i++) {
      const rec = server.log[i];
      if (rec.src === src && rec.seq === m.seq) {
        for (let j = v; j < i; j++) push(c, opMsg(server.log[j]));
        push(c, { a: 'op', c: 'docs', d: 'x', v: i, src, seq: m.seq });
        return;
      }
    }
    const last = server.seqs.get(src);
    if (last && m.seq < last.seq) return err('ERR_STALE_SEQ');
    if (last && m.seq === last.seq) return err('ERR_SEQ_REUSED');
    if (r() < (opts.refuse ?? 0.05)) return err('ERR_RATE_LIMITED');
    let op = m.op;
    for (let i = v; i < server.head; i++) {
      push(c, opMsg(server.log[i]));
      op = T.transform(op, server.log[i].op, 'left');
    }
    try {
      server.text = T.apply(server.text, op);
    } catch {
      return err('ERR_OT_OP_NOT_APPLIED');
    }
    const rec = { v: server.head, src, seq: m.seq, op };
    server.log[server.head++] = rec;
    server.texts[server.head] = server.text;
    server.seqs.set(src, { seq: m.seq, v: rec.v });
    for (const o of server.conns) if (o !== c && o.subscribed && o.readyState === 1) push(o, opMsg(rec));
    push(c, { a: 'op', c: 'docs', d: 'x', v: rec.v, src, seq: m.seq });
  }

  function serverClose(c, code) {
    if (c.readyState !== 1) return;
    if (code === 1012 || code === 1013) while (c.out.length) deliver(c);
    c.out = [];
    c.readyState = 3;
    server.conns.delete(c);
    c.onclose?.({ code });
  }

  function deliver(c) {
    const m = c.out.shift();
    if (m && c.readyState === 1) c.onmessage?.({ data: JSON.stringify(m) });
  }

  const fetch = async (url) => {
    const q = new URL(url).searchParams;
    const from = Number(q.get('from'));
    const to = Number(q.get('to'));
    const lines = server.log.filter((rec) => rec.v >= from && rec.v < to).map((rec) => JSON.stringify(rec) + '\n');
    return { ok: true, status: 200, text: async () => lines.join('') };
  };

  const clients = [];
  function boot(cl, saved) {
    const conn = new Connection('ws://test/ws', { WebSocket: NetSocket, timers: clock, random: r, minDelay: 50, maxDelay: 800, pingInterval: 60000, pongTimeout: 60000, fetch, ...(saved ? (saved.src ? { id: saved.src, seq: saved.seq } : { seq: saved.seq }) : {}) });
    const doc = conn.get('docs', 'x');
    if (saved) doc.restoreState(saved.doc);
    doc.subscribe();
    cl.conn = conn;
    cl.doc = doc;
    cl.saved = null;
    doc.on('op', (op, info) => {
      if (info.source !== 'rollback') return;
      for (const comp of op) if (typeof comp === 'object') for (const t of comp.d.match(/⟦[^⟧]*⟧/g) ?? []) cl.rolledBack.add(t);
    });
    doc.on('error', (e) => cl.errors.push(e.code));
    doc.on('lost', (e) => cl.errors.push('lost:' + (e.code ?? e.message)));
    const persist = () => {
      const st = doc.saveState();
      cl.saved = st ? JSON.parse(JSON.stringify({ doc: st, src: conn.id, seq: conn.seq })) : null;
    };
    doc.on('sending', persist);
    doc.on('version', () => {
      if (r() < 0.5) persist();
    });
    const hr = doc.hardReset.bind(doc);
    doc.hardReset = () => {
      cl.resets++;
      hr();
    };
  }
  for (let i = 0; i < 3; i++) {
    const cl = { name: 'ABC'[i], n: 0, typed: [], rolledBack: new Set(), resets: 0, errors: [], crashes: 0 };
    boot(cl, null);
    clients.push(cl);
  }
  function crash(cl) {
    const s = cl.conn.socket;
    if (s && s.readyState === 1) {
      s.readyState = 3;
      server.conns.delete(s);
    }
    cl.conn.close();
    cl.crashes++;
    if (cl.saved) cl.restores = (cl.restores ?? 0) + 1;
    if (cl.saved?.doc?.inflight) cl.inflightRestores = (cl.inflightRestores ?? 0) + 1;
    boot(cl, cl.saved);
  }
  const socks = () => clients.map((cl) => cl.conn.socket).filter((s) => s && s.readyState === 1);

  function edit(cl) {
    const d = cl.doc;
    if (d.type == null || d.version == null) return;
    const cps = [...d.text.s];
    const tok = `⟦${cl.name}${cl.n++}${r() < 0.5 ? '😀' : '𝄞'}⟧`;
    const ok = [];
    let depth = 0;
    for (let i = 0; i <= cps.length; i++) {
      if (depth === 0) ok.push(i);
      if (cps[i] === '⟦') depth++;
      else if (cps[i] === '⟧') depth--;
    }
    const at = ok[int(r, ok.length)];
    let op = T.normalize([at, tok]);
    if (opts.deletes && r() < 0.4 && cps.length > 0) {
      // a delete of a random range (carrying its text), anywhere
      const a = int(r, cps.length);
      const n = 1 + int(r, Math.min(6, cps.length - a));
      op = T.normalize([a, { d: cps.slice(a, a + n).join('') }]);
    }
    cl.typed.push(tok);
    d.submitOp(op);
  }

  async function step(faults) {
    const k = r();
    if (pendingOpen.length && k < 0.1) {
      const s = pendingOpen.splice(int(r, pendingOpen.length), 1)[0];
      if (s.readyState === 0) {
        s.readyState = 1;
        s.onopen?.();
      }
    } else if (k < 0.3) {
      if (r() < (opts.editRate ?? 1)) edit(clients[int(r, clients.length)]);
    } else if (k < 0.8) {
      const ss = socks().filter((s) => s.out.length);
      if (ss.length) deliver(ss[int(r, ss.length)]);
    } else if (k < 0.9) {
      clock.advance(int(r, 400));
    } else if (faults && k < 0.93) {
      const ss = socks();
      if (ss.length) serverClose(ss[int(r, ss.length)], [1006, 1012, 1013, 4000][int(r, 4)]);
    } else if (faults && opts.crash && k < 0.935) {
      crash(clients[int(r, clients.length)]);
    } else if (faults && k < 0.94) {
      const cl = clients[int(r, clients.length)];
      cl.conn.setOnline(false);
      cl.offline = true;
    } else if (k < 0.97) {
      for (const cl of clients) if (cl.offline && r() < 0.5) {
        cl.offline = false;
        cl.conn.setOnline(true);
      }
    }
    await new Promise((res) => setImmediate(res));
  }

  async function heal() {
    opts.refuse = 0;
    for (const cl of clients) if (cl.offline) cl.conn.setOnline(true);
    for (let i = 0; i < 5000; i++) {
      for (const s of pendingOpen.splice(0)) if (s.readyState === 0) {
        s.readyState = 1;
        s.onopen?.();
      }
      for (const s of socks()) while (s.out.length) deliver(s);
      await new Promise((res) => setImmediate(res));
      clock.advance(200);
      const quiet = clients.every((cl) => cl.conn.connected && !cl.doc.hasPending && cl.doc.version === server.head) && socks().every((s) => s.out.length === 0);
      if (quiet) return true;
    }
    return false;
  }
  return { r, server, clients, step, heal };
}

for (const seed of [21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36]) {
  test(`fuzz seed ${seed} with deletes, few edits: converge`, async () => {
    const w = world(seed, { deletes: true, editRate: 0.2 });
    for (let i = 0; i < 1500; i++) await w.step(true);
    const healed = await w.heal();
    const diag = w.clients.map((cl) => ({ n: cl.name, v: cl.doc.version, pend: cl.doc.hasPending, st: cl.conn.state, refreshing: cl.doc.refreshing, catchingUp: cl.doc.catchingUp, confirming: cl.doc.confirming, resets: cl.resets, errs: cl.errors.join(',') }));
    assert.ok(healed, `did not settle: head ${w.server.head} ${JSON.stringify(diag)}`);
    for (const cl of w.clients) assert.equal(cl.doc.text.s, w.server.text, `client ${cl.name} diverged`);
  });
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]) {
  test(`fuzz seed ${seed}: converge, every edit once`, async () => {
    const w = world(seed);
    for (let i = 0; i < 1500; i++) await w.step(true);
    const healed = await w.heal();
    const diag = w.clients.map((cl) => ({ n: cl.name, v: cl.doc.version, pend: cl.doc.hasPending, st: cl.conn.state, refreshing: cl.doc.refreshing, catchingUp: cl.doc.catchingUp, confirming: cl.doc.confirming, inflight: cl.doc.inflight && { seq: cl.doc.inflight.seq, src: cl.doc.inflight.src }, resets: cl.resets, errs: cl.errors.join(',') }));
    assert.ok(healed, `did not settle: head ${w.server.head} ${JSON.stringify(diag)}`);
    for (const cl of w.clients) assert.equal(cl.doc.text.s, w.server.text, `client ${cl.name} diverged`);
    for (const cl of w.clients) {
      const missing = cl.typed.filter((t) => !w.server.text.includes(t) && !cl.rolledBack.has(t));
      if (process.env.DBG) console.log(cl.name, 'typed', cl.typed.length, 'missing', missing.length, missing.slice(0, 5).join(' '), 'errs', cl.errors.join(','));
      assert.equal(cl.resets, 0, 'hard reset');
      for (const tok of cl.typed) {
        const n = w.server.text.split(tok).length - 1;
        assert.equal(n, cl.rolledBack.has(tok) ? 0 : 1, `${tok} appears ${n} times (rolled back: ${cl.rolledBack.has(tok)}) errs ${cl.errors} rb ${[...cl.rolledBack]}`);
      }
    }
  });
}

for (const seed of [41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52]) {
  test(`fuzz seed ${seed} with tab crashes and restores: converge, no edit twice`, async () => {
    const w = world(seed, { crash: true });
    for (let i = 0; i < 1500; i++) await w.step(true);
    const healed = await w.heal();
    const diag = w.clients.map((cl) => ({ n: cl.name, v: cl.doc.version, pend: cl.doc.hasPending, st: cl.conn.state, refreshing: cl.doc.refreshing, restoring: !!cl.doc.restoring, confirming: cl.doc.confirming, resets: cl.resets, crashes: cl.crashes, errs: cl.errors.join(',') }));
    assert.ok(healed, `did not settle: head ${w.server.head} ${JSON.stringify(diag)}`);
    for (const cl of w.clients) assert.equal(cl.doc.text.s, w.server.text, `client ${cl.name} diverged`);
    for (const cl of w.clients) {
      for (const tok of cl.typed) {
        const n = w.server.text.split(tok).length - 1;
        assert.ok(n <= 1, `${tok} appears ${n} times ${JSON.stringify(diag)}`);
      }
    }
    if (process.env.DBG) console.log(w.clients.map((cl) => [cl.crashes, cl.restores, cl.inflightRestores, cl.errors.join(',')]));
  });
}
