/** The Store: repositories over one knex instance. No knex type leaks past this folder. */
import type { Knex } from 'knex';
import { DatabaseError } from '../../core/errors.ts';
import { createKnex, describeDatabase, dialectOf, type Dialect, type KnexOptions } from './knex.ts';
import { migrateLatest } from './migrate.ts';
import type { SecretBox } from './secrets.ts';
import { createTokensRepo, type TokensRepo } from './tokens_repo.ts';
import { createChallengesRepo, type ChallengesRepo } from './challenges_repo.ts';
import { createAdminsRepo, type AdminsRepo } from './admins_repo.ts';
import { createAuditRepo, type AuditRepo } from './audit_repo.ts';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { databaseLimiter, type LimiterOptions } from './rate_limits.ts';
import { createAuditSearch, type AuditSearch } from './audit_search.ts';
import { createLoginAddressesRepo, type LoginAddressesRepo } from './login_addresses_repo.ts';
import { createPushFatigueRepo, type PushFatigueRepo } from './push_fatigue_repo.ts';
import { createSelfserviceSessionsRepo, type SelfserviceSessionsRepo } from './selfservice_sessions_repo.ts';
import { createAppsRepo, type AppsRepo } from './apps_repo.ts';
import { createAppPushesRepo, type AppPushesRepo } from './app_pushes_repo.ts';
import { createWebhooksRepo, type WebhooksRepo } from './webhooks_repo.ts';

export interface Store {
  readonly dialect: Dialect;
  /** Which database this is, for log lines and errors (server/store/knex.ts describeDatabase: no credentials). */
  readonly name: string;
  readonly tokens: TokensRepo;
  readonly challenges: ChallengesRepo;
  readonly admins: AdminsRepo;
  readonly audit: AuditRepo;
  /** Successful login addresses per user (push number matching "on risk"). */
  readonly loginAddresses: LoginAddressesRepo;
  /** GET /audit/ (paged, filtered reads of the audit trail). */
  readonly auditSearch: AuditSearch;
  /** Open push logins and the push back-off (server/auth/push_fatigue.ts). */
  readonly pushFatigue: PushFatigueRepo;
  /** The self-service page's sessions (server/auth/selfservice.ts). */
  readonly selfserviceSessions: SelfserviceSessionsRepo;
  /** Applications (signed requests) and their nonces (issue 15). */
  readonly apps: AppsRepo;
  /** Pushes of applications and approval chains. */
  readonly appPushes: AppPushesRepo;
  /** The webhook outbox and its delivery log. */
  readonly webhooks: WebhooksRepo;
  migrate(): Promise<string[]>;
  /** A rate-limiter-flexible limiter on this database (PostgreSQL / MariaDB only; table rate_limits). */
  rateLimiter(opts: LimiterOptions): RateLimiterAbstract;
  /** A trivial round trip (health and readiness checks). */
  ping(): Promise<void>;
  /** The connection pool now (metrics). SQLite's pool holds its one connection: max 1. */
  poolStats(): PoolStats | null;
  close(): Promise<void>;
  /** For infrastructure that needs the driver (cross-node bus, tests); never for business code. */
  readonly knex: Knex;
}

export interface PoolStats {
  readonly used: number;
  readonly free: number;
  readonly pendingAcquires: number;
  readonly pendingCreates: number;
  readonly max: number;
}

/** The part of tarn's pool (knex's pool) the metrics read. */
interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
  max: number;
}

export interface StoreOptions extends KnexOptions {
  /** This node's name, written into every audit row (server.node_name). */
  node?: string;
}

export function createStore(url: string, box: SecretBox, opts: StoreOptions = {}): Store {
  const knex = createKnex(url, opts);
  const name = describeDatabase(url);
  return {
    dialect: dialectOf(url),
    name,
    tokens: createTokensRepo(knex, box),
    challenges: createChallengesRepo(knex),
    admins: createAdminsRepo(knex),
    audit: createAuditRepo(knex, opts.node ?? null),
    loginAddresses: createLoginAddressesRepo(knex),
    auditSearch: createAuditSearch(knex),
    pushFatigue: createPushFatigueRepo(knex),
    selfserviceSessions: createSelfserviceSessionsRepo(knex),
    apps: createAppsRepo(knex, box),
    appPushes: createAppPushesRepo(knex),
    webhooks: createWebhooksRepo(knex),
    migrate: async () => {
      try {
        return await migrateLatest(knex);
      } catch (err) {
        throw new DatabaseError(err, name);
      }
    },
    rateLimiter: (opts) => databaseLimiter(knex, dialectOf(url), url, opts),
    ping: async () => {
      try {
        await knex.raw('select 1');
      } catch (err) {
        throw new DatabaseError(err, name);
      }
    },
    poolStats() {
      // knex keeps its tarn pool on the client (absent after destroy(), until initialize()).
      const pool = (knex.client as { pool?: TarnPool }).pool;
      if (!pool) return null;
      return {
        used: pool.numUsed(),
        free: pool.numFree(),
        pendingAcquires: pool.numPendingAcquires(),
        pendingCreates: pool.numPendingCreates(),
        max: pool.max,
      };
    },
    close: () => knex.destroy(),
    knex,
  };
}
