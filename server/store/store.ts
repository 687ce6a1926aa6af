/** The Store: repositories over one knex instance. No knex type leaks past this folder. */
import type { Knex } from 'knex';
import { DatabaseError } from '../../core/errors.ts';
import { createKnex, dialectOf, type Dialect, type KnexOptions } from './knex.ts';
import { migrateLatest } from './migrate.ts';
import type { SecretBox } from './secrets.ts';
import { createTokensRepo, type TokensRepo } from './tokens_repo.ts';
import { createChallengesRepo, type ChallengesRepo } from './challenges_repo.ts';
import { createAdminsRepo, type AdminsRepo } from './admins_repo.ts';
import { createAuditRepo, type AuditRepo } from './audit_repo.ts';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { databaseLimiter, type LimiterOptions } from './rate_limits.ts';
import { createAuditSearch, type AuditSearch } from './audit_search.ts';
import { createPushFatigueRepo, type PushFatigueRepo } from './push_fatigue_repo.ts';

export interface Store {
  readonly dialect: Dialect;
  readonly tokens: TokensRepo;
  readonly challenges: ChallengesRepo;
  readonly admins: AdminsRepo;
  readonly audit: AuditRepo;
  /** GET /audit/ (paged, filtered reads of the audit trail). */
  readonly auditSearch: AuditSearch;
  /** Open push logins and the push back-off (server/auth/push_fatigue.ts). */
  readonly pushFatigue: PushFatigueRepo;
  migrate(): Promise<string[]>;
  /** A rate-limiter-flexible limiter on this database (PostgreSQL / MariaDB only; table rate_limits). */
  rateLimiter(opts: LimiterOptions): RateLimiterAbstract;
  /** A trivial round trip (health check). */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** For infrastructure that needs the driver (cross-node bus, tests); never for business code. */
  readonly knex: Knex;
}

export interface StoreOptions extends KnexOptions {
  /** This node's name, written into every audit row (server.node_name). */
  node?: string;
}

export function createStore(url: string, box: SecretBox, opts: StoreOptions = {}): Store {
  const knex = createKnex(url, opts);
  return {
    dialect: dialectOf(url),
    tokens: createTokensRepo(knex, box),
    challenges: createChallengesRepo(knex),
    admins: createAdminsRepo(knex),
    audit: createAuditRepo(knex, opts.node ?? null),
    auditSearch: createAuditSearch(knex),
    pushFatigue: createPushFatigueRepo(knex),
    migrate: () => migrateLatest(knex),
    rateLimiter: (opts) => databaseLimiter(knex, dialectOf(url), url, opts),
    ping: async () => {
      try {
        await knex.raw('select 1');
      } catch (err) {
        throw new DatabaseError(err);
      }
    },
    close: () => knex.destroy(),
    knex,
  };
}
