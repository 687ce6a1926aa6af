/**
 * `npm run bench:push`: push challenge throughput and enrollment step-2 latency (issue 3 item 10), in one run.
 *
 *   1. a fake FCM HTTP v1 endpoint on loopback in this process (answers every send with a message name);
 *   2. pushgate in a child process (bench/push_server.ts: buildDeps + createApp like startServer, SQLite file DB in a
 *      temp dir, the Firebase channel pointed at the fake FCM, RSA-4096 server keys);
 *   3. enrollment over HTTP exactly as the app does it: step 1 `POST /token/init` (admin JWT, genkey=1), step 2
 *      `POST /ttype/edupush` with an RSA-4096 phone key — USERS poll-only tokens (realm `poll`) and USERS tokens with
 *      the Firebase channel (realm `fcm`), with a warm key pool; then EMPTY more with an empty pool (a fresh RSA-4096
 *      key per step 2);
 *   4. `POST /validate/triggerchallenge` (admin JWT, request n → user n mod USERS) at concurrency 1, 16, 64 for both
 *      kinds, every answer checked (HTTP 200, value 1, CHALLENGE, delivered) and for Firebase every FCM message counted
 *      and its signature verified with the server key the phone got in step 2;
 *   5. the raw RSA-4096 `crypto.sign('sha256', …)` rate in this process: 1 thread synchronous, 2 in parallel on the
 *      thread pool, and synchronous with the PEM re-parsed per call (what the server did before its KeyObject cache);
 *   6. writes its section of bench/README.md (between `<!-- push:begin -->` and `<!-- push:end -->`) and prints it.
 *
 * Env: BENCH_SECONDS (per measurement, default 5), BENCH_PUSH_USERS (tokens per kind, default 50), BENCH_PUSH_EMPTY
 * (empty-pool enrollments, default 50), BENCH_PUSH_KEYS (distinct pre-generated server keys, default 8).
 * Flags: --quick (1 s, 16 users, 3 empty-pool enrollments, no warm-up; README not written unless --write), --no-write.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon, { type RequestSpec } from 'autocannon';
import { base32Decode } from '../tokens/base32.ts';
import { generateServerKeyPair, SERVER_KEY_BITS } from '../tokens/push/signatures.ts';
import { POLLING_HINT } from '../tokens/push/variants.ts';
import {
  ADMIN,
  ADMIN_PASSWORD,
  CHANNEL,
  FCM_PROJECT,
  FCM_REALM,
  POLL_REALM,
  PUBLIC_URL,
  type ChildReply,
  type ChildRequest,
  type KeyMode,
} from './push_common.ts';
import { foreignCpu, ownCpuMs } from './cpu.ts';
import { BENCH_DIR, ROOT, envInt, quickWriteFlags } from './env.ts';

const { args, quick, write } = quickWriteFlags();

const SECONDS = envInt('BENCH_SECONDS', quick ? 1 : 5, 1);
const USERS = envInt('BENCH_PUSH_USERS', quick ? 16 : 50, 1);
const EMPTY = envInt('BENCH_PUSH_EMPTY', quick ? 3 : 50, 1);
const KEYS = envInt('BENCH_PUSH_KEYS', quick ? 2 : 8, 1);
const CONCURRENCY = [1, 16, 64] as const;
const WARMUP_SECONDS = quick ? 0 : 1;
/** Other processes using at least this many cores during a measurement make it be repeated once (budget permitting). */
const FOREIGN_LIMIT = 0.15;
let quietBudgetMs = quick ? 0 : 60_000;

const log = (msg: string) => process.stderr.write(`[bench:push] ${msg}\n`);

// ---------------------------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc/stat): how much CPU processes other than this benchmark used during a window.

