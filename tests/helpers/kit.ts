/**
 * Shared test kit for tests/server: the RFC 4226 test key, OTP values, a world with teardown, enrollment and
 * policy helpers, a raw HTTP client (no implicit User-Agent or Content-Type) and promise helpers.
 */
import http from 'node:http';
import { createWorld, type CallOptions, type Reply, type StoreCall, type TestWorld, type WorldOptions } from './test_app.ts';
import { hotpValue } from '../../tokens/otp.ts';
import { createPinHasher } from '../../server/auth/pin.ts';
import type { AuditRow } from '../../server/store/audit_repo.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import type { NewToken } from '../../server/store/tokens_repo.ts';

/** RFC 4226 Appendix D key and its first ten HOTP values. */
export const KEY = Buffer.from('12345678901234567890');
export const KEY_HEX = KEY.toString('hex');
export const RFC = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];

/** HOTP value of the RFC key at `counter` (6 digits, SHA-1 unless given). */
export const hotpAt = (counter: number, digits: 6 | 8 = 6, hash: 'sha1' | 'sha256' | 'sha512' = 'sha1'): string =>
  hotpValue(KEY, counter, digits, hash);
/** TOTP value of the RFC key at epoch-ms `ms` for a time step of `step` seconds (6 digits, SHA-1). */
export const totpAt = (ms: number, step = 30): string => hotpValue(KEY, Math.floor(ms / (step * 1000)), 6, 'sha1');

export interface Teardown {
  teardown(fn: () => Promise<void> | void): void;
}

/** A fresh world closed after the test. */
export async function world(t: Teardown, opts: WorldOptions = {}): Promise<TestWorld> {
  const w = await createWorld({ owner: t, ...opts });
  t.teardown(() => w.close());
  return w;
}

/** The Authorization header of the world's admin. */
export async function asAdmin(w: TestWorld): Promise<Record<string, string>> {
  return { Authorization: await w.adminToken() };
}

/** POST /token/init as admin; throws (with the body) unless HTTP 200. Returns the response body. */
export async function enroll(w: TestWorld, params: Record<string, unknown>): Promise<any> {
  const r = await w.call('POST', '/token/init', params, { headers: await asAdmin(w) });
  if (r.status !== 200) throw new Error(`enroll failed: ${r.status} ${r.text}`);
  return r.body;
}

