#!/usr/bin/env node
// Differential test cases for coedit's ot package, computed by the
// reference implementation, npm ot-text-unicode 4.0.0 (pinned in the
// repository's package-lock.json; run `npm ci` first).
//
// Usage:
//   node scripts/otdiff/gen.mjs [--n COUNT] [--seed SEED] [--out FILE]
//
// Writes COUNT cases as JSON lines, to standard output or, with --out, to
// FILE (gzipped when FILE ends in .gz). The same seed gives the same cases.
// Each line is one object:
//   id, doc            case number and the document (a string)
//   a, b               two ops on doc (sometimes deliberately invalid,
//                      mismatched or huge, to record the reference's errors)
//   c                  an op on apply(doc, a), for compose
//   n                  a non-canonical op, for normalize
//   applyA, applyB     apply(doc, a) and apply(doc, b)
//   tLab, tRab         transform(a, b, "left") and (a, b, "right")
//   tLba, tRba         transform(b, a, "left") and (b, a, "right")
//   cac, cab           compose(a, c) and compose(a, b)
//   applyAC            apply(apply(doc, a), c)
//   invA, invB         invert(a), invert(b), only for ops checkOp accepts
//   norm               normalize(n)
//   pos                [[p, transformPosition(p, a), transformPosition(p, b)], ...]
// Every result is {"ok": value} or {"err": message}; an apply the reference
// would loop on for too long (an op spanning far past the document) is left
// out, and the Go side checks it is refused.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const require = createRequire(import.meta.url);
let pkg, type;
try {
  pkg = require('ot-text-unicode/package.json');
  ({ type } = require('ot-text-unicode'));
} catch (e) {
  console.error(`gen.mjs: cannot load ot-text-unicode (${e.message}); run \`npm ci\` in the repository root`);
  process.exit(2);
}
if (pkg.version !== '4.0.0') {
  console.error(`gen.mjs: want ot-text-unicode 4.0.0, found ${pkg.version}; run \`npm ci\``);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { n: 1000, seed: 1, out: '' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--n') { opts.n = Number(v); i++; }
    else if (k === '--seed') { opts.seed = Number(v); i++; }
    else if (k === '--out') { opts.out = v; i++; }
    else { console.error(`gen.mjs: unknown argument ${k}`); process.exit(2); }
  }
  if (!Number.isInteger(opts.n) || opts.n < 0) { console.error('gen.mjs: --n wants a count'); process.exit(2); }
  if (!Number.isInteger(opts.seed)) { console.error('gen.mjs: --seed wants an integer'); process.exit(2); }
  return opts;
}

// sfc32, seeded through splitmix32: small, fast and reproducible.
function makeRand(seed) {
  let s = seed >>> 0;
  const mix = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = mix(), b = mix(), c = mix(), d = mix();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

const { n: COUNT, seed: SEED, out: OUT } = parseArgs(process.argv.slice(2));
const rnd = makeRand(SEED);
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1)); // inclusive
const chance = p => rnd() < p;
const pick = xs => xs[Math.floor(rnd() * xs.length)];

// Code points to build text from: mostly ASCII, then two-byte, three-byte
// and astral (surrogate pairs in JS) characters, a combining mark, a skin
// tone modifier, and characters JSON must escape.
const ASCII = 'abcdefxyz XYZ'.split('');
const WIDE = ['é', 'ÿ', 'ß', '中', '文', '\u0301', '\u2028', '€'];
const ASTRAL = ['😀', '👍', '🏽', '𝄞', '🇫', '🇷', '\u{10FFFF}'];
const ESCAPE = ['"', '\\', '\n', '\t', '\u0001', '\u001f', '\u007f', '/'];
function cp() {
  const r = rnd();
  if (r < 0.6) return pick(ASCII);
  if (r < 0.75) return pick(WIDE);
  if (r < 0.92) return pick(ASTRAL);
  return pick(ESCAPE);
}
const text = (lo, hi) => Array.from({ length: int(lo, hi) }, cp).join('');
const cps = s => Array.from(s);
const ulen = s => Array.from(s).length;

function genDoc() {
  const r = rnd();
  if (r < 0.06) return '';
  if (r < 0.5) return text(1, 8);
  return text(9, 40);
}

// Builds ops component by component, keeping the reference's canonical
// rules (skips merged, no trailing skip) but leaving neighbouring inserts
// or deletes unmerged now and then, as clients may send them.
class Builder {
  constructor() { this.op = []; }
  skip(n) {
    if (n <= 0) return;
    const last = this.op.length - 1;
    if (last >= 0 && typeof this.op[last] === 'number') this.op[last] += n;
    else this.op.push(n);
  }
  insert(s) { if (s.length > 0) this.op.push(s); }
  del(d) { this.op.push({ d }); }
  done() {
    if (this.op.length && typeof this.op[this.op.length - 1] === 'number') this.op.pop();
    return this.op;
  }
}

