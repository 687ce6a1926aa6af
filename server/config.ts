/**
 * Configuration: YAML → typed Config. Every key has a default so that `npm start` works with no file; every
 * problem names its exact path (`server.port must be an integer between 1 and 65535`) and refuses the start.
 * config.example.yaml documents every key.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigError } from '../core/errors.ts';
import { COLUMN_LIMITS } from './store/limits.ts';
import { yamlProblem } from '../policies/load.ts';
import { didYouMean } from '../policies/suggest.ts';

export interface RealmConfig {
  readonly name: string;
  readonly default: boolean;
  readonly users: { readonly type: 'file'; readonly path: string } | { readonly type: 'any' } | LdapUsersConfig;
}
/** Where the LDAP service account's password comes from (never logged; read when the realm is built). */
export type SecretSource = { readonly file: string } | { readonly env: string } | { readonly value: string };
/** A realm whose users live in LDAP / Active Directory (server/auth/ldap_store.ts). */
export interface LdapUsersConfig {
  readonly type: 'ldap';
  readonly preset: 'openldap' | 'ad';
  /** Tried in order (failover); a server that failed is skipped for `retrySeconds`. */
  readonly urls: readonly string[];
  /** The service account that searches; null: anonymous searches. */
  readonly bindDn: string | null;
  readonly bindPassword: SecretSource | null;
  readonly baseDn: string;
  readonly scope: 'sub' | 'one';
  /** The attributes a login name is searched in; the first one's value is the user's name in pushgate. */
  readonly loginAttributes: readonly string[];
  /** Which entries are users (an LDAP filter, ANDed with the login attribute match). */
  readonly searchFilter: string;
  readonly startTls: boolean;
  readonly tlsCaFile: string | null;
  /** pushgate's user fields → LDAP attribute names (null: not mapped). */
  readonly attributes: {
    readonly givenname: string | null;
    readonly surname: string | null;
    readonly email: string | null;
    readonly phone: string | null;
    readonly mobile: string | null;
    readonly uid: string | null;
  };
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  /** How long a lookup (found or not) is reused; 0: every lookup searches. Failed binds are never cached. */
  readonly cacheSeconds: number;
  readonly retrySeconds: number;
  /** Password checks by LDAP bind at once (each holds its own connection); more wait in a bounded, fair queue. */
  readonly maxConcurrentBinds: number;
  /** At most this many entries for the admin API's user list. */
  readonly sizeLimit: number;
}
export interface ChannelConfig {
  readonly name: string;
  readonly type: 'firebase';
  readonly serviceAccountFile: string;
  readonly httpsProxy: string | null;
  readonly timeoutMs: number;
}
export interface Config {
  readonly server: {
    readonly host: string;
    readonly port: number;
    readonly publicUrl: string;
    readonly bodyLimitBytes: number;
    /** This node's name in the audit trail (default: the host name). */
    readonly nodeName: string;
    /** Proxies whose X-Forwarded-For and `client` parameter are believed (IPs/CIDRs). */
    readonly trustedProxies: readonly string[];
  };
  readonly database: { readonly url: string; readonly poolMax: number };
  readonly secrets: { readonly keyFile: string };
  readonly realms: readonly RealmConfig[];
  readonly challenge: { readonly validitySeconds: number; readonly typeValiditySeconds: Readonly<Record<string, number>> };
  readonly tokens: {
    readonly maxFail: number;
    readonly rolloutPurgeMinutes: number;
    /** eduMFA's failcounter_clear_timeout, in minutes (0: off): see server/auth/check.ts. */
    readonly failcounterClearTimeoutMinutes: number;
  };
  readonly pin: {
    readonly memoryKib: number;
    readonly timeCost: number;
    readonly parallelism: number;
    readonly maxConcurrent: number;
    /** The PIN queue's bounds (server/auth/limiter.ts): jobs waiting in all, per key (user), and how long. */
    readonly maxQueue: number;
    readonly maxQueuePerKey: number;
    readonly maxWaitMs: number;
  };
  readonly admin: { readonly jwtTtlSeconds: number };
  readonly audit: { readonly retentionDays: number };
  readonly cleanup: { readonly intervalSeconds: number; readonly chunk: number };
  /** `pollMaxChallenges`: the most open challenges one phone poll answers (newest first). */
  readonly push: { readonly channels: readonly ChannelConfig[]; readonly pollMaxChallenges: number };
  readonly wait: {
    readonly maxConcurrent: number;
    readonly maxPerUser: number;
    readonly safetyRereadMs: number;
    readonly drainSeconds: number;
  };
  readonly bus: { readonly redisUrl: string | null };
  /** The device protocol v2's open connections (docs/device-protocol.md "Connections"). */
  readonly device: {
    /** Long-polls and SSE streams open in this process; more get 503 + Retry-After. */
    readonly maxConnections: number;
    /** Open long-polls and streams of one device (serial). */
    readonly maxPerDevice: number;
    /** A long-poll answers 304 after this long without a change (below the load balancer's idle timeout). */
    readonly pollSeconds: number;
    /** An SSE stream sends a comment line this often (keeps proxies from closing an idle stream). */
    readonly sseKeepaliveSeconds: number;
    /** An SSE stream ends after this long; the device reconnects with Last-Event-ID. */
    readonly sseMaxSeconds: number;
  };
  /** Back-off (server/auth/throttle.ts). A count of 0 turns that limiter off. */
  readonly limits: {
    readonly store: LimitsStore;
    readonly keyPrefix: string;
    readonly failedPerUser: number;
    readonly failedPerAddress: number;
    readonly failedWindowSeconds: number;
    readonly failedBlockSeconds: number;
    readonly challengesPerUser: number;
    readonly challengesWindowSeconds: number;
  };
  /** The structured log (server/log.ts): the lowest level written, and JSON or pretty lines (`auto`: pretty on a terminal). */
  readonly log: { readonly level: 'debug' | 'info' | 'warn' | 'error'; readonly format: 'auto' | 'json' | 'pretty' };
  /**
   * GET /metrics: `token` — a bearer token the scraper must send (null: no token); `listen` — host and port of a
   * separate listener that serves only /metrics (null: /metrics is on the main port).
   */
  readonly metrics: { readonly token: string | null; readonly listen: { readonly host: string; readonly port: number } | null };
  /**
   * The self-service page for users (server/routes/selfservice.ts), off by default. `path`: where it is served;
   * `cookieSecure`: the session cookie's Secure flag (false only for plain-HTTP development); timeouts in minutes on
   * the injected clock: `idle` (no request), `absolute` (since the login), `login` (password given, second factor not
   * yet); `enrollTypes`: the token types a user may enroll there; `recentLogins`: how many audit rows the page shows.
   */
  readonly selfservice: {
    readonly enabled: boolean;
    readonly path: string;
    readonly cookieSecure: boolean;
    readonly idleTimeoutMinutes: number;
    readonly absoluteTimeoutMinutes: number;
    readonly loginTimeoutMinutes: number;
    readonly enrollTypes: readonly SelfserviceType[];
    readonly recentLogins: number;
  };
  readonly policies: readonly unknown[];
  readonly policyFiles: readonly string[];
  /** Directory relative paths in the file are resolved against. */
  readonly baseDir: string;
}