/** Waits (1 s samples, within the quiet budget) until other processes use < 0.1 cores. */
async function waitQuiet(): Promise<void> {
  while (quietBudgetMs > 0) {
    const t0 = performance.now();
    const w = foreignCpu();
    await sleep(1000);
    const load = w.end(0);
    quietBudgetMs -= performance.now() - t0;
    if (load === null || load < 0.1) return;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Fake FCM (toolchain.md §3): an ordinary HTTP server on loopback; the child's agent sends it `Host: fcm.googleapis.com`.

interface FcmMessage {
  token: string;
  data: Record<string, string>;
}
interface FakeFcm {
  port: number;
  count: number;
  recorded: FcmMessage[];
  record: boolean;
  bad: number;
  close(): Promise<void>;
}

async function startFakeFcm(): Promise<FakeFcm> {
  const fcm: FakeFcm = { port: 0, count: 0, recorded: [], record: false, bad: 0, close: async () => {} };
  const expectedPath = `/v1/projects/${FCM_PROJECT}/messages:send`;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      fcm.count++;
      let message: FcmMessage | undefined;
      try {
        message = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: FcmMessage }).message;
      } catch {
        /* counted as bad */
      }
      if (req.method !== 'POST' || req.url !== expectedPath || !message?.data) fcm.bad++;
      else if (fcm.record && fcm.recorded.length < 5000) fcm.recorded.push(message);
      res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify({ name: `projects/${FCM_PROJECT}/messages/${fcm.count}` }));
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fcm.port = (server.address() as net.AddressInfo).port;
  fcm.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fcm;
}

// ---------------------------------------------------------------------------------------------------------------
// The server child

interface Child {
  readonly url: string;
  readonly info: { premadeKeys: number; keygenMs: number };
  request(msg: ChildRequest): Promise<ChildReply>;
  cpuMs(): Promise<number>;
  stop(): Promise<void>;
}

