// The caret and selection rule against the shared vectors in
// testdata/presence-vectors.json, which ot/position_test.go runs against
// the Go copy: the page's ot.js, the type the interop harness registers
// with the real sharedb client, and (for other users' ops) the reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import ref from 'ot-text-unicode';
import * as ot from '../js/ot.js';
import { textType } from '../../../interop/harness.mjs';

const { vectors } = JSON.parse(readFileSync(new URL('../../../testdata/presence-vectors.json', import.meta.url), 'utf8'));
const show = (v) => `${v.name}: (${JSON.stringify(v.presence)}, ${JSON.stringify(v.op)}, own ${v.own})`;

test('the vector file holds the whole set', () => {
  assert.ok(vectors.length >= 50, `${vectors.length} vectors`);
  assert.ok(vectors.some((v) => v.own) && vectors.some((v) => !v.own));
});

test('ot.js transformPresence follows the presence vectors', () => {
  for (const v of vectors) {
    assert.deepEqual(ot.transformPresence(v.presence, structuredClone(v.op), v.own), v.want, show(v));
  }
});

test('the interop harness registers the same rule with sharedb', () => {
  for (const v of vectors) {
    assert.deepEqual(textType.transformPresence(v.presence, structuredClone(v.op), v.own), v.want, show(v));
  }
});

test('presence vectors for other users\' ops are what the reference transformPosition gives', () => {
  let n = 0;
  for (const v of vectors) {
    if (v.own || v.presence.index < 0 || v.presence.length < 0) continue;
    const start = ref.type.transformPosition(v.presence.index, structuredClone(v.op));
    const end = ref.type.transformPosition(v.presence.index + v.presence.length, structuredClone(v.op));
    assert.deepEqual({ index: start, length: end - start }, v.want, show(v));
    n++;
  }
  assert.ok(n >= 30, `${n} vectors checked against the reference`);
});
