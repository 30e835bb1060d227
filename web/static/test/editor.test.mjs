// The textarea binding (editor.js): the diff that turns a textarea change
// into an op, and undo of one's own edits only, driven through a minimal
// stand-in for the <textarea> element (value, selection, setRangeText,
// events); the browser test (web/e2e_test.go) drives the real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diff, mapPosition } from '../js/editor.js';
import { page } from './fakes.mjs';
import { rng, randomText, int } from './gen.mjs';

const isLow = (u) => u >= 0xdc00 && u <= 0xdfff;

test('diff finds the change near the caret and never splits a surrogate pair', () => {
  // Typing "a" between two a's is reported where the caret says.
  assert.deepEqual(diff('aa', 'aaa', 2), { start: 1, end: 1, text: 'a' });
  assert.deepEqual(diff('aaa', 'aa', 1), { start: 1, end: 2, text: '' });
  assert.deepEqual(diff('x😀y', 'x😁y', 3), { start: 1, end: 3, text: '😁' });
  assert.equal(diff('same', 'same', 2), null);
  const r = rng(11);
  for (let i = 0; i < 3000; i++) {
    const old = randomText(r, 30);
    const units = old.length;
    const a = int(r, units + 1);
    const b = a + int(r, units - a + 1);
    let start = a;
    let end = b;
    if (start > 0 && isLow(old.charCodeAt(start))) start--;
    if (end > 0 && end < units && isLow(old.charCodeAt(end))) end++;
    const ins = randomText(r, 4);
    const now = old.slice(0, start) + ins + old.slice(end);
    const caret = r() < 0.8 ? start + ins.length : int(r, now.length + 1);
    const d = diff(old, now, caret);
    if (old === now) {
      assert.equal(d, null);
      continue;
    }
    assert.equal(old.slice(0, d.start) + d.text + old.slice(d.end), now, `diff(${JSON.stringify(old)}, ${JSON.stringify(now)}, ${caret})`);
    for (const s of [d.text, old.slice(d.start, d.end)]) assert.ok(s.isWellFormed(), `diff cut a pair: ${JSON.stringify(d)}`);
  }
});

test('mapPosition keeps positions before an insert and shifts those after', () => {
  const e = { start: 2, end: 4, text: 'xyz' };
  assert.deepEqual([0, 2, 3, 4, 6].map((x) => mapPosition(x, e)), [0, 2, 2, 5, 7]);
});

test('typing becomes ops; remote ops keep the caret; undo takes back only my text', () => {
  const { ta, doc, ws, tick } = page('😀 hello');
  assert.equal(ta.value, '😀 hello');
  ta.setSelectionRange(8, 8);
  ta.type(' world');
  assert.equal(doc.text.s, '😀 hello world');
  assert.deepEqual(ws.take().filter((m) => m.a === 'op').map((m) => m.op), [[7, ' world']]);
  // Someone inserts at the start and at my caret: my caret stays put in the text.
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 1, src: 'me', seq: 1 });
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 2, src: 'o', seq: 1, op: ['>> ', 13, '!'] });
  assert.equal(ta.value, '>> 😀 hello world!');
  assert.equal(ta.selectionStart, 17);
  // Undo removes " world" (mine) and keeps ">> " and "!" (theirs).
  tick(5000);
  ta.type('?');
  ta.fire('keydown', { key: 'z', ctrlKey: true });
  assert.equal(ta.value, '>> 😀 hello world!');
  ta.fire('keydown', { key: 'z', ctrlKey: true });
  assert.equal(ta.value, '>> 😀 hello!');
  assert.equal(doc.text.s, ta.value);
  ta.fire('beforeinput', { inputType: 'historyRedo' });
  assert.equal(ta.value, '>> 😀 hello world!');
  ta.fire('keydown', { key: 'z', ctrlKey: true });
  ta.fire('keydown', { key: 'z', ctrlKey: true }); // nothing more of mine to undo
  assert.equal(ta.value, '>> 😀 hello!');
  assert.equal(doc.text.s, ta.value);
});

test('undo takes back a word (with the spaces around it) at a time while typing, and separate places separately', () => {
  const { ta, doc, tick } = page('');
  const typeSlowly = (text) => {
    for (const ch of text) {
      tick(150); // a steady typist: never a pause of undoDelay
      ta.type(ch);
    }
  };
  const undo = () => ta.fire('keydown', { key: 'z', ctrlKey: true });
  typeSlowly(' One two.\nThree');
  assert.equal(doc.text.s, ' One two.\nThree');
  const steps = [];
  for (let i = 0; i < 4; i++) {
    undo();
    steps.push(ta.value);
  }
  assert.deepEqual(steps, [' One two.\n', ' One ', '', '']);
  assert.equal(doc.text.s, '');

  // Two places within a second are two steps.
  typeSlowly('abc');
  tick(2000);
  ta.setSelectionRange(0, 0);
  typeSlowly('X');
  ta.setSelectionRange(4, 4);
  typeSlowly('Y');
  assert.equal(ta.value, 'XabcY');
  undo();
  assert.equal(ta.value, 'Xabc');
  undo();
  assert.equal(ta.value, 'abc');

  // Backspacing through the word is one step, and so is deleting forward.
  tick(2000);
  const backspace = () => {
    tick(150);
    const s = ta.selectionStart;
    ta.value = ta.value.slice(0, s - 1) + ta.value.slice(s);
    ta.setSelectionRange(s - 1, s - 1);
    ta.fire('input');
  };
  const del = () => {
    tick(150);
    const s = ta.selectionStart;
    ta.value = ta.value.slice(0, s) + ta.value.slice(s + 1);
    ta.fire('input');
  };
  ta.setSelectionRange(3, 3);
  backspace();
  backspace();
  assert.equal(ta.value, 'a');
  undo();
  assert.equal(ta.value, 'abc');
  tick(2000);
  ta.setSelectionRange(0, 0);
  del();
  del();
  assert.equal(ta.value, 'c');
  undo();
  assert.equal(ta.value, 'abc');
  assert.equal(doc.text.s, 'abc');
});

test('a composition holds remote ops and merges them when it ends', () => {
  const { ta, doc, ws } = page('abc');
  ta.setSelectionRange(3, 3);
  ta.fire('compositionstart');
  ta.type('に'); // input events during a composition are not sent
  ws.deliver({ a: 'op', c: 'docs', d: 'x', v: 1, src: 'o', seq: 1, op: ['X'] });
  assert.equal(ta.value, 'abcに', 'the textarea is left alone while composing');
  ta.value = 'abcにほ';
  ta.setSelectionRange(5, 5);
  ta.fire('compositionend');
  assert.equal(ta.value, 'Xabcにほ');
  assert.equal(doc.text.s, 'Xabcにほ');
  assert.equal(ta.selectionStart, 6);
  const ops = ws.take().filter((m) => m.a === 'op');
  assert.deepEqual(ops.map((m) => [m.v, m.op]), [[2, [4, 'にほ']]]);
});
