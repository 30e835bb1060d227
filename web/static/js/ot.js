// The text-unicode OT type (ShareDB's "http://sharejs.org/types/text-unicode"),
// written for the browser as a plain ES module.
//
// An op is an array of components read left to right over the document:
//   n > 0       skip n code points
//   "str"       insert str
//   {d: n}      delete n code points
//   {d: "str"}  delete str (the invertible form; its content is not checked)
//
// Every length and position on the wire counts Unicode code points, while
// JavaScript strings count UTF-16 units: an emoji is one code point and two
// units. The functions here count code points and never split a surrogate
// pair. Behaviour matches the reference implementation (npm ot-text-unicode
// 4.x) for every valid op, including how ties between inserts are broken;
// scripts in web/static/test check that on random ops.

/** The type's URI, as ShareDB names it on the wire. */
export const URI = 'http://sharejs.org/types/text-unicode';
/** The type's short name. */
export const NAME = 'text-unicode';

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

/**
 * cpLength returns the number of code points in s (a surrogate pair counts
 * once, anything else one per UTF-16 unit).
 */
export function cpLength(s) {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) {
      n--;
      i++;
    }
  }
  return n;
}

/**
 * u16Offset returns the UTF-16 index reached by advancing cp code points
 * from UTF-16 index from. Past the end it keeps counting one unit per code
 * point, so callers can tell an overrun by comparing with s.length.
 */
export function u16Offset(s, cp, from = 0) {
  let i = from;
  const len = s.length;
  while (cp > 0 && i < len) {
    i += isHigh(s.charCodeAt(i)) && i + 1 < len && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
    cp--;
  }
  return i + cp;
}

/** cpSlice returns the code points [start, end) of s (end defaults to the end). */
export function cpSlice(s, start, end) {
  const a = u16Offset(s, start);
  return end == null ? s.slice(a) : s.slice(a, u16Offset(s, end - start, a));
}

/** deleteLength is the length in code points of a delete component's d. */
export const deleteLength = (d) => (typeof d === 'number' ? d : cpLength(d));

function componentLength(c) {
  if (typeof c === 'number') return c;
  if (typeof c === 'string') return cpLength(c);
  return deleteLength(c.d);
}

/**
 * checkOp throws an Error unless op is a valid text-unicode op: an array of
 * positive skips (no two in a row, none at the end), non-empty inserts and
 * non-empty deletes.
 */
export function checkOp(op) {
  if (!Array.isArray(op)) throw new Error('op must be an array of components');
  let lastSkip = false;
  for (let i = 0; i < op.length; i++) {
    const c = op[i];
    if (typeof c === 'number') {
      if (!(c > 0) || !Number.isSafeInteger(c)) throw new Error(`component ${i}: skip must be a positive integer`);
      if (lastSkip) throw new Error(`component ${i}: adjacent skips must be combined`);
      lastSkip = true;
      continue;
    }
    lastSkip = false;
    if (typeof c === 'string') {
      if (c.length === 0) throw new Error(`component ${i}: empty insert`);
    } else if (c !== null && typeof c === 'object') {
      if (typeof c.d === 'number') {
        if (!(c.d > 0) || !Number.isSafeInteger(c.d)) throw new Error(`component ${i}: delete length must be a positive integer`);
      } else if (typeof c.d === 'string') {
        if (c.d.length === 0) throw new Error(`component ${i}: empty delete`);
      } else {
        throw new Error(`component ${i}: delete must be a number or a string`);
      }
    } else {
      throw new Error(`component ${i}: not a skip, insert or delete`);
    }
  }
  if (lastSkip) throw new Error('op has a trailing skip');
}

// push appends component c to op, dropping empty components and merging it
// into the last one when both are of the same kind. Deletes stay invertible
// only when both carry their text.
function push(op, c) {
  if (c == null || c === 0 || c === '') return;
  if (typeof c === 'object') {
    if (c.d === 0 || c.d === '') return;
    c = { d: c.d };
  }
  const n = op.length;
  if (n > 0 && typeof op[n - 1] === typeof c) {
    const last = op[n - 1];
    if (typeof c === 'object') {
      op[n - 1] = {
        d: typeof last.d === 'string' && typeof c.d === 'string' ? last.d + c.d : deleteLength(last.d) + deleteLength(c.d),
      };
    } else {
      op[n - 1] = last + c;
    }
    return;
  }
  op.push(c);
}

