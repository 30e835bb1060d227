// The Hocuspocus 3 reference server for the performance comparison
// (scripts/bench.sh): a real Hocuspocus server with no extensions, so its
// Yjs documents live in memory only, as ShareDB's do in
// bench/sharedb-server.mjs. `coedit bench --protocol hocuspocus` drives it
// with the same load it puts on coedit, over Hocuspocus's own protocol
// (Yjs updates, each answered with a sync status).
//
//   node bench/hocuspocus-server.mjs [--port 8092] [--host 127.0.0.1]
//
// It prints "hocuspocus listening on HOST:PORT" once it accepts
// connections and runs until SIGINT or SIGTERM. Hocuspocus 4 needs Node 22;
// 3 runs on the Node 20 the tests use.
import { parseArgs } from 'node:util';
import { Server } from '@hocuspocus/server';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8092' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

const server = new Server({
  port: Number(values.port),
  address: values.host,
  quiet: true,
  stopOnSignals: true,
});
server.httpServer.on('error', (err) => {
  console.error('hocuspocus:', err.message);
  process.exit(1);
});
await server.listen();
console.log(`hocuspocus listening on ${values.host}:${values.port}`);
