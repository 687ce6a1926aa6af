/**
 * rate-limiter-flexible's database stores over our knex pool: RateLimiterPostgres / RateLimiterMySQL with
 * `storeType: 'knex'` (they borrow a pooled connection per query through knex's client). The `rate_limits` table is
 * created by migration 003_backoff (`tableCreated: true` keeps the library from creating its own). Their counters expire by
 * the wall clock of the node that writes them (the library calls Date.now; see server/auth/throttle.ts).
 */
import type { Knex } from 'knex';
import { RateLimiterMySQL, RateLimiterPostgres, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Dialect } from './knex.ts';

export const RATE_LIMITS_TABLE = 'rate_limits';

export interface LimiterOptions {
  readonly keyPrefix: string;
  readonly points: number;
  readonly duration: number;
  readonly blockDuration?: number;
  /** Answers instead of the store while the store fails (rate-limiter-flexible's insurance limiter). */
  readonly insuranceLimiter?: RateLimiterAbstract;
  /** Only one limiter per table needs to delete expired rows (the library does it every 5 minutes). */
  readonly clearExpired?: boolean;
}

/** The database name of a mysql:// or mariadb:// URL (the library names its table `db`.`table`). */
function mysqlDatabase(url: string): string {
  return decodeURIComponent(new URL(url.replace(/^mariadb:/, 'mysql:')).pathname.replace(/^\//, ''));
}

export function databaseLimiter(knex: Knex, dialect: Dialect, url: string, opts: LimiterOptions): RateLimiterAbstract {
  const { clearExpired = false, ...rest } = opts;
  const common = {
    ...rest,
    storeClient: knex,
    storeType: 'knex',
    tableName: RATE_LIMITS_TABLE,
    tableCreated: true,
    clearExpiredByTimeout: clearExpired,
  };
  if (dialect === 'postgres') return new RateLimiterPostgres(common);
  if (dialect === 'mysql') return new RateLimiterMySQL({ ...common, dbName: mysqlDatabase(url) });
  throw new Error(`no database rate limiter for ${dialect}`);
}
