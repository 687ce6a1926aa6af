/**
 * `npm run bench:device`: the device protocol v2 (issue 14), measured in one run.
 *
 *   1. Delivery latency: trigger → the device's process sees the request. A trigger is `POST /validate/check` with a
 *      latency user's PIN; the clock (performance.now() of THIS process, which also runs the devices) starts just
 *      before the request is sent and stops when the device's loop has parsed a list holding the new request. The
 *      devices are the reference client's own functions (cli/device_client.ts pollOnce / streamOnce / answer); after
 *      each trigger the device accepts the request (a signed answer, so no push-fatigue limit builds up) and the next
 *      trigger waits until the device holds its long-poll/stream again (the server's answer-bus listener count).
 *        a. one node (SQLite file database): long-poll, SSE, and a v1 app (eduMFA's protocol: `GET /ttype/edupush`,
 *           signed, every BENCH_DEVICE_V1_POLL_MS; each v1 trigger starts at a random point of the poll cycle);
 *        b. two nodes on one PostgreSQL database: the device holds its long-poll/stream on node B, the trigger goes to
 *           node A; the wake-up crosses through LISTEN/NOTIFY (skipped with a message when PostgreSQL is unreachable).
 *   2. Capacity: BENCH_DEVICE_COUNT v2 devices (bench/device_load.ts, its own process) each hold a correctly signed
 *      long-poll on one server process (SQLite); server RSS before and with all of them held, and the server's CPU
 *      over BENCH_DEVICE_IDLE_S seconds with nothing but the devices' long-poll cycle (25 s: each device reconnects
 *      with a fresh signature), in ms CPU per second.
 * Devices are enrolled in the server children before they listen (bench/device_server.ts: the functions behind
 * `POST /token/init` and `POST /device/v2/enroll`). The PINs are hashed with argon2id m=1024 KiB t=1, so that a
 * trigger's latency is the delivery path and not the PIN hash (the trigger's own response time is printed too).
 *
 * Env: BENCH_DEVICE_TRIGGERS (per v2 scenario, default 100, --quick 20), BENCH_DEVICE_V1_TRIGGERS (default 30, --quick 5),
 * BENCH_DEVICE_V1_POLL_MS (the v1 app's poll interval, default 5000), BENCH_DEVICE_COUNT (default 10000, --quick 1000),
 * BENCH_DEVICE_IDLE_S (default 30, --quick 5), BENCH_DEVICE_RAMP (connections being opened at a time, default 200),
 * BENCH_DEVICE_PG_URL (admin URL, default PUSHGATE_TEST_PG_URL or postgres://postgres@127.0.0.1:5432/test),
 * BENCH_DEVICE_HEAP_SNAPSHOT (a directory: the capacity server writes a heap snapshot there with all devices held).
 * Flags: --quick (fewer of everything), --write (put the section into bench/README.md between `<!-- device:begin -->`
 * and `<!-- device:end -->`; never with a quick run's numbers unless you mean it), --no-pg, --no-capacity, --no-latency
 * (the capacity part alone; e.g. `BENCH_DEVICE_COUNT=2000 npm run bench:device -- --no-latency` for a quick A/B),
 * --capacity-tsx (the capacity server with tsx on the sources instead of compiled JavaScript with `npm start`'s flags).
 * The capacity server runs as production does (compiled by tsc into node_modules/.cache/pushgate-bench-device, plain
 * node with the flags of `npm start` in package.json): the RSS target is about the process an operator runs.
 * File descriptors: the server and the load process each hold one socket per device: `ulimit -n` must exceed
 * BENCH_DEVICE_COUNT + ~200 (the bench checks and stops with a message otherwise).
 */
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import knexFactory from 'knex';
import { answer, pollOnce, type StoredDevice, streamOnce } from '../cli/device_client.ts';
import { base32Encode } from '../tokens/base32.ts';
import { processCpuMs } from './cpu.ts';
import { DEVICE_PIN, type DeviceReady, type DeviceStats, deviceKey, LATENCY } from './device_common.ts';
import { BENCH_DIR, envInt, ROOT, serverNodeFlags } from './env.ts';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const write = args.includes('--write');
const TRIGGERS = envInt('BENCH_DEVICE_TRIGGERS', quick ? 20 : 100, 1);
const V1_TRIGGERS = envInt('BENCH_DEVICE_V1_TRIGGERS', quick ? 5 : 30, 0);
const V1_POLL_MS = envInt('BENCH_DEVICE_V1_POLL_MS', 5000, 100);
const COUNT = envInt('BENCH_DEVICE_COUNT', quick ? 1000 : 10_000, 0);
const IDLE_S = envInt('BENCH_DEVICE_IDLE_S', quick ? 5 : 30, 1);
const RAMP = envInt('BENCH_DEVICE_RAMP', 200, 1);
const CAPACITY_TSX = args.includes('--capacity-tsx');
const PG_ADMIN_URL = process.env.BENCH_DEVICE_PG_URL ?? process.env.PUSHGATE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const README = path.join(BENCH_DIR, 'README.md');
const BEGIN = '<!-- device:begin -->';
const END = '<!-- device:end -->';
const log = (msg: string) => process.stderr.write(`[bench:device] ${msg}\n`);

