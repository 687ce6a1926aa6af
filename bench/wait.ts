/**
 * `npm run bench:wait`: wait mode (edupush_wait) under load — N concurrent waiting `/validate/check` requests answered
 * by simulated phones (issue 4).
 *
 * Scenarios (each size N gets a FRESH waiting server process, so its RSS baseline is clean):
 *   1. one node, SQLite file database: the waits and the phones' answers go to the same server process;
 *   2. two nodes on one PostgreSQL database: the waits go to node A, the answers to node B; the wake-up travels
 *      through PostgreSQL LISTEN/NOTIFY (skipped with a message when PostgreSQL is unreachable).
 * Per run: warm-up (WARMUP logins, not measured) → ramp N waiting checks (at most RAMP not yet parked at a time) →
 * all N parked: hold HOLD_MS with no traffic (RSS sampled from /proc/<pid>/status, knex queries counted by the child)
 * → GET /healthz latency with N waiting → the phones sign `nonce|serial` (nonces read from the database by this
 * process, signing done before the clock starts) and answer with ANSWER_CONC answers in flight → per request the
 * wake-up latency = waiting response fully received − that phone's answer response fully received (both in this
 * process, performance.now()).
 *
 * Enrollment: ENROLL_REAL tokens go through the real step 1 (POST /token/init as admin) and step 2 (POST /ttype/edupush
 * with the phone's key); every other token is a copy of the first real token's database row with its own serial, user
 * and phone key (public_key_smartphone, firebase_token), inserted in bulk by this process. The copies share that
 * token's PIN hash and server key pair: with a `poll only` token nothing is signed with the server key at login, and
 * a phone answer only checks the phone's signature, so the wait path is the same. Phones use EC P-256 keys (supported
 * by the protocol; the apps use RSA-4096, whose signing would only slow this client down).
 *
 * Env: BENCH_WAIT_N (sizes, default "1000,5000,10000"), BENCH_WAIT_CROSS_N (two-node sizes, default: those of BENCH_WAIT_N up to
 * 5000 — on 2 cores a 10,000 run on PostgreSQL takes longer than the whole-run budget and than edupush_wait),
 * BENCH_WAIT_HOLD_MS (default 3000), BENCH_WAIT_ANSWER_CONC (default 8), BENCH_WAIT_RAMP (default 256),
 * BENCH_WAIT_QUIET_S (default 45: total time to wait for other processes to go quiet before runs), BENCH_WAIT_PG_URL (admin URL, default PUSHGATE_TEST_PG_URL or postgres://postgres@127.0.0.1:5432/test).
 * BENCH_WAIT_NODE_OPTIONS: extra node flags for the server children (diagnostics, e.g. --trace-gc; their stdout goes to a log
 * file in the temp dir, kept when the run fails or with --keep).
 * Flags: --no-write (print only), --no-pg / --no-sqlite (skip the two-node PostgreSQL / the one-node SQLite scenario).
 * Writes bench/README.md only between `<!-- wait:begin -->` and `<!-- wait:end -->` (appended when absent).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import knexFactory, { type Knex } from 'knex';
import { createKnex } from '../server/store/knex.ts';
import { base32Encode } from '../tokens/base32.ts';
import { ADMIN, ADMIN_PASSWORD, type WaitChildReply } from './wait_common.ts';
import { BENCH_DIR, ROOT, envInt, serverNodeFlags } from './env.ts';

const README = path.join(BENCH_DIR, 'README.md');
const BEGIN = '<!-- wait:begin -->';
const END = '<!-- wait:end -->';
const args = process.argv.slice(2);
const write = !args.includes('--no-write');
const log = (msg: string) => process.stderr.write(`[bench:wait] ${msg}\n`);

function envSizes(name: string, def: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  if (raw.trim() === '0') return []; // 0: skip the scenario
  const sizes = raw.split(',').map((s) => Number(s.trim()));
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) {
    log(`${name} must be a comma-separated list of positive integers`);
    process.exit(2);
  }
  return sizes;
}
const SIZES = envSizes('BENCH_WAIT_N', [1000, 5000, 10_000]);
const CROSS_SIZES = envSizes(
  'BENCH_WAIT_CROSS_N',
  SIZES.filter((n) => n <= 5000),
);
const HOLD_MS = envInt('BENCH_WAIT_HOLD_MS', 3000, 100);
const ANSWER_CONC = envInt('BENCH_WAIT_ANSWER_CONC', 8, 1);
const RAMP = envInt('BENCH_WAIT_RAMP', 256, 1);
const WARMUP = 100;
const COMPILED = process.env.BENCH_WAIT_TSX !== '1';
/** Node flags of the server children: `npm start`'s (bench/env.ts serverNodeFlags) unless BENCH_WAIT_NODE_OPTIONS says otherwise. */
const SERVER_NODE_FLAGS =
  process.env.BENCH_WAIT_NODE_OPTIONS !== undefined ? process.env.BENCH_WAIT_NODE_OPTIONS.split(/\s+/).filter(Boolean) : serverNodeFlags();
