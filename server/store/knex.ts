/**
 * Database connection from `database.url`: `sqlite:PATH` (or `sqlite::memory:`), `postgres://…`, `mysql://…`
 * (MariaDB too). Times are epoch-ms integers everywhere; PostgreSQL's INT8 is parsed as a JS number.
 */
import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';

pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export function dialectOf(url: string): Dialect {
  if (url.startsWith('sqlite:')) return 'sqlite';
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgres';
  if (/^(mysql|mariadb):\/\//.test(url)) return 'mysql';
  throw new Error(`unsupported database url: ${url.replace(/\/\/[^@]*@/, '//***@')}`);
}

export interface KnexOptions {
  poolMax?: number;
  /** Where the driver's own warnings go (instead of stderr). */
  log?: (level: 'warn' | 'error' | 'debug', msg: string) => void;
}

export function createKnex(url: string, opts: KnexOptions = {}): Knex {
  const dialect = dialectOf(url);
  const sink = opts.log;
  const log = sink ? {
    warn: (m: unknown) => sink('warn', String(m)),
    error: (m: unknown) => sink('error', String(m)),
    deprecate: (m: unknown) => sink('warn', String(m)),
    debug: (m: unknown) => sink('debug', String(m)),
  } : undefined;
  if (dialect === 'sqlite') {
    const filename = url.slice('sqlite:'.length) || ':memory:';
    if (filename !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
    return knexFactory({
      log,
      client: 'better-sqlite3',
      connection: { filename },
      useNullAsDefault: true,
      pool: {
        min: 1, max: 1,
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
    return knexFactory({ log, client: 'pg', connection: url, pool: { min: 0, max: opts.poolMax ?? 10 }, acquireConnectionTimeout: 10_000 });
  }
  return knexFactory({
    log,
    client: 'mysql2',
    connection: url.replace(/^mariadb:/, 'mysql:'),
    pool: {
      min: 0, max: opts.poolMax ?? 10,
      afterCreate: (conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) => {
        conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (err) => done(err, conn));
      },
    },
    acquireConnectionTimeout: 10_000,
  });
}
