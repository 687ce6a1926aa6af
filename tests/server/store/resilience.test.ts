/**
 * Resilience (issue 5, item 4): a pushgate server on a PRIVATE PostgreSQL instance (initdb into a temp dir, a random
 * free port on 127.0.0.1, its socket in the temp dir) keeps answering a bounded load loop while the database is
 * stopped (`pg_ctl stop -m immediate`) and started again:
 *   - while the database is down, every request fails at once with the connection error (never by waiting out the
 *     pool's acquire timeout) with HTTP 500 and code -600 "A database error occurred.", /healthz reports -600, and
 *     nothing crashes or hangs;
 *   - once the database is back, service resumes by itself, and the PostgreSQL LISTEN connection of the answer bus
 *     is re-established: a notification published by a second node (a second Deps on the same database) after the
 *     restart wakes a waiter on the first.
 *
 * Real time is unavoidable here (a real database process stops and starts): the test waits for observable conditions
 * with generous deadlines and asserts no durations. It brings its own PostgreSQL, so PUSHGATE_TEST_DB does not matter
 * to it: it runs once per CI run, in the PostgreSQL suite (skipped, with the reason in the title, in the others, and
 * when the PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin) or, as root, the `postgres` user are missing).
 */
import test from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '../../../server/config.ts';
import { startServer, type RunningServer } from '../../../server/main.ts';
import { buildDeps, type Deps } from '../../../server/deps.ts';
import { enrollToken } from '../../../server/auth/tokens_admin.ts';
import { ACQUIRE_TIMEOUT_MS, CONNECT_TIMEOUT_MS } from '../../../server/store/knex.ts';
import { createStore } from '../../../server/store/store.ts';
import { createSecretBox } from '../../../server/store/secrets.ts';
import { DatabaseError } from '../../../core/errors.ts';
import { freePort } from '../../helpers/wait.ts';
import { TEST_DB } from '../../helpers/databases.ts';
import { TEST_PUSH } from '../../helpers/test_app.ts';

const run = promisify(execFile);

/** The newest /usr/lib/postgresql/<v>/bin with initdb and pg_ctl, or null. */
function pgBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = fs.readdirSync(root);
  } catch {
    return null;
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = path.join(root, v, 'bin');
    if (fs.existsSync(path.join(bin, 'initdb')) && fs.existsSync(path.join(bin, 'pg_ctl')) && fs.existsSync(path.join(bin, 'postgres')))
      return bin;
  }
  return null;
}

const BIN = pgBinDir();
const AS_ROOT = process.getuid?.() === 0;
const PG_USER = AS_ROOT ? spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }) : null;
const skipReason =
  TEST_DB !== 'postgres'
    ? 'runs in the PostgreSQL suite'
    : !BIN
      ? 'no PostgreSQL server binaries in /usr/lib/postgresql/*/bin'
      : AS_ROOT && PG_USER?.status !== 0
        ? 'running as root but there is no `postgres` user to run initdb as'
        : null;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs a PostgreSQL binary (as `postgres` via su when we are root). */
async function pgCmd(bin: string, args: string[]): Promise<string> {
  const exe = path.join(BIN!, bin);
  const { stdout, stderr } = AS_ROOT
    ? await run('su', ['postgres', '-c', [exe, ...args].map(quote).join(' ')], { timeout: 60_000 })
    : await run(exe, args, { timeout: 60_000 });
  return stdout + stderr;
}