/** The largest one-node size is measured once more with plain `node` (no flags), for comparison (BENCH_WAIT_PLAIN=0: not). */
const PLAIN = process.env.BENCH_WAIT_PLAIN !== '0' && SERVER_NODE_FLAGS.length > 0;
const PLAIN_SCENARIO = 'plain `node`, no flags: one node, SQLite';
if (COMPILED) {
  log('building (npm run build) so the servers run compiled JavaScript, as in production');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ROOT], { stdio: 'inherit' });
  if (r.status !== 0) {
    log('build failed');
    process.exit(1);
  }
}
/** Answers sent one at a time at the start of each run (at most N/5). */
const SOLO = 200;
const ENROLL_REAL = 4;
const WAIT_SECONDS = 60;
const SAFETY_REREAD_MS = 60_000;
const PIN = 'wait-bench-pin';
const PG_ADMIN_URL = process.env.BENCH_WAIT_PG_URL ?? process.env.PUSHGATE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const user = (i: number) => `wu${i}`;
const bulkSerial = (i: number) => `EDUP${(0xb0000000 + i).toString(16).toUpperCase()}`;

// ---------------------------------------------------------------------------------------------------------------
// Machine and CPU accounting

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.+)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}
/** Busy CPU time of the whole machine in ms (/proc/stat). */
function machineBusyMs(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [, u, nice, sys, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return ((u! + nice! + sys! + irq! + softirq! + steal!) * 1000) / 100;
}
/** CPU time (user + system, ms) of a process from /proc/<pid>/stat. */
function procCpuMs(pid: number): number {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
/** Process ids whose command name is `comm` (e.g. the PostgreSQL server and its backends). */
function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}
/**
 * Cores' worth of CPU used by processes other than this one and `pids()` between start and end (a process that
 * exits in between is counted as foreign).
 */
function foreignLoad(pids: () => number[]): { end(): number } {
  const t0 = performance.now();
  const busy0 = machineBusyMs();
  const start = new Map([process.pid, ...pids()].map((p) => [p, procCpuMs(p)]));
  return {
    end() {
      let own = 0;
      for (const p of new Set([process.pid, ...pids()])) own += procCpuMs(p) - (start.get(p) ?? 0);
      const ms = performance.now() - t0;
      return Math.max(0, (machineBusyMs() - busy0 - own) / ms);
    },
  };
}

const QUIET = 0.25;
const QUIET_BUDGET_S = envInt('BENCH_WAIT_QUIET_S', 45, 0);
let quietLeftMs = QUIET_BUDGET_S * 1000;
/** Waits (within the run's budget) until other processes use less than QUIET cores over a second. */
async function waitQuiet(pids: () => number[]): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < quietLeftMs) {
    const l = foreignLoad(pids);
    await sleep(1000);
    const load = l.end();
    if (load < QUIET) break;
    log(`other processes use ${f2(load)} cores — waiting for a quiet machine`);
  }
  quietLeftMs = Math.max(0, quietLeftMs - (performance.now() - t0));
}

// ---------------------------------------------------------------------------------------------------------------
// Server children

interface Child {
  proc: ChildProcess;
  pid: number;
  url: string;
  name: string;
  stats(gc?: boolean): Promise<WaitChildReply>;
  stop(): Promise<void>;
}

async function startChild(
  name: string,
  configFile: string,
  premadeKeys: number,
  tmp: string,
  flags: readonly string[] = SERVER_NODE_FLAGS,
): Promise<Child> {
  const extra = flags;
  // The server runs as production does: the compiled build (`npm run build`); BENCH_WAIT_TSX=1 runs the sources under tsx.
  const entry = COMPILED
    ? ['--expose-gc', path.join(ROOT, 'build', 'bench', 'wait_server.js')]
    : ['--expose-gc', '--import', 'tsx', path.join(BENCH_DIR, 'wait_server.ts')];
  const proc = spawn(process.execPath, [...extra, ...entry, configFile, String(premadeKeys)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const errFile = path.join(tmp, `${name}.stderr.log`);
  const err = fs.createWriteStream(errFile);
  proc.stderr!.pipe(err);
  const waiting: Array<(r: WaitChildReply) => void> = [];
  proc.on('message', (m) => waiting.shift()?.(m as WaitChildReply));
  const outFile = fs.createWriteStream(path.join(tmp, `${name}.stdout.log`));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      outFile.write(d);
      if (out.length > 100_000) return;
      out += d.toString();
      const m = /READY (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) =>
      reject(new Error(`${name} exited with ${code} before READY; see ${errFile}:\n${fs.readFileSync(errFile, 'utf8').slice(-2000)}`)),
    );
  });
  return {
    proc,
    pid: proc.pid!,
    url,
    name,
    stats: (gc = false) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        proc.send({ type: 'stats', gc });
      }),
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) {
          resolve();
          return;
        }
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