/** The token types the self-service page can enroll (a QR code the user scans). */
export const SELFSERVICE_TYPES = ['totp', 'edupush', 'push'] as const;
export type SelfserviceType = (typeof SELFSERVICE_TYPES)[number];

/** Where the back-off counters live: `auto` = Redis when bus.redis_url is set, else the database on PostgreSQL/MariaDB, else memory. */
export type LimitsStore = 'auto' | 'memory' | 'database' | 'redis';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Reader {
  readonly problems: string[] = [];
  readonly baseDir: string;
  constructor(baseDir: string) {
    this.baseDir = baseDir;
  }
  obj(v: unknown, p: string, known: readonly string[]): Obj {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) {
      this.problems.push(`${p} must be a mapping`);
      return {};
    }
    for (const k of Object.keys(v))
      if (!known.includes(k)) this.problems.push(`${p ? p + '.' : ''}${k} is not a known setting${didYouMean(k, known)}`);
    return v;
  }
  str(v: unknown, p: string, def: string, opts: { pattern?: RegExp; hint?: string } = {}): string {
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string' && typeof v !== 'number') {
      this.problems.push(`${p} must be a string`);
      return def;
    }
    const s = String(v);
    if (opts.pattern && !opts.pattern.test(s)) {
      this.problems.push(`${p} must be ${opts.hint ?? `like ${opts.pattern}`}`);
      return def;
    }
    return s;
  }
  int(v: unknown, p: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (v === undefined || v === null) return def;
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      this.problems.push(
        max === Number.MAX_SAFE_INTEGER ? `${p} must be an integer >= ${min}` : `${p} must be an integer between ${min} and ${max}`,
      );
      return def;
    }
    return n;
  }
  bool(v: unknown, p: string, def: boolean): boolean {
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') {
      this.problems.push(`${p} must be true or false`);
      return def;
    }
    return v;
  }
  list(v: unknown, p: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.problems.push(`${p} must be a list`);
      return [];
    }
    return v;
  }
  file(v: unknown, p: string, def: string): string {
    const s = this.str(v, p, def);
    return path.resolve(this.baseDir, s);
  }
}

