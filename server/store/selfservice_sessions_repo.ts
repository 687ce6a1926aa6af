/**
 * The self-service page's sessions (migration 010). The key is the SHA-256 of the cookie's random id (hex), never
 * the id itself. Every change is one conditional statement whose row count decides: a touch only extends a session
 * that is still within its idle and absolute limits, a promotion only moves a session from the stage it was read in.
 */
import type { Knex } from 'knex';
import { guarded, num, rowCount } from './rows.ts';
import { COLUMN_LIMITS } from './limits.ts';

export type SessionStage = 'password' | 'full' | 'first';

export interface SessionRow {
  readonly idHash: string;
  readonly realm: string;
  readonly username: string;
  readonly stage: SessionStage;
  readonly csrf: string;
  readonly transactionId: string | null;
  /** The serials this session enrolled (a `first` session may change only these). */
  readonly enrolled: readonly string[];
  readonly createdAt: number;
  readonly lastSeenAt: number;
}

/** The limits a session must be within, as the oldest times still allowed. */
export interface SessionLimits {
  /** `last_seen_at` at or after this (idle timeout). */
  readonly seenAfter: number;
  /** `created_at` at or after this for a logged-in session (`full`, `first`: absolute timeout). */
  readonly createdAfter: number;
  /** `created_at` at or after this for a half-done login (`password`: the login timeout). */
  readonly loginAfter: number;
}

/** The limits at `now` of the configured timeouts (minutes): one computation for the requests and the cleanup. */
export function sessionLimitsAt(
  t: { readonly idleTimeoutMinutes: number; readonly absoluteTimeoutMinutes: number; readonly loginTimeoutMinutes: number },
  now: number,
): SessionLimits {
  return {
    seenAfter: now - t.idleTimeoutMinutes * 60_000,
    createdAfter: now - t.absoluteTimeoutMinutes * 60_000,
    loginAfter: now - t.loginTimeoutMinutes * 60_000,
  };
}

export interface SelfserviceSessionsRepo {
  create(row: SessionRow): Promise<void>;
  /** Moves `last_seen_at` to `now` when the session is within its limits, and returns it; null when it is not (any more). */
  touch(idHash: string, now: number, limits: SessionLimits): Promise<SessionRow | null>;
  /**
   * Replaces the session's id and CSRF token and moves it to `stage` (its times start again) — only from the stage
   * it was read in. False when another request changed it first.
   */
  promote(idHash: string, from: SessionStage, next: { idHash: string; stage: SessionStage; csrf: string }, now: number): Promise<boolean>;
  /** Sets (or clears) the push transaction of a half-done login. */
  setTransaction(idHash: string, transactionId: string | null): Promise<boolean>;
  /** Records a serial the session enrolled (`enrolled` as read → with it); false when it changed meanwhile or is full. */
  addEnrolled(idHash: string, enrolled: readonly string[], serial: string): Promise<boolean>;
  delete(idHash: string): Promise<boolean>;
  /** Cleanup: at most `limit` sessions outside their limits. */
  deleteExpired(limits: SessionLimits, limit: number): Promise<number>;
}

const fromDb = (r: Record<string, unknown>): SessionRow => ({
  idHash: String(r.id_hash),
  realm: String(r.realm),
  username: String(r.username),
  stage: String(r.stage) as SessionStage,
  csrf: String(r.csrf),
  transactionId: r.transaction_id === null || r.transaction_id === undefined ? null : String(r.transaction_id),
  enrolled: String(r.enrolled ?? '')
    .split(',')
    .filter(Boolean),
  createdAt: num(r.created_at),
  lastSeenAt: num(r.last_seen_at),
});

/** Rows within their limits. */
const live = (q: Knex.QueryBuilder, l: SessionLimits): Knex.QueryBuilder =>
  q
    .andWhere('last_seen_at', '>=', l.seenAfter)
    .andWhere((w) =>
      w
        .where((a) => a.where('stage', 'password').andWhere('created_at', '>=', l.loginAfter))
        .orWhere((b) => b.whereNot('stage', 'password').andWhere('created_at', '>=', l.createdAfter)),
    );

export function createSelfserviceSessionsRepo(knex: Knex): SelfserviceSessionsRepo {
  const repo: SelfserviceSessionsRepo = {
    async create(r) {
      await knex('selfservice_sessions').insert({
        id_hash: r.idHash,
        realm: r.realm,
        username: r.username,
        stage: r.stage,
        csrf: r.csrf,
        transaction_id: r.transactionId,
        enrolled: r.enrolled.join(','),
        created_at: r.createdAt,
        last_seen_at: r.lastSeenAt,
      });
    },
    async touch(idHash, now, limits) {
      const n = rowCount(await live(knex('selfservice_sessions').where({ id_hash: idHash }), limits).update({ last_seen_at: now }));
      if (!n) return null;
      const row = await knex('selfservice_sessions').where({ id_hash: idHash }).first();
      return row ? fromDb(row) : null;
    },
    async promote(idHash, from, next, now) {
      const n = await knex('selfservice_sessions')
        .where({ id_hash: idHash, stage: from })
        .update({ id_hash: next.idHash, stage: next.stage, csrf: next.csrf, transaction_id: null, created_at: now, last_seen_at: now });
      return rowCount(n) > 0;
    },
    async setTransaction(idHash, transactionId) {
      return (
        rowCount(await knex('selfservice_sessions').where({ id_hash: idHash, stage: 'password' }).update({ transaction_id: transactionId }))
        > 0
      );
    },
    async addEnrolled(idHash, enrolled, serial) {
      const next = [...enrolled, serial].join(',');
      if (next.length > COLUMN_LIMITS.selfservice_sessions.enrolled) return false;
      const n = await knex('selfservice_sessions')
        .where({ id_hash: idHash, enrolled: enrolled.join(',') })
        .update({ enrolled: next });
      return rowCount(n) > 0;
    },
    async delete(idHash) {
      return rowCount(await knex('selfservice_sessions').where({ id_hash: idHash }).delete()) > 0;
    },
    async deleteExpired(limits, limit) {
      const ids = (
        await knex('selfservice_sessions')
          .where('last_seen_at', '<', limits.seenAfter)
          .orWhere((a) => a.where('stage', 'password').andWhere('created_at', '<', limits.loginAfter))
          .orWhere((b) => b.whereNot('stage', 'password').andWhere('created_at', '<', limits.createdAfter))
          .select('id_hash')
          .limit(limit)
      ).map((r) => String(r.id_hash));
      if (!ids.length) return 0;
      return rowCount(await knex('selfservice_sessions').whereIn('id_hash', ids).delete());
    },
  };
  return guarded(repo);
}
