/**
 * Attack benchmark server child: `node --import tsx bench/attack_server.ts CONFIG LEGIT_USERS`.
 *
 * Enrolls, with the config's argon2 parameters: an spass token with the bench PIN for the flood's victim
 * (`victim`), LEGIT_USERS spass tokens with the bench PIN for the legitimate logins (`leg0…`), and an edupush token
 * for `pushuser` (poll only) whose enrollment step 2 is completed in-process with a fresh RSA-2048 phone key. Then it
 * starts pushgate like startServer (buildDeps → createApp → listen) and prints `READY <url> <json>` where the json
 * carries the push serial and the phone's private key (PKCS#8 PEM) for the parent's signed polls. Answers `stats` on
 * the IPC channel (CPU, RSS, the node's counters); SIGTERM stops it.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import type net from 'node:net';
import type { Server } from 'node:http';
import { loadConfig } from '../server/config.ts';
import { buildDeps } from '../server/deps.ts';
import { createApp } from '../server/app.ts';
import { Events } from '../core/events.ts';
import { RequestScope } from '../core/request_scope.ts';
import { attachLog, createLogger } from '../server/log.ts';
import { systemClock } from '../core/clock.ts';
import { enrollToken } from '../server/auth/tokens_admin.ts';
import { handleSmartphoneRequest } from '../server/auth/smartphone.ts';
import { makeParams } from '../server/params.ts';
import { EDUPUSH } from '../tokens/push/variants.ts';
import { listen } from '../server/main.ts';
import { PIN } from './common.ts';
import type { AttackStats } from './attack_common.ts';
import { serverLogFile } from './attack_children.ts';

const [configFile, usersArg] = process.argv.slice(2);
if (!configFile || !usersArg) {
  process.stderr.write('usage: bench/attack_server.ts CONFIG LEGIT_USERS\n');
  process.exit(2);
}
const config = loadConfig(configFile);
const events = new Events();
const scope = new RequestScope();
const logger = createLogger({
  level: config.log.level,
  format: 'json',
  clock: systemClock,
  node: config.server.nodeName,
  // Synchronous writes to a file, as production writes its stdout (server/log.ts createLogger: pino.destination, sync).
  destination: pino.destination({ dest: serverLogFile(configFile), sync: true, mode: 0o600 }),
});
attachLog(events, logger, scope);
const deps = await buildDeps(config, { events, scope });

await enrollToken(deps, { type: 'spass', serial: 'VICTIM', user: 'victim', pin: PIN, params: {} });
const legit = Number(usersArg);
for (let i = 0; i < legit; i += 4) {
  await Promise.all(
    Array.from({ length: Math.min(4, legit - i) }, (_, k) =>
      enrollToken(deps, { type: 'spass', serial: `LEG${i + k}`, user: `leg${i + k}`, pin: PIN, params: {} }),
    ),
  );
}
const push = await enrollToken(deps, { type: 'edupush', serial: 'PUSH0001', user: 'pushuser', pin: PIN, params: { genkey: '1' } });
const credential = new URL(String(push.qrUrl ?? '')).searchParams.get('enrollment_credential') ?? '';
const phone = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const pubkey = (phone.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
await handleSmartphoneRequest(
  deps,
  EDUPUSH,
  'POST',
  makeParams({ serial: 'PUSH0001', enrollment_credential: credential, fbtoken: '', pubkey }),
  '127.0.0.1',
);

const server: Server = await listen(createApp(deps), config);
const addr = server.address() as net.AddressInfo;

process.on('message', async (raw: unknown) => {
  if ((raw as { type?: string } | null)?.type !== 'stats') return;
  const cpu = process.cpuUsage();
  const reply: AttackStats = {
    type: 'stats',
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    rssBytes: process.memoryUsage().rss,
    counters: Object.fromEntries(await deps.metrics.counters()),
  };
  process.send?.(reply);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => {
    void deps.close().then(() => process.exit(0));
  });
});
// The server keys a serving node keeps ready for push enrollment are made before READY (seconds of thread-pool CPU
// that would otherwise fall into the first phase).
const keygenStarted = performance.now();
while (deps.push.keys.ready < deps.push.keys.size && performance.now() - keygenStarted < 120_000)
  await new Promise((resolve) => setTimeout(resolve, 100));
const info = { pushSerial: 'PUSH0001', phonePrivatePem: phone.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
process.stdout.write(`READY http://127.0.0.1:${addr.port} ${JSON.stringify(info)}\n`);