interface PrivatePg {
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

async function privatePostgres(): Promise<PrivatePg> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-pg-'));
  if (AS_ROOT) {
    const uid = Number(PG_USER!.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    fs.chownSync(dir, uid, gid);
  }
  const data = path.join(dir, 'data');
  const port = await freePort();
  await pgCmd('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50`;
  const pg: PrivatePg = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start: async () => {
      await pgCmd('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-o', opts, '-w', '-t', '30', 'start']);
    },
    stop: async () => {
      await pgCmd('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
    },
    destroy: async () => {
      await pg.stop().catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}

interface Sample {
  started: number;
  ms: number;
  status: number;
  code: number | null;
  message: string | null;
  accept: boolean;
  hung: boolean;
}

/** One login; a request that has no answer after `boundMs` (far beyond every timeout of the server) counts as hung. */
async function checkOnce(url: string, boundMs = 30_000): Promise<Sample> {
  const started = performance.now();
  try {
    const res = await fetch(`${url}/validate/check`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'user=alice&pass=1234',
      signal: AbortSignal.timeout(boundMs),
    });
    const body = (await res.json()) as { result?: { authentication?: string; error?: { code: number; message: string } } };
    return {
      started,
      ms: performance.now() - started,
      status: res.status,
      code: body.result?.error?.code ?? null,
      message: body.result?.error?.message ?? null,
      accept: body.result?.authentication === 'ACCEPT',
      hung: false,
    };
  } catch {
    return { started, ms: performance.now() - started, status: 0, code: null, message: null, accept: false, hung: true };
  }
}

/** Polls `fn` (`pauseMs` apart) until it returns true; fails after a generous `deadlineMs`. Returns the tries. */
async function eventually(what: string, fn: () => Promise<boolean>, deadlineMs = 60_000, pauseMs = 50): Promise<number> {
  const end = performance.now() + deadlineMs;
  for (let i = 1; ; i++) {
    if (await fn()) return i;
    if (performance.now() > end) throw new Error(`${what}: not within ${deadlineMs / 1000} s`);
    await sleep(pauseMs);
  }
}

const title = 'database stopped mid-load → fast 500/-600, no crash, /healthz -600; restarted → service and LISTEN resume by themselves';

(skipReason ? test.skip : test)(skipReason ? `${title} [skipped: ${skipReason}]` : title, async (t) => {
  t.timeout(240_000);
  const pg = await privatePostgres();
  t.teardown(() => pg.destroy());
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-resilience-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const config = parseConfig(
    {
      server: { host: '127.0.0.1', port: 0 },
      database: { url: pg.url, pool_max: 4 },
      secrets: { key_file: path.join(tmp, 'key') },
      pin: { memory_kib: 1024, time_cost: 1, parallelism: 1 },
      cleanup: { interval_seconds: 0 },
      log: { level: 'warn' },
    },
    tmp,
  );
  const logs: string[] = [];
  const server: RunningServer = await startServer(null, { config, push: TEST_PUSH, log: (line) => logs.push(line) });
  t.teardown(() => server.stop('test'));
  await enrollToken(server.deps, { type: 'spass', serial: 'SPASS001', user: 'alice', pin: '1234', params: {} });
  // A second node on the same database: its answer-bus notifications must reach the first one via LISTEN/NOTIFY.
  const nodeB: Deps = await buildDeps(config, { migrate: false });
  t.teardown(() => nodeB.close());

  /** Node B notifies, node A's waiter must wake (each try gives up after 2 s of the server's real clock). */
  const busWorks = async (tag: string) => {
    const tid = `resilience-${tag}-${Math.random().toString(36).slice(2)}`;
    const woken = server.deps.answers.waitFor(tid, { timeoutMs: 2000 });
    nodeB.answers.notify(tid);
    return (await woken) === 'notified';
  };
  t.true(await busWorks('before'), 'the bus carries a notification from B to A before the outage');

  // A bounded load loop: 3 workers, each at most 3000 requests, until told to stop.
  const samples: Sample[] = [];
  let loadOn = true;
  const workers = Array.from({ length: 3 }, async () => {
    for (let i = 0; i < 3000 && loadOn; i++) samples.push(await checkOnce(server.url));
  });
  const settledCount = (from: number, pred: (s: Sample) => boolean) => samples.filter((s) => s.started >= from && pred(s)).length;

  // Healthy: a few successes first.
  await eventually('20 logins while the database is up', async () => settledCount(0, (s) => s.accept) >= 20);
  t.true(
    samples.every((s) => s.accept),
    'all requests succeed while the database is up',
  );

  // Stop the database under load.
  await pg.stop();
  const downAt = performance.now();
  await eventually('12 answers while the database is down', async () => settledCount(downAt, () => true) >= 12);
  const down = samples.filter((s) => s.started >= downAt);
  t.true(down.length >= 12);
  t.false(
    down.some((s) => s.hung),
    'no request hung',
  );
  t.true(
    down.every((s) => s.status === 500 && s.code === -600 && s.message === 'A database error occurred.'),
    `every request while the database is down is 500/-600: ${JSON.stringify(down.filter((s) => s.code !== -600).slice(0, 3))}`,
  );
  const slowest = Math.max(...down.map((s) => s.ms));
  // Failing fast is a matter of cause, not of speed: the pool hands the connection error to every waiting request
  // (propagateCreateError) instead of letting each wait out the acquire timeout (ACQUIRE_TIMEOUT_MS).
  const acquireTimeouts = () => logs.filter((l) => l.includes('"code":-600') && /Timeout acquiring a connection/i.test(l));
  t.deepEqual(acquireTimeouts(), [], 'no request waited out the acquire timeout');
  const health = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(10_000) });
  t.is(health.status, 500);
  t.like(await health.json(), { result: { status: false, error: { code: -600, message: 'A database error occurred.' } } });
  t.true(server.server.listening, 'the server still listens');
  t.true(
    logs.some((l) => l.includes('"code":-600') && /ECONNREFUSED|terminat|shutting down|starting up|Connection/i.test(l)),
    'the failures are logged with the driver detail',
  );

  // Keep it down until the answer bus has lost its LISTEN connection AND failed to re-connect at least once, so that
  // recovery below needs the retry loop, not just a lucky first attempt.
  const busErrors = () => logs.filter((l) => l.includes('answer bus transport error')).length;
  await eventually('two answer-bus errors (lost, then a failed re-connect)', async () => busErrors() >= 2);
  t.true(
    samples.filter((s) => s.started >= downAt).every((s) => s.code === -600 && !s.hung),
    'still failing, none hung',
  );
  t.deepEqual(acquireTimeouts(), [], 'still failing fast');

  // Start it again: service resumes on its own.
  await pg.start();
  const upAt = performance.now();
  await eventually('10 logins after the restart', async () => settledCount(upAt, (s) => s.accept) >= 10);
  const healthy = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(10_000) });
  t.is(healthy.status, 200);
  t.like(await healthy.json(), { result: { status: true, value: { status: 'ok', database: 'postgres' } } });
  // The LISTEN connection re-connects after its back-off: a notification from node B wakes node A again.
  const tries = await eventually('the answer bus after the restart', () => busWorks('after'), 60_000, 0);
  t.log(
    `load: ${samples.length} requests; down: ${down.length} failed fast (slowest ${slowest.toFixed(0)} ms); bus back after ${tries} tries`,
  );

  loadOn = false;
  await Promise.all(workers);
  const lastFew = samples.slice(-5);
  t.true(
    lastFew.every((s) => s.accept),
    'the load loop ends healthy',
  );
});

