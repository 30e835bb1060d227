// The adapter between a server-side ws socket and a ShareDB backend, shared
// by the ShareDB reference server (bench/sharedb-server.mjs) and the page's
// tests against ShareDB (web/static/test/sharedb.test.mjs).
import { Duplex } from 'node:stream';
import WebSocket from 'ws';

// wsStream adapts a server-side ws socket to the object stream a ShareDB
// agent reads and writes (what @teamwork/websocket-json-stream does): one
// JSON message per text frame.
export function wsStream(ws) {
  const stream = new Duplex({
    objectMode: true,
    read() {},
    write(msg, _enc, cb) {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
      cb();
    },
  });
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      ws.close(1003, 'not JSON');
      return;
    }
    stream.push(msg);
  });
  ws.on('close', () => {
    stream.push(null);
    stream.emit('close');
    stream.emit('end');
    stream.end();
  });
  stream.on('error', () => ws.terminate());
  stream.on('end', () => ws.close());
  return stream;
}
