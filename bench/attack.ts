/**
 * `npm run bench:attack`: the login path under attack (issue 9), measured in one run.
 *
 *   1. pushgate in a child process (bench/attack_server.ts: SQLite file DB in a temp dir, the DEFAULT argon2id
 *      parameters, default limits, `server.trusted_proxies: [127.0.0.1]` so that the `client` parameter names the end
 *      user as the IdP plugins send it): a victim spass token, BENCH_ATTACK_USERS legitimate spass tokens, and an
 *      enrolled edupush token (poll only) whose phone key this process holds;
 *   2. three phases of BENCH_ATTACK_SECONDS each: no flood; a wrong-PIN flood (BENCH_ATTACK_CONNECTIONS connections
 *      sending `user=victim` with a wrong PIN from one end-user address); a push flood (the same connections sending
 *      `user=pushuser` with the RIGHT PIN, each answer a new push unless a limit refuses it). The flood runs in its own
 *      process (bench/attack_flood.ts, autocannon);
 *   3. during every phase, in this process: a legitimate client logging in as leg0, leg1, … one after another (each
 *      from its own end-user address), a probe of GET /healthz every 50 ms, and the phone polling GET /ttype/edupush
 *      (signed as the app does) every 250 ms;
 *   4. writes its section of bench/README.md (between `<!-- attack:begin -->` and `<!-- attack:end -->`) and prints it.
 *
 * Env: BENCH_ATTACK_SECONDS (per phase, default 30), BENCH_ATTACK_CONNECTIONS (default 64), BENCH_ATTACK_USERS (default
 * 50), BENCH_ATTACK_PHASES (the phases to run, comma-separated among `none`, `wrong-pin`, `push`; default all three —
 * one phase for a quick A/B; README not written unless all three ran). Flags: --quick (5 s phases; README not written
 * unless --write), --no-write.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { base32Encode } from '../tokens/base32.ts';
import { PIN } from './common.ts';
import type { AttackStats, FloodResult, FloodTask } from './attack_common.ts';
import {
  logLinesByEvent,
  type RawAnswer,
  requester,
  serverNodeFlags,
  startAttackServer,
  startFlood,
  type ServerChild,
  writeAttackConfig,
} from './attack_children.ts';
import { foreignCpu, processCpuMs } from './cpu.ts';
import { BENCH_DIR, envInt, quickWriteFlags } from './env.ts';

const { args, quick, write } = quickWriteFlags();
const SECONDS = envInt('BENCH_ATTACK_SECONDS', quick ? 5 : 30, 1);
const CONNECTIONS = envInt('BENCH_ATTACK_CONNECTIONS', 64, 1);
const USERS = envInt('BENCH_ATTACK_USERS', 50, 1);
const HEALTH_EVERY_MS = 50;
const POLL_EVERY_MS = 250;
const PHASE_NAMES = ['none', 'wrong-pin', 'push'] as const;
const PHASES = (process.env.BENCH_ATTACK_PHASES ?? PHASE_NAMES.join(','))
  .split(',')
  .map((p) => p.trim())
  .filter(Boolean);
for (const p of PHASES)
  if (!(PHASE_NAMES as readonly string[]).includes(p))
    throw new Error(`BENCH_ATTACK_PHASES: unknown phase ${p} (${PHASE_NAMES.join(', ')})`);

const log = (msg: string) => process.stderr.write(`[bench:attack] ${msg}\n`);

// ---------------------------------------------------------------------------------------------------------------
// HTTP with one keep-alive connection per probe

type Answer = RawAnswer;

// ---------------------------------------------------------------------------------------------------------------
// Measurement

interface Series {
  ms: number[];
  ok: number;
  total: number;
  byStatus: Record<string, number>;
  maxBytes: number;
  maxItems: number;
}
const series = (): Series => ({ ms: [], ok: 0, total: 0, byStatus: {}, maxBytes: 0, maxItems: 0 });
function record(s: Series, a: Answer, ok: boolean): void {
  s.ms.push(a.ms);
  s.total++;
  if (ok) s.ok++;
  s.byStatus[a.status] = (s.byStatus[a.status] ?? 0) + 1;
  s.maxBytes = Math.max(s.maxBytes, Buffer.byteLength(a.body));
}
function pct(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

interface PhaseResult {
  name: string;
  legit: Series;
  health: Series;
  poll: Series;
  flood: FloodResult | null;
  pushesCreated: number;
  rssMb: number;
  foreignCores: number | null;
  seconds: number;
}

const authentication = (body: string): string | undefined => {
  try {
    return (JSON.parse(body) as { result?: { authentication?: string } }).result?.authentication;
  } catch {
    return undefined;
  }
};

async function runPhase(srv: ServerChild, name: string, flood: FloodTask | null): Promise<PhaseResult> {
  log(`phase: ${name} (${SECONDS} s)`);
  const before = await srv.stats();
  const serverCpu0 = processCpuMs(srv.proc.pid) ?? 0;
  const window = foreignCpu();
  const f = flood ? startFlood(flood) : null;
  if (f) await sleep(500); // let the flood reach its connections before measuring
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  const legit = series();
  const health = series();
  const poll = series();

  const legitLoop = async () => {
    const call = requester(srv.url);
    for (let i = 0; performance.now() < end; i++) {
      const n = i % USERS;
      const a = await call(
        'POST',
        '/validate/check',
        new URLSearchParams({ user: `leg${n}`, pass: PIN, client: `10.1.${n >> 8}.${n & 255}` }).toString(),
      );
      record(legit, a, a.status === 200 && authentication(a.body) === 'ACCEPT');
    }
  };
  const healthLoop = async () => {
    const call = requester(srv.url);
    while (performance.now() < end) {
      const next = performance.now() + HEALTH_EVERY_MS;
      const a = await call('GET', '/healthz');
      record(health, a, a.status === 200);
      await sleep(Math.max(0, next - performance.now()));
    }
  };
  const pollLoop = async () => {
    const call = requester(srv.url);
    while (performance.now() < end) {
      const next = performance.now() + POLL_EVERY_MS;
      const timestamp = new Date().toISOString();
      const signature = base32Encode(crypto.sign('sha256', Buffer.from(`${srv.pushSerial}|${timestamp}`, 'utf8'), srv.phoneKey));
      const a = await call('GET', `/ttype/edupush?${new URLSearchParams({ serial: srv.pushSerial, timestamp, signature })}`);
      record(poll, a, a.status === 200);
      try {
        poll.maxItems = Math.max(poll.maxItems, ((JSON.parse(a.body) as { result?: { value?: unknown[] } }).result?.value ?? []).length);
      } catch {
        /* counted by status */
      }
      await sleep(Math.max(0, next - performance.now()));
    }
  };
  await Promise.all([legitLoop(), healthLoop(), pollLoop()]);
  const seconds = (performance.now() - t0) / 1000;
  const spread = (s: Series) => [0.5, 0.9, 0.99].map((p) => pct(s.ms, p).toFixed(1)).join('/');
  log(`${name}: p50/p90/p99 ms — /healthz ${spread(health)} (n=${health.total}), poll ${spread(poll)} (n=${poll.total})`);
  const floodResult = f ? await f.result : null;
  const after = await srv.stats();
  const serverCpu = (processCpuMs(srv.proc.pid) ?? 0) - serverCpu0;
  const created = (s: AttackStats) =>
    Object.entries(s.counters)
      .filter(([k]) => k.startsWith('pushgate_challenges_created_total'))
      .reduce((n, [, v]) => n + v, 0);
  return {
    name,
    legit,
    health,
    poll,
    flood: floodResult,
    seconds,
    pushesCreated: created(after) - created(before),
    rssMb: after.rssBytes / 2 ** 20,
    foreignCores: window.end(serverCpu + (floodResult?.cpuMs ?? 0)),
  };
}

