/**
 * Push-fatigue state (migration 007): the open push logins of a user (slots) and the back-off per user and per
 * (user, end-user address). Every state change is one conditional statement whose row count decides: a slot is
 * claimed only while it is not open, an open login is closed (answered or expired) once, a strike lands only on the
 * count it was computed from (a lost race reads again).
 */
import type { Knex } from 'knex';
import { guarded, num, numOrNull, rowCount } from './rows.ts';

export type PushLoginState = 'free' | 'open' | 'answered' | 'expired';

export interface PushLoginRecord {
  readonly subject: string;
  readonly slot: number;
  /** The end-user address of the login ('' when none was named by a trusted proxy). */
  readonly client: string;
  readonly transactionId: string | null;
  /** The CHALLENGE answer's challenges as JSON (null while the login is being created). */
  readonly challenges: string | null;
  /** HMAC of the pass that opened the login (hex), null for a trigger without a pass. */
  readonly passMac: string | null;
  readonly state: PushLoginState;
  readonly openedAt: number;
  readonly expiresAt: number;
}

export interface PushBackoffRecord {
  readonly subject: string;
  /** '' = the user as a whole. */
  readonly client: string;
  /** Unanswered or declined pushes in a row. */
  readonly strikes: number;
  readonly lastStrikeAt: number;
  /** Declines in a row. */
  readonly declines: number;
  readonly lastDeclineAt: number | null;
  /** Push logins locked after repeated declines (the user row only). */
  readonly lockedAt: number | null;
  readonly updatedAt: number;
}

export interface PushFatigueRepo {
  /** The slot rows of a subject, slot order. */
  logins(subject: string): Promise<PushLoginRecord[]>;
  loginByTransaction(transactionId: string): Promise<PushLoginRecord | null>;
  /** Creates the free slot rows 0 … count-1 of a subject that do not exist yet. */
  ensureSlots(subject: string, count: number): Promise<void>;
  /** Claims a slot that is not open for a new login; true if this call won it. */
  claim(subject: string, slot: number, client: string, transactionId: string, now: number, expiresAt: number): Promise<boolean>;
  /** Stores the CHALLENGE answer of the login that holds the slot (and the MAC of the pass that opened it). */
  record(subject: string, slot: number, transactionId: string, challenges: string, passMac: string | null): Promise<boolean>;
  /** open → `to` for the login `transactionId` of that slot; true if this call closed it. */
  close(subject: string, slot: number, transactionId: string, to: 'free' | 'answered' | 'expired'): Promise<boolean>;
  /** The back-off rows of a subject: `clients` given → only those (use '' for the user row). */
  backoff(subject: string, clients?: readonly string[]): Promise<PushBackoffRecord[]>;
  /**
   * One more unanswered or declined push for (subject, client), conditional on the count read; retried on a lost race.
   * Returns the row after the strike.
   */
  strike(subject: string, client: string, now: number, declined: boolean): Promise<PushBackoffRecord>;
  /** Locks the subject's push logins (user row); true if this call locked them. */
  lock(subject: string, now: number): Promise<boolean>;
  /** An accept: the user row and the address's row start again (a decline lock is kept). */
  reset(subject: string, client: string): Promise<void>;
  /** Admin unblock: every back-off row of the subject goes (the lock too), every open slot is freed. */
  clear(subject: string): Promise<{ backoff: number; logins: number }>;
  /** Drops back-off rows untouched since `before` that hold no lock (cleanup). */
  deleteStale(before: number, limit: number): Promise<number>;
}