// ---------------------------------------------------------------------------------------------------------------
// Children

interface Child {
  url: string;
  ready: DeviceReady;
  proc: ChildProcess;
  stats(): Promise<DeviceStats>;
  stop(): Promise<void>;
}

function writeConfig(dir: string, name: string, dbUrl: string, maxConnections: number): string {
  const file = path.join(dir, `${name}.yaml`);
  const doc = {
    server: { host: '127.0.0.1', port: 0, public_url: 'https://mfa.bench.invalid' },
    database: { url: dbUrl },
    secrets: { key_file: path.join(dir, 'pushgate.key') },
    pin: { memory_kib: 1024, time_cost: 1, parallelism: 1 },
    log: { level: 'error', format: 'json' },
    device: { max_connections: maxConnections },
    // Sequential triggers for one user, each answered at once: the per-user trigger budget is a flood defence, not
    // what this bench measures.
    limits: { challenges_per_user: 0 },
    policies: [
      {
        name: 'device',
        scope: 'enrollment',
        actions: { edupush_firebase_configuration: 'longpoll', edupush_device_protocol: true },
      },
    ],
  };
  fs.writeFileSync(file, JSON.stringify(doc, null, 2)); // JSON is YAML
  return file;
}

/**
 * How a server child runs: with tsx on the TypeScript sources (the latency scenarios), or — `compiled`, the capacity
 * scenario — as `npm start` runs pushgate: plain node with its flags on JavaScript compiled from the same sources.
 */
