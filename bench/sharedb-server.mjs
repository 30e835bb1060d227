// The ShareDB 7 reference server for the performance comparison
// (scripts/bench.sh): a real ShareDB backend with its default in-memory
// database and the text-unicode type, behind a `ws` WebSocket server, so
// `coedit bench` drives it exactly as it drives coedit.
//
//   node bench/sharedb-server.mjs [--port 8091] [--host 127.0.0.1]
//
// It prints "sharedb listening on HOST:PORT" once it accepts connections and
// runs until SIGINT or SIGTERM. It uses only the packages the interop tests
// already install (sharedb, ot-text-unicode, ws). Presence stays off, as in
// ShareDB's default: the load has none.
import { parseArgs } from 'node:util';
import ShareDB from 'sharedb';
import otText from 'ot-text-unicode';
import { WebSocketServer } from 'ws';
import { wsStream } from './wsstream.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8091' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

ShareDB.types.register(otText.type);
const backend = new ShareDB();

const wss = new WebSocketServer({ host: values.host, port: Number(values.port), perMessageDeflate: false });
wss.on('connection', (ws, req) => backend.listen(wsStream(ws), req));
wss.on('listening', () => {
  const a = wss.address();
  console.log(`sharedb listening on ${a.address}:${a.port}`);
});
wss.on('error', (err) => {
  console.error('sharedb:', err.message);
  process.exit(1);
});

function shutdown() {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => backend.close(() => process.exit(0)));
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