/** An HOTP token with the RFC key. */
export function enrollHotp(w: TestWorld, over: Record<string, unknown> = {}): Promise<any> {
  return enroll(w, { type: 'hotp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'OATH0001', ...over });
}

/** POST /validate/check (form unless `opts.as`). */
export function check(w: TestWorld, params: Record<string, unknown>, opts: CallOptions = {}): Promise<Reply> {
  return w.call('POST', '/validate/check', params, opts);
}

/** A token row for `store.tokens.insert`, straight into the database (no enrollment): alice's active HOTP unless overridden. */
export function tokenRow(over: Partial<NewToken> & Pick<NewToken, 'serial'>): NewToken {
  return {
    type: 'hotp',
    username: 'alice',
    realm: 'default',
    active: true,
    rolloutState: '',
    pinHash: null,
    otpLen: 6,
    counter: 0,
    maxFail: 10,
    description: '',
    info: {},
    secrets: {},
    rolloutExpiresAt: null,
    ...over,
  };
}

export async function tokenOf(w: TestWorld, serial: string): Promise<TokenRecord> {
  const t = await w.deps.store.tokens.bySerial(serial);
  if (!t) throw new Error(`no token ${serial}`);
  return t;
}

export function auditRows(w: TestWorld): Promise<AuditRow[]> {
  return w.deps.store.audit.tail(10_000);
}

/** A policy entry as YAML would give it. */
export function policy(
  name: string,
  scope: string,
  actions: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { name, scope, actions, ...extra };
}

/** The same cheap argon2id parameters the test world uses, for hashes written into user files. */
export const cheapHasher = createPinHasher({ memoryKib: 1024, timeCost: 1, parallelism: 1, maxConcurrent: 2 });

/** A users YAML file body. */
export function usersYaml(users: ReadonlyArray<Record<string, string>>): string {
  return (
    users
      .map((u) =>
        Object.entries(u)
          .map(([k, v], i) => `${i === 0 ? '- ' : '  '}${k}: ${JSON.stringify(v)}`)
          .join('\n'),
      )
      .join('\n') + '\n'
  );
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Tracks whether a promise has settled (without time: purely by callbacks). */
export function track<T>(p: Promise<T>): { promise: Promise<T>; settled(): boolean } {
  let done = false;
  const promise = p.finally(() => {
    done = true;
  });
  return { promise, settled: () => done };
}

/**
 * Lets the event loop run (setImmediate turns, no timers) until `cond()` holds. For waiting on a state another async
 * task reaches (often after database I/O), never for waiting on time. Gives up only after a generous `deadlineMs` of
 * real time — a count of turns would run out sooner on a busy machine, where each I/O takes longer.
 */
export async function until(cond: () => boolean, deadlineMs = 60_000): Promise<void> {
  const end = performance.now() + deadlineMs;
  for (let i = 0; ; i++) {
    if (cond()) return;
    if ((i & 1023) === 0 && performance.now() > end) throw new Error('condition never became true');
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Makes the next `n` calls of `obj[key]` wait for each other: nobody proceeds until all `n` have arrived. With
 * `at: 'after'` (default) each call first runs and the results are held back (every request has read the same
 * state before any writes); with `at: 'before'` the calls are held at the door and then all start together.
 * Forces a race without timers. Later calls pass straight through. Returns how many calls arrived so far.
 */
export function barrier<T extends object>(obj: T, key: keyof T & string, n: number, at: 'before' | 'after' = 'after'): () => number {
  const orig = obj[key] as unknown as (...args: unknown[]) => Promise<unknown>;
  let arrived = 0;
  let waiting: Array<() => void> = [];
  const gate = async () => {
    arrived++;
    if (arrived === n) {
      for (const release of waiting) release();
      waiting = [];
    } else if (arrived < n) await new Promise<void>((resolve) => waiting.push(resolve));
  };
  (obj as Record<string, unknown>)[key] = async (...args: unknown[]) => {
    if (at === 'before') {
      await gate();
      return orig.apply(obj, args);
    }
    const result = await orig.apply(obj, args);
    await gate();
    return result;
  };
  return () => arrived;
}

/**
 * One macrotask turn. Everything already queued as a microtask (the continuations of promises that have resolved, and
 * theirs in turn) runs before it: after `await drained()`, whatever the server does with a result it already has is
 * done, up to its next I/O. A property of the event loop, not a guess at how long something takes.
 */
export function drained(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Resolves once the world's server is quiet: no store call in flight, and none started by what the finished ones
 * resolved. With the FakeClock nothing starts by itself after that, so what a test asserts next cannot change under
 * it (unless the test acts, or an HTTP request is still on its way in).
 */
export async function quiet(w: TestWorld): Promise<void> {
  for (;;) {
    await until(() => w.storeCalls.every((c) => c.settled));
    const seen = w.storeCalls.length;
    await drained();
    if (w.storeCalls.length === seen && w.storeCalls.every((c) => c.settled)) return;
  }
}

/** The store calls recorded after `mark` (a former `w.storeCalls.length`), as `repo.method`. */
export function callsSince(w: TestWorld, mark: number, pred: (c: StoreCall) => boolean = () => true): string[] {
  return w.storeCalls
    .slice(mark)
    .filter(pred)
    .map((c) => `${c.repo}.${c.method}`);
}

/** Server-side responses of the world's HTTP server from now on (method, path and the node:http response). */
export function serverResponses(w: TestWorld): Array<{ method: string; path: string; res: http.ServerResponse; closed: boolean }> {
  const out: Array<{ method: string; path: string; res: http.ServerResponse; closed: boolean }> = [];
  w.httpServer!.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const entry = { method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, res, closed: false };
    res.once('close', () => {
      entry.closed = true;
    });
    out.push(entry);
  });
  return out;
}

export interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: any;
}

/**
 * A request through node:http, which adds no User-Agent and no Content-Type of its own. `body` as a string is sent
 * with a Content-Length; `chunks` are sent with chunked transfer encoding.
 */
export function rawRequest(
  base: string,
  o: { method?: string; path: string; headers?: Record<string, string>; body?: string; chunks?: string[] },
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const url = new URL(o.path, base);
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.body !== undefined) headers['content-length'] = String(Buffer.byteLength(o.body));
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: o.method ?? 'POST', headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = null;
          try {
            body = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (o.body !== undefined) req.end(o.body);
    else if (o.chunks) {
      for (const c of o.chunks) req.write(c);
      req.end();
    } else req.end();
  });
}
