/**
 * Tokens. Every state change is one conditional statement whose row count decides (design.md §1):
 * a replayed OTP, a second step-2 enrollment or a locked token change nothing.
 */
import type { Knex } from 'knex';
import type { RolloutState, TokenRecord } from '../../tokens/types.ts';
import type { SecretBox } from './secrets.ts';
import { bool, guarded, json, num, numOrNull, rowCount } from './rows.ts';

export interface NewToken {
  serial: string; type: string; username: string | null; realm: string | null; active: boolean;
  rolloutState: RolloutState; pinHash: string | null; otpLen: number; counter: number; maxFail: number;
  description: string; info: Record<string, string>; secrets: Record<string, string>; rolloutExpiresAt: number | null;
}

export interface TokenFilter { username?: string; realm?: string; type?: string; serial?: string }

export interface TokenPatch {
  active?: boolean; rolloutState?: RolloutState; pinHash?: string | null; description?: string;
  info?: Record<string, string>; secrets?: Record<string, string>; rolloutExpiresAt?: number | null;
  username?: string | null; realm?: string | null;
}

export interface TokensRepo {
  insert(t: NewToken, now: number): Promise<TokenRecord>;
  bySerial(serial: string): Promise<TokenRecord | null>;
  list(filter?: TokenFilter): Promise<TokenRecord[]>;
  countByOwner(username: string, realm: string): Promise<number>;
  delete(serial: string): Promise<boolean>;
  /** Unconditional field update; returns whether the token exists. */
  update(serial: string, patch: TokenPatch, now: number): Promise<boolean>;
  /**
   * Disables a token and withdraws (deletes) every challenge it has, in one transaction: a disabled token's pending
   * login can neither be answered, polled nor finalized — not even after it is enabled again. True if it exists.
   */
  disable(serial: string, now: number): Promise<boolean>;
  /** Update only while the token is in `rolloutState` (and, if given, before `notAfter`): the step-2 race guard. */
  updateIfRollout(serial: string, rolloutState: RolloutState, patch: TokenPatch, now: number): Promise<boolean>;
  /**
   * A successful authentication: stores `counter + 1` only if the stored counter is still <= `counter` and the
   * token is not locked; resets the fail counter. False means another request used this OTP first (or the token locked).
   * With `clearBefore` (failcounter_clear_timeout), a token locked before that time counts as not locked.
   */
  recordSuccess(id: number, counter: number | null, now: number, clearBefore?: number | null): Promise<boolean>;
  /**
   * +1 on each token's fail counter (never past max_fail); the increment that reaches max_fail records `locked_at`.
   * Returns the new counts by id.
   */
  incrementFailCount(ids: readonly number[], now: number): Promise<Map<number, number>>;
  /** failcounter_clear_timeout: resets the fail counter of a token that is locked since before `clearBefore`. */
  clearStaleLock(id: number, clearBefore: number, now: number): Promise<boolean>;
  resetFailCount(serial: string, now: number): Promise<boolean>;
  /** Deletes half-enrolled tokens whose enrollment TTL ran out before `before`; at most `limit`. */
  deleteExpiredRollouts(before: number, limit: number): Promise<number>;
}

