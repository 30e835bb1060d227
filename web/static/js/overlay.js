// Overlay draws other people's carets and selections over a <textarea>
// with the mirror technique: a layer on top of it holds the same text with
// the same font, padding and wrapping (invisible), with marker elements
// where the carets are, so the browser's own layout puts them in the right
// place; the layer scrolls with the textarea.
//
// For large documents the mirror is split into blocks of whole lines: an
// edit re-renders only the blocks it touches, and a moving caret only the
// blocks it leaves and enters, so no keystroke costs work in proportion to
// the document's length.

const TARGET = 2048; // block size to aim for, in UTF-16 units

// LABEL_MS is how long a caret's name shows after it moved (the delay of
// app.css's label-fade).
const LABEL_MS = 3000;

// COPIED are the textarea styles the mirror must share to wrap the same.
const COPIED = [
  'fontFamily',
  'fontSize',
  'fontWeight',
  'fontStyle',
  'fontVariantLigatures',
  'fontFeatureSettings',
  'letterSpacing',
  'wordSpacing',
  'lineHeight',
  'tabSize',
  'textTransform',
  'textIndent',
  'direction',
  'paddingTop',
  'paddingRight',
  'paddingBottom',
  'paddingLeft',
];

/** splitBlocks cuts text into blocks of whole lines, about TARGET long. */
export function splitBlocks(text) {
  const blocks = [];
  let start = 0;
  for (;;) {
    if (text.length - start <= TARGET) {
      blocks.push(text.slice(start));
      return blocks;
    }
    let cut = text.indexOf('\n', start + TARGET);
    if (cut < 0) {
      blocks.push(text.slice(start));
      return blocks;
    }
    blocks.push(text.slice(start, cut));
    start = cut + 1;
  }
}

/**
 * Overlay keeps a mirror of a textarea and draws remote carets on it.
 * layer is an empty element positioned over the textarea (see app.css).
 */
export class Overlay {
  constructor(textarea, layer) {
    this.ta = textarea;
    this.layer = layer;
    this.doc = layer.ownerDocument;
    this.inner = this.doc.createElement('div');
    this.inner.className = 'mirror';
    layer.replaceChildren(this.inner);
    this.blocks = []; // {text, el, deco: string}
    this.carets = []; // {id, name, color, start, end}
    // moved holds where each caret was when it last moved, and when: its
    // name shows for LABEL_MS after, however often its block is drawn.
    this.moved = new Map(); // id -> {start, end, at}
    this.onScroll = () => this.scroll();
    textarea.addEventListener('scroll', this.onScroll);
    this.resizer = typeof ResizeObserver === 'function' ? new ResizeObserver(() => this.fit()) : null;
    this.resizer?.observe(textarea);
    this.fit();
  }

  destroy() {
    this.ta.removeEventListener('scroll', this.onScroll);
    this.resizer?.disconnect();
    this.layer.replaceChildren();
  }

  // fit copies the textarea's geometry and text styles.
  fit() {
    const cs = getComputedStyle(this.ta);
    const st = this.inner.style;
    for (const k of COPIED) st[k] = cs[k];
    const ls = this.layer.style;
    ls.top = `${this.ta.offsetTop + this.ta.clientTop}px`;
    ls.left = `${this.ta.offsetLeft + this.ta.clientLeft}px`;
    ls.width = `${this.ta.clientWidth}px`;
    ls.height = `${this.ta.clientHeight}px`;
    st.width = `${this.ta.clientWidth}px`;
    this.scroll();
  }

  scroll() {
    this.inner.style.transform = `translate(${-this.ta.scrollLeft}px, ${-this.ta.scrollTop}px)`;
  }

  /** reset mirrors the whole text anew. */
  reset(text) {
    this.blocks = splitBlocks(text).map((t) => ({ text: t, el: null, deco: '' }));
    for (const b of this.blocks) b.el = this.render(b, []);
    this.inner.replaceChildren(...this.blocks.map((b) => b.el));
    this.decorate();
    this.scroll();
  }

  /**
   * edit mirrors a change: edits are the textarea's UTF-16 edits in order
   * (see Text.apply) and text the textarea's text after them. With measure
   * it returns the top of the line where the change ends, before and after
   * it ({before, after} in pixels from the text's top), so a caller can
   * keep the view still when someone else edits above it.
   */
  edit(edits, text, measure = false) {
    if (edits.length === 0) return null;
    // One range covering every edit: [lo, hiOld) of the old text became
    // [lo, hiNew) of the new one.
    const first = edits[0];
    const last = edits[edits.length - 1];
    let shift = 0;
    for (let i = 0; i < edits.length - 1; i++) shift += edits[i].text.length - (edits[i].end - edits[i].start);
    const lo = first.start;
    const hiOld = last.end - shift;
    const hiNew = last.start + last.text.length;
    const [a, offA] = this.blockAt(lo);
    const [b, offB] = this.blockAt(hiOld);
    const oldEnd = offB + this.blocks[b].text.length;
    const newEnd = oldEnd + (hiNew - hiOld);
    const fresh = splitBlocks(text.slice(offA, newEnd)).map((t) => ({ text: t, el: null, deco: '' }));
    for (const f of fresh) f.el = this.render(f, []);
    const m = measure ? { before: this.yAt(hiOld), after: 0 } : null;
    const old = this.blocks.splice(a, b - a + 1, ...fresh);
    old[0].el.replaceWith(...fresh.map((f) => f.el));
    for (const o of old.slice(1)) o.el.remove();
    this.decorate();
    if (m) m.after = this.yAt(hiNew);
    return m;
  }