export function defaultPinConcurrency(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

/**
 * Defaults of the PIN queue's bounds.
 * - max_wait_ms 2000: a login's budget. IdP plugins give up after a few seconds, and a login that waited longer
 *   than that for its PIN check is better answered "busy, retry" at once than late.
 * - max_queue = max_concurrent × ceil(max_wait_ms / 5): a hard bound on memory, for checks of 5 ms or more. How many
 *   checks may really wait is decided by the time a check takes: the limiter (server/auth/limiter.ts) refuses at once a
 *   check that could not start within max_wait_ms behind those already waiting, at the measured average check time
 *   (50 ms assumed until one has been measured: one argon2id check at the OWASP parameters on a slow core). Jobs
 *   beyond that could not be served in time anyway: they are refused at once instead of after waiting. 2 cores → 400
 *   (about 74 waiting checks at 27 ms each, the default parameters on the CI machine).
 * - max_queue_per_key = max(2, ceil(max_concurrent × ceil(max_wait_ms / 50) / 16)): one user (or admin name) holds at
 *   most 1/16 of what the deadline lets through at 50 ms a check, so one flooding user — or fifteen — cannot fill the
 *   queue and turn other users away; a legitimate user rarely has more than one check waiting (a retry or a second
 *   device still fit). 2 cores → 3.
 */
export function pinQueueDefaults(maxConcurrent: number, maxWaitMs = 2000): { maxQueue: number; maxQueuePerKey: number; maxWaitMs: number } {
  const maxQueue = maxConcurrent * Math.ceil(maxWaitMs / 5);
  return { maxQueue, maxQueuePerKey: defaultQueuePerKey(maxQueue, maxConcurrent * Math.ceil(maxWaitMs / 50)), maxWaitMs };
}
const defaultQueuePerKey = (maxQueue: number, served: number): number => Math.min(maxQueue, Math.max(2, Math.ceil(served / 16)));

/** The top-level sections of a pushgate config (a policy file has none of them but `policies`). */
export const CONFIG_SECTIONS: readonly string[] = [
  'server',
  'database',
  'secrets',
  'realms',
  'challenge',
  'tokens',
  'pin',
  'admin',
  'audit',
  'cleanup',
  'push',
  'wait',
  'bus',
  'device',
  'limits',
  'log',
  'metrics',
  'selfservice',
  'policies',
  'policy_files',
];

const LDAP_KEYS = [
  'type',
  'preset',
  'urls',
  'bind_dn',
  'bind_password_file',
  'bind_password_env',
  'bind_password',
  'base_dn',
  'scope',
  'login_attribute',
  'search_filter',
  'start_tls',
  'tls_ca_file',
  'attributes',
  'timeout_ms',
  'connect_timeout_ms',
  'cache_seconds',
  'retry_seconds',
  'max_concurrent_binds',
  'size_limit',
];
const LDAP_ATTRIBUTE_KEYS = ['givenname', 'surname', 'email', 'phone', 'mobile', 'uid'] as const;
/** An attribute description: a name (letters, digits, hyphens) or an OID. */
const LDAP_ATTRIBUTE = /^([A-Za-z][A-Za-z0-9-]{0,63}|\d+(\.\d+)+)$/;

/** What `preset` fills in when a key is not given. Active Directory: sAMAccountName, then userPrincipalName, as the login; objectGUID as the uid; disabled accounts and computers are no users. */
export const LDAP_PRESETS: Readonly<
  Record<'openldap' | 'ad', { loginAttributes: string[]; searchFilter: string; attributes: LdapUsersConfig['attributes'] }>
> = {
  openldap: {
    loginAttributes: ['uid'],
    searchFilter: '(objectClass=inetOrgPerson)',
    attributes: { givenname: 'givenName', surname: 'sn', email: 'mail', phone: 'telephoneNumber', mobile: 'mobile', uid: 'entryUUID' },
  },
  ad: {
    loginAttributes: ['sAMAccountName', 'userPrincipalName'],
    searchFilter: '(&(objectClass=user)(!(objectClass=computer))(!(userAccountControl:1.2.840.113556.1.4.803:=2)))',
    attributes: { givenname: 'givenName', surname: 'sn', email: 'mail', phone: 'telephoneNumber', mobile: 'mobile', uid: 'objectGUID' },
  },
};

/** A balanced, parenthesised LDAP filter (its full syntax is checked by the LDAP client when the realm is built). */
function filterProblem(f: string): string | null {
  if (!f.startsWith('(') || !f.endsWith(')')) return 'must be an LDAP filter in parentheses, like (objectClass=person)';
  let depth = 0;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '(') depth++;
    else if (f[i] === ')' && --depth < 0) break;
    if (depth === 0 && i < f.length - 1) return 'must be one filter: wrap several in (&…)';
  }
  return depth === 0 ? null : 'has unbalanced parentheses';
}

