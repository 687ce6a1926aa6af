/**
 * Tokens. Every state change is one conditional statement whose row count decides (design.md §1):
 * a replayed OTP, a second step-2 enrollment or a locked token change nothing.
 */
import type { Knex } from 'knex';
import type { RolloutState, TokenRecord } from '../../tokens/types.ts';
import type { SecretBox } from './secrets.ts';
import { bool, guarded, json, num, numOrNull, rowCount } from './rows.ts';

export interface NewToken {
  serial: string;
  type: string;
  username: string | null;
  realm: string | null;
  active: boolean;
  rolloutState: RolloutState;
  pinHash: string | null;
  otpLen: number;
  counter: number;
  maxFail: number;
  description: string;
  info: Record<string, string>;
  secrets: Record<string, string>;
  rolloutExpiresAt: number | null;
  /** Validity period (epoch ms), e.g. the lost-token replacement's end; absent = open. */
  validFrom?: number | null;
  validUntil?: number | null;
  /** Imported state (server/import): the fail counter and when it reached maxFail; absent = 0 / not locked. */
  failCount?: number;
  lockedAt?: number | null;
  /** Admin-set windows (as `POST /token/set`); absent = the policy or the type's default. */
  countWindow?: number | null;
  syncWindow?: number | null;
}

export interface TokenOwner {
  readonly username: string;
  readonly realm: string;
  /** Only these serials (a password-only self-service session: the tokens it enrolled). */
  readonly onlySerials?: readonly string[];
}

export interface TokenFilter {
  username?: string;
  realm?: string;
  type?: string;
  serial?: string;
}

export interface TokenPatch {
  active?: boolean;
  rolloutState?: RolloutState;
  pinHash?: string | null;
  description?: string;
  info?: Record<string, string>;
  secrets?: Record<string, string>;
  rolloutExpiresAt?: number | null;
  username?: string | null;
  realm?: string | null;
  maxFail?: number;
  countWindow?: number | null;
  syncWindow?: number | null;
  validFrom?: number | null;
  validUntil?: number | null;
}

/**
 * GET /token/ (eduMFA's filters): values with `*` are patterns; `type`, `tokenrealm`, `description` and
 * `rolloutState` compare without case, the rest exactly. `owners`: [username, realm] pairs (a user filter).
 */
export interface TokenSearch {
  serial?: string;
  type?: string;
  username?: string;
  realm?: string;
  tokenrealm?: string;
  realmsIn?: readonly string[];
  userid?: string;
  description?: string;
  assigned?: boolean;
  active?: boolean;
  rolloutState?: string;
  infoKey?: string;
  infoValue?: string;
  sortBy: TokenSortColumn;
  sortDesc: boolean;
  page: number;
  pageSize: number;
}
export const TOKEN_SORT_COLUMNS = {
  serial: 'serial',
  id: 'id',
  tokentype: 'type',
  description: 'description',
  active: 'active',
  failcount: 'fail_count',
  maxfail: 'max_fail',
  count: 'counter',
  otplen: 'otp_len',
  rollout_state: 'rollout_state',
  user_id: 'username',
  count_window: 'count_window',
  sync_window: 'sync_window',
  revoked: 'revoked',
  locked: 'revoked',
} as const;
export type TokenSortColumn = keyof typeof TOKEN_SORT_COLUMNS;

