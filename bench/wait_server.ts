/**
 * Wait benchmark server child: `node --import tsx bench/wait_server.ts CONFIG PREMADE_KEYS`.
 *
 * Runs pushgate the way startServer (server/main.ts) does — buildDeps → createApp → listen with the same backlog
 * and server timeouts, JSON log on stderr — with bench-only seams that production code does not have:
 * - every knex query is counted (`deps.store.knex.on('query')`), so the parent can tell how many database queries
 *   a waiting request issues while it waits;
 * - `{type: 'stats'}` on the IPC channel answers the query count and the wait gauges (waits.active, answers.waiting);
 * - the server-key pool (size 0) hands out PREMADE_KEYS RSA-4096 keys made at start-up, round robin, so the few
 *   real enrollment step 2s do not wait for key generation (0: a fresh key per step 2, as in production).
 * Creates the bench admin, prints `READY <url> <json>`; SIGTERM drains like startServer's stop and exits.
 */
import type net from 'node:net';
import path from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import type { Server } from 'node:http';
import { loadConfig } from '../server/config.ts';
import { buildDeps } from '../server/deps.ts';
import { createApp } from '../server/app.ts';
import { Events } from '../core/events.ts';
import { RequestScope } from '../core/request_scope.ts';
import { attachLog, createLogger, lineDestination } from '../server/log.ts';
import { systemClock } from '../core/clock.ts';
import { generateServerKeyPair, SERVER_KEY_BITS, type ServerKeyPair } from '../tokens/push/signatures.ts';
import { ADMIN, ADMIN_PASSWORD, type WaitChildReply, type WaitChildRequest } from './wait_common.ts';
import { listen } from '../server/main.ts';

const [configFile, keysArg] = process.argv.slice(2);
if (!configFile || !keysArg) {
  process.stderr.write('usage: bench/wait_server.ts CONFIG PREMADE_KEYS\n');
  process.exit(2);
}
const config = loadConfig(configFile);
const premade: ServerKeyPair[] = await Promise.all(Array.from({ length: Number(keysArg) }, () => generateServerKeyPair(SERVER_KEY_BITS)));
let next = 0;

const events = new Events();
const scope = new RequestScope();
const logger = createLogger({
  level: config.log.level,
  format: 'json',
  clock: systemClock,
  node: config.server.nodeName,
  destination: lineDestination((line) => process.stderr.write(line + '\n')),
});
attachLog(events, logger, scope);
const generate = (): Promise<ServerKeyPair> =>
  premade.length ? Promise.resolve(premade[next++ % premade.length]!) : generateServerKeyPair(SERVER_KEY_BITS);
const deps = await buildDeps(config, { events, scope, push: { keys: { generate, size: 0 } } });
let queries = 0;
let snaps = 0;
deps.store.knex.on('query', () => {
  queries++;
});
if (!(await deps.store.admins.byName(ADMIN))) await deps.store.admins.insert(ADMIN, await deps.pins.hash(ADMIN_PASSWORD), deps.clock.now());

const app = createApp(deps);
const server: Server = await listen(app, config);
const addr = server.address() as net.AddressInfo;

process.on('message', (raw: unknown) => {
  const msg = raw as WaitChildRequest;
  if (msg.type !== 'stats') return;
  if (msg.gc) (globalThis as { gc?: () => void }).gc?.();
  // BENCH_WAIT_HEAPSNAP=DIR: a heap snapshot at every GC'd stats request (idle, then with N waiting), for finding out
  // what a waiting request holds (compare the two in Chrome DevTools or tests-free with bench/heap_diff.ts).
  if (msg.gc && process.env.BENCH_WAIT_HEAPSNAP)
    writeHeapSnapshot(path.join(process.env.BENCH_WAIT_HEAPSNAP, `wait-${process.pid}-${snaps++}.heapsnapshot`));
  const mem = process.memoryUsage();
  const reply: WaitChildReply = {
    type: 'stats',
    queries,
    waitsActive: deps.waits.active,
    busWaiting: deps.answers.waiting,
    heapUsedBytes: mem.heapUsed,
    heapTotalBytes: mem.heapTotal,
    externalBytes: mem.external,
    rssBytes: mem.rss,
  };
  process.send?.(reply);
});
process.once('SIGTERM', () => {
  deps.waits.drain();
  deps.waits.abortAll();
  server.closeAllConnections();
  server.close(() => {
    void deps.close().then(() => process.exit(0));
  });
});
process.stdout.write(
  `READY http://127.0.0.1:${addr.port} ${JSON.stringify({ transport: deps.store.dialect === 'postgres' && !config.bus.redisUrl ? 'postgres' : config.bus.redisUrl ? 'redis' : 'none' })}\n`,
);