interface Res {
  status: number;
  text: string;
  end: number;
}
function send(
  agent: http.Agent,
  base: string,
  method: string,
  p: string,
  body?: string,
  contentType?: string,
  headers: Record<string, string> = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const u = new URL(p, base);
    const h: Record<string, string> = { ...headers };
    if (body !== undefined) {
      h['content-type'] = contentType ?? 'application/x-www-form-urlencoded';
      h['content-length'] = String(Buffer.byteLength(body));
    }
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), end: performance.now() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
const json = (r: Res): any => {
  try {
    return JSON.parse(r.text);
  } catch {
    return null;
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Phones and enrollment

interface Phone {
  key: KeyObject;
  pub: string;
}
function makePhones(n: number): Phone[] {
  const out: Phone[] = [];
  for (let i = 0; i < n; i++) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    out.push({ key: privateKey, pub: (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64') });
  }
  return out;
}
const signFor = (p: Phone, text: string) =>
  base32Encode(crypto.sign('sha256', Buffer.from(text, 'utf8'), { key: p.key, dsaEncoding: 'der' }));

/** Real step 1 + step 2 for users 0..ENROLL_REAL-1 through `node`, then bulk copies for the rest. Returns serials by user index. */
async function enrollAll(node: Child, db: Knex, phones: Phone[], total: number): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const auth = await send(agent, node.url, 'POST', '/auth', new URLSearchParams({ username: ADMIN, password: ADMIN_PASSWORD }).toString());
  if (auth.status !== 200) throw new Error(`admin login failed: ${auth.text}`);
  const jwt = json(auth).result.value.token as string;
  const serials: string[] = [];
  for (let i = 0; i < Math.min(ENROLL_REAL, total); i++) {
    const init = await send(
      agent,
      node.url,
      'POST',
      '/token/init',
      new URLSearchParams({ type: 'edupush', genkey: '1', user: user(i), pin: PIN }).toString(),
      undefined,
      { Authorization: jwt },
    );
    if (init.status !== 200) throw new Error(`step 1 failed: ${init.text}`);
    const qr = new URL((json(init).detail.pushurl.value as string).replace(/^edumfa-push:\/\/edumfa\//, 'https://x/'));
    const serial = qr.searchParams.get('serial')!;
    const step2 = await send(
      agent,
      node.url,
      'POST',
      '/ttype/edupush',
      JSON.stringify({
        enrollment_credential: qr.searchParams.get('enrollment_credential'),
        serial,
        fbtoken: `bench-fb-${i}`,
        pubkey: phones[i]!.pub,
      }),
      'application/json',
    );
    if (step2.status !== 200) throw new Error(`step 2 failed: ${step2.text}`);
    serials.push(serial);
  }
  agent.destroy();
  const template = await db('tokens').where({ serial: serials[0] }).first();
  const info = JSON.parse(template.info) as Record<string, string>;
  if (info.public_key_smartphone !== phones[0]!.pub) throw new Error('unexpected token row layout');
  const rows: Array<Record<string, unknown>> = [];
  const now = Date.now();
  for (let i = serials.length; i < total; i++) {
    const { id: _id, ...row } = template;
    serials.push(bulkSerial(i));
    rows.push({
      ...row,
      serial: bulkSerial(i),
      username: user(i),
      created_at: now,
      updated_at: now,
      info: JSON.stringify({ ...info, public_key_smartphone: phones[i]!.pub, firebase_token: `bench-fb-${i}` }),
    });
  }
  await db.transaction(async (trx) => {
    for (let k = 0; k < rows.length; k += 200) await trx('tokens').insert(rows.slice(k, k + 200));
  });
  return serials;
}

// ---------------------------------------------------------------------------------------------------------------
// One measured run

interface Row {
  scenario: string;
  n: number;
  rampS: number;
  rssIdleMb: number;
  rssPeakMb: number;
  kbPerWait: number;
  rssGcMb: number;
  heapIdleMb: number;
  heapHeldMb: number;
  heapKbPerWait: number;
  heapTotalHeldMb: number;
  externalHeldMb: number;
  holdS: number;
  holdCpuMs: number;
  queriesHeld: number;
  queriesPerStart: number;
  queriesPerLogin: number;
  healthzMs: number;
  solo: number;
  soloP50: number;
  soloP99: number;
  soloMax: number;
  answersPerS: number;
  wakeP50: number;
  wakeP99: number;
  wakeMax: number;
  accepted: number;
  foreign: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;

/**
 * N waits on `waitNode`, answered through `answerNode`, users 0..N-1. `from` offsets the users (warm-up uses others).
 * Returns null for a warm-up run.
 */
async function run(
  scenario: string,
  waitNode: Child,
  answerNode: Child,
  db: Knex,
  phones: Phone[],
  serials: string[],
  n: number,
  from = 0,
  measured = true,
): Promise<Row | null> {
  const nodes = waitNode === answerNode ? [waitNode] : [waitNode, answerNode];
  const sumQueries = async () => {
    let s = 0;
    for (const c of nodes) s += (await c.stats()).queries;
    return s;
  };
  const checkAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const answerAgent = new http.Agent({ keepAlive: true, maxSockets: ANSWER_CONC });
  const load = foreignLoad(() => [...nodes.map((c) => c.pid), ...(scenario.includes('PostgreSQL') ? pidsNamed('postgres') : [])]);
  const idle = await waitNode.stats(measured);
  if (measured) await sleep(300);
  const rssIdleMb = rssMb(waitNode.pid);
  const q0 = await sumQueries();
  const checkEnd = new Float64Array(n);
  const checks: Array<Promise<Res>> = new Array(n);
  let answering = false;
  const early: { first: Res | null; count: number } = { first: null, count: 0 };
  const t0 = performance.now();
  let issued = 0;
  for (;;) {
    const s = await waitNode.stats();
    if (early.first)
      throw new Error(`${early.count} checks answered before the phones did, e.g. HTTP ${early.first.status} ${early.first.text}`);
    if (issued === n && s.busWaiting >= n && s.waitsActive >= n) break;
    const room = Math.min(RAMP - (issued - s.busWaiting), n - issued);
    for (let k = 0; k < room; k++, issued++) {
      const i = issued;
      checks[i] = send(checkAgent, waitNode.url, 'POST', '/validate/check', `user=${user(from + i)}&pass=${PIN}`)
        .catch((err: unknown): Res => ({ status: 0, text: `request failed: ${String(err)}`, end: performance.now() }))
        .then((r) => {
          checkEnd[i] = r.end;
          if (!answering) {
            early.first ??= r;
            early.count++;
          }
          return r;
        });
    }
    if (performance.now() - t0 > 120_000) throw new Error(`ramp did not finish: ${issued} issued, ${s.busWaiting} parked`);
    await sleep(room > 0 ? 2 : 5);
  }
  const rampS = (performance.now() - t0) / 1000;
  // A request counts as parked once its waiter is registered, which is just before its first read of the challenge:
  // let those last reads finish (the count stops moving) before the hold starts.
  let q1 = await sumQueries();
  for (let k = 0; k < 100; k++) {
    await sleep(50);
    const q = await sumQueries();
    if (q === q1) break;
    q1 = q;
  }

  // Hold: nothing but the waits.
  let rssPeakMb = rssMb(waitNode.pid);
  const cpuHold0 = procCpuMs(waitNode.pid);
  const tHold = performance.now();
  while (measured && performance.now() - tHold < HOLD_MS) {
    await sleep(100);
    rssPeakMb = Math.max(rssPeakMb, rssMb(waitNode.pid));
  }
  const holdS = (performance.now() - tHold) / 1000;
  const holdCpuMs = procCpuMs(waitNode.pid) - cpuHold0;
  const q2 = await sumQueries();
  const held = await waitNode.stats(measured); // after a full GC: the live heap with N waiting
  const rssGcMb = rssMb(waitNode.pid);
  if (held.waitsActive !== n || held.busWaiting !== n)
    throw new Error(`waits left during the hold: ${held.waitsActive} active, ${held.busWaiting} on the bus`);

  // The server stays responsive with N waiting (the phone's own requests are not queued behind the waits).
  const probe = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const healthz: number[] = [];
  for (let k = 0; k < (measured ? 20 : 1); k++) {
    const s = performance.now();
    const r = await send(probe, waitNode.url, 'GET', '/healthz');
    if (r.status !== 200) throw new Error(`healthz: ${r.text}`);
    healthz.push(r.end - s);
  }
  probe.destroy();
  const q3 = await sumQueries();

  // The phones: nonces from the database, signatures made before the clock starts.
  const wanted = new Map<string, number>();
  for (let i = 0; i < n; i++) wanted.set(serials[from + i]!, i);
  const open = await db('challenges').select('serial', 'nonce').where({ status: 'pending' });
  const bodies: string[] = new Array(n);
  for (const r of open as Array<{ serial: string; nonce: string }>) {
    const i = wanted.get(r.serial);
    if (i === undefined) continue;
    if (bodies[i]) throw new Error(`two open challenges for ${r.serial}`);
    bodies[i] = JSON.stringify({
      nonce: r.nonce,
      serial: r.serial,
      signature: signFor(phones[from + i]!, `${r.nonce}|${r.serial}`),
      decline: 0,
    });
  }
  const missing = bodies.filter((b) => !b).length + (n - bodies.length);
  if (missing) throw new Error(`${missing} waits have no open challenge`);

  answering = true;
  const answerEnd = new Float64Array(n);
  const answer = async (i: number) => {
    const r = await send(answerAgent, answerNode.url, 'POST', '/ttype/edupush', bodies[i], 'application/json');
    answerEnd[i] = r.end;
    if (r.status !== 200 || json(r)?.result?.value !== true) throw new Error(`answer ${i}: HTTP ${r.status} ${r.text}`);
  };
  // Phase 1, one at a time: answer, wait for that login's response, next (the others keep waiting meanwhile).
  const solo = Math.min(SOLO, Math.floor(n / 5));
  for (let i = 0; i < solo; i++) {
    await answer(i);
    await checks[i];
  }
  // Phase 2, under load: the rest with ANSWER_CONC answers in flight.
  let nextAnswer = solo;
  const tA = performance.now();
  await Promise.all(
    Array.from({ length: ANSWER_CONC }, async () => {
      while (nextAnswer < n) await answer(nextAnswer++);
    }),
  );
  let lastAnswer = tA;
  for (let i = solo; i < n; i++) lastAnswer = Math.max(lastAnswer, answerEnd[i]!);
  const answersPerS = (n - solo) / ((lastAnswer - tA) / 1000);
  const results = await Promise.all(checks);
  let accepted = 0;
  results.forEach((r, i) => {
    const b = json(r);
    if (r.status === 200 && b?.result?.authentication === 'ACCEPT' && b.detail?.serial === serials[from + i]) accepted++;
  });
  for (let k = 0; k < 1000; k++) {
    const s = await waitNode.stats();
    if (s.waitsActive === 0) break;
    await sleep(5);
  }
  const q4 = await sumQueries();
  const foreign = load.end();
  checkAgent.destroy();
  answerAgent.destroy();
  if (accepted !== n) {
    const bad = results.find((r, i) => json(r)?.result?.authentication !== 'ACCEPT' || json(r)?.detail?.serial !== serials[from + i]);
    throw new Error(`${n - accepted} of ${n} waits did not end in ACCEPT, e.g. HTTP ${bad?.status} ${bad?.text}`);
  }
  if (!measured) return null;
  const wakeOf = (a: number, b: number) => Array.from(checkEnd.subarray(a, b), (end, k) => end - answerEnd[a + k]!).sort((x, y) => x - y);
  const soloWake = wakeOf(0, solo);
  const wake = wakeOf(solo, n);
  healthz.sort((a, b) => a - b);
  return {
    scenario,
    n,
    rampS,
    rssIdleMb,
    rssPeakMb,
    kbPerWait: ((rssPeakMb - rssIdleMb) * 1024) / n,
    holdS,
    holdCpuMs,
    rssGcMb,
    heapIdleMb: idle.heapUsedBytes / 2 ** 20,
    heapHeldMb: held.heapUsedBytes / 2 ** 20,
    heapTotalHeldMb: held.heapTotalBytes / 2 ** 20,
    externalHeldMb: held.externalBytes / 2 ** 20,
    heapKbPerWait: (held.heapUsedBytes - idle.heapUsedBytes) / 1024 / n,
    queriesHeld: q2 - q1,
    queriesPerStart: (q1 - q0) / n,
    queriesPerLogin: (q4 - q3) / n,
    healthzMs: pct(healthz, 0.5),
    solo,
    soloP50: pct(soloWake, 0.5),
    soloP99: pct(soloWake, 0.99),
    soloMax: soloWake[soloWake.length - 1]!,
    answersPerS,
    wakeP50: pct(wake, 0.5),
    wakeP99: pct(wake, 0.99),
    wakeMax: wake[wake.length - 1]!,
    accepted,
    foreign,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

function writeConfig(tmp: string, name: string, dbUrl: string): string {
  const doc = {
    server: { host: '127.0.0.1', port: 0, public_url: 'https://mfa.bench.invalid' },
    database: { url: dbUrl, pool_max: 10 },
    secrets: { key_file: path.join(tmp, 'secrets.key') },
    realms: [{ name: 'bench', default: true, users: { type: 'any' } }],
    // The ramp puts up to RAMP checks in the PIN queue at once: a capacity run, not a flood, so the queue's refusal
    // bounds (pin.max_wait_ms / max_queue, sized for a login's 2 s budget) are opened wide — with them the ramp's tail
    // is refused 503 as a flood would be.
    pin: { memory_kib: 1024, time_cost: 1, parallelism: 1, max_concurrent: 1, max_wait_ms: 120_000, max_queue: 20_000 },
    challenge: { validity_seconds: 300 },
    wait: { max_concurrent: 20_000, max_per_user: 3, safety_reread_ms: SAFETY_REREAD_MS, drain_seconds: 1 },
    cleanup: { interval_seconds: 0 },
    log: { level: 'warn' },
    policies: [
      { name: 'enroll', scope: 'enrollment', actions: { edupush_firebase_configuration: 'poll only' } },
      { name: 'wait', scope: 'authentication', actions: { edupush_wait: WAIT_SECONDS } },
    ],
  };
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(file, JSON.stringify(doc, null, 2)); // JSON is YAML
  return file;
}

function reachable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port || 5432) });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function oneNode(tmp: string, phones: Phone[], rows: Row[]): Promise<void> {
  const max = Math.max(...SIZES);
  const config = writeConfig(tmp, 'sqlite', `sqlite:${path.join(tmp, 'wait.db')}`);
  const setup = await startChild('sqlite-setup', config, 2, tmp);
  const db = createKnex(`sqlite:${path.join(tmp, 'wait.db')}`);
  const serials = await enrollAll(setup, db, phones, max + WARMUP);
  await setup.stop();
  log(`one node (SQLite): ${serials.length} tokens ready`);
  /** A fresh waiting server for each measurement: warm-up, quiet machine, the run. */
  const measure = async (childName: string, scenario: string, n: number, flags: readonly string[] = SERVER_NODE_FLAGS) => {
    const node = await startChild(childName, config, 0, tmp, flags);
    try {
      await run('warm-up', node, node, db, phones, serials, WARMUP, max, false);
      await waitQuiet(() => [node.pid]);
      const row = await run(scenario, node, node, db, phones, serials, n);
      rows.push(row!);
      log(fmtLog(row!));
    } finally {
      await node.stop();
    }
  };
  for (const n of SIZES) await measure(`sqlite-${n}`, 'one node, SQLite', n);
  if (PLAIN) await measure(`sqlite-plain-${max}`, PLAIN_SCENARIO, max, []);
  await db.destroy();
}

async function twoNodes(tmp: string, phones: Phone[], rows: Row[]): Promise<void> {
  const max = Math.max(...CROSS_SIZES);
  const name = `pushgate_waitbench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`create database ${name}`);
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  const config = writeConfig(tmp, 'postgres', url);
  const db = createKnex(url, { poolMax: 2 });
  let b: Child | null = null;
  try {
    b = await startChild('pg-node-b', config, 2, tmp);
    const serials = await enrollAll(b, db, phones, max + WARMUP);
    log(`two nodes (PostgreSQL ${name}): ${serials.length} tokens ready`);
    for (const n of CROSS_SIZES) {
      const a = await startChild(`pg-node-a-${n}`, config, 0, tmp);
      try {
        await run('warm-up', a, b, db, phones, serials, WARMUP, max, false);
        const bPid = b.pid;
        await waitQuiet(() => [a.pid, bPid, ...pidsNamed('postgres')]);
        const row = await run('two nodes, PostgreSQL (wait on A, answer on B, LISTEN/NOTIFY)', a, b, db, phones, serials, n);
        rows.push(row!);
        log(fmtLog(row!));
      } finally {
        await a.stop();
      }
    }
  } finally {
    await b?.stop();
    await db.destroy();
    await admin.raw(`drop database if exists ${name} with (force)`);
    await admin.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Output

const f1 = (x: number) => x.toLocaleString('en-US', { maximumFractionDigits: 1, minimumFractionDigits: 1 });
const f2 = (x: number) => x.toLocaleString('en-US', { maximumFractionDigits: 2, minimumFractionDigits: 2 });
const f0 = (x: number) => Math.round(x).toLocaleString('en-US');
/** `a–b`, or just `a` when both ends print the same. */
const span = (xs: readonly number[], f: (x: number) => string) => {
  const a = f(Math.min(...xs));
  const b = f(Math.max(...xs));
  return a === b ? a : `${a}–${b}`;
};
const fmtLog = (r: Row) =>
  `${r.scenario} N=${r.n}: RSS ${f0(r.rssIdleMb)} → ${f0(r.rssPeakMb)} MB (${f0(r.rssGcMb)} MB after a full GC: V8 heap ${f0(r.heapHeldMb)} used / ${f0(r.heapTotalHeldMb)} total, external ${f0(r.externalHeldMb)}), live heap ${f1(r.heapKbPerWait)} KB/wait, queries held ${r.queriesHeld}, wake p50/p99 one at a time ${f1(r.soloP50)}/${f1(r.soloP99)} ms, under load ${f1(r.wakeP50)}/${f1(r.wakeP99)} ms, ${r.accepted}/${r.n} ACCEPT, other CPU ${f2(r.foreign)}`;

function tables(rows: Row[]): string {
  const mem =
    '| scenario | N waiting | ramp s | server RSS idle → with N waiting, MB | RSS per wait, KB | live heap per wait (after full GC), KB | DB queries during the hold | queries per wait to start | queries per login, answer → ACCEPT | GET /healthz with N waiting, ms (median) |\n'
    + '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n'
    + rows
      .map(
        (r) =>
          `| ${r.scenario} | ${f0(r.n)} | ${f1(r.rampS)} | ${f0(r.rssIdleMb)} → ${f0(r.rssPeakMb)} | ${f1(r.kbPerWait)} | ${f1(r.heapKbPerWait)} | ${r.queriesHeld} in ${f1(r.holdS)} s | ${f1(r.queriesPerStart)} | ${f1(r.queriesPerLogin)} | ${f2(r.healthzMs)} |`,
      )
      .join('\n')
    + '\n';
  const wake =
    `| scenario | N waiting | one at a time: answers | p50 ms | p99 ms | max ms | under load (${ANSWER_CONC} in flight): answers | answers/s | p50 ms | p99 ms | max ms | ACCEPT / N | other processes' CPU, cores |\n`
    + '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n'
    + rows
      .map(
        (r) =>
          `| ${r.scenario} | ${f0(r.n)} | ${f0(r.solo)} | ${f1(r.soloP50)} | ${f1(r.soloP99)} | ${f1(r.soloMax)} | ${f0(r.n - r.solo)} | ${f0(r.answersPerS)} | ${f1(r.wakeP50)} | ${f1(r.wakeP99)} | ${f1(r.wakeMax)} | ${f0(r.accepted)} / ${f0(r.n)} | ${f2(r.foreign)} |`,
      )
      .join('\n')
    + '\n';
  return `Memory and database:\n\n${mem}\nWake-up latency (phone's answer response received → waiting response received):\n\n${wake}`;
}

function section(rows: Row[], meta: { date: string; seconds: number; pgNote: string }): string {
  const one = rows.filter((r) => r.scenario.startsWith('one node'));
  const plain = rows.find((r) => r.scenario === PLAIN_SCENARIO);
  const two = rows.filter((r) => r.scenario.startsWith('two nodes'));
  const big = one.find((r) => r.n === Math.max(...one.map((x) => x.n)));
  const worst = (rs: Row[], k: 'wakeP99' | 'soloP99') => Math.max(...rs.map((r) => r[k]));
  const held = rows.reduce((s, r) => s + r.queriesHeld, 0);
  const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
  const busy = rows.filter((r) => r.foreign >= 0.25);
  const env = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_WAIT_'))
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  const flags = args.filter((x) => x !== '--no-write').join(' ');
  const lines = [
    BEGIN,
    '## Wait mode (`npm run bench:wait`, bench/wait.ts)',
    '',
    'Generated by `npm run bench:wait`; do not edit by hand — re-run it (it rewrites only this section, between the `wait:begin` / `wait:end` markers).',
    '',
    `- **Date:** ${meta.date}`,
    `- **Machine:** ${cpuModel()}, ${os.availableParallelism()} cores, ${f1(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}`,
    `- **Node:** ${process.version}`,
    `- **Command:** \`${env}npm run bench:wait${flags ? ` -- ${flags}` : ''}\` (whole run ${f0(meta.seconds)} s)`,
    `- **Set-up:** every server is its own child process running the compiled build${COMPILED ? '' : ' (here: the sources under tsx)'} as the README's production guide recommends (\`node ${SERVER_NODE_FLAGS.join(' ')}\`${PLAIN ? '; the largest one-node size once more with plain `node` for comparison' : ''}; bench/wait_server.ts: buildDeps → createApp → listen with startServer's backlog and timeouts, plus a knex query counter and an IPC stats answer); this process is the load generator and shares the ${os.availableParallelism()} cores with them (and, for PostgreSQL, with the database). Policy \`edupush_wait: ${WAIT_SECONDS}\`, \`wait.max_concurrent: 20000\`, \`wait.safety_reread_ms: ${SAFETY_REREAD_MS}\` (the safety-net re-read never fires during a run), poll-only edupush tokens, near-free PIN hash (argon2id m=1024 KiB, t=1, 1 at a time — with the default hash the ramp alone would take N × ~21 ms; the PIN queue's refusal bounds opened wide: \`pin.max_wait_ms: 120000\`, \`max_queue: 20000\`, since the ramp is not a flood), cleanup timer off, log level warn, an audit row per request. Each size gets a fresh waiting server; ${WARMUP} logins warm it up first (not measured). Before each run the bench waits (at most ${QUIET_BUDGET_S} s in all) until other processes use < ${QUIET} cores.`,
    `- **Tokens:** ${ENROLL_REAL} enrolled for real (POST /token/init as admin + the phone's step 2 on /ttype/edupush); the others are copies of the first one's database row with their own serial, user and phone key, inserted by the bench (same PIN hash and server key pair — a poll-only push login never signs with the server key). Phones use EC P-256 keys.`,
    `- **Run:** ramp N \`POST /validate/check\` (one connection each, at most ${RAMP} not yet parked) until the server reports N waits parked → hold ${f1(HOLD_MS / 1000)} s with no traffic (RSS = VmRSS of the waiting server from /proc/<pid>/status, sampled every 100 ms; then a full GC for the live heap) → 20 × GET /healthz → the phones answer (\`POST /ttype/edupush\` with a signed \`nonce|serial\`; nonces read from the database by the bench, signatures made beforehand): the first min(${SOLO}, N/5) one at a time (next answer only after the previous login's response), the rest with ${ANSWER_CONC} answers in flight. **Wake-up latency** per login = its waiting response fully received − its phone's answer response fully received, both in the bench process.`,
    `- **Columns:** queries are knex queries counted in the server process(es). "To start" = during the ramp ÷ N (token list, challenge insert, first read of the challenge, audit row); "per login" = the whole answer phase ÷ N (the phone's answer: token, challenge, conditional update, audit row; the woken login: consume — the conditional delete that wins the login, tried before any read when the login has one token — success, audit row). Across nodes the notification itself is one \`pg_notify\` on the answering node's separate bus connection (not a knex query, not counted). Other processes' CPU = machine busy time (/proc/stat) minus the bench's own processes (and, for PostgreSQL, every \`postgres\` process) during the run, in cores.`,
    meta.pgNote ? `- ${meta.pgNote}` : '',
    '',
    tables(rows),
    '**Against the targets of issue 4:**',
    big
      ? `- ${f0(big.n)} concurrent waits in one process: server RSS ${f1(big.rssPeakMb)} MB (target < 300 MB: ${verdict(big.rssPeakMb < 300)}) — ${f0(big.rssIdleMb)} MB idle server, then ≈ ${f1(big.kbPerWait)} KB RSS per waiting request; the live JS heap (after a full GC) grows by ${f1(big.heapKbPerWait)} KB per waiting request.${plain ? ` With plain \`node\` (no flags) the same run peaks at ${f1(plain.rssPeakMb)} MB (${verdict(plain.rssPeakMb < 300)} without the flags): V8 keeps more free heap pages (${f0(plain.heapTotalHeldMb)} MB V8 heap for ${f0(plain.heapHeldMb)} MB live, vs ${f0(big.heapTotalHeldMb)} for ${f0(big.heapHeldMb)} with the flags).` : ''}`
      : '',
    one.length
      ? `- Wake-up p99 on one node, worst over the sizes (target < 50 ms): ${f1(worst(one, 'soloP99'))} ms one at a time (${verdict(worst(one, 'soloP99') < 50)}), ${f1(worst(one, 'wakeP99'))} ms under load (${verdict(worst(one, 'wakeP99') < 50)}).`
      : '',
    two.length
      ? `- Wake-up p99 across two nodes, PostgreSQL LISTEN/NOTIFY (target < 100 ms): ${f1(worst(two, 'soloP99'))} ms one at a time (${verdict(worst(two, 'soloP99') < 100)}), ${f1(worst(two, 'wakeP99'))} ms under load (${verdict(worst(two, 'wakeP99') < 100)}).`
      : '- Across two nodes: not measured in this run (see above).',
    `- Database queries while waiting: ${held} over all holds (target: 0 per waiting request apart from the safety-net re-read — ${verdict(held === 0)}).`,
    '',
    '**Reading it:**',
    big
      ? `- Waiting costs no database work and next to no CPU: no query during any hold; with ${f0(big.n)} logins waiting the server used ${f0(big.holdCpuMs)} ms of CPU in the ${f1(big.holdS)} s hold (/proc/<pid>/stat, 10 ms ticks), and GET /healthz answers in ${f2(big.healthzMs)} ms (median).`
      : '',
    `- Memory: ≈ ${span(
      rows.map((r) => r.heapKbPerWait),
      f1,
    )} KB of live heap per waiting request, on top of an idle server of ≈ ${span(
      rows.map((r) => r.rssIdleMb),
      f0,
    )} MB (node alone ≈ 40 MB, + the loaded modules). A waiting request keeps Node's per-connection HTTP state (socket, parser, request/response, bound listeners: ≈ 5 KB of heap for a bare \`http\` server holding a request), Koa's context (≈ 4 KB, kept by Koa's on-finished listener until the response ends, although the request has left the middleware chain), and one PendingWait listener object with its timer, a slim wait plan (ids and serials, not the token records) and what its answer needs (no pass, no parameters). The RSS per wait is higher than the live heap per wait: each connection also holds native memory outside the JS heap (a bare \`http\` server holding requests takes ≈ 10 KB of RSS per request for its ≈ 5 KB of heap), and V8 keeps some free heap pages it grew into while the logins arrived — fewer with \`--optimize-for-size\`.`,
    two.length
      ? `- Across nodes under load, ${ANSWER_CONC} answers in flight saturate the ${os.availableParallelism()} cores shared by the load generator, both server processes and PostgreSQL (${two.map((r) => f0(r.answersPerS)).join(' / ')} answers/s); a woken login then queues for CPU at each of its sequential database round trips (consume, success, audit row — written before the response, as for every request). One at a time the same path takes ${two.map((r) => f1(r.soloP50)).join(' / ')} ms (p50).`
      : '',
    busy.length
      ? `- ⚠ Other processes used ≥ 0.25 cores during ${busy.length} of ${rows.length} runs (last column): latencies and ramp times of those rows are inflated; re-run on a quiet machine.`
      : '',
    '',
    "- eduMFA for scale (issue 4, same machine class): as many waits as request slots (4 with 4 sync workers; 30 needed 64 threads and 2.4 GB RSS, and the phone's own poll queued behind them), a database poll per wait per second, and a wake-up 0.55 s (median) to 1.05 s (max) after the phone's answer.",
    '',
    END,
  ];
  return lines.filter((l, i, a) => !(l === '' && a[i - 1] === '')).join('\n') + '\n';
}

function writeSection(text: string): void {
  const old = fs.existsSync(README) ? fs.readFileSync(README, 'utf8') : '';
  const b = old.indexOf(BEGIN);
  const e = old.indexOf(END);
  let next: string;
  if (b >= 0 && e > b) next = old.slice(0, b) + text.trimEnd() + old.slice(e + END.length);
  else next = (old === '' || old.endsWith('\n\n') ? old : old.endsWith('\n') ? old + '\n' : old + '\n\n') + text;
  fs.writeFileSync(README, next);
}

// ---------------------------------------------------------------------------------------------------------------

const started = performance.now();
const date = new Date().toISOString();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-wait-bench-'));
fs.writeFileSync(path.join(tmp, 'secrets.key'), crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
const need = Math.max(...SIZES, ...CROSS_SIZES) + 512;
log(
  `sizes ${SIZES.join(', ')} (two nodes: ${CROSS_SIZES.join(', ')}); hold ${HOLD_MS} ms; ${ANSWER_CONC} answers in flight; temp dir ${tmp}`,
);
const limit = Number((/Max open files\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8')) ?? [])[1] ?? NaN);
if (limit < need) log(`warning: open-file limit ${limit} < ${need}; raise it (ulimit -n ${need * 2}) or the largest runs fail with EMFILE`);
const phones = makePhones(Math.max(...SIZES, ...CROSS_SIZES) + WARMUP);
const rows: Row[] = [];
let pgNote = '';
try {
  if (!args.includes('--no-sqlite')) await oneNode(tmp, phones, rows);
  if (!CROSS_SIZES.length)
    pgNote = 'The two-node PostgreSQL scenario was skipped (no size ≤ 5000 in BENCH_WAIT_N; set BENCH_WAIT_CROSS_N).';
  else if (args.includes('--no-pg')) pgNote = 'The two-node PostgreSQL scenario was skipped (--no-pg).';
  else if (!(await reachable(PG_ADMIN_URL))) {
    pgNote = `The two-node PostgreSQL scenario was skipped: ${new URL(PG_ADMIN_URL).host} is unreachable.`;
    log(pgNote);
  } else await twoNodes(tmp, phones, rows);
} catch (err) {
  log(`failed; server logs kept in ${tmp}`);
  throw err;
}
if (args.includes('--keep')) log(`server logs kept in ${tmp}`);
else fs.rmSync(tmp, { recursive: true, force: true });
const seconds = (performance.now() - started) / 1000;
process.stdout.write('\n' + tables(rows));
if (write) {
  writeSection(section(rows, { date, seconds, pgNote }));
  log(`wrote the wait section of bench/README.md (${f0(seconds)} s)`);
} else log(`README not written (--no-write); ${f0(seconds)} s`);
