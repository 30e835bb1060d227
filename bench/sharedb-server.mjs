// The ShareDB 7 reference server for the performance comparison
// (scripts/bench.sh): a real ShareDB backend with the text-unicode type,
// behind a `ws` WebSocket server, so `coedit bench` drives it exactly as it
// drives coedit.
//
//   node bench/sharedb-server.mjs [--port 8091] [--host 127.0.0.1] [--pg URL]
//
// By default ShareDB keeps its documents in its in-memory database, as the
// issue's targets ask. With --pg it stores them in PostgreSQL through
// ShareDB's own adapter (sharedb-postgres): each op is committed in a
// PostgreSQL transaction, which with the server's defaults
// (synchronous_commit on) is flushed to its WAL before ShareDB acknowledges
// the op, as coedit's --sync always is. The script creates the adapter's
// tables in the database URL names (from the adapter's own structure.sql)
// if they are missing, and opens the adapter's whole pool before it
// listens, so that the PostgreSQL backends serving it exist when the load
// generator starts counting CPU.
//
// It prints "sharedb listening on HOST:PORT" once it accepts connections and
// runs until SIGINT or SIGTERM. Presence stays off, as in ShareDB's default:
// the load has none.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import ShareDB from 'sharedb';
import otText from 'ot-text-unicode';
import { WebSocketServer } from 'ws';
import { wsStream } from './wsstream.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8091' },
    host: { type: 'string', default: '127.0.0.1' },
    pg: { type: 'string' },
  },
});

// The pool's size: sharedb-postgres's default (pg.Pool's).
const pgPoolSize = 10;

async function openDB() {
  if (!values.pg) return undefined;
  const { default: PostgresDB } = await import('sharedb-postgres');
  const db = new PostgresDB({ connectionString: values.pg, max: pgPoolSize, idleTimeoutMillis: 0 });
  // The adapter's own schema (its structure.sql, which ends with ALTERs
  // that run once), on a database that does not have it yet.
  const { rows } = await db._pool.query(`SELECT to_regclass('snapshots') IS NOT NULL AS has`);
  if (!rows[0].has) {
    const require = createRequire(import.meta.url);
    await db._pool.query(readFileSync(require.resolve('sharedb-postgres/structure.sql'), 'utf8'));
  }
  // Hold every connection of the pool at once, so that all of them open.
  const clients = await Promise.all(Array.from({ length: pgPoolSize }, () => db._pool.connect()));
  for (const c of clients) c.release();
  return db;
}

ShareDB.types.register(otText.type);
let db;
try {
  db = await openDB();
} catch (err) {
  console.error('sharedb: PostgreSQL:', err.message);
  process.exit(1);
}
const backend = new ShareDB(db ? { db } : {});

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
