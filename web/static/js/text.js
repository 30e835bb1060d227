// Text holds a document string and converts positions between the two ways
// of counting it: Unicode code points (what ops and presence use on the
// wire) and UTF-16 units (what JavaScript strings and the textarea use).
//
// A document without surrogate pairs (most of them) converts in O(1). With
// pairs, a conversion scans from the nearest of the start, the end and the
// last position converted or edited (the anchor), so work near the caret
// costs in proportion to the distance moved, not to the document's length.
import { checkOp, cpLength, deleteLength } from './ot.js';

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

/** countPairs returns the number of surrogate pairs in s. */
export function countPairs(s) {
  return s.length - cpLength(s);
}

/**
 * Text is a mutable document string with code point / UTF-16 position
 * conversion. Mutate it only through set and apply.
 */
export class Text {
  constructor(s = '') {
    this.set(s);
  }

  /** set replaces the whole string. */
  set(s) {
    this.s = s;
    this.pairs = countPairs(s);
    this.anchorU = 0;
    this.anchorC = 0;
  }

  /** cpLength is the length in code points. */
  get cpLength() {
    return this.s.length - this.pairs;
  }

  /** toU16 converts a code point position to a UTF-16 index (clamped to the string). */
  toU16(cp) {
    const max = this.cpLength;
    if (cp <= 0) return 0;
    if (cp >= max) return this.s.length;
    if (this.pairs === 0) return cp;
    let [u, c] = this.start(cp, this.anchorC, max);
    const s = this.s;
    while (c < cp) {
      u += isHigh(s.charCodeAt(u)) && isLow(s.charCodeAt(u + 1)) ? 2 : 1;
      c++;
    }
    while (c > cp) {
      u -= u >= 2 && isLow(s.charCodeAt(u - 1)) && isHigh(s.charCodeAt(u - 2)) ? 2 : 1;
      c--;
    }
    this.anchorU = u;
    this.anchorC = c;
    return u;
  }

  /**
   * toCp converts a UTF-16 index to a code point position (clamped). An
   * index inside a surrogate pair counts as the position after the pair.
   */
  toCp(u16) {
    const s = this.s;
    if (u16 <= 0) return 0;
    if (u16 >= s.length) return this.cpLength;
    if (this.pairs === 0) return u16;
    let u;
    let c;
    const fromAnchor = Math.abs(u16 - this.anchorU);
    if (u16 <= fromAnchor) [u, c] = [0, 0];
    else if (s.length - u16 < fromAnchor) [u, c] = [s.length, this.cpLength];
    else [u, c] = [this.anchorU, this.anchorC];
    while (u < u16) {
      u += isHigh(s.charCodeAt(u)) && isLow(s.charCodeAt(u + 1)) ? 2 : 1;
      c++;
    }
    while (u > u16) {
      u -= u >= 2 && isLow(s.charCodeAt(u - 1)) && isHigh(s.charCodeAt(u - 2)) ? 2 : 1;
      c--;
    }
    if (u < u16) {
      // Stepped back over a pair whose second half u16 points at.
      u += 2;
      c++;
    }
    this.anchorU = u;
    this.anchorC = c;
    return c;
  }

  // start picks where a scan to code point cp begins: the string's start,
  // its end or the anchor, whichever is nearest.
  start(cp, anchorC, max) {
    const dA = Math.abs(cp - anchorC);
    if (cp <= dA && cp <= max - cp) return [0, 0];
    if (max - cp < dA) return [this.s.length, max];
    return [this.anchorU, anchorC];
  }

  /**
   * apply applies a text-unicode op and returns the change as UTF-16 edits
   * {start, end, text}, in order: each replaces [start, end) of the string
   * as the edits before it left it. It throws, leaving the text untouched,
   * if the op is invalid or runs past the end.
   */
  apply(op) {
    checkOp(op);
    const s = this.s;
    const cpLen = this.cpLength;
    const edits = [];
    const parts = [];
    let u = 0; // UTF-16 position in s
    let c = 0; // code point position in s
    let out = 0; // UTF-16 length of the result so far
    let outC = 0; // code point length of the result so far
    let pairs = this.pairs;
    let anchor = [0, 0];
    const edit = (start, end, text) => {
      const last = edits[edits.length - 1];
      if (last && start === last.start + last.text.length) {
        last.end += end - start;
        last.text += text;
      } else {
        edits.push({ start, end, text });
      }
    };
    for (const comp of op) {
      if (typeof comp === 'number') {
        if (c + comp > cpLen) throw new Error('op skips past the end of the document');
        const to = this.scan(u, c, c + comp);
        parts.push(s.slice(u, to));
        out += to - u;
        outC += comp;
        u = to;
        c += comp;
      } else if (typeof comp === 'string') {
        parts.push(comp);
        edit(out, out, comp);
        const n = cpLength(comp);
        pairs += comp.length - n;
        out += comp.length;
        outC += n;
        anchor = [out, outC];
      } else {
        const n = Math.min(deleteLength(comp.d), cpLen - c);
        if (n <= 0) continue;
        const to = this.scan(u, c, c + n);
        pairs -= to - u - n;
        edit(out, out + (to - u), '');
        u = to;
        c += n;
        anchor = [out, outC];
      }
    }
    parts.push(s.slice(u));
    this.s = parts.length === 1 ? parts[0] : parts.join('');
    this.pairs = pairs;
    // Leave the anchor at the last change, where the next one most likely is.
    [this.anchorU, this.anchorC] = anchor;
    return edits;
  }

  // scan returns the UTF-16 index of code point cp (cp >= c), scanning
  // forward from (u, c) or from the anchor when that is nearer.
  scan(u, c, cp) {
    if (this.pairs === 0) return u + (cp - c);
    if (this.anchorC > c && this.anchorC <= cp) [u, c] = [this.anchorU, this.anchorC];
    const s = this.s;
    for (; c < cp; c++) u += isHigh(s.charCodeAt(u)) && isLow(s.charCodeAt(u + 1)) ? 2 : 1;
    return u;
  }
}
