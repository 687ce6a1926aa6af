/**
 * An LDAP / Active Directory user store (realm `users: {type: ldap}`), on ldapts.
 *
 * - Lookup: the service account (or an anonymous connection) searches `base_dn` for the entry that matches the realm's
 *   `search_filter` AND one of the login attributes. The name is matched as a value (an EqualityFilter sent as BER),
 *   never pasted into filter text, so `*`, `)(`, `\` in a login name are just characters (no LDAP injection). The
 *   user's name in pushgate is the entry's first login attribute as the directory spells it (`ALICE` logs in as
 *   `alice`; an AD user may type the userPrincipalName). Results, found or not, are kept `cache_seconds` on the
 *   injected clock (one login resolves its user several times); a lookup already running is shared.
 * - Password (`otppin: userstore`, `passthru`): a bind as the user's DN. An empty password is false without asking
 *   the server: a simple bind with a DN and no password is an unauthenticated bind that servers answer with success
 *   (RFC 4513 5.1.2). Binds run at most `max_concurrent_binds` at once, in a bounded, fair queue per user (the PIN
 *   queue's Limiter); a bind's result is never cached.
 * - Connections: one service connection carries every search (LDAP multiplexes requests); binds take connections
 *   from a small idle pool (a connection only ever used for binds, so its identity does not matter). A reused
 *   connection that fails is replaced once before the server counts as failed (servers close idle connections).
 * - Failover: `urls` are tried in order. A server that does not answer (refused, timed out, TLS failed) is skipped
 *   for `retry_seconds` on the injected clock; when every server is skipped, a login fails at once with a
 *   UserStoreError (503, Retry-After) instead of waiting for timeouts, and the first request after the pause tries
 *   again — that is the recovery. The readiness check ignores the pause and asks the servers.
 */
import fs from 'node:fs';
import net from 'node:net';
import type tls from 'node:tls';
import {
  AndFilter,
  Client,
  EqualityFilter,
  FilterParser,
  InvalidCredentialsError,
  OrFilter,
  ResultCodeError,
  type Entry,
  type Filter,
} from 'ldapts';
import type { Clock } from '../../core/clock.ts';
import { ConfigError, UserStoreError } from '../../core/errors.ts';
import type { Events } from '../../core/events.ts';
import type { LdapUsersConfig } from '../config.ts';
import { Limiter } from './limiter.ts';
import type { PinJob } from './pin.ts';
import type { UserInfo } from './users.ts';

export interface LdapEnv {
  readonly clock: Clock;
  readonly events: Events;
  /** Where `bind_password_env` is read. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The PIN queue's bounds, reused for the bind queue. */
  readonly queue: { readonly maxQueue: number; readonly maxQueuePerKey: number; readonly maxWaitMs: number };
}

export interface LdapDirectory {
  lookup(name: string): Promise<UserInfo | null>;
  verifyPassword(name: string, password: string, job?: PinJob): Promise<boolean>;
  /** The store's users (at most `size_limit`), for the admin API's user list. */
  listUsers(): Promise<UserInfo[]>;
  /** Readiness: a server answers a search of the base DN with the service account (ignores the failover pause). */
  check(): Promise<void>;
  readonly binds: Limiter;
  close(): Promise<void>;
}

interface Found {
  readonly info: UserInfo;
  readonly dn: string;
}

/** Most directory sizes: enough for a campus, small enough to bound an unknown-name flood's memory. */
const CACHE_MAX = 10_000;

/**
 * An error that means the server did not answer (the connection, TLS, a timeout) — not an LDAP result, and not a
 * refusal already turned into a UserStoreError (a refused service account: the server did answer).
 */
const isTransport = (err: unknown): boolean => !(err instanceof ResultCodeError) && !(err instanceof UserStoreError);
const reason = (err: unknown): string => (err instanceof Error ? err.message || err.name : String(err)).slice(0, 300);