function trim(op) {
  if (op.length > 0 && typeof op[op.length - 1] === 'number') op.pop();
  return op;
}

/**
 * normalize returns op in canonical form: empty components dropped,
 * neighbours of the same kind merged, a trailing skip removed.
 */
export function normalize(op) {
  const out = [];
  for (const c of op) push(out, c);
  return trim(out);
}

// dslice takes code points [start, end) of a delete's d (a count or text).
function dslice(d, start, end) {
  if (typeof d === 'number') return (end == null ? d : Math.min(d, end)) - start;
  return cpSlice(d, start, end);
}

// Reader walks an op's components, handing out pieces of them. Past the end
// the op is an endless skip. offset is how far into the current component
// the reader is: code points for skips and deletes, UTF-16 units for inserts.
class Reader {
  constructor(op) {
    this.op = op;
    this.i = 0;
    this.offset = 0;
  }

  peek() {
    return this.op[this.i];
  }

  // take returns up to n code points of the next component (n === -1: all
  // that is left of it; null at the end). whole names the kind that is
  // never cut: 'i' for inserts, 'd' for deletes.
  take(n, whole) {
    if (this.i === this.op.length) return n === -1 ? null : n;
    const c = this.op[this.i];
    if (typeof c === 'number') {
      const left = c - this.offset;
      if (n === -1 || left <= n) return this.next(left);
      this.offset += n;
      return n;
    }
    if (typeof c === 'string') {
      const rest = this.offset === 0 ? c : c.slice(this.offset);
      if (n === -1 || whole === 'i') return this.next(rest);
      const cut = u16Offset(rest, n);
      if (cut >= rest.length) return this.next(rest);
      this.offset += cut;
      return rest.slice(0, cut);
    }
    const left = deleteLength(c.d) - this.offset;
    if (n === -1 || whole === 'd' || left <= n) return this.next({ d: dslice(c.d, this.offset) });
    const part = { d: dslice(c.d, this.offset, this.offset + n) };
    this.offset += n;
    return part;
  }

  next(part) {
    this.i++;
    this.offset = 0;
    return part;
  }
}

/**
 * transform returns op rewritten to apply after other, where both were made
 * against the same document. side breaks ties between inserts at the same
 * place: 'left' puts op's insert first.
 */
export function transform(op, other, side) {
  if (side !== 'left' && side !== 'right') throw new Error(`side (${side}) must be 'left' or 'right'`);
  checkOp(op);
  checkOp(other);
  const out = [];
  const r = new Reader(op);
  for (const c2 of other) {
    if (typeof c2 === 'number') {
      // Keep op's components over the text other skips; op's inserts there
      // cost nothing.
      let n = c2;
      while (n > 0) {
        const c1 = r.take(n, 'i');
        push(out, c1);
        if (typeof c1 !== 'string') n -= componentLength(c1);
      }
    } else if (typeof c2 === 'string') {
      if (side === 'left' && typeof r.peek() === 'string') push(out, r.take(-1));
      push(out, cpLength(c2));
    } else {
      // Text other deletes: op's skips and deletes over it vanish, its
      // inserts survive.
      let n = deleteLength(c2.d);
      while (n > 0) {
        const c1 = r.take(n, 'i');
        if (typeof c1 === 'number') n -= c1;
        else if (typeof c1 === 'string') push(out, c1);
        else n -= deleteLength(c1.d);
      }
    }
  }
  for (let c; (c = r.take(-1)) != null; ) push(out, c);
  return trim(out);
}

