/**
 * A whole pushgate per test: fresh database (in-memory SQLite, or on the database named by PUSHGATE_TEST_DB a new
 * database copied from the migrated template, tests/helpers/databases.ts), fake clock, cheap PIN hashing, the real Koa app on an ephemeral loopback port.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { parseConfig, type Config } from '../../server/config.ts';
import { buildDeps, type Deps } from '../../server/deps.ts';
import { createApp } from '../../server/app.ts';
import { Events } from '../../core/events.ts';
import { RequestScope } from '../../core/request_scope.ts';
import { attachLog, createLogger, lineDestination } from '../../server/log.ts';
import { FakeClock } from './fake_clock.ts';
import { migratedDatabaseUrl } from './databases.ts';
import { leaseWorld, placesFor, WORLD_POOL_MAX } from './db_budget.ts';
import type { PushServicesOptions } from '../../server/auth/push_services.ts';

export interface TestWorld {
  deps: Deps;
  clock: FakeClock;
  events: Events;
  /** Every event emitted, in order. */
  seen: Array<{ name: string; payload: unknown }>;
  /**
   * Every log line pino wrote, as written (JSON), in order — at `log.level` of the world's config, which is `debug`
   * unless a test sets it: every event of every test goes through the log writer.
   */
  logs: string[];
  /** `logs`, parsed. */
  logLines(): Array<Record<string, unknown>>;
  url: string;
  /** The world's HTTP server (null with noHttp): tests observe server-side request/response events on it. */
  httpServer: Server | null;
  /**
   * Every call of a store repository method (deps.store.tokens/challenges/admins/audit) since the world was built, in
   * call order, with whether it has settled: lets a test wait until the server has no database call in flight
   * (kit.ts `quiet`) instead of for a number of event-loop turns.
   */
  storeCalls: StoreCall[];
  /** An admin JWT (admin `admin`). */
  adminToken(): Promise<string>;
  call(method: string, path: string, params?: Record<string, unknown>, opts?: CallOptions): Promise<Reply>;
  /** Closes the server, the Deps and the database (idempotent). */
  close(): Promise<void>;
  tmp: string;
}

export interface StoreCall {
  repo: string;
  method: string;
  args: unknown[];
  settled: boolean;
}

/** Wraps each method of the store's repositories so that every call is recorded in `log` (see TestWorld.storeCalls). */
function recordStoreCalls(store: Deps['store'], log: StoreCall[]): void {
  for (const repoName of ['tokens', 'challenges', 'admins', 'audit'] as const) {
    const repo = store[repoName] as unknown as Record<string, unknown>;
    for (const method of Object.keys(repo)) {
      const orig = repo[method];
      if (typeof orig !== 'function') continue;
      repo[method] = function (this: unknown, ...args: unknown[]) {
        const call: StoreCall = { repo: repoName, method, args, settled: false };
        log.push(call);
        let result: unknown;
        try {
          result = (orig as (...a: unknown[]) => unknown).apply(repo, args);
        } catch (err) {
          call.settled = true;
          throw err;
        }
        if (result && typeof (result as Promise<unknown>).then === 'function') {
          return (result as Promise<unknown>).finally(() => {
            call.settled = true;
          });
        }
        call.settled = true;
        return result;
      };
    }
  }
}

export interface CallOptions {
  /** How to send params on POST: form (default), json, multipart, or query. */
  as?: 'form' | 'json' | 'multipart' | 'query';
  headers?: Record<string, string>;
  rawBody?: string;
}
export interface Reply {
  status: number;
  body: any;
  headers: Headers;
  text: string;
}

export interface WorldOptions {
  /** Config document merged over the test defaults. */
  config?: Record<string, unknown>;
  /** Extra files written into the world's temp dir before the config is parsed (name → content). */
  files?: Record<string, string>;
  /** Skip the HTTP server. */
  noHttp?: boolean;
  databaseUrl?: string;
  /** Secrets key (default: random per world). Worlds that share one database as two nodes need the same key. */
  key?: Buffer;
  /** Push seams (default: 2048-bit server keys made on demand instead of a pool of 4096-bit ones, to keep tests fast). */
  push?: PushServicesOptions;
  /**
   * Whose world this is, for the connection budget (tests/helpers/db_budget.ts): every world a test holds at once must
   * name the same owner — kit's `world(t)` passes the test's `t`. Default: the world itself (one world per test).
   */
  owner?: object;
}

/**
 * The push seam of every test server (worlds, and `startServer` in tests: pass it as `push`): RSA-2048 server keys
 * made when an enrollment needs one, none ahead of time. Production keeps two RSA-4096 keys ready from the start
 * (tokens/push/signatures.ts createKeyPool), ~1.5 s of CPU each on this machine kind — a test server that enrolls no
 * phone would make them for nothing.
 */
export const TEST_PUSH: PushServicesOptions = { keys: { bits: 2048, size: 0 } };

function limitsPrefix(url: string): string {
  const seed = url === 'sqlite::memory:' ? crypto.randomBytes(8).toString('hex') : url;
  return `pgtest_${crypto.createHash('sha256').update(seed).digest('hex').slice(0, 16)}`;
}