test('a database host that accepts TCP but never answers: every query fails (connect timeout), as -600, none hangs (PostgreSQL and MariaDB drivers)', async (t) => {
  // A black hole: connections are accepted and then ignored (a hung server, or a firewall that swallows packets).
  const sockets = new Set<net.Socket>();
  const hole = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    hole.close();
  });
  const port = (hole.address() as net.AddressInfo).port;
  const box = createSecretBox(Buffer.alloc(32, 7));
  // Without a connect timeout the drivers would wait for the black hole forever. The timeouts are a few seconds; the
  // test waits for every query to fail with a generous deadline (a query still open then is "hung") and asserts no
  // duration.
  t.true(CONNECT_TIMEOUT_MS <= ACQUIRE_TIMEOUT_MS && ACQUIRE_TIMEOUT_MS <= 10_000, 'timeouts are a few seconds');
  const HUNG = Symbol('hung');
  const deadline = (ms: number) =>
    new Promise<typeof HUNG>((resolve) => {
      const h = setTimeout(() => resolve(HUNG), ms);
      h.unref();
    });
  const probe = async (url: string) => {
    const store = createStore(url, box, { poolMax: 4, log: () => {} });
    try {
      // More requests than pool slots: none may wait behind the hung connects for longer than the bound.
      return await Promise.all(
        Array.from({ length: 8 }, async () => {
          const t0 = performance.now();
          const err = await Promise.race([
            store.tokens.bySerial('X').then(
              () => null,
              (e: unknown) => e,
            ),
            deadline(60_000),
          ]);
          return { err, ms: performance.now() - t0 };
        }),
      );
    } finally {
      await store.close().catch(() => {});
    }
  };
  const [pgResults, myResults] = await Promise.all([
    probe(`postgres://postgres@127.0.0.1:${port}/x`),
    probe(`mysql://root@127.0.0.1:${port}/x`),
  ]);
  for (const [name, results] of [
    ['postgres', pgResults],
    ['mysql', myResults],
  ] as const) {
    for (const r of results) {
      t.not(r.err, HUNG, `${name}: a query still had no answer after 60 s`);
      t.true(r.err instanceof DatabaseError, `${name}: ${String(r.err)}`);
      t.like(r.err, { code: -600, status: 500, message: 'A database error occurred.' });
    }
    t.log(
      `${name}: failed after ${Math.max(...results.map((r) => r.ms)).toFixed(0)} ms at most (connect timeout ${CONNECT_TIMEOUT_MS} ms)`,
    );
  }
});