export interface TokensRepo {
  insert(t: NewToken, now: number): Promise<TokenRecord>;
  bySerial(serial: string): Promise<TokenRecord | null>;
  /**
   * The same row without its secrets (not read, not decrypted): for a check that needs only the public part — a v2
   * device's request authentication, once per long-poll, which must not hold a decrypted server key while it waits.
   */
  publicBySerial(serial: string): Promise<Omit<TokenRecord, 'secrets'> | null>;
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
  /** Locks a token now (push_decline_lock_target: token): fail_count = max_fail while below it; true if this call locked it. */
  lockNow(id: number, now: number): Promise<boolean>;
  resetFailCount(serial: string, now: number): Promise<boolean>;
  /** One page of GET /token/ and the number of all matches. */
  search(q: TokenSearch): Promise<{ tokens: TokenRecord[]; count: number }>;
  /** Gives an unowned, unrevoked token an owner (fail counter 0; the PIN too when `pinHash` is given). False otherwise. */
  assign(serial: string, username: string, realm: string, pinHash: string | null | undefined, now: number): Promise<boolean>;
  /** Takes the owner and the PIN from these unrevoked tokens, fail counter 0. Returns how many changed. */
  unassign(ids: readonly number[], now: number): Promise<number>;
  /**
   * Revokes: revoked, disabled, and every challenge withdrawn (deleted) in one transaction — its pending logins can
   * be neither answered nor finished. Already revoked tokens are not counted. Returns how many were revoked.
   */
  revoke(ids: readonly number[], now: number): Promise<number>;
  /** A resync: the counter (and info) only if the counter is still `expected` and the token is not revoked; fail counter 0. */
  resync(id: number, expected: number, counter: number, info: Record<string, string> | undefined, now: number): Promise<boolean>;
  /**
   * The self-service page's changes: each only on a token of this owner (one conditional statement; false when the
   * serial is not the owner's, does not exist or is revoked) — a user can never touch another user's token.
   */
  updateOwned(serial: string, owner: TokenOwner, patch: TokenPatch, now: number): Promise<boolean>;
  deleteOwned(serial: string, owner: TokenOwner): Promise<boolean>;
  /**
   * Finishes the owner's half-enrolled token (`clientwait`, before its rollout TTL) whose first OTP was right at
   * `counter`: active, `enrolled`, the replay guard past that OTP. False when anything changed meanwhile.
   */
  completeOwnedRollout(serial: string, owner: TokenOwner, counter: number, now: number): Promise<boolean>;
  /**
   * Deletes a token only while it is still half-enrolled (`clientwait`), in one conditional statement: a step 2 that
   * completed it first wins, and the token stays. True if this call deleted it.
   */
  deleteIfClientwait(id: number): Promise<boolean>;
  /** Deletes half-enrolled tokens whose enrollment TTL ran out before `before`; at most `limit`. */
  deleteExpiredRollouts(before: number, limit: number): Promise<number>;
  /** How many tokens hold encrypted secrets (0 when the tokens table does not exist yet). */
  countWithSecrets(): Promise<number>;
}

/** `like` with `!` as the escape character (the same on SQLite, PostgreSQL and MariaDB). */
const likeEscape = (s: string): string => s.replace(/[!%_]/g, (c) => `!${c}`);
/** An eduMFA `*` pattern as a LIKE pattern. */
const likePattern = (v: string): string => likeEscape(v).replaceAll('*', '%');