export function createTokensRepo(knex: Knex, box: SecretBox): TokensRepo {
  const toRecord = (r: Record<string, unknown>): TokenRecord => ({
    id: num(r.id),
    serial: String(r.serial),
    type: String(r.type),
    username: (r.username as string | null) ?? null,
    realm: (r.realm as string | null) ?? null,
    active: bool(r.active),
    rolloutState: String(r.rollout_state ?? '') as RolloutState,
    pinHash: (r.pin_hash as string | null) ?? null,
    otpLen: num(r.otp_len),
    counter: num(r.counter),
    failCount: num(r.fail_count),
    maxFail: num(r.max_fail),
    description: String(r.description ?? ''),
    info: Object.freeze(json<Record<string, string>>(r.info, {})),
    secrets: Object.freeze(r.secrets_enc ? json<Record<string, string>>(box.decrypt(String(r.secrets_enc)), {}) : {}),
    createdAt: num(r.created_at),
    lastAuthAt: numOrNull(r.last_auth_at),
    lockedAt: numOrNull(r.locked_at),
  });

  const patchRow = (p: TokenPatch, now: number): Record<string, unknown> => {
    const row: Record<string, unknown> = { updated_at: now };
    if (p.active !== undefined) row.active = p.active;
    if (p.rolloutState !== undefined) row.rollout_state = p.rolloutState;
    if (p.pinHash !== undefined) row.pin_hash = p.pinHash;
    if (p.description !== undefined) row.description = p.description;
    if (p.info !== undefined) row.info = JSON.stringify(p.info);
    if (p.secrets !== undefined) row.secrets_enc = Object.keys(p.secrets).length ? box.encrypt(JSON.stringify(p.secrets)) : null;
    if (p.rolloutExpiresAt !== undefined) row.rollout_expires_at = p.rolloutExpiresAt;
    if (p.username !== undefined) row.username = p.username;
    if (p.realm !== undefined) row.realm = p.realm;
    return row;
  };

  const repo: TokensRepo = {
    async insert(t, now) {
      await knex('tokens').insert({
        serial: t.serial, type: t.type, username: t.username, realm: t.realm, active: t.active,
        rollout_state: t.rolloutState, pin_hash: t.pinHash, otp_len: t.otpLen, counter: t.counter, fail_count: 0,
        max_fail: t.maxFail, description: t.description, info: JSON.stringify(t.info),
        secrets_enc: Object.keys(t.secrets).length ? box.encrypt(JSON.stringify(t.secrets)) : null,
        created_at: now, updated_at: now, last_auth_at: null, rollout_expires_at: t.rolloutExpiresAt,
      });
      const rec = await repo.bySerial(t.serial);
      if (!rec) throw new Error(`token ${t.serial} vanished after insert`);
      return rec;
    },
    async bySerial(serial) {
      const r = await knex('tokens').where({ serial }).first();
      return r ? toRecord(r) : null;
    },
    async list(filter = {}) {
      const q = knex('tokens').select('*').orderBy('id');
      if (filter.username !== undefined) q.where('username', filter.username);
      if (filter.realm !== undefined) q.where('realm', filter.realm);
      if (filter.type !== undefined) q.where('type', filter.type);
      if (filter.serial !== undefined) q.where('serial', filter.serial);
      return (await q).map(toRecord);
    },
    async countByOwner(username, realm) {
      const r = await knex('tokens').where({ username, realm }).count<{ n: number | string }[]>({ n: '*' });
      return num(r[0]?.n ?? 0);
    },
    async delete(serial) {
      return rowCount(await knex('tokens').where({ serial }).delete()) > 0;
    },
    async update(serial, patch, now) {
      return rowCount(await knex('tokens').where({ serial }).update(patchRow(patch, now))) > 0;
    },
    async disable(serial, now) {
      return knex.transaction(async (trx) => {
        const found = rowCount(await trx('tokens').where({ serial }).update(patchRow({ active: false }, now))) > 0;
        if (found) await trx('challenges').whereIn('token_id', trx('tokens').where({ serial }).select('id')).delete();
        return found;
      });
    },
    async updateIfRollout(serial, rolloutState, patch, now) {
      const n = await knex('tokens').where({ serial, rollout_state: rolloutState })
        .andWhere((q) => q.whereNull('rollout_expires_at').orWhere('rollout_expires_at', '>', now))
        .update(patchRow(patch, now));
      return rowCount(n) > 0;
    },
    async recordSuccess(id, counter, now, clearBefore = null) {
      const q = knex('tokens').where('id', id);
      if (clearBefore === null) q.andWhereRaw('fail_count < max_fail');
      else q.andWhere((w) => w.whereRaw('fail_count < max_fail').orWhere('locked_at', '<', clearBefore));
      const row: Record<string, unknown> = { fail_count: 0, locked_at: null, last_auth_at: now, updated_at: now };
      if (counter !== null) { q.andWhere('counter', '<=', counter); row.counter = counter + 1; }
      return rowCount(await q.update(row)) > 0;
    },
    async incrementFailCount(ids, now) {
      const out = new Map<number, number>();
      if (!ids.length) return out;
      // locked_at is assigned before fail_count: MariaDB/MySQL evaluate single-table SET clauses left to right with
      // the new values, SQLite and PostgreSQL with the old ones — in this order all three read the old fail_count.
      await knex('tokens').whereIn('id', [...ids]).andWhereRaw('fail_count < max_fail')
        .update({
          locked_at: knex.raw('case when fail_count + 1 >= max_fail then ? else locked_at end', [now]),
          fail_count: knex.raw('fail_count + 1'), updated_at: now,
        });
      const rows = await knex('tokens').whereIn('id', [...ids]).select('id', 'fail_count');
      for (const r of rows) out.set(num(r.id), num(r.fail_count));
      return out;
    },
    async clearStaleLock(id, clearBefore, now) {
      const n = await knex('tokens').where('id', id).andWhereRaw('fail_count >= max_fail').andWhere('locked_at', '<', clearBefore)
        .update({ fail_count: 0, locked_at: null, updated_at: now });
      return rowCount(n) > 0;
    },
    async resetFailCount(serial, now) {
      return rowCount(await knex('tokens').where({ serial }).update({ fail_count: 0, locked_at: null, updated_at: now })) > 0;
    },
    async deleteExpiredRollouts(before, limit) {
      const ids = (await knex('tokens').whereNotNull('rollout_expires_at').andWhere('rollout_expires_at', '<=', before)
        .andWhere('rollout_state', 'clientwait').select('id').limit(limit)).map((r) => num(r.id));
      if (!ids.length) return 0;
      return rowCount(await knex('tokens').whereIn('id', ids).andWhere('rollout_state', 'clientwait').delete());
    },
  };
  return guarded(repo);
}