function parseLdapUsers(r: Reader, u: Obj, p: string): LdapUsersConfig {
  const preset = r.str(u.preset, `${p}.preset`, 'openldap', { pattern: /^(openldap|ad)$/, hint: 'openldap or ad' }) as 'openldap' | 'ad';
  const defaults = LDAP_PRESETS[preset];
  const rawUrls = typeof u.urls === 'string' ? [u.urls] : r.list(u.urls, `${p}.urls`);
  if (!rawUrls.length) r.problems.push(`${p}.urls is required: a list of ldap:// or ldaps:// URLs, tried in order`);
  const urls = rawUrls.map((x, i) =>
    r.str(x, `${p}.urls[${i}]`, '', {
      pattern: /^ldaps?:\/\/(\[[0-9a-fA-F:.]+\]|[^\s/:?#[\]]+)(:\d{1,5})?\/?$/,
      hint: 'ldap://host[:port] or ldaps://host[:port]',
    }),
  );
  const startTls = r.bool(u.start_tls, `${p}.start_tls`, false);
  if (startTls && urls.some((x) => x.startsWith('ldaps:')))
    r.problems.push(`${p}.start_tls is for ldap:// URLs; an ldaps:// URL is TLS from the start`);
  const bindDn = u.bind_dn === undefined || u.bind_dn === null ? null : r.str(u.bind_dn, `${p}.bind_dn`, '');
  const sources = (['bind_password_file', 'bind_password_env', 'bind_password'] as const).filter(
    (k) => u[k] !== undefined && u[k] !== null,
  );
  let bindPassword: SecretSource | null = null;
  if (sources.length > 1) r.problems.push(`${p}: give only one of ${sources.join(', ')}`);
  else if (sources[0] === 'bind_password_file') bindPassword = { file: r.file(u.bind_password_file, `${p}.bind_password_file`, '') };
  else if (sources[0] === 'bind_password_env')
    bindPassword = {
      env: r.str(u.bind_password_env, `${p}.bind_password_env`, '', {
        pattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
        hint: 'an environment variable name',
      }),
    };
  else if (sources[0] === 'bind_password') bindPassword = { value: r.str(u.bind_password, `${p}.bind_password`, '') };
  if (bindDn !== null && bindDn.trim() === '') r.problems.push(`${p}.bind_dn must not be empty (leave it out for anonymous searches)`);
  if (bindDn !== null && !sources.length) r.problems.push(`${p}.bind_dn needs bind_password_file, bind_password_env or bind_password`);
  if (bindDn === null && bindPassword) r.problems.push(`${p}: a bind password without bind_dn`);
  const baseDn = r.str(u.base_dn, `${p}.base_dn`, '');
  if (!baseDn.trim()) r.problems.push(`${p}.base_dn is required (where users are searched, like ou=people,dc=example,dc=org)`);
  const rawLogin =
    u.login_attribute === undefined || u.login_attribute === null
      ? defaults.loginAttributes
      : Array.isArray(u.login_attribute)
        ? u.login_attribute
        : [u.login_attribute];
  const loginAttributes = rawLogin.map((x, i) =>
    r.str(x, `${p}.login_attribute${Array.isArray(u.login_attribute) ? `[${i}]` : ''}`, '', {
      pattern: LDAP_ATTRIBUTE,
      hint: 'an LDAP attribute name',
    }),
  );
  if (!loginAttributes.length) r.problems.push(`${p}.login_attribute must name at least one attribute`);
  const searchFilter = r.str(u.search_filter, `${p}.search_filter`, defaults.searchFilter);
  const fp = filterProblem(searchFilter);
  if (fp) r.problems.push(`${p}.search_filter ${fp}`);
  const am = r.obj(u.attributes, `${p}.attributes`, LDAP_ATTRIBUTE_KEYS);
  const attributes = Object.fromEntries(
    LDAP_ATTRIBUTE_KEYS.map((k) => {
      const v = am[k];
      if (v === null || v === '') return [k, null]; // explicitly unmapped
      return [
        k,
        r.str(v, `${p}.attributes.${k}`, defaults.attributes[k] ?? '', { pattern: LDAP_ATTRIBUTE, hint: 'an LDAP attribute name' }) || null,
      ];
    }),
  ) as unknown as LdapUsersConfig['attributes'];
  const scope = r.str(u.scope, `${p}.scope`, 'sub', { pattern: /^(sub|one)$/, hint: 'sub or one' }) as 'sub' | 'one';
  return {
    type: 'ldap',
    preset,
    urls,
    bindDn,
    bindPassword,
    baseDn,
    scope,
    loginAttributes,
    searchFilter,
    startTls,
    tlsCaFile: u.tls_ca_file === undefined || u.tls_ca_file === null ? null : r.file(u.tls_ca_file, `${p}.tls_ca_file`, ''),
    attributes,
    timeoutMs: r.int(u.timeout_ms, `${p}.timeout_ms`, 5000, 100, 120_000),
    connectTimeoutMs: r.int(u.connect_timeout_ms, `${p}.connect_timeout_ms`, 3000, 100, 120_000),
    cacheSeconds: r.int(u.cache_seconds, `${p}.cache_seconds`, 60, 0, 86_400),
    retrySeconds: r.int(u.retry_seconds, `${p}.retry_seconds`, 10, 1, 3600),
    maxConcurrentBinds: r.int(u.max_concurrent_binds, `${p}.max_concurrent_binds`, 4, 1, 256),
    sizeLimit: r.int(u.size_limit, `${p}.size_limit`, 1000, 1, 100_000),
  };
}

/** Parses an already YAML-decoded document. Throws ConfigError with every problem. */
export function parseConfig(doc: unknown, baseDir: string): Config {
  const r = new Reader(baseDir);
  const top = r.obj(doc, '', CONFIG_SECTIONS);

  const s = r.obj(top.server, 'server', ['host', 'port', 'public_url', 'body_limit_bytes', 'trusted_proxies', 'node_name']);
  const host = r.str(s.host, 'server.host', '127.0.0.1');
  const port = r.int(s.port, 'server.port', 5001, 0, 65535);
  const publicUrl = r
    .str(s.public_url, 'server.public_url', `http://${host.includes(':') ? `[${host}]` : host}:${port}`, {
      pattern: /^https?:\/\/[^\s/]+(\/[^\s]*)?$/,
      hint: 'an http(s) URL like https://mfa.example.org',
    })
    .replace(/\/+$/, '');
  const server = {
    host,
    port,
    publicUrl,
    bodyLimitBytes: r.int(s.body_limit_bytes, 'server.body_limit_bytes', 64 * 1024, 1024),
    trustedProxies: r.list(s.trusted_proxies, 'server.trusted_proxies').map((x, i) => r.str(x, `server.trusted_proxies[${i}]`, '')),
    nodeName: r.str(s.node_name, 'server.node_name', os.hostname().slice(0, 120) || 'pushgate', {
      pattern: /^[^\s]{1,120}$/,
      hint: '1 to 120 characters without spaces',
    }),
  };

  const d = r.obj(top.database, 'database', ['url', 'pool_max']);
  const database: { url: string; poolMax: number } = {
    url: r.str(d.url, 'database.url', 'sqlite:./data/pushgate.db', {
      pattern: /^(sqlite:.+|postgres(ql)?:\/\/.+|(mysql|mariadb):\/\/.+)$/,
      hint: 'sqlite:PATH, postgres://… or mysql://…',
    }),
    poolMax: r.int(d.pool_max, 'database.pool_max', 10, 1),
  };
  if (database.url.startsWith('sqlite:') && database.url !== 'sqlite::memory:') {
    database.url = 'sqlite:' + path.resolve(baseDir, database.url.slice('sqlite:'.length));
  }

  const sec = r.obj(top.secrets, 'secrets', ['key_file']);
  const secrets = { keyFile: r.file(sec.key_file, 'secrets.key_file', './data/pushgate.key') };

  const realms: RealmConfig[] = r.list(top.realms, 'realms').map((raw, i) => {
    const p = `realms[${i}]`;
    const o = r.obj(raw, p, ['name', 'default', 'users']);
    const name = r.str(o.name, `${p}.name`, '', { pattern: /^[A-Za-z0-9_.-]+$/, hint: 'a name of letters, digits, _ . -' });
    if (!name) r.problems.push(`${p}.name is required`);
    else if (name.length > COLUMN_LIMITS.tokens.realm)
      r.problems.push(`${p}.name must be at most ${COLUMN_LIMITS.tokens.realm} characters (the realm column)`);
    const type = r.str(isObj(o.users) ? o.users.type : undefined, `${p}.users.type`, 'any');
    const u = r.obj(o.users, `${p}.users`, type === 'ldap' ? LDAP_KEYS : ['type', 'path']);
    let users: RealmConfig['users'];
    if (type === 'ldap') {
      users = parseLdapUsers(r, u, `${p}.users`);
    } else if (type === 'file') {
      if (u.path === undefined) r.problems.push(`${p}.users.path is required for type file`);
      users = { type: 'file', path: r.file(u.path, `${p}.users.path`, '') };
    } else {
      if (type !== 'any') r.problems.push(`${p}.users.type must be file, ldap or any`);
      users = { type: 'any' };
    }
    return { name, default: r.bool(o.default, `${p}.default`, false), users };
  });
  const names = new Set<string>();
  realms.forEach((rl, i) => {
    if (names.has(rl.name)) r.problems.push(`realms[${i}].name ${rl.name} is defined twice`);
    names.add(rl.name);
  });
  if (realms.filter((x) => x.default).length > 1) r.problems.push('realms: only one realm may be the default');
  const finalRealms: RealmConfig[] = realms.length ? realms : [{ name: 'default', default: true, users: { type: 'any' } }];

  const c = r.obj(top.challenge, 'challenge', ['validity_seconds', 'type_validity_seconds']);
  const tv = r.obj(
    c.type_validity_seconds,
    'challenge.type_validity_seconds',
    Object.keys(isObj(c.type_validity_seconds) ? c.type_validity_seconds : {}),
  );
  const typeValiditySeconds: Record<string, number> = {};
  for (const [k, v] of Object.entries(tv)) typeValiditySeconds[k] = r.int(v, `challenge.type_validity_seconds.${k}`, 120, 1);
  const challenge = { validitySeconds: r.int(c.validity_seconds, 'challenge.validity_seconds', 120, 1), typeValiditySeconds };

  const t = r.obj(top.tokens, 'tokens', ['max_fail', 'rollout_purge_minutes', 'failcounter_clear_timeout']);
  const tokens = {
    maxFail: r.int(t.max_fail, 'tokens.max_fail', 10, 1),
    rolloutPurgeMinutes: r.int(t.rollout_purge_minutes, 'tokens.rollout_purge_minutes', 1440, 1),
    failcounterClearTimeoutMinutes: r.int(t.failcounter_clear_timeout, 'tokens.failcounter_clear_timeout', 10, 0, 525_600),
  };

  const pn = r.obj(top.pin, 'pin', [
    'memory_kib',
    'time_cost',
    'parallelism',
    'max_concurrent',
    'max_queue',
    'max_queue_per_key',
    'max_wait_ms',
  ]);
  const maxConcurrent = r.int(pn.max_concurrent, 'pin.max_concurrent', defaultPinConcurrency(), 1);
  const maxWaitMs = r.int(pn.max_wait_ms, 'pin.max_wait_ms', pinQueueDefaults(maxConcurrent).maxWaitMs, 1);
  const maxQueue = r.int(pn.max_queue, 'pin.max_queue', pinQueueDefaults(maxConcurrent, maxWaitMs).maxQueue, 1);
  const pin = {
    memoryKib: r.int(pn.memory_kib, 'pin.memory_kib', 19456, 1024),
    timeCost: r.int(pn.time_cost, 'pin.time_cost', 2, 1),
    parallelism: r.int(pn.parallelism, 'pin.parallelism', 1, 1, 16),
    maxConcurrent,
    maxWaitMs,
    maxQueue,
    // At most the whole queue (a larger value would be accepted and ignored).
    // The default follows an explicit max_queue, else what the deadline lets through at 50 ms a check.
    maxQueuePerKey: r.int(
      pn.max_queue_per_key,
      'pin.max_queue_per_key',
      defaultQueuePerKey(maxQueue, pn.max_queue === undefined ? maxConcurrent * Math.ceil(maxWaitMs / 50) : maxQueue),
      1,
      maxQueue,
    ),
  };

  const a = r.obj(top.admin, 'admin', ['jwt_ttl_seconds']);
  const admin = { jwtTtlSeconds: r.int(a.jwt_ttl_seconds, 'admin.jwt_ttl_seconds', 3600, 60) };
  const au = r.obj(top.audit, 'audit', ['retention_days']);
  const audit = { retentionDays: r.int(au.retention_days, 'audit.retention_days', 180, 1) };
  const cl = r.obj(top.cleanup, 'cleanup', ['interval_seconds', 'chunk']);
  const cleanup = {
    intervalSeconds: r.int(cl.interval_seconds, 'cleanup.interval_seconds', 300, 0),
    chunk: r.int(cl.chunk, 'cleanup.chunk', 500, 1),
  };

  const pu = r.obj(top.push, 'push', ['channels', 'poll_max_challenges']);
  const pollMaxChallenges = r.int(pu.poll_max_challenges, 'push.poll_max_challenges', 5, 1, 100);
  const channels: ChannelConfig[] = r.list(pu.channels, 'push.channels').map((raw, i) => {
    const p = `push.channels[${i}]`;
    const o = r.obj(raw, p, ['name', 'type', 'service_account_file', 'https_proxy', 'timeout_ms']);
    const name = r.str(o.name, `${p}.name`, '');
    if (!name) r.problems.push(`${p}.name is required`);
    else if (name.length > COLUMN_LIMITS.tokens.realm)
      r.problems.push(`${p}.name must be at most ${COLUMN_LIMITS.tokens.realm} characters (the realm column)`);
    if (name === 'poll only' || name === 'longpoll') r.problems.push(`${p}.name "${name}" is reserved`);
    const type = r.str(o.type, `${p}.type`, 'firebase');
    if (type !== 'firebase') r.problems.push(`${p}.type must be firebase`);
    if (o.service_account_file === undefined) r.problems.push(`${p}.service_account_file is required`);
    return {
      name,
      type: 'firebase' as const,
      serviceAccountFile: r.file(o.service_account_file, `${p}.service_account_file`, ''),
      httpsProxy: o.https_proxy === undefined ? null : r.str(o.https_proxy, `${p}.https_proxy`, ''),
      timeoutMs: r.int(o.timeout_ms, `${p}.timeout_ms`, 3000, 1),
    };
  });
  const chNames = new Set<string>();
  channels.forEach((ch, i) => {
    if (chNames.has(ch.name)) r.problems.push(`push.channels[${i}].name ${ch.name} is defined twice`);
    chNames.add(ch.name);
  });

  const w = r.obj(top.wait, 'wait', ['max_concurrent', 'max_per_user', 'safety_reread_ms', 'drain_seconds']);
  const wait = {
    maxConcurrent: r.int(w.max_concurrent, 'wait.max_concurrent', 10000, 1),
    maxPerUser: r.int(w.max_per_user, 'wait.max_per_user', 3, 1),
    safetyRereadMs: r.int(w.safety_reread_ms, 'wait.safety_reread_ms', 5000, 100),
    drainSeconds: r.int(w.drain_seconds, 'wait.drain_seconds', 10, 0),
  };
  const dv = r.obj(top.device, 'device', ['max_connections', 'max_per_device', 'poll_seconds', 'sse_keepalive_seconds', 'sse_max_seconds']);
  const device = {
    maxConnections: r.int(dv.max_connections, 'device.max_connections', 10000, 1),
    maxPerDevice: r.int(dv.max_per_device, 'device.max_per_device', 2, 1, 100),
    pollSeconds: r.int(dv.poll_seconds, 'device.poll_seconds', 25, 1, 3600),
    sseKeepaliveSeconds: r.int(dv.sse_keepalive_seconds, 'device.sse_keepalive_seconds', 15, 1, 3600),
    sseMaxSeconds: r.int(dv.sse_max_seconds, 'device.sse_max_seconds', 300, 1, 86400),
  };
  const b = r.obj(top.bus, 'bus', ['redis_url']);
  const bus = {
    redisUrl:
      b.redis_url === undefined || b.redis_url === null
        ? null
        : r.str(b.redis_url, 'bus.redis_url', '', { pattern: /^rediss?:\/\//, hint: 'a redis:// URL' }),
  };
  const lm = r.obj(top.limits, 'limits', [
    'store',
    'key_prefix',
    'failed_per_user',
    'failed_per_address',
    'failed_window_seconds',
    'failed_block_seconds',
    'challenges_per_user',
    'challenges_window_seconds',
  ]);
  const limitsStore = r.str(lm.store, 'limits.store', 'auto', {
    pattern: /^(auto|memory|database|redis)$/,
    hint: 'one of auto, memory, database, redis',
  }) as LimitsStore;
  if (limitsStore === 'redis' && !bus.redisUrl) r.problems.push('limits.store redis needs bus.redis_url');
  if (limitsStore === 'database' && database.url.startsWith('sqlite:'))
    r.problems.push('limits.store database needs PostgreSQL or MariaDB/MySQL (database.url); SQLite is one node: use memory');
  const limits = {
    store: limitsStore,
    keyPrefix: r.str(lm.key_prefix, 'limits.key_prefix', 'pushgate', {
      pattern: /^[A-Za-z0-9_.-]{1,40}$/,
      hint: '1-40 letters, digits, _ . -',
    }),
    failedPerUser: r.int(lm.failed_per_user, 'limits.failed_per_user', 10, 0, 1_000_000),
    failedPerAddress: r.int(lm.failed_per_address, 'limits.failed_per_address', 100, 0, 1_000_000),
    failedWindowSeconds: r.int(lm.failed_window_seconds, 'limits.failed_window_seconds', 600, 1, 86_400),
    failedBlockSeconds: r.int(lm.failed_block_seconds, 'limits.failed_block_seconds', 300, 0, 86_400),
    challengesPerUser: r.int(lm.challenges_per_user, 'limits.challenges_per_user', 10, 0, 1_000_000),
    challengesWindowSeconds: r.int(lm.challenges_window_seconds, 'limits.challenges_window_seconds', 60, 1, 86_400),
  };
  const lg = r.obj(top.log, 'log', ['level', 'format']);
  const level = r.str(lg.level, 'log.level', 'info');
  if (!['debug', 'info', 'warn', 'error'].includes(level)) r.problems.push('log.level must be one of debug, info, warn, error');
  const format = r.str(lg.format, 'log.format', 'auto');
  if (!['auto', 'json', 'pretty'].includes(format)) r.problems.push('log.format must be one of auto, json, pretty');

  const mt = r.obj(top.metrics, 'metrics', ['token', 'listen']);
  const metricsToken = mt.token === undefined || mt.token === null ? null : r.str(mt.token, 'metrics.token', '');
  if (metricsToken !== null && !/^[\x21-\x7e]{16,}$/.test(metricsToken))
    r.problems.push('metrics.token must be at least 16 printable characters without spaces');
  let metricsListen: Config['metrics']['listen'] = null;
  if (mt.listen !== undefined && mt.listen !== null) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(r.str(mt.listen, 'metrics.listen', ''));
    const listenPort = m ? Number(m[3]) : -1;
    if (!m || listenPort > 65535) r.problems.push('metrics.listen must be host:port, like 127.0.0.1:9464 or [::1]:9464');
    else metricsListen = { host: (m[1] ?? m[2])!, port: listenPort };
  }
  const ss = r.obj(top.selfservice, 'selfservice', [
    'enabled',
    'path',
    'cookie_secure',
    'idle_timeout_minutes',
    'absolute_timeout_minutes',
    'login_timeout_minutes',
    'enroll_types',
    'recent_logins',
  ]);
  const enrollTypes = (ss.enroll_types === undefined ? ['totp', 'edupush'] : r.list(ss.enroll_types, 'selfservice.enroll_types')).filter(
    (x, i): x is SelfserviceType => {
      if ((SELFSERVICE_TYPES as readonly unknown[]).includes(x)) return true;
      r.problems.push(`selfservice.enroll_types[${i}] must be one of ${SELFSERVICE_TYPES.join(', ')}`);
      return false;
    },
  );
  const selfservice = {
    enabled: r.bool(ss.enabled, 'selfservice.enabled', false),
    path: r.str(ss.path, 'selfservice.path', '/selfservice', {
      pattern: /^(?:\/[A-Za-z0-9._~-]+)+$/,
      hint: 'an absolute path like /selfservice (letters, digits, . _ ~ -; no trailing slash)',
    }),
    cookieSecure: r.bool(ss.cookie_secure, 'selfservice.cookie_secure', true),
    idleTimeoutMinutes: r.int(ss.idle_timeout_minutes, 'selfservice.idle_timeout_minutes', 15, 1, 1440),
    absoluteTimeoutMinutes: r.int(ss.absolute_timeout_minutes, 'selfservice.absolute_timeout_minutes', 480, 1, 10_080),
    loginTimeoutMinutes: r.int(ss.login_timeout_minutes, 'selfservice.login_timeout_minutes', 5, 1, 60),
    enrollTypes: [...new Set(enrollTypes)],
    recentLogins: r.int(ss.recent_logins, 'selfservice.recent_logins', 20, 1, 200),
  };
  const policies = r.list(top.policies, 'policies');
  const policyFiles = r.list(top.policy_files, 'policy_files').map((x, i) => r.file(x, `policy_files[${i}]`, ''));

  if (r.problems.length) throw new ConfigError(r.problems);
  return {
    server,
    database,
    secrets,
    realms: finalRealms,
    challenge,
    tokens,
    pin,
    admin,
    audit,
    cleanup,
    push: { channels, pollMaxChallenges },
    wait,
    bus,
    device,
    limits,
    log: { level: level as Config['log']['level'], format: format as Config['log']['format'] },
    metrics: { token: metricsToken, listen: metricsListen },
    selfservice,
    policies,
    policyFiles,
    baseDir,
  };
}

/**
 * One setting given outside the YAML file: an environment variable or a command-line flag. `source` names it in
 * errors (`PUSHGATE_PORT (server.port) must be …`). A relative path in `value` is relative to the current directory.
 */
export interface ConfigOverride {
  readonly path: string;
  readonly value: string;
  readonly source: string;
}

/**
 * The settings that differ per node or hold secrets, as environment variables. Applied over the file (a flag such
 * as `serve --port` wins over both); an empty variable counts as unset.
 */
export const ENV_OVERRIDES: ReadonlyArray<readonly [env: string, path: string]> = [
  ['PUSHGATE_HOST', 'server.host'],
  ['PUSHGATE_PORT', 'server.port'],
  ['PUSHGATE_PUBLIC_URL', 'server.public_url'],
  ['PUSHGATE_DATABASE_URL', 'database.url'],
  ['PUSHGATE_KEY_FILE', 'secrets.key_file'],
  ['PUSHGATE_REDIS_URL', 'bus.redis_url'],
  ['PUSHGATE_NODE_NAME', 'server.node_name'],
  ['PUSHGATE_TRUSTED_PROXIES', 'server.trusted_proxies'],
  ['PUSHGATE_DATABASE_POOL_MAX', 'database.pool_max'],
  ['PUSHGATE_LOG_LEVEL', 'log.level'],
  ['PUSHGATE_METRICS_TOKEN', 'metrics.token'],
  ['PUSHGATE_METRICS_LISTEN', 'metrics.listen'],
  ['PUSHGATE_LOG_FORMAT', 'log.format'],
];

/** The overrides the environment sets (see ENV_OVERRIDES). */
export function envOverrides(env: Readonly<Record<string, string | undefined>>): ConfigOverride[] {
  return ENV_OVERRIDES.flatMap(([name, p]) => {
    const value = env[name];
    return value === undefined || value === '' ? [] : [{ path: p, value, source: name }];
  });
}

/**
 * Settings that hold a path: a relative value from outside the file is resolved against the current directory.
 * A list (server.trusted_proxies) is given comma-separated.
 */
function overrideValue(o: ConfigOverride, cwd: string): string | string[] {
  if (o.path === 'server.trusted_proxies')
    return o.value
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  if (o.path === 'secrets.key_file') return path.resolve(cwd, o.value);
  if (o.path === 'database.url' && o.value.startsWith('sqlite:') && o.value !== 'sqlite::memory:') {
    return 'sqlite:' + path.resolve(cwd, o.value.slice('sqlite:'.length));
  }
  return o.value;
}

/**
 * Parses `doc` with `overrides` applied (later entries win). A problem with an overridden setting names its
 * source: `PUSHGATE_PORT (server.port) must be an integer between 0 and 65535`.
 */
export function parseConfigWith(doc: unknown, baseDir: string, overrides: readonly ConfigOverride[], cwd = process.cwd()): Config {
  if (!overrides.length) return parseConfig(doc, baseDir);
  const merged: Obj = isObj(doc) ? structuredClone(doc) : {};
  const sources = new Map<string, string>();
  for (const o of overrides) {
    const [section, key] = o.path.split('.') as [string, string];
    if (merged[section] !== undefined && merged[section] !== null && !isObj(merged[section])) continue; // reported by parseConfig
    const sec: Obj = isObj(merged[section]) ? merged[section] : {};
    merged[section] = sec;
    sec[key] = overrideValue(o, cwd);
    sources.set(o.path, o.source);
  }
  try {
    return parseConfig(isObj(doc) || doc === null || doc === undefined ? merged : doc, baseDir);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(
      err.problems.map((p) => {
        for (const [at, source] of sources) if (p.startsWith(`${at} `)) return `${source} (${at})${p.slice(at.length)}`;
        return p;
      }),
    );
  }
}

/**
 * Loads `file` (or the defaults when null) with `overrides` (environment, flags) applied. YAML syntax errors are
 * reported with their line.
 */
export function loadConfig(file: string | null, overrides: readonly ConfigOverride[] = []): Config {
  if (!file) return parseConfigWith({}, process.cwd(), overrides);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new ConfigError([yamlProblem(file, err, text)]);
  }
  return parseConfigWith(doc ?? {}, path.dirname(path.resolve(file)), overrides);
}

/** The config file named by --config or PUSHGATE_CONFIG, if any. */
export function configPathFrom(argv: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): string | null {
  return argv ?? (env.PUSHGATE_CONFIG || null);
}

const isUnspecified = (h: string): boolean => h === '0.0.0.0' || h === '::' || h === '[::]';
const isLoopback = (h: string): boolean => h === 'localhost' || /^127\./.test(h) || h === '::1' || h === '[::1]';

/**
 * Why a phone cannot use `url` (the address in the QR code / server.public_url), given the listen address and the
 * app's TLS check (the push policy `<type>_ssl_verify`, '1' by default). Empty when nothing is known to be wrong.
 */
export function phoneUrlProblems(url: string, listenHost: string, sslVerify: '0' | '1'): string[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return [`${url} is not a URL`];
  }
  const problems: string[] = [];
  if (isUnspecified(u.hostname)) problems.push(`${u.hostname} is a listen address, not one a phone can call`);
  else if (isLoopback(u.hostname) && isUnspecified(listenHost)) {
    problems.push(
      `${u.hostname} is this machine's loopback address (the server listens on all interfaces: use the name phones reach it by)`,
    );
  }
  if (u.protocol === 'http:' && sslVerify === '1') {
    problems.push(
      'it is plain http:// while the app verifies TLS (ssl_verify 1): pushgate speaks plain HTTP, put a TLS reverse proxy in front of it',
    );
  }
  return problems;
}

/** The `config.warning` text when `server.public_url` cannot work for a phone, else null. */
export function publicUrlWarning(config: Config, sslVerify: '0' | '1'): string | null {
  const problems = phoneUrlProblems(config.server.publicUrl, config.server.host, sslVerify);
  if (!problems.length) return null;
  return (
    `server.public_url ${config.server.publicUrl} cannot work for a phone (push tokens): ${problems.join('; ')}. `
    + 'Set server.public_url (or PUSHGATE_PUBLIC_URL) to the https:// URL of the TLS reverse proxy in front of pushgate (README: "TLS").'
  );
}

/**
 * The `config.warning` text when the enrollment URL of a push token (its `url` and `sslverify` parameters) cannot
 * work for a phone, else null. Other enrollment URLs (otpauth:// of HOTP/TOTP) carry no `url` and give null.
 */
export function enrollmentUrlWarning(serial: string, qrUrl: string | undefined, listenHost: string): string | null {
  if (qrUrl === undefined) return null;
  const q = qrUrl.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : qrUrl.slice(q + 1));
  const url = params.get('url');
  if (url === null) return null;
  const problems = phoneUrlProblems(url, listenHost, params.get('sslverify') === '0' ? '0' : '1');
  if (!problems.length) return null;
  return (
    `token ${serial}: the phone will call ${url}, which cannot work: ${problems.join('; ')}. `
    + 'Set server.public_url (or the registration_url policy) to the https:// URL of the TLS reverse proxy in front of pushgate (README: "TLS").'
  );
}