async function startChild(label: string, config: string, load: number, latency: boolean, compiled: string | null = null): Promise<Child> {
  const entry = compiled ? [...PRODUCTION_NODE_FLAGS, compiled] : ['--import', 'tsx', path.join(BENCH_DIR, 'device_server.ts')];
  const proc = spawn(process.execPath, [...entry, config, String(load), latency ? '1' : '0'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line.trim()) process.stderr.write(`[${label}] ${line}\n`);
  });
  const ready = await new Promise<{ url: string; ready: DeviceReady }>((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      out += chunk;
      const m = /^READY (\S+) (.*)$/m.exec(out);
      if (m) resolve({ url: m[1]!, ready: JSON.parse(m[2]!) as DeviceReady });
    });
    proc.once('exit', (code) => reject(new Error(`${label} exited with ${code} before READY`)));
  });
  return {
    ...ready,
    proc,
    stats: () =>
      new Promise((resolve) => {
        const onMessage = (m: unknown) => {
          if ((m as DeviceStats).type !== 'stats') return;
          proc.off('message', onMessage);
          resolve(m as DeviceStats);
        };
        proc.on('message', onMessage);
        proc.send({ type: 'stats' });
      }),
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Latency: a device in this process and triggers

/** The lists a device has seen; `next()` resolves at the arrival time of the first list holding an id not seen yet. */
class Sightings {
  private readonly seen = new Set<string>();
  private pending: { resolve: (v: { id: string; at: number }) => void } | null = null;
  empty = true;
  list(ids: readonly string[]): void {
    const at = performance.now();
    this.empty = ids.length === 0;
    for (const id of ids) {
      if (this.seen.has(id)) continue;
      this.seen.add(id);
      const p = this.pending;
      this.pending = null;
      p?.resolve({ id, at });
    }
  }
  next(): Promise<{ id: string; at: number }> {
    return new Promise((resolve) => {
      this.pending = { resolve };
    });
  }
}

const storedDevice = (serial: string, server: string): StoredDevice => ({
  serial,
  server,
  label: serial,
  issuer: 'bench',
  key_type: 'ed25519',
  auth_mode: 'lax',
  private_key: deviceKey(serial).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  server_key: '',
  enrolled_at: new Date().toISOString(),
});

/** Runs a v2 device (long-poll or SSE) until `signal` aborts; reconnects at once when a cycle ends. */
async function runV2Device(kind: 'longpoll' | 'sse', d: StoredDevice, s: Sightings, signal: AbortSignal): Promise<void> {
  let tag: string | null = null;
  while (!signal.aborted) {
    try {
      if (kind === 'longpoll') {
        const r = await pollOnce(d, { signal }, 0, tag);
        if (r) {
          tag = r.etag;
          s.list(r.requests.map((q) => q.id));
        }
      } else {
        tag = await streamOnce(d, { signal }, 0, tag, (etag, requests) => {
          tag = etag;
          s.list(requests.map((q) => q.id));
          return false;
        });
      }
    } catch (err) {
      if (signal.aborted) return;
      log(`${kind} device: ${(err as Error).message}; reconnecting in 1 s`);
      await sleep(1000);
    }
  }
}

const v1Sign = (key: KeyObject, text: string) => base32Encode(crypto.sign('sha256', Buffer.from(text, 'utf8'), key));

/** The v1 app: polls `GET /ttype/edupush` (signed `serial|timestamp`) every V1_POLL_MS until `signal` aborts. */
async function runV1App(base: string, key: KeyObject, s: Sightings, signal: AbortSignal): Promise<void> {
  const serial = LATENCY.v1.serial;
  while (!signal.aborted) {
    const next = performance.now() + V1_POLL_MS;
    const timestamp = new Date().toISOString();
    const q = new URLSearchParams({ serial, timestamp, signature: v1Sign(key, `${serial}|${timestamp}`) });
    try {
      const res = await fetch(`${base}/ttype/edupush?${q}`, { signal });
      const body = (await res.json()) as { result?: { value?: Array<{ nonce: string }> } };
      s.list((body.result?.value ?? []).map((c) => c.nonce));
    } catch (err) {
      if (signal.aborted) return;
      log(`v1 app: ${(err as Error).message}`);
    }
    await sleep(Math.max(0, next - performance.now()), undefined, { signal }).catch(() => {});
  }
}

async function post(url: string, params: Record<string, string>): Promise<{ status: number; body: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  return { status: res.status, body: await res.text() };
}

interface LatencyRow {
  scenario: string;
  channel: string;
  ms: number[];
  triggerMs: number[];
  target: number | null;
}

/**
 * N sequential triggers on `trigger` for the device of `kind` connected to `device`; the device accepts each request.
 * v2: each trigger waits until `device` has the device's long-poll or stream held; v1: after a random pause in
 * [0, V1_POLL_MS) so that triggers fall at random points of the poll cycle.
 */
async function measure(
  scenario: string,
  kind: 'longpoll' | 'sse' | 'v1',
  n: number,
  trigger: Child,
  device: Child,
  target: number | null,
  phoneKey: KeyObject | null,
): Promise<LatencyRow> {
  const who = LATENCY[kind];
  const s = new Sightings();
  const ac = new AbortController();
  const d = storedDevice(who.serial, device.url);
  const loop = kind === 'v1' ? runV1App(device.url, phoneKey!, s, ac.signal) : runV2Device(kind, d, s, ac.signal);
  const row: LatencyRow = {
    scenario,
    channel: kind === 'v1' ? `v1 polling every ${V1_POLL_MS / 1000} s` : kind,
    ms: [],
    triggerMs: [],
    target,
  };
  try {
    for (let i = 0; i < n; i++) {
      if (kind === 'v1') await sleep(Math.random() * V1_POLL_MS);
      else
        await until(`the ${kind} device held on ${device.url}`, async () => s.empty && (await device.stats()).busWaiting >= 1, 30_000, 5);
      const seen = s.next();
      const t0 = performance.now();
      const r = await post(`${trigger.url}/validate/check`, { user: who.user, pass: DEVICE_PIN });
      row.triggerMs.push(performance.now() - t0);
      if (r.status !== 200 || !r.body.includes('transaction_id')) throw new Error(`trigger: HTTP ${r.status} ${r.body}`);
      const timeout = sleep(30_000 + V1_POLL_MS).then(() => null);
      const got = await Promise.race([seen, timeout]);
      if (!got) throw new Error(`${scenario} ${kind}: the device did not see trigger ${i + 1}`);
      row.ms.push(got.at - t0);
      if (kind === 'v1') {
        const a = await post(`${device.url}/ttype/edupush`, {
          nonce: got.id,
          serial: who.serial,
          signature: v1Sign(phoneKey!, `${got.id}|${who.serial}`),
        });
        if (a.status !== 200) throw new Error(`v1 answer: HTTP ${a.status} ${a.body}`);
        s.empty = true;
      } else {
        await answer(d, got.id, 'accept', undefined, {});
      }
    }
  } finally {
    ac.abort();
    await loop.catch(() => {});
  }
  log(`${scenario}, ${row.channel}: p50 ${f1(pct(row.ms, 0.5))} ms, p99 ${f1(pct(row.ms, 0.99))} ms (${n} triggers)`);
  return row;
}

async function oneNode(tmp: string, rows: LatencyRow[]): Promise<void> {
  const node = await startChild('sqlite', writeConfig(tmp, 'sqlite', `sqlite:${path.join(tmp, 'one.db')}`, 1000), 0, true);
  try {
    const scenario = 'one node, SQLite';
    const phone = crypto.createPrivateKey(node.ready.phonePrivatePem!);
    rows.push(await measure(scenario, 'longpoll', TRIGGERS, node, node, 50, null));
    rows.push(await measure(scenario, 'sse', TRIGGERS, node, node, 50, null));
    if (V1_TRIGGERS) rows.push(await measure(scenario, 'v1', V1_TRIGGERS, node, node, null, phone));
  } finally {
    await node.stop();
  }
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

async function twoNodes(tmp: string, rows: LatencyRow[]): Promise<void> {
  const name = `pushgate_devbench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`create database ${name}`);
  const config = writeConfig(tmp, 'pg', PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`), 1000);
  const started: Child[] = [];
  try {
    const a = await startChild('pg-a', config, 0, true); // migrates and enrolls first
    started.push(a);
    const b = await startChild('pg-b', config, 0, false);
    started.push(b);
    const scenario = 'two nodes, PostgreSQL (device on B, trigger on A)';
    rows.push(await measure(scenario, 'longpoll', TRIGGERS, a, b, 100, null));
    rows.push(await measure(scenario, 'sse', TRIGGERS, a, b, 100, null));
  } finally {
    await Promise.all(started.map((c) => c.stop()));
    await admin.raw(`drop database if exists ${name} with (force)`);
    await admin.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Capacity: COUNT devices holding a long-poll on one process

/** `npm start`'s node flags (package.json; BENCH_SERVER_NODE_FLAGS replaces them): the capacity server runs with them. */
const PRODUCTION_NODE_FLAGS = serverNodeFlags();

/**
 * Compiles the shipped sources and bench/device_server.ts to JavaScript (tsc, transpile only) under
 * node_modules/.cache (so that the compiled files resolve the project's packages), as `npm run build` compiles
 * what `npm start` runs; returns the compiled device_server.js.
 */
function compileServer(): string {
  const dir = path.join(ROOT, 'node_modules', '.cache', 'pushgate-bench-device');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const include = ['core', 'server', 'tokens', 'policies', 'cli'].map((d) => path.join(ROOT, d, '**', '*.ts'));
  const tsconfig = {
    extends: path.join(ROOT, 'tsconfig.build.json'),
    compilerOptions: { outDir: path.join(dir, 'out'), rootDir: ROOT, sourceMap: false, types: [], noCheck: true },
    include: [...include, path.join(BENCH_DIR, 'device_server.ts')],
  };
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  execSync(`"${process.execPath}" "${tsc}" -p "${path.join(dir, 'tsconfig.json')}"`, { cwd: ROOT, stdio: 'inherit' });
  return path.join(dir, 'out', 'bench', 'device_server.js');
}

interface Capacity {
  devices: number;
  held: number;
  enrollS: number;
  rssIdleMb: number;
  rssHeldMb: number;
  rssMaxMb: number;
  cpuMsPerS: number;
  /** RSS growth per held device from the first sample with a tenth of them held to the end of the window. */
  perDeviceKb: number;
  /** V8 heap in use and external (C++ objects bound to JS, Buffers) per held device: idle → all held, KB. */
  heapPerDeviceKb: number;
  externalPerDeviceKb: number;
  loadStatus: Record<string, number>;
  loadErrors: number;
}

async function capacity(tmp: string): Promise<Capacity> {
  const config = writeConfig(tmp, 'capacity', `sqlite:${path.join(tmp, 'capacity.db')}`, COUNT + 1000);
  // Enrolled by one child, served by a fresh one: the enrollment's garbage does not count against the RSS.
  const setup = await startChild('capacity-setup', config, COUNT, false);
  await setup.stop();
  const enrollS = setup.ready.enrollMs / 1000;
  log(`capacity: ${COUNT} devices enrolled in ${f1(enrollS)} s`);
  const node = await startChild('capacity', config, 0, false, CAPACITY_TSX ? null : compileServer());
  let loadProc: ChildProcess | null = null;
  try {
    await sleep(1000);
    const idle = await node.stats();
    loadProc = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'device_load.ts'), node.url, String(COUNT), String(RAMP)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let last: { opened: number; errors: number; byStatus: Record<string, number> } = { opened: 0, errors: 0, byStatus: {} };
    loadProc.stdout!.setEncoding('utf8');
    loadProc.stdout!.on('data', (c: string) => {
      const line = c.trim().split('\n').pop();
      if (line) last = JSON.parse(line) as typeof last;
    });
    const t0 = performance.now();
    let tenth: DeviceStats | null = null; // the first sample with a tenth held: the marginal cost per device from there
    await until(
      `${COUNT} held long-polls`,
      async () => {
        const st = await node.stats();
        if (!tenth && st.busWaiting >= COUNT / 10) tenth = st;
        return st.busWaiting >= COUNT;
      },
      300_000,
      250,
    );
    log(`capacity: ${COUNT} long-polls held after ${f1((performance.now() - t0) / 1000)} s`);
    const held = await node.stats();
    const cpu0 = processCpuMs(node.proc.pid) ?? NaN;
    const w0 = performance.now();
    let rssMax = held.rssBytes;
    let minHeld = held.busWaiting;
    while (performance.now() - w0 < IDLE_S * 1000) {
      await sleep(250);
      const st = await node.stats();
      rssMax = Math.max(rssMax, st.rssBytes);
      minHeld = Math.min(minHeld, st.busWaiting);
    }
    const cpuMsPerS = ((processCpuMs(node.proc.pid) ?? NaN) - cpu0) / ((performance.now() - w0) / 1000);
    const end = await node.stats();
    if (process.env.BENCH_DEVICE_HEAP_SNAPSHOT) {
      const written = new Promise<void>((resolve) => {
        const onMessage = (m: unknown) => {
          if ((m as { type?: string }).type !== 'snapshot') return;
          node.proc.off('message', onMessage);
          resolve();
        };
        node.proc.on('message', onMessage);
      });
      node.proc.send({ type: 'snapshot' });
      await written;
    }
    const first = tenth as DeviceStats | null;
    const perHeld = (a: number, b: number) => (end.busWaiting > 0 ? (b - a) / 1024 / end.busWaiting : NaN);
    log(
      `capacity: ${end.busWaiting} held; RSS ${f0(idle.rssBytes / 2 ** 20)} → ${f0(end.rssBytes / 2 ** 20)} MB, heap used ${f0(idle.heapUsedBytes / 2 ** 20)} → ${f0(end.heapUsedBytes / 2 ** 20)} MB, external ${f0(idle.externalBytes / 2 ** 20)} → ${f0(end.externalBytes / 2 ** 20)} MB (array buffers ${f0(idle.arrayBuffersBytes / 2 ** 20)} → ${f0(end.arrayBuffersBytes / 2 ** 20)} MB); CPU ${f1(cpuMsPerS)} ms/s`,
    );
    const perDeviceKb =
      first && end.busWaiting > first.busWaiting ? (end.rssBytes - first.rssBytes) / 1024 / (end.busWaiting - first.busWaiting) : NaN;
    return {
      devices: COUNT,
      held: minHeld,
      enrollS,
      rssIdleMb: idle.rssBytes / 2 ** 20,
      rssHeldMb: end.rssBytes / 2 ** 20,
      rssMaxMb: rssMax / 2 ** 20,
      cpuMsPerS,
      perDeviceKb,
      heapPerDeviceKb: perHeld(idle.heapUsedBytes, end.heapUsedBytes),
      externalPerDeviceKb: perHeld(idle.externalBytes, end.externalBytes),
      loadStatus: last.byStatus,
      loadErrors: last.errors,
    };
  } finally {
    if (loadProc && loadProc.exitCode === null) {
      const p = loadProc;
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGTERM');
      });
    }
    await node.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

function pct(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}
const f1 = (n: number) => (Number.isNaN(n) ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: 1, minimumFractionDigits: 1 }));
const f0 = (n: number) => (Number.isNaN(n) ? '—' : Math.round(n).toLocaleString('en-US'));

