// auth.js: how the page learns that its token is the problem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authSocket, checkToken, CLOSE_TOKEN_EXPIRED } from '../js/auth.js';

// EventSocket stands in for the browser's WebSocket: an EventTarget the
// test opens and closes.
class EventSocket extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
  }
  open() {
    this.dispatchEvent(new Event('open'));
  }
  close(code) {
    const ev = new Event('close');
    ev.code = code;
    this.dispatchEvent(ev);
  }
}

// reply returns a fetch that answers /api/auth with status and body.
const reply = (status, body) => async (url) => {
  assert.equal(url, '/api/auth');
  return { status, json: async () => body };
};

const settle = () => new Promise((r) => setTimeout(r, 0));

test('a close with 4001 reports an expired token', async () => {
  const seen = [];
  const S = authSocket((r) => seen.push(r), { WebSocket: EventSocket, fetch: reply(200, {}) });
  const ws = new S('ws://x/ws');
  ws.open();
  ws.close(CLOSE_TOKEN_EXPIRED);
  await settle();
  assert.deepEqual(seen, ['expired']);
});

test('a socket refused before it opened asks /api/auth why', async () => {
  for (const [code, want] of [
    ['ERR_TOKEN_EXPIRED', 'expired'],
    ['ERR_TOKEN_REQUIRED', 'missing'],
    ['ERR_TOKEN_INVALID', 'invalid'],
  ]) {
    const seen = [];
    const S = authSocket((r) => seen.push(r), { WebSocket: EventSocket, fetch: reply(401, { error: { code } }) });
    new S('ws://x/ws').close(1006);
    await settle();
    assert.deepEqual(seen, [want], code);
  }
});

test('other closes are not about the token', async () => {
  const seen = [];
  let asked = 0;
  const fetch = async () => {
    asked++;
    return { status: 200, json: async () => ({ auth: true }) };
  };
  const S = authSocket((r) => seen.push(r), { WebSocket: EventSocket, fetch });
  const a = new S('ws://x/ws');
  a.open();
  a.close(1006); // dropped after opening: the client reconnects
  new S('ws://x/ws').close(1006); // never opened, but the token is fine
  await settle();
  assert.deepEqual(seen, []);
  assert.equal(asked, 1);
});

test('checkToken treats an unreachable server as no verdict', async () => {
  assert.equal(
    await checkToken(async () => {
      throw new TypeError('network');
    }),
    null,
  );
});
