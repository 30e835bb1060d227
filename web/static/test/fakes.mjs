// Test doubles for the client's transport seam: a WebSocket the test plays
// the server through, and a manual clock for its timers; stand-ins for
// localStorage, Web Locks and a <textarea>; and helpers that set a client up
// over them.
import { Connection } from '../js/connection.js';
import { TextareaBinding } from '../js/editor.js';

export const URI = 'http://sharejs.org/types/text-unicode';

export class FakeClock {
  constructor() {
    this.t = 1000;
    this.timers = new Map();
    this.nextId = 1;
  }

  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  now() {
    return this.t;
  }

  // pendingDelays lists the delays (from now) of the timers still waiting.
  pendingDelays() {
    return [...this.timers.values()].map((x) => x.at - this.t);
  }

  // advance moves time forward ms, running due timers in order.
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, x] of this.timers) if (x.at <= end && (!next || x.at < next[1].at)) next = [id, x];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

// FakeSocket records every socket the client opens in FakeSocket.all.
export class FakeSocket {
  static all = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closed = false;
    FakeSocket.all.push(this);
  }

  static last() {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(data));
  }

  close() {
    this.closed = true;
    this.readyState = 3;
  }

  // Test side: play the server.
  open() {
    this.readyState = 1;
    this.onopen?.();
  }

  deliver(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }

  // serverClose ends the socket as the server would, with a close code
  // (1006, abnormal closure, when none is given).
  serverClose(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }

  // take returns and forgets the messages sent so far.
  take() {
    return this.sent.splice(0);
  }
}

// opsServer answers the client's fetch of GET .../ops?from=&to= from a list
// of committed op records (v, src, seq, op), as JSON Lines, and records
// each URL asked for.
export function opsServer(records) {
  const asked = [];
  const fetch = async (url) => {
    asked.push(url);
    const q = new URL(url).searchParams;
    const from = Number(q.get('from'));
    const to = q.has('to') ? Number(q.get('to')) : Infinity;
    const lines = records.filter((r) => r.v >= from && r.v < to).map((r) => JSON.stringify(r) + '\n');
    return new Response(lines.join(''), { status: 200, headers: { 'Content-Type': 'application/jsonl' } });
  };
  return { fetch, asked };
}

// FakeStorage is a Storage (localStorage) over a Map; setItem throws once
// full is set, as a browser does past its quota.
export class FakeStorage {
  constructor() {
    this.map = new Map();
    this.full = false;
  }

  get length() {
    return this.map.size;
  }

  key(i) {
    return [...this.map.keys()][i] ?? null;
  }

  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }

  setItem(k, v) {
    if (this.full) throw new DOMException('quota exceeded', 'QuotaExceededError');
    this.map.set(k, String(v));
  }

  removeItem(k) {
    this.map.delete(k);
  }
}

// FakeLocks is a LockManager (navigator.locks) with exclusive locks only:
// request(name, {ifAvailable, signal}, callback) as the Web Locks API
// specifies it, shared by every "page" given the same instance.
export class FakeLocks {
  constructor() {
    this.held = new Set();
    this.queues = new Map(); // name -> waiting grant functions
  }

  request(name, opts, callback) {
    return new Promise((resolve, reject) => {
      const grant = () => {
        this.held.add(name);
        Promise.resolve()
          .then(() => callback({ name, mode: 'exclusive' }))
          .then(
            (v) => {
              this.release(name);
              resolve(v);
            },
            (err) => {
              this.release(name);
              reject(err);
            },
          );
      };
      if (!this.held.has(name)) return grant();
      if (opts.ifAvailable) {
        Promise.resolve().then(() => callback(null)).then(resolve, reject);
        return undefined;
      }
      const q = this.queues.get(name) ?? [];
      this.queues.set(name, q);
      const waiter = () => grant();
      q.push(waiter);
      opts.signal?.addEventListener('abort', () => {
        const i = q.indexOf(waiter);
        if (i < 0) return;
        q.splice(i, 1);
        reject(new DOMException('the lock request was aborted', 'AbortError'));
      });
      return undefined;
    });
  }

  release(name) {
    this.held.delete(name);
    const next = this.queues.get(name)?.shift();
    if (next) next();
  }
}

export function setup(opts = {}) {
  const clock = new FakeClock();
  const conn = new Connection('ws://test/ws', {
    WebSocket: FakeSocket,
    timers: clock,
    random: () => 0.5,
    minDelay: 100,
    maxDelay: 1600,
    pingInterval: 1000,
    pongTimeout: 500,
    ...opts,
  });
  return { clock, conn, ws: FakeSocket.last() };
}

// handshake opens ws and answers its hs with id.
export function handshake(ws, id = 'src1') {
  ws.open();
  const [hs] = ws.take();
  ws.deliver({ a: 'hs', protocol: 1, protocolMinor: 2, id, type: 'http://sharejs.org/types/JSONv0' });
  return hs;
}

// loaded returns a connected client with doc docs/x at version v holding text.
export function loaded(text = 'hello', v = 3) {
  const s = setup();
  handshake(s.ws);
  s.doc = s.conn.get('docs', 'x');
  s.doc.subscribe();
  s.ws.take();
  s.ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v, type: URI, data: text } });
  return s;
}

// FakeTextarea is the part of HTMLTextAreaElement the binding uses.
export class FakeTextarea {
  constructor() {
    this.value = '';
    this.selectionStart = 0;
    this.selectionEnd = 0;
    this.selectionDirection = 'none';
    this.scrollTop = 0;
    this.scrollLeft = 0;
    this.readOnly = false;
    this.handlers = {};
  }

  addEventListener(type, fn) {
    (this.handlers[type] ??= []).push(fn);
  }

  removeEventListener() {}

  fire(type, ev = {}) {
    for (const fn of this.handlers[type] ?? []) fn({ preventDefault() {}, ...ev });
  }

  setSelectionRange(s, e, dir = 'none') {
    this.selectionStart = s;
    this.selectionEnd = e;
    this.selectionDirection = dir;
  }

  setRangeText(text, s, e) {
    this.value = this.value.slice(0, s) + text + this.value.slice(e);
  }

  // type inserts text at the caret as the browser does, then fires input.
  type(text) {
    const s = this.selectionStart;
    this.value = this.value.slice(0, s) + text + this.value.slice(this.selectionEnd);
    this.selectionStart = this.selectionEnd = s + text.length;
    this.fire('input');
  }
}

/** page is a textarea binding over a document at version 1 holding text. */
export function page(text) {
  const conn = new Connection('ws://test/ws', { WebSocket: FakeSocket, timers: new FakeClock() });
  const ws = FakeSocket.last();
  ws.open();
  ws.take();
  ws.deliver({ a: 'hs', protocol: 1, protocolMinor: 2, id: 'me' });
  const doc = conn.get('docs', 'x');
  doc.subscribe();
  ws.deliver({ a: 's', c: 'docs', d: 'x', data: { v: 1, type: 'http://sharejs.org/types/text-unicode', data: text } });
  const ta = new FakeTextarea();
  let now = 0;
  const binding = new TextareaBinding(ta, doc, { now: () => now });
  return { ta, doc, ws, binding, tick: (ms) => (now += ms) };
}
