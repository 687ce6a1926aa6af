/**
 * Configuration: YAML → typed Config. Every key has a default so that `npm start` works with no file; every
 * problem names its exact path (`server.port must be an integer between 1 and 65535`) and refuses the start.
 * config.example.yaml documents every key.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigError } from './errors.ts';

export interface RealmConfig {
  readonly name: string;
  readonly default: boolean;
  readonly users: { readonly type: 'file'; readonly path: string } | { readonly type: 'any' };
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
    readonly host: string; readonly port: number; readonly publicUrl: string; readonly bodyLimitBytes: number;
    /** Proxies whose X-Forwarded-For and `client` parameter are believed (IPs/CIDRs). */
    readonly trustedProxies: readonly string[];
  };
  readonly database: { readonly url: string; readonly poolMax: number };
  readonly secrets: { readonly keyFile: string };
  readonly realms: readonly RealmConfig[];
  readonly challenge: { readonly validitySeconds: number; readonly typeValiditySeconds: Readonly<Record<string, number>> };
  readonly tokens: { readonly maxFail: number; readonly rolloutPurgeMinutes: number };
  readonly pin: { readonly memoryKib: number; readonly timeCost: number; readonly parallelism: number; readonly maxConcurrent: number };
  readonly admin: { readonly jwtTtlSeconds: number };
  readonly audit: { readonly retentionDays: number };
  readonly cleanup: { readonly intervalSeconds: number; readonly chunk: number };
  /** `pollMaxChallenges`: the most open challenges one phone poll answers (newest first). */
  readonly push: { readonly channels: readonly ChannelConfig[]; readonly pollMaxChallenges: number };
  readonly wait: { readonly maxConcurrent: number; readonly maxPerUser: number; readonly safetyRereadMs: number; readonly drainSeconds: number };
  readonly bus: { readonly redisUrl: string | null };
  readonly log: { readonly level: 'debug' | 'info' | 'warn' | 'error' };
  readonly policies: readonly unknown[];
  readonly policyFiles: readonly string[];
  /** Directory relative paths in the file are resolved against. */
  readonly baseDir: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Reader {
  readonly problems: string[] = [];
  readonly baseDir: string;
  constructor(baseDir: string) { this.baseDir = baseDir; }
  obj(v: unknown, p: string, known: readonly string[]): Obj {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) { this.problems.push(`${p} must be a mapping`); return {}; }
    for (const k of Object.keys(v)) if (!known.includes(k)) this.problems.push(`${p ? p + '.' : ''}${k} is not a known setting`);
    return v;
  }
  str(v: unknown, p: string, def: string, opts: { pattern?: RegExp; hint?: string } = {}): string {
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string' && typeof v !== 'number') { this.problems.push(`${p} must be a string`); return def; }
    const s = String(v);
    if (opts.pattern && !opts.pattern.test(s)) { this.problems.push(`${p} must be ${opts.hint ?? `like ${opts.pattern}`}`); return def; }
    return s;
  }
  int(v: unknown, p: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (v === undefined || v === null) return def;
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      this.problems.push(max === Number.MAX_SAFE_INTEGER ? `${p} must be an integer >= ${min}` : `${p} must be an integer between ${min} and ${max}`);
      return def;
    }
    return n;
  }
  bool(v: unknown, p: string, def: boolean): boolean {
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') { this.problems.push(`${p} must be true or false`); return def; }
    return v;
  }
  list(v: unknown, p: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) { this.problems.push(`${p} must be a list`); return []; }
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

