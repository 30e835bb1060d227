// TextareaBinding connects a <textarea> to a Doc: the user's edits become
// text-unicode ops, remote ops change the textarea without moving the
// user's caret or selection, and undo/redo take back the user's own edits
// only (the browser's native undo cannot tell whose text is whose, so it is
// replaced).
//
// Positions: the textarea counts UTF-16 units, ops count code points; the
// binding keeps a Text mirror of the textarea ("shadow") to convert between
// them and to diff against. A carriage return in the document is shown as
// "␍" (the textarea would turn it into a line feed and shift positions).
import * as ot from './ot.js';
import { Text } from './text.js';
import { Emitter } from './events.js';

const isHigh = (u) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

/** show maps document text to what the textarea shows (same length). */
export const show = (s) => (s.includes('\r') ? s.replaceAll('\r', '\u240d') : s);

const showOp = (op) => op.map((c) => (typeof c === 'string' ? show(c) : c));
const unshow = (s) => (s.includes('\u240d') ? s.replaceAll('\u240d', '\r') : s);

/**
 * diff finds the one changed range between old and now, looking first
 * where the caret is (caret: the selection end after the change), so the
 * cost is near the caret for a large text. It returns {start, end, text}:
 * old's [start, end) became text, never splitting a surrogate pair; null
 * when they are equal.
 */
export function diff(old, now, caret = now.length) {
  const ol = old.length;
  const nl = now.length;
  const min = Math.min(ol, nl);
  // Suffix first: the text after the caret is usually untouched.
  let s = Math.max(0, Math.min(nl - caret, min));
  if (s > 0 && old.slice(ol - s) !== now.slice(nl - s)) s = 0;
  // Prefix, up to what the suffix leaves, starting from a hint that is
  // checked in one comparison.
  const limit = min - s;
  let p = Math.max(0, Math.min(caret - Math.max(0, nl - ol), limit));
  if (p > 0 && old.slice(0, p) !== now.slice(0, p)) p = 0;
  while (p < limit && old.charCodeAt(p) === now.charCodeAt(p)) p++;
  while (s < min - p && old.charCodeAt(ol - 1 - s) === now.charCodeAt(nl - 1 - s)) s++;
  if (ol === nl && p + s === ol) return null;
  if (p > 0 && isHigh(old.charCodeAt(p - 1))) p--;
  if (s > 0 && isLow(old.charCodeAt(ol - s))) s--;
  return { start: p, end: ol - s, text: now.slice(p, nl - s) };
}

/** mapPosition moves a UTF-16 position over one edit {start, end, text}. */
export function mapPosition(x, e) {
  if (x <= e.start) return x;
  if (x >= e.end) return x + e.text.length - (e.end - e.start);
  return e.start;
}

/**
 * TextareaBinding binds textarea to doc. Events: 'edits' (edits, {remote})
 * after the textarea text changed (UTF-16 edits, see Text.apply; remote is
 * true for someone else's edit), 'reset' () after
 * it was replaced whole, 'selection' ({index, length} in code points, or
 * null) when the user's selection changed.
 */
