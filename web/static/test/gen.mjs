// Seeded random documents and text-unicode ops for the JS client tests,
// with astral characters (emoji, musical symbols) mixed into the text.

// rng returns a seeded PRNG (mulberry32) yielding floats in [0, 1).
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = ['a', 'b', 'c', ' ', '\n', 'é', '中', '😀', '🎉', '𝄞', '👍🏽', 'x', 'y'];

export const int = (r, n) => Math.floor(r() * n);

// randomText returns a string of up to max code points.
export function randomText(r, max) {
  const n = int(r, max + 1);
  let s = '';
  for (let i = 0; i < n; i++) {
    const ch = ALPHABET[int(r, ALPHABET.length)];
    s += ch === '👍🏽' ? '👍' : ch; // single code points only, so n is the length
  }
  return s;
}

export const cps = (s) => [...s];

// randomOp returns a valid, normalized op against doc. With messy true it
// may also hold adjacent inserts or deletes (valid, not normalized).
export function randomOp(r, doc, { invertible = r() < 0.5, messy = false } = {}) {
  const chars = cps(doc);
  const op = [];
  let pos = 0;
  const pushRaw = (c) => op.push(c);
  while (pos < chars.length || r() < 0.3) {
    const k = r();
    if (k < 0.35 && pos < chars.length) {
      const n = 1 + int(r, Math.min(5, chars.length - pos));
      if (typeof op[op.length - 1] === 'number') op[op.length - 1] += n;
      else pushRaw(n);
      pos += n;
    } else if (k < 0.65) {
      const s = randomText(r, 4) || 'z';
      if (!messy && typeof op[op.length - 1] === 'string') op[op.length - 1] += s;
      else pushRaw(s);
    } else if (pos < chars.length) {
      const n = 1 + int(r, Math.min(4, chars.length - pos));
      const d = invertible ? chars.slice(pos, pos + n).join('') : n;
      const last = op[op.length - 1];
      if (!messy && last && typeof last === 'object') {
        const len = (x) => (typeof x === 'number' ? x : cps(x).length);
        last.d = typeof last.d === 'string' && typeof d === 'string' ? last.d + d : len(last.d) + len(d);
      } else pushRaw({ d });
      pos += n;
    } else break;
    if (r() < 0.15) break;
  }
  while (op.length && typeof op[op.length - 1] === 'number') op.pop();
  return op;
}

// messyOp returns an op with empty parts, zero skips and adjacent
// components of one kind, for normalize.
export function messyOp(r, doc) {
  const op = randomOp(r, doc, { messy: true });
  const out = [];
  for (const c of op) {
    if (r() < 0.2) out.push(0);
    if (r() < 0.1) out.push('');
    if (typeof c === 'number' && c > 1 && r() < 0.3) {
      out.push(1, c - 1);
      continue;
    }
    out.push(c);
  }
  if (r() < 0.2) out.push(3);
  return out;
}
