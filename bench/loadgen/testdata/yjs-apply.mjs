// Applies Yjs updates to one Y.Doc with the real yjs package, for
// TestYjsUpdatesApplyInYjs: reads one base64 update per line from stdin,
// applies them in order, and prints JSON: each client's characters still
// in the text, in document order ({"1": "ab", ...}), the whole text, and
// whether any update waits for structs or deletions it lacks (pending).
import { createInterface } from 'node:readline';
import * as Y from 'yjs';

const doc = new Y.Doc();
const text = doc.getText('text');
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== '') Y.applyUpdate(doc, Buffer.from(line, 'base64'));
}
const byClient = {};
for (let item = text._start; item !== null; item = item.right) {
  if (item.deleted) continue;
  const k = String(item.id.client);
  byClient[k] = (byClient[k] ?? '') + item.content.str;
}
const pending = doc.store.pendingStructs !== null || doc.store.pendingDs !== null;
console.log(JSON.stringify({ byClient, text: text.toString(), pending }));