async function startChild(configFile: string, fcmPort: number): Promise<Child> {
  const proc: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(BENCH_DIR, 'push_server.ts'), configFile, String(fcmPort), String(KEYS)],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    },
  );
  let stderr = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
    for (const line of chunk.split('\n')) if (line.trim()) process.stderr.write(`[push_server] ${line}\n`);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const ready = await new Promise<{ url: string; info: Child['info'] }>((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      out += chunk;
      const m = /^READY (\S+) (.*)$/m.exec(out);
      if (m) resolve({ url: m[1]!, info: JSON.parse(m[2]!) as Child['info'] });
    });
    void exited.then((code) => reject(new Error(`push_server.ts exited with ${code} before it was ready:\n${stderr}`)));
  });
  const request = (msg: ChildRequest) =>
    new Promise<ChildReply>((resolve) => {
      proc.once('message', (m) => resolve(m as ChildReply));
      proc.send(msg);
    });
  return {
    ...ready,
    request,
    async cpuMs() {
      const s = await request({ type: 'stats' });
      return s.type === 'stats' ? (s.cpuUserUs + s.cpuSystemUs) / 1000 : NaN;
    },
    async stop() {
      proc.kill('SIGTERM');
      const timer = new AbortController();
      const code = await Promise.race([exited, sleep(15_000, 'timeout' as const, { signal: timer.signal }).catch(() => null)]);
      timer.abort(); // no timer left to keep this process alive
      if (code === 'timeout') {
        proc.kill('SIGKILL');
        await exited;
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Enrollment (steps 1 and 2 over HTTP, like the admin UI and the app)

interface Enrolled {
  serial: string;
  user: string;
  realm: string;
  serverKey: KeyObject;
  step1Ms: number;
  step2Ms: number;
}

async function post(
  url: string,
  params: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    body: new URLSearchParams(params).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, text };
}

/** The query parameters of the QR URL, decoded as the apps do. */
function qrParams(qrUrl: string): Record<string, string> {
  const query = qrUrl.slice(qrUrl.indexOf('?') + 1);
  const out: Record<string, string> = {};
  for (const part of query.split('&')) {
    const i = part.indexOf('=');
    out[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1));
  }
  return out;
}

async function enrollOne(child: Child, auth: string, user: string, realm: string, phonePub: string, fbToken: string): Promise<Enrolled> {
  const t1 = performance.now();
  const init = await post(`${child.url}/token/init`, { type: 'edupush', genkey: '1', user, realm }, { authorization: auth });
  const step1Ms = performance.now() - t1;
  if (init.status !== 200) throw new Error(`step 1 for ${user}@${realm}: HTTP ${init.status} ${init.text}`);
  const q = qrParams(String(init.body?.detail?.pushurl?.value ?? ''));
  if (!q.serial || !q.enrollment_credential || !q.url) throw new Error(`step 1 for ${user}@${realm}: no usable push URL in ${init.text}`);
  const t2 = performance.now();
  const done = await post(`${child.url}${new URL(q.url).pathname}`, {
    enrollment_credential: q.enrollment_credential,
    serial: q.serial,
    fbtoken: fbToken,
    pubkey: phonePub,
  });
  const step2Ms = performance.now() - t2;
  if (done.status !== 200 || done.body?.result?.value !== true) throw new Error(`step 2 for ${q.serial}: HTTP ${done.status} ${done.text}`);
  const der = Buffer.from(String(done.body.detail?.public_key ?? '').replace(/\n/g, ''), 'base64');
  const serverKey = crypto.createPublicKey({ key: der, format: 'der', type: 'pkcs1' }); // as the Flutter app parses it
  if (serverKey.asymmetricKeyDetails?.modulusLength !== SERVER_KEY_BITS)
    throw new Error(`step 2 for ${q.serial}: server key is not RSA-${SERVER_KEY_BITS}`);
  return { serial: q.serial, user, realm, serverKey, step1Ms, step2Ms };
}

// ---------------------------------------------------------------------------------------------------------------
// Trigger load

interface Row {
  kind: 'poll only' | 'Firebase (fake FCM)';
  c: number;
  rps: number;
  p50: number;
  p99: number;
  answers: number;
  ok: number;
  non200: number;
  errors: number;
  timeouts: number;
  /** Firebase: FCM requests received during the window (and drained after it), messages checked, valid signatures. */
  fcmSends: number;
  fcmChecked: number;
  fcmValid: number;
  fcmBad: number;
  cpuMsPerTrigger: number;
  /** Cores used by the server child and by this process (autocannon, fake FCM) during the measurement. */
  serverCores: number;
  parentCores: number;
  foreign: number | null;
  samples: string[];
}

const SIGNED_FIELDS = ['nonce', 'url', 'serial', 'question', 'title', 'sslverify'] as const;

async function runTrigger(
  child: Child,
  fcm: FakeFcm,
  auth: string,
  realm: string,
  keys: Map<string, KeyObject>,
  c: number,
  seconds: number,
): Promise<Row> {
  let i = 0;
  let answers = 0;
  let ok = 0;
  let non200 = 0;
  const samples: string[] = [];
  const spec: RequestSpec = {
    method: 'POST',
    path: '/validate/triggerchallenge',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
    setupRequest: (req) => ({ ...req, body: `user=u${i++ % USERS}&realm=${realm}` }),
    onResponse(status, body) {
      answers++;
      if (status !== 200) non200++;
      let good = false;
      try {
        const doc = JSON.parse(body) as {
          result?: { value?: unknown; authentication?: unknown };
          detail?: { multi_challenge?: Array<{ type?: string; message?: string }> };
        };
        const mc = doc.detail?.multi_challenge ?? [];
        good =
          status === 200
          && doc.result?.value === 1
          && doc.result.authentication === 'CHALLENGE'
          && mc.length === 1
          && mc[0]!.type === 'edupush'
          && !String(mc[0]!.message).includes(POLLING_HINT);
      } catch {
        /* not JSON: not good */
      }
      if (good) ok++;
      else if (samples.length < 3) samples.push(`${status} ${body.slice(0, 300)}`);
    },
  };
  const latencies: number[] = [];
  fcm.recorded.length = 0;
  fcm.record = true;
  const fcm0 = fcm.count;
  const bad0 = fcm.bad;
  const cpu0 = await child.cpuMs();
  const own0 = ownCpuMs();
  const w0 = performance.now();
  const window = foreignCpu();
  const instance = autocannon({ url: child.url, connections: c, duration: seconds, timeout: 30, requests: [spec] });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    latencies.push(ms);
  });
  const result = await instance;
  const cpuMs = (await child.cpuMs()) - cpu0;
  const parentMs = ownCpuMs() - own0;
  const wallMs = performance.now() - w0;
  const foreign = window.end(cpuMs);
  await sleep(300); // requests cut off at the end finish their FCM send
  fcm.record = false;
  let fcmValid = 0;
  for (const m of fcm.recorded) {
    const key = keys.get(m.data.serial ?? '');
    const text = SIGNED_FIELDS.map((f) => m.data[f]).join('|');
    try {
      if (key && crypto.verify('sha256', Buffer.from(text, 'utf8'), key, base32Decode(m.data.signature ?? ''))) fcmValid++;
    } catch {
      /* invalid */
    }
  }
  latencies.sort((a, b) => a - b);
  const pctl = (q: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]! : NaN);
  return {
    kind: realm === FCM_REALM ? 'Firebase (fake FCM)' : 'poll only',
    c,
    rps: result.requests.total / result.duration,
    p50: pctl(0.5),
    p99: pctl(0.99),
    answers,
    ok,
    non200,
    errors: result.errors,
    timeouts: result.timeouts,
    fcmSends: fcm.count - fcm0,
    fcmChecked: fcm.recorded.length,
    fcmValid,
    fcmBad: fcm.bad - bad0,
    cpuMsPerTrigger: answers ? cpuMs / answers : NaN,
    serverCores: cpuMs / wallMs,
    parentCores: parentMs / wallMs,
    foreign,
    samples,
  };
}

