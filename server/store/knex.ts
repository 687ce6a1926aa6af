/**
 * Database connection from `database.url`: `sqlite:PATH` (or `sqlite::memory:`), `postgres://…`, `mysql://…`
 * (MariaDB too). Times are epoch-ms integers everywhere; PostgreSQL's INT8 is parsed as a JS number.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import knexFactory, { type Knex } from 'knex';
import type PgModule from 'pg';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';

/** PostgreSQL's driver is loaded only when PostgreSQL is used; INT8 (epoch ms, counts) then parses as a number. */
function preparePg(): void {
  const pg = createRequire(import.meta.url)('pg') as typeof PgModule;
  pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));
}

export function dialectOf(url: string): Dialect {
  if (url.startsWith('sqlite:')) return 'sqlite';
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgres';
  if (/^(mysql|mariadb):\/\//.test(url)) return 'mysql';
  throw new Error(`unsupported database url: ${url.replace(/\/\/[^@]*@/, '//***@')}`);
}

/**
 * The database a URL names, for log lines and error messages: `sqlite /path/file`, `postgres host:port/db`,
 * `mysql host:port/db` — never the user name or the password.
 */
export function describeDatabase(url: string): string {
  const dialect = dialectOf(url);
  if (dialect === 'sqlite') return `sqlite ${url.slice('sqlite:'.length) || ':memory:'}`;
  try {
    const u = new URL(url);
    const port = u.port || (dialect === 'postgres' ? '5432' : '3306');
    return `${dialect} ${u.hostname}:${port}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  } catch {
    return dialect;
  }
}

/**
 * How long a request may wait for a pooled connection (a free slot, or a new connection) before it fails with -600.
 * Bounded so that a database that is gone, hung or overloaded turns into fast errors instead of piling up requests.
 */
export const ACQUIRE_TIMEOUT_MS = 5_000;
/** How long opening one new connection may take (a black-holed host otherwise waits for the OS, ~2 minutes). */
export const CONNECT_TIMEOUT_MS = 5_000;

/**
 * Pool settings shared by PostgreSQL and MariaDB/MySQL (tarn, via knex). `propagateCreateError: true` (knex's default,
 * stated here on purpose): when a new connection cannot be opened (database down: ECONNREFUSED, "the database system
 * is starting up"), the waiting requests fail at once with that error instead of each waiting out the acquire timeout;
 * the next request simply tries again, so service resumes by itself as soon as the database accepts connections.
 * Connections that broke while idle are marked by knex's driver error handlers and discarded on the next acquire.
 */
function poolSettings(max: number) {
  return {
    min: 0,
    max,
    propagateCreateError: true,
    createTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    reapIntervalMillis: 1_000,
  };
}

/** The URL with `name=value` query parameters added unless the URL already sets them. */
function withDefaults(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) if (!u.searchParams.has(k)) u.searchParams.set(k, v);
  return u.toString();
}

/**
 * A file database is its owner's alone, like the key file: the directory 0700 when pushgate creates it, and the file
 * created empty with mode 0600 before better-sqlite3 opens it. SQLite gives the -wal and -shm files the mode of the
 * database file (and fchmods them to it whatever the umask), so they are 0600 too. Pre-creating the file is used
 * rather than a umask around the open, because the umask is process-wide and other work runs meanwhile.
 * An existing directory or file keeps its mode — an admin may have granted a backup group access on purpose — but a
 * file that every local user may read gets a warning (a database from before this rule is 0644).
 */
export function prepareSqliteFile(filename: string, warn?: (msg: string) => void): void {
  fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true, mode: 0o700 });
  try {
    fs.closeSync(fs.openSync(filename, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const mode = fs.statSync(filename).mode & 0o777;
    if (mode & 0o007)
      warn?.(
        `${filename} can be read by every local user (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it and its -wal and -shm files unless that is on purpose`,
      );
  }
}

interface SqliteStatement {
  readonly reader: boolean;
  safeIntegers(on?: boolean): SqliteStatement;
  all(bindings: unknown[]): unknown;
  run(bindings: unknown[]): { lastInsertRowid: number | bigint; changes: number };
}
interface SqliteConnection {
  prepare(sql: string): SqliteStatement;
}
interface QueryObject {
  sql?: string;
  bindings?: unknown[];
  options?: unknown;
  response?: unknown;
  context?: unknown;
}
interface BetterSqliteClientBase {
  _optSafeIntegers(options: unknown): boolean | undefined;
  _formatBindings(bindings: unknown[] | undefined): unknown[];
}

/** Prepared statements kept per SQLite connection (the pool holds one): the repositories use a few dozen shapes. */
export const SQLITE_STATEMENT_CACHE = 256;

/**
 * knex's better-sqlite3 client with a prepared-statement cache. knex prepares every query anew, and on the login path
 * SQLite's prepare cost more than running the statement (bench/README.md, "Where a check's CPU goes"). A statement
 * is reused for the same SQL text on the same connection; better-sqlite3 runs `all`/`run` synchronously, so a cached
 * statement is never in use twice, and SQLite re-prepares it by itself after a schema change (a migration). The cache is
 * bounded (least recently used goes first): a query whose SQL varies with its input (a whereIn of n ids) cannot grow it.
 */
function cachedBetterSqliteClient(): unknown {
  const Base = createRequire(import.meta.url)('knex/lib/dialects/better-sqlite3/index.js') as new (
    ...args: unknown[]
  ) => BetterSqliteClientBase;
  const caches = new WeakMap<SqliteConnection, Map<string, SqliteStatement>>();
  const prepared = (connection: SqliteConnection, sql: string, safe: boolean | undefined): SqliteStatement => {
    let cache = caches.get(connection);
    if (!cache) {
      cache = new Map();
      caches.set(connection, cache);
    }
    const key = `${safe === undefined ? '-' : safe ? '1' : '0'}${sql}`;
    let statement = cache.get(key);
    if (statement) {
      cache.delete(key); // re-inserted below: most recently used last
    } else {
      statement = connection.prepare(sql);
      if (safe !== undefined) statement.safeIntegers(safe);
      if (cache.size >= SQLITE_STATEMENT_CACHE) cache.delete(cache.keys().next().value as string);
    }
    cache.set(key, statement);
    return statement;
  };
  return class CachedBetterSqliteClient extends Base {
    async _query(connection: SqliteConnection | undefined, obj: QueryObject): Promise<QueryObject> {
      if (!obj.sql) throw new Error('The query is empty');
      if (!connection) throw new Error('No connection provided');
      const statement = prepared(connection, obj.sql, this._optSafeIntegers(obj.options));
      const bindings = this._formatBindings(obj.bindings);
      if (statement.reader) {
        obj.response = statement.all(bindings);
        return obj;
      }
      const response = statement.run(bindings);
      obj.response = response;
      obj.context = { lastID: response.lastInsertRowid, changes: response.changes };
      return obj;
    }
  };
}

/*
 * `compileSqlOnError: false` on every dialect: a driver error's message carries the SQL with placeholders, not with
 * the values (knex would inline them: PIN hashes, user names, audit fields end up in the log otherwise).
 */
export interface KnexOptions {
  poolMax?: number;
  /** Where the driver's own warnings go (instead of stderr). */
  log?: (level: 'warn' | 'error' | 'debug', msg: string) => void;
}

export function createKnex(url: string, opts: KnexOptions = {}): Knex {
  const dialect = dialectOf(url);
  const sink = opts.log;
  const log = sink
    ? {
        warn: (m: unknown) => sink('warn', String(m)),
        error: (m: unknown) => sink('error', String(m)),
        deprecate: (m: unknown) => sink('warn', String(m)),
        debug: (m: unknown) => sink('debug', String(m)),
      }
    : undefined;
  if (dialect === 'sqlite') {
    const filename = url.slice('sqlite:'.length) || ':memory:';
    if (filename !== ':memory:') prepareSqliteFile(filename, sink && ((m) => sink('warn', m)));
    return knexFactory({
      log,
      compileSqlOnError: false,
      client: cachedBetterSqliteClient() as 'better-sqlite3',
      connection: { filename },
      useNullAsDefault: true,
      pool: {
        min: 1,
        max: 1,
        afterCreate: (conn: { pragma(s: string): unknown }, done: (err: Error | null, conn: unknown) => void) => {
          if (filename !== ':memory:') conn.pragma('journal_mode = WAL');
          conn.pragma('foreign_keys = ON');
          conn.pragma('busy_timeout = 5000');
          done(null, conn);
        },
      },
    });
  }
  if (dialect === 'postgres') {
    preparePg();
    return knexFactory({
      log,
      compileSqlOnError: false,
      client: 'pg',
      // TCP keep-alive lets the OS notice a peer that vanished without a FIN/RST while the connection sits idle.
      connection: {
        connectionString: url,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
      },
      pool: poolSettings(opts.poolMax ?? 10),
      acquireConnectionTimeout: ACQUIRE_TIMEOUT_MS,
    });
  }
  return knexFactory({
    log,
    compileSqlOnError: false,
    client: 'mysql2',
    // knex parses the query parameters of a mysql URL into driver options (JSON values), so the URL may override these.
    connection: withDefaults(url.replace(/^mariadb:/, 'mysql:'), {
      connectTimeout: String(CONNECT_TIMEOUT_MS),
      enableKeepAlive: 'true',
      keepAliveInitialDelay: '10000',
    }),
    pool: {
      ...poolSettings(opts.poolMax ?? 10),
      afterCreate: (
        conn: { query(sql: string, cb: (err: Error | null) => void): void },
        done: (err: Error | null, conn: unknown) => void,
      ) => {
        conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (err) => done(err, conn));
      },
    },
    acquireConnectionTimeout: ACQUIRE_TIMEOUT_MS,
  });
}