/** Waits until the server has no queued PIN work left (the previous phase's flood has drained). */
async function waitIdle(srv: ServerChild): Promise<void> {
  const call = requester(srv.url);
  for (let i = 0; i < 600; i++) {
    const a = await call('GET', '/healthz');
    try {
      const v = (JSON.parse(a.body) as { result?: { value?: { pin_queue?: number } } }).result?.value;
      if (a.status === 200 && !v?.pin_queue) return;
    } catch {
      /* retry */
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const f1 = (n: number) => (Number.isNaN(n) ? '—' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));
const statuses = (by: Record<string, number>) =>
  Object.entries(by)
    .sort()
    .map(([k, v]) => `${k}: ${v.toLocaleString('en-US')}`)
    .join(', ');

function report(results: PhaseResult[], total: number): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const rows = results.map((r) =>
    [
      r.name,
      `${r.legit.ok}/${r.legit.total}`,
      f1(pct(r.legit.ms, 0.5)),
      f1(pct(r.legit.ms, 0.99)),
      f1(Math.max(...r.legit.ms)),
      f1(pct(r.health.ms, 0.99)),
      f1(Math.max(...r.health.ms)),
      f1(pct(r.poll.ms, 0.99)),
      f1(Math.max(...r.poll.ms)),
      `${r.poll.maxItems} / ${(r.poll.maxBytes / 1024).toFixed(1)} KB`,
      r.flood
        ? `${r.flood.requests.toLocaleString('en-US')} (${statuses(r.flood.byStatus)}${r.flood.errors ? `, errors: ${r.flood.errors}` : ''})`
        : '—',
      String(r.pushesCreated),
      r.rssMb.toFixed(0),
      r.foreignCores === null ? '—' : r.foreignCores.toFixed(2),
    ].join(' | '),
  );
  return `<!-- attack:begin -->
## The login path under attack (\`npm run bench:attack\`)

Written by \`npm run bench:attack\` (bench/attack.ts) between the \`attack\` markers; do not edit by hand — re-run it.

- **Date:** ${new Date().toISOString()}
- **Machine:** ${cpu}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}
- **Node:** ${process.version}
- **Command:** \`npm run bench:attack${args.length ? ' -- ' + args.join(' ') : ''}\` (whole run ${Math.round(total)} s)
- **Set-up:** pushgate in its own child process (\`node ${serverNodeFlags().join(' ')} --import tsx\`: the V8 flags of \`npm start\`;
  log level info, JSON lines written synchronously to a file as production writes stdout; SQLite file database, **default argon2id**
  m=19456 KiB t=2 p=1, default limits, \`server.trusted_proxies: [127.0.0.1]\`); ${SECONDS} s per phase. The flood
  (${CONNECTIONS} connections, autocannon, its own process) sends \`POST /validate/check\` from one end-user address
  (\`client=198.51.100.66\`): *wrong-PIN flood* \`user=victim&pass=<wrong PIN>\`; *push flood* \`user=pushuser&pass=<right PIN>\`
  (each answer a new push unless a limit refuses it). Meanwhile this process logs in as leg0…leg${USERS - 1} one after
  another (\`user=legN&pass=PIN\`, each from its own \`client\` address), probes \`GET /healthz\` every ${HEALTH_EVERY_MS} ms
  and polls as the phone (\`GET /ttype/edupush\`, signed) every ${POLL_EVERY_MS} ms. The three processes share the
  ${os.availableParallelism()} cores.
- **Columns:** legitimate logins = ACCEPT answers / attempts with client-side latency; flood = the attacker's requests
  by HTTP status; pushes = challenges the server created during the phase (its own counter); RSS at the phase's end;
  other processes' CPU = machine busy time minus the server's, the flood's and this runner's (≈ 0 on a quiet machine).

| phase | legit ACCEPT | legit p50 ms | legit p99 ms | legit max ms | /healthz p99 ms | /healthz max ms | poll p99 ms | poll max ms | poll items / size (max) | flood requests (by status) | pushes | server RSS MB | other CPU, cores |
|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|
${rows.map((r) => `| ${r} |`).join('\n')}

Targets (issue 9): legitimate login p99 < 1 s during the wrong-PIN flood; /healthz and poll p99 < 50 ms during both
floods; the push flood creates no more pushes than the limits allow; no poll over 100 ms.
<!-- attack:end -->`;
}

function writeSection(section: string): void {
  const file = path.join(BENCH_DIR, 'README.md');
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const re = /<!-- attack:begin -->[\s\S]*?<!-- attack:end -->/;
  fs.writeFileSync(file, re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`);
}

// ---------------------------------------------------------------------------------------------------------------

const started = performance.now();
const { tmp, configFile } = writeAttackConfig('pushgate-attack-');
const srv = await startAttackServer(configFile, USERS);
log(`server ready at ${srv.url}`);
const results: PhaseResult[] = [];
try {
  const flood = (pass: string, user: string): FloodTask => ({
    url: srv.url,
    connections: CONNECTIONS,
    seconds: SECONDS + 1,
    body: new URLSearchParams({ user, pass, client: '198.51.100.66' }).toString(),
  });
  if (PHASES.includes('none')) results.push(await runPhase(srv, 'no flood', null));
  if (PHASES.includes('wrong-pin')) {
    await waitIdle(srv);
    results.push(await runPhase(srv, 'wrong-PIN flood', flood('wrong-pin-0000', 'victim')));
  }
  if (PHASES.includes('push')) {
    await waitIdle(srv);
    results.push(await runPhase(srv, 'push flood (right PIN)', flood(PIN, 'pushuser')));
  }
} finally {
  await srv.stop();
  log(`server log lines by event: ${JSON.stringify(logLinesByEvent(configFile))}`);
  fs.rmSync(tmp, { recursive: true, force: true });
}
const section = report(results, (performance.now() - started) / 1000);
process.stdout.write(section + '\n');
if (write && results.length === PHASE_NAMES.length) {
  writeSection(section);
  log('bench/README.md updated');
}