/** compose returns one op with the effect of a followed by b. */
export function compose(a, b) {
  checkOp(a);
  checkOp(b);
  const out = [];
  const r = new Reader(a);
  for (const c of b) {
    if (typeof c === 'number') {
      let n = c;
      while (n > 0) {
        const part = r.take(n, 'd');
        push(out, part);
        if (typeof part !== 'object') n -= componentLength(part);
      }
    } else if (typeof c === 'string') {
      push(out, c);
    } else {
      const n = deleteLength(c.d);
      let done = 0;
      while (done < n) {
        const part = r.take(n - done, 'd');
        if (typeof part === 'number') {
          push(out, { d: dslice(c.d, done, done + part) });
          done += part;
        } else if (typeof part === 'string') {
          done += cpLength(part); // b deletes what a inserted: both vanish
        } else {
          push(out, part);
        }
      }
    }
  }
  for (let c; (c = r.take(-1)) != null; ) push(out, c);
  return trim(out);
}

/**
 * apply returns the document s with op applied. It throws when a skip runs
 * past the end; a delete past the end is cut short, as in the reference.
 */
export function apply(s, op) {
  if (typeof s !== 'string') throw new Error('document must be a string');
  checkOp(op);
  const parts = [];
  let pos = 0;
  for (const c of op) {
    if (typeof c === 'number') {
      const end = u16Offset(s, c, pos);
      if (end > s.length) throw new Error('op skips past the end of the document');
      parts.push(s.slice(pos, end));
      pos = end;
    } else if (typeof c === 'string') {
      parts.push(c);
    } else {
      pos = Math.min(s.length, u16Offset(s, deleteLength(c.d), pos));
    }
  }
  parts.push(s.slice(pos));
  return parts.join('');
}

/**
 * transformPosition moves a cursor (in code points) over op. An insert
 * exactly at the cursor leaves it in place, unless own is true (the op is
 * the cursor owner's own), when the cursor moves past the insert, also
 * when the insert follows a delete at the cursor (a replacement). With own
 * false this is the reference's transformPosition. ot/position.go holds
 * the same rule; testdata/presence-vectors.json keeps the two in step.
 */
export function transformPosition(cursor, op, own = false) {
  let pos = 0;
  for (const c of op) {
    if (cursor < pos || (cursor === pos && !own)) break;
    if (typeof c === 'number') {
      pos += c;
    } else if (typeof c === 'string') {
      const n = cpLength(c);
      pos += n;
      cursor += n;
    } else {
      cursor -= Math.min(deleteLength(c.d), cursor - pos);
    }
  }
  return cursor;
}

/**
 * transformPresence moves a text presence {index, length} over op (see
 * transformPosition for own); start and end move separately. A negative
 * index or length counts as 0, as on the server. null stays null; other
 * values pass through.
 */
export function transformPresence(p, op, own = false) {
  if (p == null || typeof p.index !== 'number' || typeof p.length !== 'number') return p;
  const index = Math.max(p.index, 0);
  const start = transformPosition(index, op, own);
  const end = transformPosition(index + Math.max(p.length, 0), op, own);
  return { index: start, length: Math.max(0, end - start) };
}

/** invert returns the op that undoes op; every delete must carry its text. */
export function invert(op) {
  return normalize(
    op.map((c) => {
      if (typeof c === 'number') return c;
      if (typeof c === 'string') return { d: c };
      if (typeof c.d !== 'string') throw new Error('cannot invert a delete without its text');
      return c.d;
    }),
  );
}

/** isInvertible reports whether every delete in op carries its text. */
export const isInvertible = (op) => op.every((c) => typeof c !== 'object' || typeof c.d === 'string');

/** stripInvertible returns op with deletes in the short {d: n} form. */
export const stripInvertible = (op) =>
  normalize(op.map((c) => (typeof c === 'object' && typeof c.d === 'string' ? { d: cpLength(c.d) } : c)));

/**
 * The type as an object in the shape ShareDB registers types (name, uri,
 * create, apply, transform, compose, normalize, transformPresence, ...).
 */
export const type = {
  name: NAME,
  uri: URI,
  create(initial = '') {
    if (typeof initial !== 'string') throw new Error('initial data must be a string');
    return initial;
  },
  apply,
  transform,
  compose,
  normalize,
  checkOp,
  transformPosition,
  transformPresence,
  invert,
  isInvertible,
  stripInvertible,
  isNoop: (op) => op.length === 0,
};