export function createPushFatigueRepo(knex: Knex): PushFatigueRepo {
  const login = (r: Record<string, unknown>): PushLoginRecord => ({
    subject: String(r.subject),
    slot: num(r.slot),
    client: String(r.client ?? ''),
    transactionId: r.transaction_id === null || r.transaction_id === undefined ? null : String(r.transaction_id),
    challenges: r.challenges === null || r.challenges === undefined ? null : String(r.challenges),
    passMac: r.pass_mac === null || r.pass_mac === undefined ? null : String(r.pass_mac),
    state: String(r.state) as PushLoginState,
    openedAt: num(r.opened_at),
    expiresAt: num(r.expires_at),
  });
  const backoff = (r: Record<string, unknown>): PushBackoffRecord => ({
    subject: String(r.subject),
    client: String(r.client ?? ''),
    strikes: num(r.strikes),
    lastStrikeAt: num(r.last_strike_at),
    declines: num(r.declines),
    lastDeclineAt: numOrNull(r.last_decline_at),
    lockedAt: numOrNull(r.locked_at),
    updatedAt: num(r.updated_at),
  });
  const ensureBackoff = (subject: string, client: string) =>
    knex('push_backoff').insert({ subject, client }).onConflict(['subject', 'client']).ignore();
  const readBackoff = async (subject: string, client: string) => {
    const r = await knex('push_backoff').where({ subject, client }).first();
    return r ? backoff(r) : null;
  };

  const repo: PushFatigueRepo = {
    async logins(subject) {
      return (await knex('push_logins').where({ subject }).orderBy('slot')).map(login);
    },
    async loginByTransaction(transactionId) {
      const r = await knex('push_logins').where({ transaction_id: transactionId }).first();
      return r ? login(r) : null;
    },
    async ensureSlots(subject, count) {
      const have = new Set((await knex('push_logins').where({ subject }).select('slot')).map((r) => num(r.slot)));
      const missing = [];
      for (let slot = 0; slot < count; slot++) if (!have.has(slot)) missing.push({ subject, slot });
      if (missing.length) await knex('push_logins').insert(missing).onConflict(['subject', 'slot']).ignore();
    },
    async claim(subject, slot, client, transactionId, now, expiresAt) {
      const n = await knex('push_logins').where({ subject, slot }).andWhereNot('state', 'open').update({
        client,
        transaction_id: transactionId,
        challenges: null,
        pass_mac: null,
        state: 'open',
        opened_at: now,
        expires_at: expiresAt,
      });
      return rowCount(n) > 0;
    },
    async record(subject, slot, transactionId, challenges, passMac) {
      const n = await knex('push_logins').where({ subject, slot, transaction_id: transactionId }).update({ challenges, pass_mac: passMac });
      return rowCount(n) > 0;
    },
    async close(subject, slot, transactionId, to) {
      const n = await knex('push_logins')
        .where({ subject, slot, transaction_id: transactionId, state: 'open' })
        .update({ state: to, pass_mac: null });
      return rowCount(n) > 0;
    },
    async backoff(subject, clients) {
      const q = knex('push_backoff').where({ subject });
      if (clients) q.whereIn('client', [...clients]);
      return (await q.orderBy('client')).map(backoff);
    },
    async strike(subject, client, now, declined) {
      await ensureBackoff(subject, client);
      for (let attempt = 0; ; attempt++) {
        const row = await readBackoff(subject, client);
        if (!row) throw new Error(`push_backoff row ${subject}/${client} vanished`);
        const next = {
          strikes: row.strikes + 1,
          last_strike_at: now,
          declines: declined ? row.declines + 1 : row.declines,
          last_decline_at: declined ? now : row.lastDeclineAt,
          updated_at: now,
        };
        const n = await knex('push_backoff').where({ subject, client, strikes: row.strikes, declines: row.declines }).update(next);
        if (rowCount(n) > 0)
          return {
            ...row,
            strikes: next.strikes,
            lastStrikeAt: now,
            declines: next.declines,
            lastDeclineAt: next.last_decline_at,
            updatedAt: now,
          };
        if (attempt >= 20) throw new Error(`push_backoff ${subject}/${client}: too many concurrent strikes`);
      }
    },
    async lock(subject, now) {
      await ensureBackoff(subject, '');
      const n = await knex('push_backoff')
        .where({ subject, client: '' })
        .whereNull('locked_at')
        .update({ locked_at: now, updated_at: now });
      return rowCount(n) > 0;
    },
    async reset(subject, client) {
      await knex('push_backoff').where({ subject }).whereIn('client', ['', client]).whereNull('locked_at').delete();
    },
    async clear(subject) {
      const b = rowCount(await knex('push_backoff').where({ subject }).delete());
      const l = rowCount(await knex('push_logins').where({ subject, state: 'open' }).update({ state: 'free', pass_mac: null }));
      return { backoff: b, logins: l };
    },
    async deleteStale(before, limit) {
      const keys = await knex('push_backoff')
        .where('updated_at', '<', before)
        .whereNull('locked_at')
        .select('subject', 'client')
        .limit(limit);
      let n = 0;
      for (const k of keys)
        n += rowCount(
          await knex('push_backoff')
            .where({ subject: k.subject, client: k.client })
            .andWhere('updated_at', '<', before)
            .whereNull('locked_at')
            .delete(),
        );
      return n;
    },
  };
  return guarded(repo);
}