/** Every column toRecord reads except the encrypted secrets. */
const PUBLIC_COLUMNS = [
  'id',
  'serial',
  'type',
  'username',
  'realm',
  'active',
  'rollout_state',
  'pin_hash',
  'otp_len',
  'counter',
  'fail_count',
  'max_fail',
  'description',
  'info',
  'count_window',
  'sync_window',
  'revoked',
  'valid_from',
  'valid_until',
  'created_at',
  'last_auth_at',
  'locked_at',
];

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
    countWindow: numOrNull(r.count_window),
    syncWindow: numOrNull(r.sync_window),
    revoked: bool(r.revoked),
    validFrom: numOrNull(r.valid_from),
    validUntil: numOrNull(r.valid_until),
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
    if (p.maxFail !== undefined) row.max_fail = p.maxFail;
    if (p.countWindow !== undefined) row.count_window = p.countWindow;
    if (p.syncWindow !== undefined) row.sync_window = p.syncWindow;
    if (p.validFrom !== undefined) row.valid_from = p.validFrom;
    if (p.validUntil !== undefined) row.valid_until = p.validUntil;
    return row;
  };

  const repo: TokensRepo = {
    async insert(t, now) {
      await knex('tokens').insert({
        serial: t.serial,
        type: t.type,
        username: t.username,
        realm: t.realm,
        active: t.active,
        rollout_state: t.rolloutState,
        pin_hash: t.pinHash,
        otp_len: t.otpLen,
        counter: t.counter,
        fail_count: t.failCount ?? 0,
        locked_at: t.lockedAt ?? null,
        max_fail: t.maxFail,
        count_window: t.countWindow ?? null,
        sync_window: t.syncWindow ?? null,
        description: t.description,
        info: JSON.stringify(t.info),
        secrets_enc: Object.keys(t.secrets).length ? box.encrypt(JSON.stringify(t.secrets)) : null,
        created_at: now,
        updated_at: now,
        last_auth_at: null,
        rollout_expires_at: t.rolloutExpiresAt,
        valid_from: t.validFrom ?? null,
        valid_until: t.validUntil ?? null,
      });
      const rec = await repo.bySerial(t.serial);
      if (!rec) throw new Error(`token ${t.serial} vanished after insert`);
      return rec;
    },
    async bySerial(serial) {
      const r = await knex('tokens').where({ serial }).first();
      return r ? toRecord(r) : null;
    },
    async publicBySerial(serial) {
      const r = await knex('tokens').where({ serial }).first(PUBLIC_COLUMNS);
      if (!r) return null;
      const { secrets: _none, ...rest } = toRecord(r);
      return rest;
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
      return rowCount(await knex('tokens').where({ serial, revoked: false }).update(patchRow(patch, now))) > 0;
    },
    async disable(serial, now) {
      return knex.transaction(async (trx) => {
        const found =
          rowCount(
            await trx('tokens')
              .where({ serial })
              .update(patchRow({ active: false }, now)),
          ) > 0;
        if (found) await trx('challenges').whereIn('token_id', trx('tokens').where({ serial }).select('id')).delete();
        return found;
      });
    },
    async updateIfRollout(serial, rolloutState, patch, now) {
      const n = await knex('tokens')
        .where({ serial, rollout_state: rolloutState, revoked: false })
        .andWhere((q) => q.whereNull('rollout_expires_at').orWhere('rollout_expires_at', '>', now))
        .update(patchRow(patch, now));
      return rowCount(n) > 0;
    },
    async recordSuccess(id, counter, now, clearBefore = null) {
      const q = knex('tokens').where({ id, revoked: false });
      if (clearBefore === null) q.andWhereRaw('fail_count < max_fail');
      else q.andWhere((w) => w.whereRaw('fail_count < max_fail').orWhere('locked_at', '<', clearBefore));
      const row: Record<string, unknown> = { fail_count: 0, locked_at: null, last_auth_at: now, updated_at: now };
      if (counter !== null) {
        q.andWhere('counter', '<=', counter);
        row.counter = counter + 1;
      }
      return rowCount(await q.update(row)) > 0;
    },
    async incrementFailCount(ids, now) {
      const out = new Map<number, number>();
      if (!ids.length) return out;
      // locked_at is assigned before fail_count: MariaDB/MySQL evaluate single-table SET clauses left to right with
      // the new values, SQLite and PostgreSQL with the old ones — in this order all three read the old fail_count.
      await knex('tokens')
        .whereIn('id', [...ids])
        .andWhereRaw('fail_count < max_fail')
        .update({
          locked_at: knex.raw('case when fail_count + 1 >= max_fail then ? else locked_at end', [now]),
          fail_count: knex.raw('fail_count + 1'),
          updated_at: now,
        });
      const rows = await knex('tokens')
        .whereIn('id', [...ids])
        .select('id', 'fail_count');
      for (const r of rows) out.set(num(r.id), num(r.fail_count));
      return out;
    },
    async clearStaleLock(id, clearBefore, now) {
      const n = await knex('tokens')
        .where('id', id)
        .andWhereRaw('fail_count >= max_fail')
        .andWhere('locked_at', '<', clearBefore)
        .update({ fail_count: 0, locked_at: null, updated_at: now });
      return rowCount(n) > 0;
    },
    async lockNow(id, now) {
      const n = await knex('tokens')
        .where('id', id)
        .andWhereRaw('fail_count < max_fail')
        .update({ fail_count: knex.raw('max_fail'), locked_at: now, updated_at: now });
      return rowCount(n) > 0;
    },
    async resetFailCount(serial, now) {
      return rowCount(await knex('tokens').where({ serial }).update({ fail_count: 0, locked_at: null, updated_at: now })) > 0;
    },
    async search(s) {
      const q = knex('tokens');
      const sqlite = String(knex.client.driverName) === 'better-sqlite3';
      /** Exact comparison, or a `*` pattern (GLOB on SQLite, whose LIKE ignores case; LIKE elsewhere). */
      const exact = (col: string, v: string) => {
        if (!v.includes('*')) q.where(col, v);
        else if (sqlite) q.whereRaw('?? glob ?', [col, v.replace(/[[?]/g, (c) => `[${c}]`)]);
        else q.whereRaw("?? like ? escape '!'", [col, likePattern(v)]);
      };
      const folded = (col: string, v: string) => {
        if (v.includes('*')) q.whereRaw("lower(??) like lower(?) escape '!'", [col, likePattern(v)]);
        else q.whereRaw('lower(??) = lower(?)', [col, v]);
      };
      if (s.serial !== undefined) exact('serial', s.serial);
      if (s.type !== undefined) folded('type', s.type);
      if (s.username !== undefined) q.where('username', s.username);
      if (s.realm !== undefined) q.where('realm', s.realm);
      if (s.tokenrealm !== undefined) folded('realm', s.tokenrealm);
      if (s.realmsIn !== undefined) q.whereIn('realm', [...s.realmsIn]);
      if (s.userid !== undefined) exact('username', s.userid);
      if (s.description !== undefined) folded('description', s.description);
      if (s.assigned !== undefined) {
        if (s.assigned) q.whereNotNull('username');
        else q.whereNull('username');
      }
      if (s.active !== undefined) q.where('active', s.active);
      if (s.rolloutState !== undefined) folded('rollout_state', s.rolloutState);
      // info is the JSON text of a flat string map written by JSON.stringify: `"key":"value"` (both escaped) occurs
      // in it exactly when the map has that entry (a quote inside a key or value is always escaped).
      if (s.infoKey !== undefined && s.infoValue !== undefined) {
        const needle = `${JSON.stringify(s.infoKey)}:${JSON.stringify(s.infoValue)}`;
        q.whereRaw("?? like ? escape '!'", ['info', `%${likeEscape(needle)}%`]);
      }
      const counted = await q.clone().count<{ n: number | string }[]>({ n: '*' });
      const rows = await q
        .select('*')
        .orderBy(TOKEN_SORT_COLUMNS[s.sortBy], s.sortDesc ? 'desc' : 'asc')
        .orderBy('id')
        .limit(s.pageSize)
        .offset((s.page - 1) * s.pageSize);
      return { tokens: rows.map(toRecord), count: num(counted[0]?.n ?? 0) };
    },
    async assign(serial, username, realm, pinHash, now) {
      const row: Record<string, unknown> = { username, realm, fail_count: 0, locked_at: null, updated_at: now };
      if (pinHash !== undefined) row.pin_hash = pinHash;
      return rowCount(await knex('tokens').where({ serial, revoked: false }).whereNull('username').update(row)) > 0;
    },
    async unassign(ids, now) {
      if (!ids.length) return 0;
      return rowCount(
        await knex('tokens')
          .whereIn('id', [...ids])
          .andWhere('revoked', false)
          .update({ username: null, realm: null, pin_hash: null, fail_count: 0, locked_at: null, updated_at: now }),
      );
    },
    async revoke(ids, now) {
      if (!ids.length) return 0;
      return knex.transaction(async (trx) => {
        const n = rowCount(
          await trx('tokens')
            .whereIn('id', [...ids])
            .andWhere('revoked', false)
            .update({ revoked: true, active: false, updated_at: now }),
        );
        await trx('challenges')
          .whereIn('token_id', [...ids])
          .delete();
        return n;
      });
    },
    async resync(id, expected, counter, info, now) {
      const row: Record<string, unknown> = { counter, fail_count: 0, locked_at: null, updated_at: now };
      if (info !== undefined) row.info = JSON.stringify(info);
      return rowCount(await knex('tokens').where({ id, counter: expected, revoked: false }).update(row)) > 0;
    },
    async countWithSecrets() {
      if (!(await knex.schema.hasTable('tokens'))) return 0;
      const r = await knex('tokens').whereNotNull('secrets_enc').count<{ n: number | string }[]>({ n: '*' });
      return num(r[0]?.n ?? 0);
    },
    async updateOwned(serial, owner, patch, now) {
      const n = await knex('tokens')
        .where({ serial, username: owner.username, realm: owner.realm, revoked: false })
        .modify((q) => {
          if (owner.onlySerials) q.whereIn('serial', [...owner.onlySerials]);
        })
        .update(patchRow(patch, now));
      return rowCount(n) > 0;
    },
    async deleteOwned(serial, owner) {
      const n = await knex('tokens')
        .where({ serial, username: owner.username, realm: owner.realm })
        .modify((q) => {
          if (owner.onlySerials) q.whereIn('serial', [...owner.onlySerials]);
        })
        .delete();
      return rowCount(n) > 0;
    },
    async completeOwnedRollout(serial, owner, counter, now) {
      const n = await knex('tokens')
        .where({ serial, username: owner.username, realm: owner.realm, revoked: false, rollout_state: 'clientwait' })
        .andWhere('counter', '<=', counter)
        .andWhere((q) => q.whereNull('rollout_expires_at').orWhere('rollout_expires_at', '>', now))
        .modify((q) => {
          if (owner.onlySerials) q.whereIn('serial', [...owner.onlySerials]);
        })
        .update({
          ...patchRow({ active: true, rolloutState: 'enrolled', rolloutExpiresAt: null }, now),
          counter: counter + 1,
          fail_count: 0,
        });
      return rowCount(n) > 0;
    },
    async deleteIfClientwait(id) {
      return rowCount(await knex('tokens').where({ id, rollout_state: 'clientwait' }).delete()) > 0;
    },
    async deleteExpiredRollouts(before, limit) {
      const ids = (
        await knex('tokens')
          .whereNotNull('rollout_expires_at')
          .andWhere('rollout_expires_at', '<=', before)
          .andWhere('rollout_state', 'clientwait')
          .select('id')
          .limit(limit)
      ).map((r) => num(r.id));
      if (!ids.length) return 0;
      return rowCount(await knex('tokens').whereIn('id', ids).andWhere('rollout_state', 'clientwait').delete());
    },
  };
  return guarded(repo);
}
