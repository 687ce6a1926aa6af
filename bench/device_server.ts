/**
 * Device benchmark server child: `node --import tsx bench/device_server.ts CONFIG LOAD_DEVICES LATENCY(0|1)`.
 *
 * Runs pushgate like startServer (buildDeps → createApp → listen, JSON log on stderr). Before READY it enrolls, in
 * process, through the same functions the HTTP routes call (enrollToken = step 1, enrollDevice = `POST
 * /device/v2/enroll`, handleSmartphoneRequest = v1 step 2):
 *   - LOAD_DEVICES v2 devices BDEV0… (no user, no PIN) with the Ed25519 keys of bench/device_common.ts;
 *   - with LATENCY=1: the three latency devices (bench/device_common.ts LATENCY), with a user and the bench PIN each:
 *     two v2 devices (long-poll, SSE) and one v1 app (a fresh RSA-2048 phone key, sent to the parent after READY).
 * Every enrollment takes the same premade RSA-4096 server key (the pool is made with size 0 and a generator that hands
 * it out): with the `longpoll` channel the server key signs only the v1 phone's poll answers, so sharing it changes no
 * measured path. Prints `READY <url> <json>` (DeviceReady); answers `{type: 'stats'}` on IPC; SIGTERM stops it.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import type net from 'node:net';
import type { Server } from 'node:http';
import { loadConfig } from '../server/config.ts';
import { buildDeps } from '../server/deps.ts';
import { createApp } from '../server/app.ts';
import { Events } from '../core/events.ts';
import { RequestScope } from '../core/request_scope.ts';
import { attachLog, createLogger, lineDestination } from '../server/log.ts';
import { systemClock } from '../core/clock.ts';
import { enrollToken } from '../server/auth/tokens_admin.ts';
import { enrollDevice } from '../server/auth/device.ts';
import { handleSmartphoneRequest } from '../server/auth/smartphone.ts';
import { makeParams } from '../server/params.ts';
import { listen } from '../server/main.ts';
import { EDUPUSH } from '../tokens/push/variants.ts';
import { signDeviceText, signedText, spkiBase64 } from '../tokens/push/device.ts';
import { generateServerKeyPair, SERVER_KEY_BITS } from '../tokens/push/signatures.ts';
import { DEVICE_PIN, type DeviceReady, type DeviceStats, deviceKey, LATENCY, loadSerial } from './device_common.ts';

const [configFile, loadArg, latencyArg] = process.argv.slice(2);
if (!configFile || loadArg === undefined || latencyArg === undefined) {
  process.stderr.write('usage: bench/device_server.ts CONFIG LOAD_DEVICES LATENCY(0|1)\n');
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
  destination: lineDestination((line) => process.stderr.write(line + '\n')),
});
attachLog(events, logger, scope);
const serverKey = await generateServerKeyPair(SERVER_KEY_BITS);
const deps = await buildDeps(config, { events, scope, push: { keys: { generate: () => Promise.resolve(serverKey), size: 0 } } });

const credentialOf = (qrUrl: unknown): string => new URL(String(qrUrl ?? '')).searchParams.get('enrollment_credential') ?? '';

/** Step 1 and the v2 enrollment of one device, as `POST /token/init` + `POST /device/v2/enroll` do. */
async function enrollV2(serial: string, user?: string): Promise<void> {
  const step1 = await enrollToken(deps, {
    type: 'edupush',
    serial,
    ...(user ? { user, pin: DEVICE_PIN } : {}),
    params: { genkey: '1' },
  });
  const credential = credentialOf(step1.qrUrl);
  const key = deviceKey(serial);
  const pubkey = spkiBase64(key.publicKey);
  await enrollDevice(deps, {
    serial,
    enrollmentCredential: credential,
    pubkey,
    authMode: 'lax',
    fbToken: '',
    encPubkey: '',
    signature: signDeviceText(key.privateKey, signedText.enroll(serial, credential, pubkey, 'lax', '', '')),
  });
}

const t0 = performance.now();
const load = Number(loadArg);
for (let i = 0; i < load; i += 16) await Promise.all(Array.from({ length: Math.min(16, load - i) }, (_, k) => enrollV2(loadSerial(i + k))));
let phonePrivatePem: string | null = null;
if (latencyArg === '1') {
  await enrollV2(LATENCY.longpoll.serial, LATENCY.longpoll.user);
  await enrollV2(LATENCY.sse.serial, LATENCY.sse.user);
  const v1 = await enrollToken(deps, {
    type: 'edupush',
    serial: LATENCY.v1.serial,
    user: LATENCY.v1.user,
    pin: DEVICE_PIN,
    params: { genkey: '1' },
  });
  const phone = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pubkey = (phone.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
  await handleSmartphoneRequest(
    deps,
    EDUPUSH,
    'POST',
    makeParams({ serial: LATENCY.v1.serial, enrollment_credential: credentialOf(v1.qrUrl), fbtoken: '', pubkey }),
    '127.0.0.1',
  );
  phonePrivatePem = phone.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}
const enrollMs = performance.now() - t0;

const server: Server = await listen(createApp(deps), config);
const addr = server.address() as net.AddressInfo;

process.on('message', (raw: unknown) => {
  // BENCH_DEVICE_HEAP_SNAPSHOT=DIR: `{type: 'snapshot'}` writes a heap snapshot there (looking into memory per device).
  if ((raw as { type?: string } | null)?.type === 'snapshot' && process.env.BENCH_DEVICE_HEAP_SNAPSHOT) {
    const file = writeHeapSnapshot(path.join(process.env.BENCH_DEVICE_HEAP_SNAPSHOT, `device-${process.pid}-${Date.now()}.heapsnapshot`));
    process.stderr.write(`heap snapshot: ${file}\n`);
    process.send?.({ type: 'snapshot', file });
    return;
  }
  if ((raw as { type?: string } | null)?.type !== 'stats') return;
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const reply: DeviceStats = {
    type: 'stats',
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    externalBytes: mem.external,
    arrayBuffersBytes: mem.arrayBuffers,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    busWaiting: deps.answers.waiting,
  };
  process.send?.(reply);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => {
    void deps.close().then(() => process.exit(0));
  });
});
const ready: DeviceReady = {
  enrollMs: Math.round(enrollMs),
  devices: load,
  phonePrivatePem,
  transport: deps.store.dialect === 'postgres' ? 'postgres' : 'none',
};
process.stdout.write(`READY http://127.0.0.1:${addr.port} ${JSON.stringify(ready)}\n`);