// How often the op being built writes a delete with its text: most ops use
// one form throughout (so many are invertible), some mix them.
let textForm = 0.5;
function newOpForm() {
  const r = rnd();
  textForm = r < 0.45 ? 1 : r < 0.75 ? 0 : 0.5;
}

// A delete of D[at, at+k): text form or count form, sometimes split in two.
function emitDelete(bd, D, at, k) {
  const form = () => chance(textForm);
  const piece = (i, j) => (form() ? D.slice(i, j).join('') : j - i);
  if (k >= 2 && chance(0.15)) {
    const m = int(1, k - 1);
    bd.del(piece(at, at + m));
    bd.del(piece(at + m, at + k));
  } else {
    bd.del(piece(at, at + k));
  }
}

function emitInsert(bd) {
  bd.insert(text(1, 4));
  if (chance(0.1)) bd.insert(text(1, 2)); // two inserts in a row
}

// A few edits at sorted positions of D; force lists positions that must
// get an insert (to make concurrent inserts meet).
function genEdits(D, force = []) {
  const L = D.length;
  const spots = force.slice();
  const k = int(0, 4);
  for (let i = 0; i < k; i++) spots.push(int(0, L));
  spots.sort((x, y) => x - y);
  newOpForm();
  const bd = new Builder();
  let cur = 0;
  for (const p of spots) {
    if (p < cur) continue;
    bd.skip(p - cur);
    cur = p;
    const forced = force.includes(p);
    const room = L - cur;
    const r = rnd();
    if (forced || room === 0 || r < 0.35) {
      emitInsert(bd);
      if (room > 0 && chance(0.2)) { const d = int(1, Math.min(room, 4)); emitDelete(bd, D, cur, d); cur += d; }
    } else if (r < 0.7) {
      const d = int(1, Math.min(room, 6)); emitDelete(bd, D, cur, d); cur += d;
    } else {
      // Replace: delete then insert, or insert then delete.
      const d = int(1, Math.min(room, 4));
      if (chance(0.5)) { emitDelete(bd, D, cur, d); emitInsert(bd); }
      else { emitInsert(bd); emitDelete(bd, D, cur, d); }
      cur += d;
    }
  }
  if (chance(0.1)) { bd.skip(L - cur); emitInsert(bd); } // insert at the end
  return bd.done();
}

// A walk over the whole document, each step a skip, insert or delete.
function genDense(D) {
  const L = D.length;
  newOpForm();
  const bd = new Builder();
  let cur = 0;
  while (cur < L) {
    const r = rnd();
    const step = int(1, Math.min(L - cur, 3));
    if (r < 0.4) { bd.skip(step); cur += step; }
    else if (r < 0.7) { emitDelete(bd, D, cur, step); cur += step; }
    else emitInsert(bd);
  }
  if (chance(0.3)) emitInsert(bd);
  return bd.done();
}

// Only deletes: one or two ranges, which the other op's ranges overlap.
function genDeletes(D) {
  const L = D.length;
  newOpForm();
  const bd = new Builder();
  if (L === 0) return bd.done();
  let cur = int(0, L - 1);
  bd.skip(cur);
  let k = int(1, L - cur);
  emitDelete(bd, D, cur, k);
  cur += k;
  if (cur < L - 1 && chance(0.4)) {
    const gap = int(1, L - cur - 1);
    bd.skip(gap); cur += gap;
    k = int(1, L - cur);
    emitDelete(bd, D, cur, k);
  }
  return bd.done();
}

// Ops not tied to any document: long and huge skips and count deletes.
function genWild() {
  const bd = new Builder();
  const k = int(1, 6);
  const big = () => (chance(0.5) ? int(1, 50) : int(1, 1e6) * int(1, 1e6));
  for (let i = 0; i < k; i++) {
    const r = rnd();
    if (r < 0.4) bd.skip(big());
    else if (r < 0.7) bd.del(chance(0.8) ? big() : text(1, 4));
    else emitInsert(bd);
  }
  return bd.done();
}

// An op the reference's checkOp rejects.
function genInvalid(D) {
  const good = genEdits(D);
  switch (int(0, 5)) {
    case 0: return [...good, ...(good.length && typeof good[good.length - 1] === 'number' ? [] : [int(1, 5)])]; // trailing skip
    case 1: return [1, 2, 'x'];
    case 2: return [0, 'x'];
    case 3: return ['', ...good];
    case 4: return [{ d: 0 }];
    default: return [...good, { d: '' }];
  }
}