async function measureTrigger(child: Child, fcm: FakeFcm, auth: string, realm: string, keys: Map<string, KeyObject>): Promise<Row[]> {
  const rows: Row[] = [];
  if (WARMUP_SECONDS) await runTrigger(child, fcm, auth, realm, keys, 16, WARMUP_SECONDS);
  for (const c of CONCURRENCY) {
    let row = await runTrigger(child, fcm, auth, realm, keys, c, SECONDS);
    if ((row.foreign ?? 0) >= FOREIGN_LIMIT && quietBudgetMs > 0) {
      log(`${realm} c=${c}: other processes used ${row.foreign!.toFixed(2)} cores — waiting for a quiet machine and repeating once`);
      await waitQuiet();
      const again = await runTrigger(child, fcm, auth, realm, keys, c, SECONDS);
      if ((again.foreign ?? 0) < (row.foreign ?? 0)) row = again;
    }
    rows.push(row);
    log(formatRow(row));
    if (row.ok < row.answers) log(`  ${row.answers - row.ok} answers were not a delivered CHALLENGE, e.g. ${row.samples.join(' | ')}`);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// Raw RSA-4096 signing in this process

interface SignRate {
  rate: number;
  cpuMsPerSign: number;
  foreign: number | null;
}

async function signRate(key: KeyObject | string, parallel: 0 | 1 | 2, seconds: number, data: Buffer): Promise<SignRate> {
  let n = 0;
  const cpu0 = ownCpuMs();
  const window = foreignCpu();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  if (parallel === 0) {
    while (performance.now() < end) {
      crypto.sign('sha256', data, key);
      n++;
    }
  } else {
    const signAsync = () =>
      new Promise<Buffer>((resolve, reject) => crypto.sign('sha256', data, key, (err, sig) => (err ? reject(err) : resolve(sig))));
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (performance.now() < end) {
          await signAsync();
          n++;
        }
      }),
    );
  }
  const rate = n / ((performance.now() - t0) / 1000);
  return { rate, cpuMsPerSign: (ownCpuMs() - cpu0) / n, foreign: window.end(0) };
}

// ---------------------------------------------------------------------------------------------------------------
// Output