function report(rows: LatencyRow[], cap: Capacity | null, notes: string[], totalS: number): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const lat = rows.map((r) => {
    const p99 = pct(r.ms, 0.99);
    const verdict = r.target === null ? '—' : `< ${r.target} ms: ${p99 < r.target ? 'met' : '**missed**'}`;
    return `| ${r.scenario} | ${r.channel} | ${r.ms.length} | ${f1(pct(r.ms, 0.5))} | ${f1(p99)} | ${f1(Math.max(...r.ms))} | ${f1(pct(r.triggerMs, 0.5))} | ${verdict} |`;
  });
  const capTable = cap
    ? `| devices | held (min during window) | server RSS before, MB | RSS with all held, MB | RSS max in window, MB | RSS per device, KB (marginal, 10 % → all held) | heap / external per device, KB | server CPU, ms per s (${IDLE_S} s window) | load answers by status | load errors | target |
|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|
| ${cap.devices.toLocaleString('en-US')} | ${cap.held.toLocaleString('en-US')} | ${f0(cap.rssIdleMb)} | ${f0(cap.rssHeldMb)} | ${f0(cap.rssMaxMb)} | ${f1(cap.perDeviceKb)} | ${f1(cap.heapPerDeviceKb)} / ${f1(cap.externalPerDeviceKb)} | ${f1(cap.cpuMsPerS)} | ${Object.entries(
        cap.loadStatus,
      )
        .map(([k, v]) => `${k}: ${v.toLocaleString('en-US')}`)
        .join(
          ', ',
        )} | ${cap.loadErrors} | RSS < 300 MB${cap.devices >= 10_000 ? `: ${cap.rssMaxMb < 300 ? 'met' : '**missed**'}` : ' (at 10,000)'} |`
    : '(capacity not measured)';
  return `${BEGIN}
## Device protocol v2: delivery latency and connected devices (\`npm run bench:device\`)

Written by \`npm run bench:device -- --write\` (bench/device.ts) between the \`device\` markers; do not edit by hand — re-run it.

- **Date:** ${new Date().toISOString()}
- **Machine:** ${cpu}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}
- **Node:** ${process.version}
- **Command:** \`npm run bench:device${args.length ? ' -- ' + args.join(' ') : ''}\` (whole run ${Math.round(totalS)} s)
- **Latency:** trigger = \`POST /validate/check\` (user + PIN; PIN hashed with argon2id m=1024 KiB t=1 so that the
  hash does not dominate) → the device's process has parsed a list holding the new request. One clock: the bench
  process runs the device (the reference client's \`pollOnce\` / \`streamOnce\`) and sends the trigger. Triggers are
  sequential; after each the device accepts the request (signed answer) and the next trigger waits until the server
  counts the device's long-poll/stream as held again. The v1 app polls \`GET /ttype/edupush\` (signed) every
  ${V1_POLL_MS / 1000} s (eduMFA's apps poll "every few seconds"; \`BENCH_DEVICE_V1_POLL_MS\`), each v1 trigger at a random point of
  its cycle, so its latency is about half the interval on average. Two nodes: two server processes on one
  PostgreSQL database; the device is connected to node B, the trigger goes to node A (wake-up via LISTEN/NOTIFY).
- **Capacity:** ${cap ? cap.devices.toLocaleString('en-US') : COUNT.toLocaleString('en-US')} v2 devices (enrolled by a set-up server process${cap ? ` in ${f1(cap.enrollS)} s` : ''}; a fresh one serves them) each hold a correctly
  signed long-poll (\`GET /device/v2/challenges\` with \`If-None-Match\`), opened by a separate load process
  (bench/device_load.ts, one keep-alive connection per device, ${RAMP} being opened at a time), on one server process
  (SQLite, \`device.max_connections\` raised to devices + 1000). RSS = the server's resident set ("before" = the started
  server with no device connected). ${CAPACITY_TSX ? 'The server ran with tsx on the TypeScript sources (`--capacity-tsx`): its loader (a second V8 isolate) is part of the RSS, which production does not carry.' : 'The server ran as production runs it: `npm start` = plain node with `' + PRODUCTION_NODE_FLAGS.join(' ') + '` on JavaScript compiled by tsc from the same sources (the bench compiles them first). That is what ships, and the target is about the server an operator runs; tsx, which the latency scenarios use, adds a loader thread (a second V8 isolate) that no deployment has (`--capacity-tsx` measures with it).'} Heap / external per device = V8 heap in use and memory outside it bound to JS objects (sockets, parsers, keys, Buffers), before → all held, divided by the held count. CPU = the server's
  user+system time over ${IDLE_S} s with no logins, i.e. the cost of the devices' 25 s long-poll cycle (every device
  reconnects with a fresh signature once per cycle).

| scenario | channel | triggers | p50 ms | p99 ms | max ms | trigger response p50 ms | target (p99) |
|---|---|--:|--:|--:|--:|--:|---|
${lat.join('\n')}

${capTable}
${notes.length ? `\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}
Targets (issue 14): p99 under 50 ms on one node and under 100 ms across nodes; 10,000 connected devices under 300 MB RSS.
${END}`;
}

function writeSection(section: string): void {
  const text = fs.existsSync(README) ? fs.readFileSync(README, 'utf8') : '# Benchmarks\n';
  const i = text.indexOf(BEGIN);
  const j = text.indexOf(END);
  const next = i >= 0 && j > i ? text.slice(0, i) + section + text.slice(j + END.length) : `${text.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(README, next);
}