export async function createWorld(opts: WorldOptions = {}): Promise<TestWorld> {
  const poolMax = Number((opts.config?.database as { pool_max?: unknown } | undefined)?.pool_max ?? WORLD_POOL_MAX);
  // A world on an explicit SQLite database (whatever PUSHGATE_TEST_DB says) opens no database server connection.
  const release = opts.databaseUrl?.startsWith('sqlite:') ? () => {} : await leaseWorld(opts.owner ?? {}, placesFor(poolMax));
  try {
    return await buildWorld(opts, release);
  } catch (err) {
    release();
    throw err;
  }
}

async function buildWorld(opts: WorldOptions, release: () => void): Promise<TestWorld> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-test-'));
  for (const [name, content] of Object.entries(opts.files ?? {})) fs.writeFileSync(path.join(tmp, name), content);
  const db = opts.databaseUrl ? { url: opts.databaseUrl, drop: async () => {} } : await migratedDatabaseUrl();
  const { database, ...rest } = (opts.config ?? {}) as { database?: Record<string, unknown> };
  const doc = {
    // A small pool (the connection budget, tests/helpers/db_budget.ts); a test that needs more says so in config.database.
    database: { url: db.url, pool_max: WORLD_POOL_MAX, ...(database ?? {}) },
    secrets: { key_file: path.join(tmp, 'key') },
    // Cheap hashes; a PIN queue roomy enough for the bursts of one user that race tests send (the queue's bounds
    // are tested where a test sets them: tests/server/pin_queue.test.ts, tests/server/auth/limiter.test.ts).
    pin: { memory_kib: 1024, time_cost: 1, parallelism: 1, max_queue: 1000, max_queue_per_key: 1000 },
    server: { public_url: 'https://mfa.example.org' },
    log: { level: 'debug' },
    ...rest,
    // Back-off counters in a shared store (Redis) are this world's own; worlds on one database (two nodes) share them.
    limits: { key_prefix: limitsPrefix(db.url), ...((rest as { limits?: Record<string, unknown> }).limits ?? {}) },
  };
  let config: Config;
  try {
    config = parseConfig(doc, tmp);
  } catch (err) {
    await db.drop();
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const clock = new FakeClock();
  const events = new Events();
  const seen: TestWorld['seen'] = [];
  events.onAny((name, payload) => {
    seen.push({ name, payload });
  });
  const scope = new RequestScope();
  const logs: string[] = [];
  const logger = createLogger({
    level: config.log.level,
    format: 'json',
    clock,
    node: config.server.nodeName,
    destination: lineDestination((line) => logs.push(line)),
  });
  attachLog(events, logger, scope, { clock });
  let deps: Deps;
  try {
    deps = await buildDeps(config, {
      clock,
      events,
      scope,
      key: opts.key ?? crypto.randomBytes(32),
      push: opts.push ?? TEST_PUSH,
    });
  } catch (err) {
    await db.drop();
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const storeCalls: StoreCall[] = [];
  recordStoreCalls(deps.store, storeCalls);
  let server: Server | null = null;
  let url = '';
  if (!opts.noHttp) {
    const app = createApp(deps);
    server = app.listen(0, '127.0.0.1');
    // As in production (server/main.ts listen): Node's 5 s default lets a server close an idle keep-alive connection
    // while a busy test process (its timers late) still sends on it — `fetch failed: other side closed`.
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve) => server!.once('listening', () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  let token: string | null = null;
  let closing: Promise<void> | undefined;
  const world: TestWorld = {
    deps,
    clock,
    events,
    seen,
    logs,
    logLines: () => logs.map((l) => JSON.parse(l) as Record<string, unknown>),
    url,
    tmp,
    httpServer: server,
    storeCalls,
    async adminToken() {
      if (token) return token;
      if (!(await deps.store.admins.byName('admin')))
        await deps.store.admins.insert('admin', await deps.pins.hash('admin-pw'), clock.now());
      const r = await world.call('POST', '/auth', { username: 'admin', password: 'admin-pw' });
      if (r.status !== 200) throw new Error(`admin login failed: ${r.text}`);
      token = r.body.result.value.token as string;
      return token;
    },
    async call(method, p, params = {}, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      let target = url + p;
      let body: string | FormData | undefined;
      const strParams = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
      if (o.rawBody !== undefined) body = o.rawBody;
      else if (method === 'GET' || method === 'DELETE' || o.as === 'query') {
        const qs = new URLSearchParams(strParams).toString();
        if (qs) target += (target.includes('?') ? '&' : '?') + qs;
      } else if (o.as === 'json') {
        body = JSON.stringify(params);
        headers['content-type'] ??= 'application/json';
      } else if (o.as === 'multipart') {
        const fd = new FormData();
        for (const [k, v] of Object.entries(strParams)) fd.append(k, v);
        body = fd;
      } else {
        body = new URLSearchParams(strParams).toString();
        headers['content-type'] ??= 'application/x-www-form-urlencoded';
      }
      const res = await fetch(target, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed, headers: res.headers, text };
    },
    close() {
      // Idempotent: a test may close a world it is done with (freeing its place in the budget) before its teardown.
      closing ??= (async () => {
        try {
          if (server) {
            // The test is over: every connection goes, also one that never sent a request (undici can leave such a
            // connection behind an aborted fetch; Node's close() leaves it to the 30 s header check, ~60 s later).
            const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
            server.closeAllConnections();
            await closed;
          }
          await deps.close();
          await db.drop();
          fs.rmSync(tmp, { recursive: true, force: true });
        } finally {
          release();
        }
      })();
      return closing;
    },
  };
  return world;
}