/** Parses an already YAML-decoded document. Throws ConfigError with every problem. */
export function parseConfig(doc: unknown, baseDir: string): Config {
  const r = new Reader(baseDir);
  const top = r.obj(doc, '', ['server', 'database', 'secrets', 'realms', 'challenge', 'tokens', 'pin', 'admin', 'audit',
    'cleanup', 'push', 'wait', 'bus', 'log', 'policies', 'policy_files']);

  const s = r.obj(top.server, 'server', ['host', 'port', 'public_url', 'body_limit_bytes', 'trusted_proxies']);
  const host = r.str(s.host, 'server.host', '127.0.0.1');
  const port = r.int(s.port, 'server.port', 5001, 0, 65535);
  const publicUrl = r.str(s.public_url, 'server.public_url', `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    { pattern: /^https?:\/\/[^\s/]+(\/[^\s]*)?$/, hint: 'an http(s) URL like https://mfa.example.org' }).replace(/\/+$/, '');
  const server = {
    host, port, publicUrl,
    bodyLimitBytes: r.int(s.body_limit_bytes, 'server.body_limit_bytes', 64 * 1024, 1024),
    trustedProxies: r.list(s.trusted_proxies, 'server.trusted_proxies').map((x, i) => r.str(x, `server.trusted_proxies[${i}]`, '')),
  };

  const d = r.obj(top.database, 'database', ['url', 'pool_max']);
  const database: { url: string; poolMax: number } = {
    url: r.str(d.url, 'database.url', 'sqlite:./data/pushgate.db', { pattern: /^(sqlite:.+|postgres(ql)?:\/\/.+|(mysql|mariadb):\/\/.+)$/, hint: 'sqlite:PATH, postgres://… or mysql://…' }),
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
    const u = r.obj(o.users, `${p}.users`, ['type', 'path']);
    const type = r.str(u.type, `${p}.users.type`, 'any');
    let users: RealmConfig['users'];
    if (type === 'file') {
      if (u.path === undefined) r.problems.push(`${p}.users.path is required for type file`);
      users = { type: 'file', path: r.file(u.path, `${p}.users.path`, '') };
    } else {
      if (type !== 'any') r.problems.push(`${p}.users.type must be file or any`);
      users = { type: 'any' };
    }
    return { name, default: r.bool(o.default, `${p}.default`, false), users };
  });
  const names = new Set<string>();
  realms.forEach((rl, i) => { if (names.has(rl.name)) r.problems.push(`realms[${i}].name ${rl.name} is defined twice`); names.add(rl.name); });
  if (realms.filter((x) => x.default).length > 1) r.problems.push('realms: only one realm may be the default');
  const finalRealms: RealmConfig[] = realms.length ? realms : [{ name: 'default', default: true, users: { type: 'any' } }];

  const c = r.obj(top.challenge, 'challenge', ['validity_seconds', 'type_validity_seconds']);
  const tv = r.obj(c.type_validity_seconds, 'challenge.type_validity_seconds', Object.keys(isObj(c.type_validity_seconds) ? c.type_validity_seconds : {}));
  const typeValiditySeconds: Record<string, number> = {};
  for (const [k, v] of Object.entries(tv)) typeValiditySeconds[k] = r.int(v, `challenge.type_validity_seconds.${k}`, 120, 1);
  const challenge = { validitySeconds: r.int(c.validity_seconds, 'challenge.validity_seconds', 120, 1), typeValiditySeconds };

  const t = r.obj(top.tokens, 'tokens', ['max_fail', 'rollout_purge_minutes']);
  const tokens = { maxFail: r.int(t.max_fail, 'tokens.max_fail', 10, 1), rolloutPurgeMinutes: r.int(t.rollout_purge_minutes, 'tokens.rollout_purge_minutes', 1440, 1) };

  const pn = r.obj(top.pin, 'pin', ['memory_kib', 'time_cost', 'parallelism', 'max_concurrent']);
  const pin = {
    memoryKib: r.int(pn.memory_kib, 'pin.memory_kib', 19456, 1024),
    timeCost: r.int(pn.time_cost, 'pin.time_cost', 2, 1),
    parallelism: r.int(pn.parallelism, 'pin.parallelism', 1, 1, 16),
    maxConcurrent: r.int(pn.max_concurrent, 'pin.max_concurrent', defaultPinConcurrency(), 1),
  };

  const a = r.obj(top.admin, 'admin', ['jwt_ttl_seconds']);
  const admin = { jwtTtlSeconds: r.int(a.jwt_ttl_seconds, 'admin.jwt_ttl_seconds', 3600, 60) };
  const au = r.obj(top.audit, 'audit', ['retention_days']);
  const audit = { retentionDays: r.int(au.retention_days, 'audit.retention_days', 180, 1) };
  const cl = r.obj(top.cleanup, 'cleanup', ['interval_seconds', 'chunk']);
  const cleanup = { intervalSeconds: r.int(cl.interval_seconds, 'cleanup.interval_seconds', 300, 0), chunk: r.int(cl.chunk, 'cleanup.chunk', 500, 1) };

  const pu = r.obj(top.push, 'push', ['channels', 'poll_max_challenges']);
  const pollMaxChallenges = r.int(pu.poll_max_challenges, 'push.poll_max_challenges', 5, 1, 100);
  const channels: ChannelConfig[] = r.list(pu.channels, 'push.channels').map((raw, i) => {
    const p = `push.channels[${i}]`;
    const o = r.obj(raw, p, ['name', 'type', 'service_account_file', 'https_proxy', 'timeout_ms']);
    const name = r.str(o.name, `${p}.name`, '');
    if (!name) r.problems.push(`${p}.name is required`);
    if (name === 'poll only') r.problems.push(`${p}.name "poll only" is reserved`);
    const type = r.str(o.type, `${p}.type`, 'firebase');
    if (type !== 'firebase') r.problems.push(`${p}.type must be firebase`);
    if (o.service_account_file === undefined) r.problems.push(`${p}.service_account_file is required`);
    return {
      name, type: 'firebase' as const,
      serviceAccountFile: r.file(o.service_account_file, `${p}.service_account_file`, ''),
      httpsProxy: o.https_proxy === undefined ? null : r.str(o.https_proxy, `${p}.https_proxy`, ''),
      timeoutMs: r.int(o.timeout_ms, `${p}.timeout_ms`, 3000, 1),
    };
  });
  const chNames = new Set<string>();
  channels.forEach((ch, i) => { if (chNames.has(ch.name)) r.problems.push(`push.channels[${i}].name ${ch.name} is defined twice`); chNames.add(ch.name); });

  const w = r.obj(top.wait, 'wait', ['max_concurrent', 'max_per_user', 'safety_reread_ms', 'drain_seconds']);
  const wait = {
    maxConcurrent: r.int(w.max_concurrent, 'wait.max_concurrent', 10000, 1),
    maxPerUser: r.int(w.max_per_user, 'wait.max_per_user', 3, 1),
    safetyRereadMs: r.int(w.safety_reread_ms, 'wait.safety_reread_ms', 5000, 100),
    drainSeconds: r.int(w.drain_seconds, 'wait.drain_seconds', 10, 0),
  };
  const b = r.obj(top.bus, 'bus', ['redis_url']);
  const bus = { redisUrl: b.redis_url === undefined || b.redis_url === null ? null : r.str(b.redis_url, 'bus.redis_url', '', { pattern: /^rediss?:\/\//, hint: 'a redis:// URL' }) };
  const lg = r.obj(top.log, 'log', ['level']);
  const level = r.str(lg.level, 'log.level', 'info');
  if (!['debug', 'info', 'warn', 'error'].includes(level)) r.problems.push('log.level must be one of debug, info, warn, error');

  const policies = r.list(top.policies, 'policies');
  const policyFiles = r.list(top.policy_files, 'policy_files').map((x, i) => r.file(x, `policy_files[${i}]`, ''));

  if (r.problems.length) throw new ConfigError(r.problems);
  return {
    server, database, secrets, realms: finalRealms, challenge, tokens, pin, admin, audit, cleanup, push: { channels, pollMaxChallenges }, wait, bus,
    log: { level: level as Config['log']['level'] }, policies, policyFiles, baseDir,
  };
}

/** Loads `file` (or the defaults when null). YAML syntax errors are reported with their line. */
export function loadConfig(file: string | null): Config {
  if (!file) return parseConfig({}, process.cwd());
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (err) {
    throw new ConfigError([`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  let doc: unknown;
  try { doc = YAML.parse(text); } catch (err) {
    throw new ConfigError([`${file}: ${(err as Error).message.split('\n')[0]}`]);
  }
  return parseConfig(doc ?? {}, path.dirname(path.resolve(file)));
}

/** The config file named by --config or PUSHGATE_CONFIG, if any. */
export function configPathFrom(argv: string | undefined): string | null {
  return argv ?? process.env.PUSHGATE_CONFIG ?? null;
}