// Any list of components, with zeros, empties and neighbours to merge.
function genLoose() {
  const op = [];
  const k = int(0, 7);
  for (let i = 0; i < k; i++) {
    const r = rnd();
    if (r < 0.3) op.push(int(0, 5));
    else if (r < 0.55) op.push(chance(0.15) ? '' : text(1, 3));
    else if (r < 0.8) op.push({ d: int(0, 5) });
    else op.push({ d: chance(0.15) ? '' : text(1, 3) });
  }
  return op;
}

function run(f) {
  try { return { ok: f() }; } catch (e) { return { err: String(e && e.message || e) }; }
}
const clone = op => JSON.parse(JSON.stringify(op));
const checks = op => { try { type.checkOp(op); return true; } catch { return false; } };
const baseLen = op => op.reduce((n, c) => n + (typeof c === 'number' ? c : typeof c === 'object' ? (typeof c.d === 'number' ? c.d : ulen(c.d)) : 0), 0);

// apply, unless the op spans so far past the document that the reference
// would count code points for ever.
function applySafe(doc, op) {
  if (baseLen(op) > ulen(doc) + 64) return undefined;
  return run(() => type.apply(doc, clone(op)));
}

function genCase(id) {
  const doc = genDoc();
  const D = cps(doc);
  const L = D.length;
  let a, b;
  const r = rnd();
  if (r < 0.35) {
    const force = chance(0.35) ? [int(0, L)] : [];
    a = genEdits(D, force);
    b = genEdits(D, force);
  } else if (r < 0.5) {
    a = genDeletes(D); b = genDeletes(D);
  } else if (r < 0.65) {
    a = genDense(D); b = genDense(D);
  } else if (r < 0.75) {
    a = chance(0.5) ? genDense(D) : genEdits(D);
    b = chance(0.5) ? genDeletes(D) : genEdits(D);
  } else if (r < 0.85) {
    a = genWild(); b = chance(0.5) ? genWild() : genEdits(D);
  } else if (r < 0.9) {
    a = genInvalid(D); b = genEdits(D);
    if (chance(0.5)) [a, b] = [b, a];
  } else if (r < 0.95) {
    // Mismatched: b made for another document.
    a = genEdits(D); b = genDense(cps(genDoc()));
  } else {
    // The empty op, and an op that only inserts.
    a = chance(0.5) ? [] : genEdits([]);
    b = genEdits(D);
    if (chance(0.5)) [a, b] = [b, a];
  }
  const rec = { id, doc, a, b };
  rec.applyA = applySafe(doc, a);
  rec.applyB = applySafe(doc, b);
  const after = rec.applyA && 'ok' in rec.applyA ? rec.applyA.ok : genDoc();
  const c = chance(0.2) ? genDense(cps(after)) : genEdits(cps(after));
  rec.c = c;
  rec.tLab = run(() => type.transform(clone(a), clone(b), 'left'));
  rec.tRab = run(() => type.transform(clone(a), clone(b), 'right'));
  rec.tLba = run(() => type.transform(clone(b), clone(a), 'left'));
  rec.tRba = run(() => type.transform(clone(b), clone(a), 'right'));
  rec.cac = run(() => type.compose(clone(a), clone(c)));
  rec.cab = run(() => type.compose(clone(a), clone(b)));
  if (rec.applyA && 'ok' in rec.applyA) rec.applyAC = applySafe(rec.applyA.ok, c);
  if (checks(a)) rec.invA = run(() => type.invert(clone(a)));
  if (checks(b)) rec.invB = run(() => type.invert(clone(b)));
  const n = genLoose();
  rec.n = clone(n);
  rec.norm = run(() => type.normalize(clone(n)));
  const ps = [0, 1, L, L + 1, int(0, L), int(0, L), int(0, L + 3), 1e9];
  rec.pos = ps.map(p => [p, type.transformPosition(p, clone(a)), type.transformPosition(p, clone(b))]);
  return rec;
}

const chunks = [];
let buf = '';
const flush = () => {
  if (OUT) chunks.push(buf);
  else process.stdout.write(buf);
  buf = '';
};
for (let i = 0; i < COUNT; i++) {
  buf += JSON.stringify(genCase(i)) + '\n';
  if (buf.length > 1 << 16) flush();
}
flush();
if (OUT) {
  const data = Buffer.from(chunks.join(''), 'utf8');
  writeFileSync(OUT, OUT.endsWith('.gz') ? gzipSync(data, { level: 9 }) : data);
}