export class TextareaBinding extends Emitter {
  constructor(textarea, doc, { undoDelay = 1000, now = () => Date.now() } = {}) {
    super();
    this.ta = textarea;
    this.doc = doc;
    this.shadow = new Text('');
    this.composing = false;
    this.queued = [];
    this.undoStack = [];
    this.redoStack = [];
    this.undoDelay = undoDelay;
    this.now = now;
    this.submitting = false;
    this.lastSel = null;
    this.selFrame = 0;
    this.off = [];
    const on = (target, type, fn) => {
      target.addEventListener(type, fn);
      this.off.push(() => target.removeEventListener(type, fn));
    };
    on(textarea, 'input', () => {
      if (!this.composing) this.sync();
    });
    on(textarea, 'beforeinput', (e) => {
      if (e.inputType === 'historyUndo' || e.inputType === 'historyRedo') {
        e.preventDefault();
        if (e.inputType === 'historyUndo') this.undo();
        else this.redo();
      }
    });
    on(textarea, 'keydown', (e) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
      const k = e.key.toLowerCase();
      if (k === 'z') {
        e.preventDefault();
        if (e.shiftKey) this.redo();
        else this.undo();
      } else if (k === 'y' && !e.metaKey) {
        e.preventDefault();
        this.redo();
      }
    });
    on(textarea, 'compositionstart', () => {
      this.composing = true;
    });
    on(textarea, 'compositionend', () => this.endComposition());
    for (const type of ['select', 'keyup', 'mouseup', 'focus', 'touchend']) on(textarea, type, () => this.selectionSoon());
    if (textarea.ownerDocument) on(textarea.ownerDocument, 'selectionchange', () => this.selectionSoon());
    this.off.push(doc.on('load', () => this.reload()));
    this.off.push(
      doc.on('op', (op, info) => {
        if (this.submitting) return; // our own edit, already in the textarea
        this.remote(op);
      }),
    );
    if (doc.version != null) this.reload();
  }

  /** destroy removes every listener. */
  destroy() {
    for (const f of this.off) f();
    this.off = [];
  }

  // reload shows the document's whole text.
  reload() {
    this.queued = [];
    this.undoStack = [];
    this.redoStack = [];
    // A load forgets everyone's carets, ours too (DocPresence.onDocLoad):
    // the selection is announced again even where it did not move.
    this.lastSel = null;
    const ta = this.ta;
    const sel = [ta.selectionStart, ta.selectionEnd];
    this.shadow.set(show(this.doc.text.s));
    ta.value = this.shadow.s;
    ta.setSelectionRange(Math.min(sel[0], ta.value.length), Math.min(sel[1], ta.value.length));
    ta.readOnly = this.doc.type == null;
    this.emit('reset');
    this.selectionSoon();
  }

  // sync turns whatever changed in the textarea since the last sync into an op.
  sync() {
    const ta = this.ta;
    const now = ta.value;
    const d = diff(this.shadow.s, now, ta.selectionEnd);
    if (!d) return;
    if (this.doc.type == null || this.doc.version == null) {
      // Not editable (yet): put the text back.
      ta.value = this.shadow.s;
      return;
    }
    let text = d.text;
    if (!text.isWellFormed()) {
      // A lone surrogate cannot go on the wire: show what will be sent.
      text = text.toWellFormed();
      ta.setRangeText(text, d.start, d.start + d.text.length, 'end');
    }
    const start = this.shadow.toCp(d.start);
    // The deleted text as the document has it (the shadow shows "\r" as
    // "␍", one UTF-16 unit for one, so the offsets agree): an undo or a
    // rollback puts back what was there, not its picture.
    const op = ot.normalize([start, { d: this.doc.text.s.slice(d.start, d.end) }, text]);
    if (op.length === 0) return;
    const edits = this.shadow.apply(op);
    this.submitting = true;
    try {
      this.doc.submitOp(op);
    } finally {
      this.submitting = false;
    }
    this.record(op);
    this.emit('edits', edits, { remote: false });
    this.selectionSoon();
  }

  endComposition() {
    this.composing = false;
    const queued = this.queued;
    this.queued = [];
    if (this.doc.version == null) {
      // Reset under the composition: its fresh snapshot reloads the text.
      this.ta.value = this.shadow.s;
      return;
    }
    if (queued.length === 0) {
      this.sync();
      return;
    }
    // The doc moved on under the composition: the user's edit (against the
    // text before it) and the queued remote ops are transformed past each
    // other, as the server would.
    const ta = this.ta;
    const d = diff(this.shadow.s, ta.value, ta.selectionEnd);
    let mine = [];
    if (d) {
      const text = d.text.toWellFormed();
      if (text !== d.text) ta.setRangeText(text, d.start, d.start + d.text.length, 'end');
      // The doc has moved on under the composition, so the deleted text
      // comes from the shadow, its "␍" read back as "\r" (a "␍" typed as
      // such, deleted in a composition that remote ops overtook, comes
      // back as "\r": the one case where the picture is ambiguous).
      mine = ot.normalize([this.shadow.toCp(d.start), { d: unshow(this.shadow.s.slice(d.start, d.end)) }, text]);
      const edits = this.shadow.apply(mine);
      this.record(mine);
      this.emit('edits', edits, { remote: false });
    }
    for (const r of queued) {
      const [m, r2] = [ot.transform(mine, r, 'left'), ot.transform(r, mine, 'right')];
      mine = m;
      this.remote(r2);
    }
    if (mine.length) {
      this.submitting = true;
      try {
        this.doc.submitOp(mine);
      } finally {
        this.submitting = false;
      }
    }
    this.selectionSoon();
  }

  // remote shows an op someone else made (already applied to the doc).
  remote(op) {
    if (this.composing) {
      this.queued.push(op);
      return;
    }
    this.transformStacks(op);
    this.applyToTextarea(showOp(op), null);
  }

  // applyToTextarea applies op (code points, against the shadow) to the
  // textarea. The user's selection follows the text around it; with
  // caretAfter it goes to the end of the last change instead.
  applyToTextarea(op, caretAfter) {
    const ta = this.ta;
    const edits = this.shadow.apply(op);
    if (edits.length === 0) return edits;
    let s = ta.selectionStart;
    let e = ta.selectionEnd;
    const dir = ta.selectionDirection;
    const top = ta.scrollTop;
    const left = ta.scrollLeft;
    for (const ed of edits) {
      ta.setRangeText(ed.text, ed.start, ed.end, 'preserve');
      s = mapPosition(s, ed);
      e = mapPosition(e, ed);
    }
    if (caretAfter) {
      const last = edits[edits.length - 1];
      s = e = last.start + last.text.length;
    }
    ta.setSelectionRange(s, e, dir);
    if (!caretAfter) {
      ta.scrollTop = top;
      ta.scrollLeft = left;
    }
    this.emit('edits', edits, { remote: !caretAfter });
    this.selectionSoon();
    return edits;
  }

  // record pushes the inverse of a local op on the undo stack. Typing (or
  // deleting) in one place joins the last entry, as editors group it: the
  // next edit joins when it is of the same kind, comes within undoDelay
  // of the last, and goes on where the last one ended (typing on after
  // it, deleting back from it or forward at it); and typing starts a new
  // entry at each new word once the entry has one, so that one undo takes
  // back a word with the spaces or line break around it, not a paragraph
  // typed without a pause.
  record(op) {
    const inv = ot.invert(op);
    const kind = op.every((c) => typeof c !== 'object') ? 'insert' : op.every((c) => typeof c !== 'string') ? 'delete' : 'replace';
    const at = editAt(op);
    const t = this.now();
    const top = this.undoStack[this.undoStack.length - 1];
    if (top && at && top.at && t - top.time < this.undoDelay && continues(top.at, at)) {
      top.op = ot.compose(inv, top.op);
      top.time = t;
      at.word ||= top.at.word;
      top.at = at;
    } else {
      this.undoStack.push({ op: inv, kind, time: t, at });
      if (this.undoStack.length > 500) this.undoStack.shift();
    }
    this.redoStack = [];
  }

  // transformStacks moves every undo and redo entry over a remote op, so
  // undo takes back only the user's own text wherever it has moved.
  transformStacks(op) {
    for (const stack of [this.undoStack, this.redoStack]) {
      let o = op;
      for (let i = stack.length - 1; i >= 0 && o.length; i--) {
        const u = stack[i].op;
        stack[i].op = ot.transform(u, o, 'left');
        o = ot.transform(o, u, 'right');
      }
      for (const e of stack) e.time = 0; // a remote edit ends the typing run
    }
  }

  /** undo takes back the user's last edit (group). */
  undo() {
    this.step(this.undoStack, this.redoStack);
  }

  /** redo does again what undo took back. */
  redo() {
    this.step(this.redoStack, this.undoStack);
  }

  step(from, to) {
    // Not while the document has no version (after a reset, before its
    // fresh snapshot): the op could not be placed, as sync refuses typing.
    if (this.composing || this.doc.type == null || this.doc.version == null) return;
    this.sync(); // anything typed but not yet seen
    while (from.length) {
      const { op, kind } = from.pop();
      if (op.length === 0) continue;
      this.applyToTextarea(showOp(op), true);
      this.submitting = true;
      try {
        this.doc.submitOp(op);
      } finally {
        this.submitting = false;
      }
      to.push({ op: ot.invert(op), kind, time: 0 });
      return;
    }
  }

  /** selection returns the user's selection in code points. */
  selection() {
    const ta = this.ta;
    const start = this.shadow.toCp(ta.selectionStart);
    const end = this.shadow.toCp(ta.selectionEnd);
    return { index: start, length: end - start };
  }

  selectionSoon() {
    if (this.selFrame) return;
    const raf = globalThis.requestAnimationFrame ?? ((f) => setTimeout(f, 16));
    this.selFrame = raf(() => {
      this.selFrame = 0;
      if (this.composing) return;
      const sel = this.selection();
      if (this.lastSel && sel.index === this.lastSel.index && sel.length === this.lastSel.length) return;
      this.lastSel = sel;
      this.emit('selection', sel);
    });
  }
}

// editAt describes an op that inserts or deletes in one place, for undo's
// grouping: {kind, start, end} in code points (end is where an insert's
// text ends) and, for an insert, its text and whether it holds a word
// (record keeps word for the whole entry); null for any other op.
function editAt(op) {
  let start = 0;
  let i = 0;
  if (typeof op[0] === 'number') {
    start = op[0];
    i = 1;
  }
  if (op.length !== i + 1) return null;
  const c = op[i];
  if (typeof c === 'string') return { kind: 'insert', start, end: start + ot.cpLength(c), text: c, word: /\S/u.test(c) };
  if (typeof c === 'object') return { kind: 'delete', start, end: start + ot.deleteLength(c.d) };
  return null;
}

// continues reports whether the edit next goes on from prev, the last
// edit of an undo entry (see record).
function continues(prev, next) {
  if (prev.kind !== next.kind) return false;
  if (next.kind === 'insert') return next.start === prev.end && !(prev.word && /\s$/u.test(prev.text) && /^\S/u.test(next.text));
  return next.end === prev.start || next.start === prev.start; // backspace, or delete forward
}