const f0 = (x: number) => Math.round(x).toLocaleString('en-US');
const f1 = (x: number) => (x >= 100 ? f0(x) : x.toFixed(1));
const fms = (x: number) => (Number.isNaN(x) ? '—' : x >= 100 ? f0(x) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

const HEADER =
  "| tokens | conc. | triggers/s | p50 ms | p99 ms | ok / answers | non-200 | errors / timeouts | FCM sends (signature valid / checked) | server CPU ms / trigger | other processes' CPU, cores |";
const RULE = '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|';
function formatRow(r: Row): string {
  const okCell = `${r.ok} / ${r.answers}${r.ok === r.answers ? '' : ' ⚠'}`;
  const fcmCell =
    r.kind === 'poll only'
      ? `${r.fcmSends}${r.fcmSends ? ' ⚠' : ''}`
      : `${r.fcmSends} (${r.fcmValid} / ${r.fcmChecked})${fcmProblem(r) ? ' ⚠' : ''}`;
  return `| ${r.kind} | ${r.c} | ${f1(r.rps)} | ${fms(r.p50)} | ${fms(r.p99)} | ${okCell} | ${r.non200} | ${r.errors} / ${r.timeouts} | ${fcmCell} | ${fms(r.cpuMsPerTrigger)} | ${r.foreign === null ? '?' : r.foreign.toFixed(2)} |`;
}
/**
 * Firebase: fewer sends than delivered answers, more than one per request (at most `c` requests were cut off
 * unanswered at the end), a malformed request, or a signature that does not verify.
 */
const fcmProblem = (r: Row) => r.fcmSends < r.ok || r.fcmSends > r.answers + r.c || r.fcmBad > 0 || r.fcmValid < r.fcmChecked;

function latencyStats(xs: number[]): { n: number; p50: number; p99: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

const BEGIN = '<!-- push:begin -->';
const END = '<!-- push:end -->';
/** Replaces the text between the push markers (appends markers and section when absent); nothing else is touched. */
function writeSection(section: string): void {
  const file = path.join(BENCH_DIR, 'README.md');
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const b = current.indexOf(BEGIN);
  const e = current.indexOf(END);
  const block = `${BEGIN}\n${section.trim()}\n${END}`;
  const next =
    b >= 0 && e > b
      ? current.slice(0, b) + block + current.slice(e + END.length)
      : `${current}${current === '' || current.endsWith('\n\n') ? '' : current.endsWith('\n') ? '\n' : '\n\n'}${block}\n`;
  fs.writeFileSync(file, next);
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const t0 = performance.now();
  log(
    `BENCH_SECONDS=${SECONDS}, ${USERS} tokens per kind, ${EMPTY} empty-pool enrollments, ${KEYS} pre-generated server keys, concurrency ${CONCURRENCY.join('/')}`,
  );
  await waitQuiet();

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-bench-push-'));
  const fcm = await startFakeFcm();
  let child: Child | null = null;
  try {
    const doc = {
      server: { host: '127.0.0.1', port: 0, public_url: PUBLIC_URL },
      database: { url: `sqlite:${path.join(tmp, 'bench.db')}` },
      secrets: { key_file: path.join(tmp, 'secrets.key') },
      log: { level: 'warn' },
      realms: [
        { name: POLL_REALM, default: true, users: { type: 'any' } },
        { name: FCM_REALM, users: { type: 'any' } },
      ],
      push: { channels: [{ name: CHANNEL, type: 'firebase', service_account_file: path.join(tmp, 'unused.json'), timeout_ms: 3000 }] },
      policies: [
        { name: 'enroll-poll', scope: 'enrollment', realm: [POLL_REALM], actions: { edupush_firebase_configuration: 'poll only' } },
        { name: 'enroll-fcm', scope: 'enrollment', realm: [FCM_REALM], actions: { edupush_firebase_configuration: CHANNEL } },
      ],
    };
    const configFile = path.join(tmp, 'config.yaml');
    fs.writeFileSync(configFile, JSON.stringify(doc, null, 2)); // JSON is YAML

    log(`starting pushgate (generating ${KEYS} RSA-${SERVER_KEY_BITS} server keys) and an RSA-${SERVER_KEY_BITS} phone key and sign key…`);
    const [c, phone, signer] = await Promise.all([
      startChild(configFile, fcm.port),
      new Promise<KeyObject>((resolve, reject) =>
        crypto.generateKeyPair('rsa', { modulusLength: 4096, publicExponent: 0x10001 }, (err, pub) => (err ? reject(err) : resolve(pub))),
      ),
      generateServerKeyPair(SERVER_KEY_BITS),
    ]);
    child = c;
    const phonePub = (phone.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
    log(`pushgate at ${child.url} ${JSON.stringify(child.info)}`);

    const login = await post(`${child.url}/auth`, { username: ADMIN, password: ADMIN_PASSWORD });
    const auth = String(login.body?.result?.value?.token ?? '');
    if (login.status !== 200 || !auth) throw new Error(`admin login failed: HTTP ${login.status} ${login.text}`);

    // Warm pool: the bulk enrollment, sequential, step 2 timed.
    log(`enrolling ${USERS} poll-only and ${USERS} Firebase tokens (steps 1 and 2, warm key pool)…`);
    const tEnroll = performance.now();
    const warmCpu0 = await child.cpuMs();
    const warmWindow = foreignCpu();
    const enrolled: Enrolled[] = [];
    for (const realm of [POLL_REALM, FCM_REALM]) {
      for (let i = 0; i < USERS; i++) {
        enrolled.push(await enrollOne(child, auth, `u${i}`, realm, phonePub, realm === FCM_REALM ? `bench-device-${i}` : ''));
      }
    }
    const warmForeign = warmWindow.end((await child.cpuMs()) - warmCpu0);
    const warmEnrollS = (performance.now() - tEnroll) / 1000;
    const keys = new Map(enrolled.map((e) => [e.serial, e.serverKey]));
    const warm = latencyStats(enrolled.map((e) => e.step2Ms));
    const step1 = latencyStats(enrolled.map((e) => e.step1Ms));
    log(`step 2, warm pool: p50 ${fms(warm.p50)} ms, p99 ${fms(warm.p99)} ms (n=${warm.n}); step 1 p50 ${fms(step1.p50)} ms`);
    if (fcm.count !== 0) log(`⚠ the fake FCM got ${fcm.count} requests during enrollment`);

    // Trigger throughput.
    const rows: Row[] = [];
    for (const realm of [POLL_REALM, FCM_REALM]) {
      log(`/validate/triggerchallenge, ${realm === FCM_REALM ? 'Firebase channel' : 'poll only'}…`);
      rows.push(...(await measureTrigger(child, fcm, auth, realm, keys)));
    }

    // Raw signing, while the server idles.
    log('raw RSA-4096 crypto.sign rate…');
    const signed = Buffer.from(
      `${'N'.repeat(32)}|${PUBLIC_URL}/ttype/edupush|EDUP00000000|Do you want to confirm the login?|eduMFA|1`,
      'utf8',
    );
    const signKey = crypto.createPrivateKey(signer.privatePem);
    await signRate(signKey, 0, 0.3, signed); // warm-up
    const sync1 = await signRate(signKey, 0, SECONDS, signed);
    const async2 = await signRate(signKey, 2, SECONDS, signed);
    const pem1 = await signRate(signer.privatePem, 0, Math.min(SECONDS, 2), signed);
    log(`sign: ${f1(sync1.rate)}/s sync (1 thread), ${f1(async2.rate)}/s async ×2, ${f1(pem1.rate)}/s sync with the PEM per call`);

    // Empty pool: every step 2 waits for a fresh RSA-4096 key.
    log(`${EMPTY} enrollments with an empty key pool (fresh RSA-${SERVER_KEY_BITS} key per step 2)…`);
    await child.request({ type: 'keys', mode: 'generate' satisfies KeyMode });
    const tEmpty = performance.now();
    const emptyCpu0 = await child.cpuMs();
    const emptyWindow = foreignCpu();
    const emptyRuns: Enrolled[] = [];
    for (let i = 0; i < EMPTY; i++) emptyRuns.push(await enrollOne(child, auth, `e${i}`, POLL_REALM, phonePub, ''));
    const emptyForeign = emptyWindow.end((await child.cpuMs()) - emptyCpu0);
    const emptyS = (performance.now() - tEmpty) / 1000;
    const empty = latencyStats(emptyRuns.map((e) => e.step2Ms));
    log(`step 2, empty pool: p50 ${fms(empty.p50)} ms, p99 ${fms(empty.p99)} ms, max ${fms(empty.max)} ms (n=${empty.n})`);

    const elapsed = (performance.now() - t0) / 1000;
    const table = [HEADER, RULE, ...rows.map(formatRow)].join('\n');
    const allOk = rows.every(
      (r) =>
        r.ok === r.answers
        && r.non200 === 0
        && r.errors === 0
        && r.timeouts === 0
        && (r.kind === 'poll only' ? r.fcmSends === 0 : !fcmProblem(r)),
    );
    const totalAnswers = rows.reduce((s, r) => s + r.answers, 0);
    const totalOk = rows.reduce((s, r) => s + r.ok, 0);
    const fcmRows = rows.filter((r) => r.kind !== 'poll only');
    const pollRows = rows.filter((r) => r.kind === 'poll only');
    const best = (rs: Row[]) => Math.max(...rs.map((r) => r.rps));
    const at = (rs: Row[], c: number) => rs.find((r) => r.c === c)!;
    const fcmBest = best(fcmRows);
    const fcmBestRow = fcmRows.find((r) => r.rps === fcmBest)!;
    const pollBest = best(pollRows);
    const fcmCpu = Math.min(...fcmRows.map((r) => r.cpuMsPerTrigger));
    const pollCpu = Math.min(...pollRows.map((r) => r.cpuMsPerTrigger));
    const foreignAll = [...rows.map((r) => r.foreign), sync1.foreign, async2.foreign, pem1.foreign, warmForeign, emptyForeign];
    const foreignMax = foreignAll.some((x) => x === null) ? null : Math.max(...(foreignAll as number[]));
    const foreignNote =
      foreignMax === null
        ? 'CPU used by other processes could not be read (no /proc/stat).'
        : foreignMax < 0.1
          ? `Other processes used at most ${foreignMax.toFixed(2)} cores during any measurement: the run had the machine to itself.`
          : `⚠ Other processes used up to ${foreignMax.toFixed(2)} cores during a measurement (last column of each table): those figures understate this machine — re-run on a quiet machine.`;
    const pct = (x: number) => `${Math.round(x * 100)} %`;
    const cpus = os.cpus();
    const command = `${process.env.BENCH_SECONDS ? `BENCH_SECONDS=${SECONDS} ` : ''}${[
      'BENCH_PUSH_USERS',
      'BENCH_PUSH_EMPTY',
      'BENCH_PUSH_KEYS',
    ]
      .filter((k) => process.env[k])
      .map((k) => `${k}=${process.env[k]} `)
      .join('')}npm run bench:push${args.length ? ' -- ' + args.join(' ') : ''}`;

    const section = `## Push: /validate/triggerchallenge and enrollment step 2

Generated by \`npm run bench:push\` (bench/push.ts); do not edit by hand — re-run it.

- **Date:** ${started.toISOString()}
- **Machine:** ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores (os.availableParallelism ${os.availableParallelism()}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}
- **Node:** ${process.version}
- **Command:** \`${command}\` (whole run ${f0(elapsed)} s)
- **Set-up:** pushgate in a child process (bench/push_server.ts: \`buildDeps\` + \`createApp\` as \`startServer\` does, SQLite file
  database in a temp dir, log level warn, audit row per request); autocannon 9, the fake FCM (HTTP v1 on loopback, reached through
  firebase-admin's real \`send()\` path with a loopback agent and a fake credential, toolchain.md §3) and the raw sign-rate loops run in
  the parent, so everything shares the ${cpus.length} cores. ${USERS} edupush tokens per kind, enrolled over HTTP like the app
  (step 1 \`/token/init\` genkey=1 with an admin JWT, step 2 \`/ttype/edupush\` with an RSA-4096 phone key); server keys are
  RSA-${SERVER_KEY_BITS} like production — ${KEYS} distinct keys generated at start-up (${fms(child.info.keygenMs / 1000)} s) and handed out round robin by the
  key pool, so several tokens share a key (each token still has its own parsed KeyObject; signing cost does not depend on which key).
  Requests: \`POST /validate/triggerchallenge\` (form, admin JWT), request n for user \`u{n mod ${USERS}}\`, one token per user, so every
  answer must be HTTP 200 with \`value: 1\`, \`authentication: CHALLENGE\`, one edupush challenge and no polling hint
  ("ok"); Firebase: every FCM request is counted, and its \`data.signature\` is verified with the public key the phone got in step 2.
  ${SECONDS} s per measurement${WARMUP_SECONDS ? `, after a ${WARMUP_SECONDS} s warm-up at concurrency 16 per kind` : ''}; HTTP/1.1 keep-alive, no pipelining.
- **Columns:** triggers/s = answers / duration; p50/p99 over every response; server CPU = the server process's user + system CPU
  (all threads, the signing thread pool included) during the measurement ÷ answers; other processes' CPU = busy CPU of the machine
  (/proc/stat) minus the benchmark's own processes (should be ≈ 0).

${table}

**Raw RSA-${SERVER_KEY_BITS} \`crypto.sign('sha256', …)\`** (PKCS#1 v1.5, the ${signed.length}-byte smartphone string), same run, parent process, server idle:

| signing | signatures/s | CPU ms / signature | other processes' CPU, cores |
|---|--:|--:|--:|
| synchronous, 1 thread, parsed KeyObject | ${f1(sync1.rate)} | ${fms(sync1.cpuMsPerSign)} | ${sync1.foreign?.toFixed(2) ?? '?'} |
| async (libuv thread pool), 2 in parallel, parsed KeyObject | ${f1(async2.rate)} | ${fms(async2.cpuMsPerSign)} | ${async2.foreign?.toFixed(2) ?? '?'} |
| synchronous, 1 thread, PEM string re-parsed per call (the old path) | ${f1(pem1.rate)} | ${fms(pem1.cpuMsPerSign)} | ${pem1.foreign?.toFixed(2) ?? '?'} |

**Enrollment step 2** (\`POST /ttype/edupush\`, sequential, client-side latency):

| key pool | n | p50 ms | p99 ms | max ms | mean ms | other processes' CPU, cores |
|---|--:|--:|--:|--:|--:|--:|
| warm (the server key is ready) | ${warm.n} | ${fms(warm.p50)} | ${fms(warm.p99)} | ${fms(warm.max)} | ${fms(warm.mean)} | ${warmForeign?.toFixed(2) ?? '?'} |
| empty (step 2 waits for a fresh RSA-${SERVER_KEY_BITS} key) | ${empty.n} | ${fms(empty.p50)} | ${fms(empty.p99)} | ${fms(empty.max)} | ${fms(empty.mean)} | ${emptyForeign?.toFixed(2) ?? '?'} |

Step 1 (\`/token/init\`) p50 ${fms(step1.p50)} ms, p99 ${fms(step1.p99)} ms. The ${2 * USERS} warm enrollments took ${f1(warmEnrollS)} s, the ${EMPTY} empty-pool ones ${f1(emptyS)} s.

${foreignNote}

### Reading it

- **Firebase channel: the signature dominates.** Up to ${f1(fcmBest)} triggers/s (c=1: ${f1(at(fcmRows, 1).rps)}/s), that is
  ${pct(fcmBest / sync1.rate)} of the raw single-thread sign rate (${f1(sync1.rate)}/s) and ${pct(fcmBest / async2.rate)} of the 2-way parallel rate (${f1(async2.rate)}/s;
  two signing threads give ${(async2.rate / sync1.rate).toFixed(2)}× the rate of one on this machine).
  A trigger costs the server ${fms(fcmCpu)} ms CPU against ${fms(sync1.cpuMsPerSign)} ms for one raw signature (${pct(sync1.cpuMsPerSign / fcmCpu)} of it); the rest is
  the request itself (${fms(pollCpu)} ms for a poll-only trigger) plus the firebase-admin send. The signature runs on the libuv
  thread pool (\`crypto.sign\` with a callback) with the token's cached KeyObject, so the event loop and the signature use both cores:
  at its best row (c=${fcmBestRow.c}) the server used ${fcmBestRow.serverCores.toFixed(2)} cores and the bench process (autocannon, fake FCM) ${fcmBestRow.parentCores.toFixed(2)}, of ${cpus.length}.
- **Poll only** sends and signs nothing at trigger time (the phone's poll gets the signed data): up to ${f0(pollBest)} triggers/s
  (c=1: ${f1(at(pollRows, 1).rps)}/s) — store the challenge, audit row, JSON.
- **eduMFA for scale** (figures from the issue, same machine class, poll only, 4 gunicorn workers): 8 triggers/s at concurrency 1,
  17–18/s at 16–64. pushgate poll only: ${f1(at(pollRows, 1).rps)}/s at c=1 (≈ ${f0(at(pollRows, 1).rps / 8)}×), ${f0(at(pollRows, 16).rps)}–${f0(at(pollRows, 64).rps)}/s at 16–64 (≈ ${f0(Math.min(at(pollRows, 16).rps, at(pollRows, 64).rps) / 17.5)}×); with a Firebase send and its RSA-4096 signature ${f1(at(fcmRows, 1).rps)}/s and ${f1(at(fcmRows, 16).rps)}–${f1(at(fcmRows, 64).rps)}/s.
- **Step 2** with a ready key answers in ${fms(warm.p50)} ms (p50); with an empty pool it waits for an RSA-${SERVER_KEY_BITS} key generation
  (${fms(empty.p50 / 1000)} s p50, ${fms(empty.max / 1000)} s worst of ${empty.n}; prime search makes it vary a lot) — that is why the server keeps a small pool warm.
- All ${totalAnswers} trigger answers in this run: ${totalOk} ok, ${totalAnswers - totalOk} not${allOk ? '' : ' ⚠ (see the ⚠ cells)'}.

Quick smoke test (1 s per measurement, 16 tokens per kind, 3 empty-pool enrollments, prints without writing this section):
\`BENCH_SECONDS=1 npm run bench:push -- --quick\` (add \`--write\` to write it anyway).
`;
    process.stdout.write(`\n${section}\n`);
    if (write) {
      writeSection(section);
      log('wrote the push section of bench/README.md');
    } else {
      log('README not written (--quick / --no-write; add --write to write it)');
    }
    if (!allOk) {
      log('⚠ some answers or FCM messages were wrong — see the table');
      process.exitCode = 1;
    }
    log(`whole run ${f0(elapsed)} s`);
  } finally {
    await child?.stop();
    await fcm.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