// ---------------------------------------------------------------------------------------------------------------

const fdLimit = Number(execSync('ulimit -n', { shell: '/bin/sh' }).toString().trim());
if (!args.includes('--no-capacity') && COUNT > 0 && Number.isFinite(fdLimit) && fdLimit < COUNT + 200) {
  log(
    `ulimit -n is ${fdLimit}: ${COUNT} devices need at least ${COUNT + 200} file descriptors per process (run \`ulimit -n ${COUNT + 1000}\` first)`,
  );
  process.exit(2);
}
const started = performance.now();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-device-bench-'));
const rows: LatencyRow[] = [];
const notes: string[] = [];
let cap: Capacity | null = null;
try {
  if (args.includes('--no-latency')) notes.push('The latency scenarios were skipped (--no-latency).');
  else await oneNode(tmp, rows);
  if (args.includes('--no-pg') || args.includes('--no-latency')) {
    if (args.includes('--no-pg')) notes.push('The two-node PostgreSQL scenario was skipped (--no-pg).');
  } else if (!(await reachable(PG_ADMIN_URL))) {
    const msg = `The two-node PostgreSQL scenario was skipped: ${new URL(PG_ADMIN_URL).host} is unreachable.`;
    log(msg);
    notes.push(msg);
  } else await twoNodes(tmp, rows);
  if (!args.includes('--no-capacity') && COUNT > 0) cap = await capacity(tmp);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
const section = report(rows, cap, notes, (performance.now() - started) / 1000);
process.stdout.write(section + '\n');
if (write) {
  writeSection(section);
  log('bench/README.md updated');
}