  // yAt returns the top of the line that holds UTF-16 position pos, in
  // pixels from the mirror's top (it makes the browser lay the mirror out).
  yAt(pos) {
    const [i, off] = this.blockAt(pos);
    const block = this.blocks[i];
    const el = block.el;
    if (block.text.length === 0) return el.offsetTop;
    let rest = Math.min(pos - off, block.text.length - 1);
    const walker = this.doc.createTreeWalker(el, 4 /* NodeFilter.SHOW_TEXT */);
    let node;
    while ((node = walker.nextNode())) {
      if (node.parentElement?.classList.contains('remote-label')) continue;
      if (rest < node.data.length) break;
      rest -= node.data.length;
    }
    if (!node) return el.offsetTop + el.offsetHeight;
    const r = this.doc.createRange();
    r.setStart(node, rest);
    r.setEnd(node, Math.min(rest + 1, node.data.length));
    const rect = r.getClientRects()[0] ?? r.getBoundingClientRect();
    return rect.top - this.inner.getBoundingClientRect().top;
  }

  // blockAt returns the block holding UTF-16 position pos and its offset.
  blockAt(pos) {
    let off = 0;
    for (let i = 0; i < this.blocks.length; i++) {
      const len = this.blocks[i].text.length;
      if (pos <= off + len || i === this.blocks.length - 1) return [i, off];
      off += len + 1;
    }
    return [0, 0];
  }

  /**
   * setCarets sets the carets to draw: [{id, name, color, start, end}]
   * with UTF-16 positions (start <= end) in the current text.
   */
  setCarets(carets) {
    const now = Date.now();
    const moved = new Map();
    for (const c of carets) {
      const m = this.moved.get(c.id);
      moved.set(c.id, m && m.start === c.start && m.end === c.end ? m : { start: c.start, end: c.end, at: now });
    }
    this.moved = moved;
    this.carets = carets;
    this.decorate();
  }

  // decorate re-renders the blocks whose carets or selections changed.
  decorate() {
    const per = new Map();
    const add = (i, d) => {
      if (!per.has(i)) per.set(i, []);
      per.get(i).push(d);
    };
    const starts = [];
    let off = 0;
    for (const b of this.blocks) {
      starts.push(off);
      off += b.text.length + 1;
    }
    const find = (pos) => {
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid] <= pos) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    for (const c of this.carets) {
      const i = find(c.end);
      add(i, { kind: 'caret', at: c.end - starts[i], c });
      if (c.end > c.start) {
        const j = find(c.start);
        for (let k = j; k <= i; k++) {
          const from = Math.max(0, c.start - starts[k]);
          const to = Math.min(this.blocks[k].text.length, c.end - starts[k]);
          if (to > from) add(k, { kind: 'sel', from, to, c });
        }
      }
    }
    this.blocks.forEach((b, i) => {
      const decos = per.get(i) ?? [];
      const key = decos.length ? JSON.stringify(decos.map((d) => [d.kind, d.at, d.from, d.to, d.c.id, d.c.name, d.c.color])) : '';
      if (key === b.deco) return;
      b.deco = key;
      const el = this.render(b, decos);
      b.el.replaceWith(el);
      b.el = el;
    });
  }

  // render builds a block's element: its text, with selection highlights
  // and caret markers where decos say.
  render(block, decos) {
    const el = this.doc.createElement('div');
    const text = block.text;
    // An empty block, and the empty line after a newline that ends one,
    // get a zero-width space: the browser gives neither a line box of its
    // own (a textarea does), so a caret there would be drawn on the line
    // above.
    const tail = text === '' || text.endsWith('\n') ? '\u200b' : '';
    if (decos.length === 0) {
      el.textContent = text + tail;
      return el;
    }
    const cuts = new Set([0, text.length]);
    for (const d of decos) {
      if (d.kind === 'caret') cuts.add(d.at);
      else {
        cuts.add(d.from);
        cuts.add(d.to);
      }
    }
    const points = [...cuts].sort((x, y) => x - y);
    const carets = decos.filter((d) => d.kind === 'caret');
    const sels = decos.filter((d) => d.kind === 'sel');
    for (let i = 0; i < points.length; i++) {
      const at = points[i];
      for (const d of carets) if (d.at === at) el.append(this.caret(d.c));
      if (i === points.length - 1) break;
      const piece = text.slice(at, points[i + 1]);
      const sel = sels.filter((d) => d.from <= at && d.to >= points[i + 1]).pop();
      if (sel) {
        const span = this.doc.createElement('span');
        span.className = 'remote-sel';
        span.style.setProperty('--c', sel.c.color);
        span.dataset.id = sel.c.id;
        span.textContent = piece;
        el.append(span);
      } else {
        el.append(piece);
      }
    }
    if (tail) el.append(tail);
    return el;
  }

  caret(c) {
    const span = this.doc.createElement('span');
    span.className = 'remote-caret';
    span.style.setProperty('--c', c.color);
    span.dataset.id = c.id;
    span.dataset.name = c.name;
    const label = this.doc.createElement('span');
    label.className = 'remote-label';
    label.textContent = c.name;
    // The fade (app.css) counts from the caret's last move, not from this
    // drawing: a block is drawn anew by any edit in it.
    const m = this.moved.get(c.id);
    if (m) label.style.animationDelay = `${LABEL_MS - (Date.now() - m.at)}ms`;
    span.append(label);
    return span;
  }
}