/** AD's objectGUID (16 bytes, the first three groups little-endian) as eduMFA shows it: the UUID string. */
export function guidString(b: Buffer): string {
  if (b.length !== 16) return b.toString('hex');
  const h = (from: number, to: number, le: boolean) => {
    const part = b.subarray(from, to);
    return Buffer.from(le ? [...part].reverse() : part).toString('hex');
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`;
}

function readSecret(cfg: LdapUsersConfig, realm: string, env: LdapEnv['env']): string | null {
  const src = cfg.bindPassword;
  if (!src) return null;
  if ('value' in src) return src.value;
  if ('env' in src) {
    const v = env[src.env];
    if (v === undefined || v === '')
      throw new ConfigError([`realms ${realm}: the environment variable ${src.env} (bind_password_env) is not set`]);
    return v;
  }
  try {
    return fs.readFileSync(src.file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError([`realms ${realm}: cannot read bind_password_file ${src.file}: ${(err as Error).message}`]);
  }
}

export function createLdapDirectory(realm: string, resolver: string, cfg: LdapUsersConfig, env: LdapEnv): LdapDirectory {
  const { clock, events } = env;
  const password = readSecret(cfg, realm, env.env);
  let ca: Buffer[] | undefined;
  if (cfg.tlsCaFile) {
    try {
      ca = [fs.readFileSync(cfg.tlsCaFile)];
    } catch (err) {
      throw new ConfigError([`realms ${realm}: cannot read tls_ca_file ${cfg.tlsCaFile}: ${(err as Error).message}`]);
    }
  }
  let userFilter: Filter;
  try {
    userFilter = FilterParser.parseString(cfg.searchFilter);
  } catch (err) {
    throw new ConfigError([`realms ${realm}: search_filter ${cfg.searchFilter} is not a valid LDAP filter: ${(err as Error).message}`]);
  }
  const attrs = cfg.attributes;
  const wanted = [...new Set([...cfg.loginAttributes, ...Object.values(attrs).filter((a): a is string => !!a)])];
  const binary = attrs.uid && attrs.uid.toLowerCase() === 'objectguid' ? [attrs.uid] : [];
  const retryMs = cfg.retrySeconds * 1000;

  const binds = new Limiter({
    max: cfg.maxConcurrentBinds,
    maxQueue: env.queue.maxQueue,
    maxQueuePerKey: env.queue.maxQueuePerKey,
    maxWaitMs: env.queue.maxWaitMs,
    clock,
    noun: { doing: 'checking passwords with the directory', jobs: 'password checks' },
    onReject: (why, key) => events.emit('pin.rejected', { reason: why, key }),
  });

  // ---- servers and failover
  const downUntil = cfg.urls.map(() => 0);
  const lastError = cfg.urls.map(() => '');
  const wasDown = cfg.urls.map(() => false);
  const markDown = (i: number, err: unknown) => {
    downUntil[i] = clock.now() + retryMs;
    wasDown[i] = true;
    lastError[i] = reason(err);
    events.emit('ldap.server_down', { realm, url: cfg.urls[i]!, error: reason(err), retrySeconds: cfg.retrySeconds });
  };
  const markUp = (i: number) => {
    downUntil[i] = 0;
    if (wasDown[i]) {
      wasDown[i] = false;
      events.emit('ldap.server_up', { realm, url: cfg.urls[i]! });
    }
  };
  const unavailable = (cause: unknown) => new UserStoreError(realm, cfg.retrySeconds, cause);

  /** Runs `op` on the first server that answers; LDAP results (errors included) come back as they are. */
  async function onServer<T>(op: (i: number) => Promise<T>, ignorePause = false): Promise<T> {
    const now = clock.now();
    let last: unknown;
    let tried = 0;
    for (let i = 0; i < cfg.urls.length; i++) {
      if (!ignorePause && downUntil[i]! > now) continue;
      tried++;
      try {
        const result = await op(i);
        markUp(i);
        return result;
      } catch (err) {
        if (!isTransport(err)) {
          markUp(i);
          throw err;
        }
        markDown(i, err);
        last = err;
      }
    }
    if (!tried) {
      const next = Math.min(...downUntil);
      throw new UserStoreError(
        realm,
        (next - now) / 1000,
        new Error(
          `every LDAP server of realm ${realm} failed within the last ${cfg.retrySeconds} s (${cfg.urls
            .map((u, i) => `${u}: ${lastError[i]}`)
            .join('; ')}); next try in ${Math.ceil((next - now) / 1000)} s`,
        ),
      );
    }
    throw unavailable(last);
  }

  /**
   * TLS options of one connection: the CA file (else Node's CAs) and the host name the certificate must name. A new
   * object each time (ldapts writes the socket into the object it is given).
   */
  const tlsFor = (i: number): tls.ConnectionOptions => {
    const host = new URL(cfg.urls[i]!).hostname.replace(/^\[|\]$/g, '');
    return { ...(ca ? { ca } : {}), host, ...(net.isIP(host) ? {} : { servername: host }) };
  };
  const connect = async (i: number): Promise<Client> => {
    const url = cfg.urls[i]!;
    // tlsOptions only for ldaps:// (ldapts would otherwise try TLS before the StartTLS exchange).
    const client = new Client({
      url,
      timeout: cfg.timeoutMs,
      connectTimeout: cfg.connectTimeoutMs,
      strictDN: false,
      ...(url.startsWith('ldaps:') ? { tlsOptions: tlsFor(i) } : {}),
    });
    try {
      if (cfg.startTls) await client.startTLS(tlsFor(i));
      return client;
    } catch (err) {
      drop(client);
      throw err;
    }
  };
  /** Ends a connection; an unbind that gets no answer (seen after StartTLS) is not waited for beyond a second. */
  const drop = (c: Client): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      timer.unref();
      c.unbind()
        .catch(() => {})
        .finally(() => {
          clearTimeout(timer);
          resolve();
        });
    });

  // The service connection: every search. Opened (and bound) once, shared; replaced when it fails.
  let service: { url: number; client: Promise<Client> } | null = null;
  const serviceClient = (i: number): Promise<Client> => {
    if (service && service.url === i) return service.client;
    if (service) void service.client.then(drop, () => {});
    const client = (async () => {
      const c = await connect(i);
      if (cfg.bindDn !== null) {
        try {
          await c.bind(cfg.bindDn, password ?? '');
        } catch (err) {
          drop(c);
          if (isTransport(err)) throw err;
          events.emit('ldap.refused', { realm, operation: 'service_bind', error: reason(err) });
          throw unavailable(new Error(`LDAP ${cfg.urls[i]}: the service account ${cfg.bindDn} was refused: ${reason(err)}`));
        }
      }
      return c;
    })();
    const entry = { url: i, client };
    service = entry;
    client.catch(() => {
      if (service === entry) service = null;
    });
    return client;
  };
  const forgetService = (c: Client) => {
    const s = service;
    if (!s) return;
    void s.client.then((x) => {
      if (x === c && service === s) service = null;
    });
    drop(c);
  };
  /** Runs `fn` on server `i`'s service connection; a reused connection that fails is replaced once. */
  async function withService<T>(i: number, fn: (c: Client) => Promise<T>): Promise<T> {
    let reused = service !== null && service.url === i;
    let c = await serviceClient(i);
    if (!c.isConnected) {
      // ldapts would reconnect by itself — unbound and, after StartTLS, in clear text: never use that.
      forgetService(c);
      service = null;
      reused = false;
      c = await serviceClient(i);
    }
    try {
      return await fn(c);
    } catch (err) {
      if (!isTransport(err)) throw err;
      forgetService(c);
      service = null;
      if (!reused) throw err;
      return fn(await serviceClient(i));
    }
  }

  // Bind connections: idle ones are kept (up to max_concurrent_binds) for the next password check.
  const idle: Array<{ url: number; client: Client }> = [];
  const release = (url: number, client: Client) => {
    if (client.isConnected && idle.length < cfg.maxConcurrentBinds) idle.push({ url, client });
    else drop(client);
  };
  async function withBindConnection<T>(i: number, fn: (c: Client) => Promise<T>): Promise<T> {
    let conn: Client | undefined;
    while (idle.length && !conn) {
      const x = idle.pop()!;
      if (x.url === i && x.client.isConnected) conn = x.client;
      else drop(x.client);
    }
    const reused = conn !== undefined;
    const run = async (c: Client): Promise<T> => {
      try {
        const out = await fn(c);
        release(i, c);
        return out;
      } catch (err) {
        if (isTransport(err)) drop(c);
        else release(i, c);
        throw err;
      }
    };
    if (!conn) return run(await connect(i));
    try {
      return await run(conn);
    } catch (err) {
      if (!reused || !isTransport(err)) throw err;
      return run(await connect(i));
    }
  }

  // ---- entries
  const first = (e: Entry, attr: string | null): string | Buffer | undefined => {
    if (!attr) return undefined;
    const key = Object.keys(e).find((k) => k.toLowerCase() === attr.toLowerCase());
    const v = key === undefined ? undefined : e[key];
    const one = Array.isArray(v) ? v[0] : v;
    return one === undefined || one === '' ? undefined : one;
  };
  const text = (e: Entry, attr: string | null): string | undefined => {
    const v = first(e, attr);
    return v === undefined ? undefined : Buffer.isBuffer(v) ? v.toString('utf8') : v;
  };
  const toFound = (e: Entry, typed: string): Found => {
    const uid = first(e, attrs.uid);
    const info: UserInfo = {
      name: text(e, cfg.loginAttributes[0]!) ?? typed,
      realm,
      resolver,
      givenname: text(e, attrs.givenname),
      surname: text(e, attrs.surname),
      email: text(e, attrs.email),
      phone: text(e, attrs.phone),
      mobile: text(e, attrs.mobile),
      userid: uid === undefined ? undefined : Buffer.isBuffer(uid) ? guidString(uid) : uid,
    };
    return { info, dn: e.dn };
  };

  const search = (filter: Filter, sizeLimit: number) =>
    onServer((i) =>
      withService(i, (c) =>
        c.search(cfg.baseDn, {
          scope: cfg.scope,
          filter,
          attributes: wanted,
          explicitBufferAttributes: binary,
          sizeLimit,
          timeLimit: Math.ceil(cfg.timeoutMs / 1000),
        }),
      ),
    );
  /** Search errors the directory answered with (wrong base DN, no access, …): the store does not work — 503, not "unknown user". */
  const refusedSearch = (err: unknown): never => {
    if (err instanceof UserStoreError) throw err;
    events.emit('ldap.refused', { realm, operation: 'search', error: reason(err) });
    throw unavailable(err);
  };

  // ---- the lookup cache (the injected clock; bounded; a running lookup is shared)
  const cacheMs = cfg.cacheSeconds * 1000;
  const cache = new Map<string, { until: number; found: Found | null }>();
  const running = new Map<string, Promise<Found | null>>();
  async function searchUser(name: string): Promise<Found | null> {
    const match = cfg.loginAttributes.map((attribute) => new EqualityFilter({ attribute, value: name }));
    const filter = new AndFilter({ filters: [userFilter, match.length === 1 ? match[0]! : new OrFilter({ filters: match })] });
    let entries: Entry[];
    try {
      ({ searchEntries: entries } = await search(filter, 2));
    } catch (err) {
      if (err instanceof ResultCodeError && err.code === 4) {
        entries = [{ dn: '' }, { dn: '' }]; // sizeLimitExceeded: more than one entry
      } else return refusedSearch(err);
    }
    if (entries.length > 1) {
      events.emit('ldap.refused', { realm, operation: 'search', error: 'a login name matches more than one entry: refused as unknown' });
      return null;
    }
    return entries.length ? toFound(entries[0]!, name) : null;
  }
  async function find(name: string): Promise<Found | null> {
    if (name === '') return null;
    const now = clock.now();
    const hit = cache.get(name);
    if (hit && hit.until > now) return hit.found;
    if (hit) cache.delete(name);
    const pending = running.get(name);
    if (pending) return pending;
    const p = searchUser(name).finally(() => running.delete(name));
    running.set(name, p);
    const found = await p;
    if (cacheMs > 0) {
      if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
      cache.set(name, { until: clock.now() + cacheMs, found });
    }
    return found;
  }

  return {
    binds,
    async lookup(name) {
      return (await find(name))?.info ?? null;
    },
    async verifyPassword(name, pass, job) {
      if (pass === '') return false; // never an unauthenticated bind
      const found = await find(name);
      if (!found || found.dn === '') return false;
      return binds.run(
        () =>
          onServer((i) =>
            withBindConnection(i, async (c) => {
              try {
                await c.bind(found.dn, pass);
                return true;
              } catch (err) {
                if (err instanceof InvalidCredentialsError) return false;
                if (!isTransport(err)) {
                  // Refused otherwise (unwilling to perform, confidentiality required, …): no login, and say why.
                  events.emit('ldap.refused', { realm, operation: 'bind', error: reason(err) });
                  return false;
                }
                throw err;
              }
            }),
          ),
        job,
      );
    },
    async listUsers() {
      // Paged (RFC 2696), so a directory's own size limit (AD: 1000) does not cut the list; at most size_limit.
      const entries = await onServer((i) =>
        withService(i, async (c) => {
          const out: Entry[] = [];
          const pages = c.searchPaginated(cfg.baseDn, {
            scope: cfg.scope,
            filter: userFilter,
            attributes: wanted,
            explicitBufferAttributes: binary,
            timeLimit: Math.ceil(cfg.timeoutMs / 1000),
            paged: { pageSize: Math.min(500, cfg.sizeLimit) },
          });
          for await (const page of pages) {
            out.push(...page.searchEntries);
            if (out.length >= cfg.sizeLimit) break;
          }
          return out.slice(0, cfg.sizeLimit);
        }),
      ).catch((err) => refusedSearch(err));
      return entries.map((e) => toFound(e, '').info).filter((u) => u.name !== '');
    },
    async check() {
      await onServer(
        (i) =>
          withService(i, (c) =>
            c.search(cfg.baseDn, {
              scope: 'base',
              filter: '(objectClass=*)',
              attributes: ['1.1'],
              timeLimit: Math.ceil(cfg.timeoutMs / 1000),
            }),
          ),
        true,
      ).catch((err) => refusedSearch(err));
    },
    async close() {
      const s = service;
      service = null;
      if (s) await s.client.then(drop, () => {});
      await Promise.all(idle.splice(0).map((x) => drop(x.client)));
    },
  };
}
