/**
 * Push benchmark server child: `node --import tsx bench/push_server.ts CONFIG FCM_PORT PREMADE_KEYS`.
 *
 * Starts pushgate the way startServer does (buildDeps → createApp → listen, cleanup timer, warn-level JSON log on
 * stderr) with two push seams startServer has no option for:
 * - the Firebase channel reaches the fake FCM on 127.0.0.1:FCM_PORT through the real firebase-admin HTTP path
 *   (toolchain.md §3: a Credential that never calls Google, an https.Agent whose connections are plain loopback TCP);
 * - the server-key pool (size 0) takes its RSA-4096 keys from a switchable source: `premade` hands out PREMADE_KEYS
 *   keys generated at start-up round robin (a warm pool: step 2 finds its key ready), `generate` makes a fresh one
 *   per step 2 with the production generator (an empty pool: step 2 waits for the key generation).
 * Creates the bench admin, prints `READY <url> <json>`, answers `stats` and `keys` on the IPC channel; SIGTERM stops it.
 */
import https from 'node:https';
import net from 'node:net';
import type { Server } from 'node:http';
import type { Credential } from 'firebase-admin/app';
import { loadConfig } from '../server/config.ts';
import { buildDeps } from '../server/deps.ts';
import { createApp } from '../server/app.ts';
import { Events } from '../core/events.ts';
import { RequestScope } from '../core/request_scope.ts';
import { attachLog, createLogger, lineDestination } from '../server/log.ts';
import { systemClock } from '../core/clock.ts';
import { startCleanup } from '../server/store/cleanup.ts';
import { generateServerKeyPair, SERVER_KEY_BITS, type ServerKeyPair } from '../tokens/push/signatures.ts';
import { ADMIN, ADMIN_PASSWORD, FCM_PROJECT, type ChildReply, type ChildRequest, type KeyMode } from './push_common.ts';
import { listen } from '../server/main.ts';

const [configFile, portArg, keysArg] = process.argv.slice(2);
if (!configFile || !portArg || !keysArg) {
  process.stderr.write('usage: bench/push_server.ts CONFIG FCM_PORT PREMADE_KEYS\n');
  process.exit(2);
}
const fcmPort = Number(portArg);
const config = loadConfig(configFile);

// Production-size server keys, generated on the thread pool before anything is measured.
const t0 = performance.now();
const premade: ServerKeyPair[] = await Promise.all(Array.from({ length: Number(keysArg) }, () => generateServerKeyPair(SERVER_KEY_BITS)));
const keygenMs = performance.now() - t0;
let mode: KeyMode = 'premade';
let next = 0;
const generate = (): Promise<ServerKeyPair> =>
  mode === 'premade' ? Promise.resolve(premade[next++ % premade.length]!) : generateServerKeyPair(SERVER_KEY_BITS);

class LoopbackAgent extends https.Agent {
  override createConnection(): net.Socket {
    return net.connect(fcmPort, '127.0.0.1');
  }
}
const credential: Credential = { getAccessToken: async () => ({ access_token: 'bench-access-token', expires_in: 3600 }) };

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
const deps = await buildDeps(config, {
  events,
  scope,
  push: {
    keys: { generate, size: 0 },
    firebase: { credential, httpAgent: new LoopbackAgent({ keepAlive: true }), projectId: FCM_PROJECT },
  },
});
if (!(await deps.store.admins.byName(ADMIN))) await deps.store.admins.insert(ADMIN, await deps.pins.hash(ADMIN_PASSWORD), deps.clock.now());

const app = createApp(deps);
const server: Server = await listen(app, config);
const addr = server.address() as net.AddressInfo;
const stopCleanup = startCleanup(deps);

process.on('message', (raw: unknown) => {
  const msg = raw as ChildRequest;
  let reply: ChildReply;
  if (msg.type === 'keys') {
    mode = msg.mode;
    reply = { type: 'keys', mode };
  } else {
    const cpu = process.cpuUsage();
    reply = { type: 'stats', cpuUserUs: cpu.user, cpuSystemUs: cpu.system, rssBytes: process.memoryUsage().rss };
  }
  process.send?.(reply);
});
process.once('SIGTERM', () => {
  stopCleanup();
  server.closeAllConnections();
  server.close(() => {
    void deps.close().then(() => process.exit(0));
  });
});
process.stdout.write(
  `READY http://127.0.0.1:${addr.port} ${JSON.stringify({ premadeKeys: premade.length, keygenMs: Math.round(keygenMs) })}\n`,
);
