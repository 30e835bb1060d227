// Applies Yjs updates to one Y.Doc with the real yjs package, for
// TestYjsUpdatesApplyInYjs: reads one base64 update per line from stdin,
// applies them in order, and prints JSON: each client's characters still
// in the text, in document order ({"1": "ab", ...}), the whole text,
// whether any update waits for structs or deletions it lacks (pending),
// and the updates the document emitted (base64), which are what a server
// such as Hocuspocus sends on to the other clients.
import { createInterface } from 'node:readline';
import * as Y from 'yjs';

const doc = new Y.Doc();
const text = doc.getText('text');
const emitted = [];
doc.on('update', (u) => emitted.push(Buffer.from(u).toString('base64')));
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
console.log(JSON.stringify({ byClient, text: text.toString(), pending, emitted }));
