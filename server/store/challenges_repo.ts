/**
 * Challenges. A challenge moves pending → accepted | declined, and is consumed (deleted) when its login finishes;
 * each step is one conditional statement guarded by the current status and the expiry, so a duplicate or late
 * answer and a second finalize change nothing.
 */
import type { Knex } from 'knex';
import type { ChallengeRecord } from '../../tokens/types.ts';
import { guarded, json, num, rowCount } from './rows.ts';

export interface NewChallenge {
  transactionId: string;
  serial: string;
  tokenId: number;
  nonce: string;
  session: string;
  data: Record<string, string>;
  createdAt: number;
  expiresAt: number;
}

export interface ChallengesRepo {
  insert(c: NewChallenge): Promise<ChallengeRecord>;
  byTransaction(transactionId: string): Promise<ChallengeRecord[]>;
  bySerialNonce(serial: string, nonce: string): Promise<ChallengeRecord[]>;
  /** Pending, unexpired challenges of a token, oldest first. */
  openForSerial(serial: string, now: number): Promise<ChallengeRecord[]>;
  /**
   * The phone's poll: at most `limit` pending, unexpired challenges of a token, newest first, without those of
   * session `exceptSession` — bounded in the query itself (ORDER BY id DESC LIMIT), however many a flood created.
   */
  newestOpen(serial: string, now: number, limit: number, exceptSession: string): Promise<ChallengeRecord[]>;
  /**
   * pending → accepted|declined while unexpired AND while its token is active, in one conditional statement: an
   * answer never lands on the challenge of a disabled token, whatever runs in between. True if this call won.
   */
  answer(id: number, decision: 'accepted' | 'declined', now: number): Promise<boolean>;
  /**
   * Finishes a login with this challenge: deletes it if it is still `from` and unexpired, in one conditional
   * statement. True if this call won — of parallel finalizes (or a finalize and a late answer) exactly one does.
   */
  consume(id: number, from: 'pending' | 'accepted', now: number): Promise<boolean>;
  /** consume for a one-challenge transaction the phone accepted, found by its transaction id (no read first). */
  consumeAccepted(transactionId: string, now: number): Promise<boolean>;
  deleteTransaction(transactionId: string): Promise<number>;
  delete(id: number): Promise<boolean>;
  /**
   * Deletes at most `limit` expired challenges — except declined ones answered at or after `keepDeclinedSince`:
   * a recent decline is remembered that long (push number matching "on risk", server/auth/push_risk.ts).
   */
  deleteExpired(now: number, limit: number, keepDeclinedSince?: number): Promise<number>;
  /** Whether any of these tokens had a challenge declined at or after `since` (one bounded query). */
  declinedSince(serials: readonly string[], since: number): Promise<boolean>;
}

export function createChallengesRepo(knex: Knex): ChallengesRepo {
  const toRecord = (r: Record<string, unknown>): ChallengeRecord => ({
    id: num(r.id),
    transactionId: String(r.transaction_id),
    serial: String(r.serial),
    nonce: String(r.nonce),
    status: String(r.status) as ChallengeRecord['status'],
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    session: String(r.session ?? ''),
    data: Object.freeze(json<Record<string, string>>(r.data, {})),
  });
  const repo: ChallengesRepo = {
    async insert(c) {
      const row = {
        transaction_id: c.transactionId,
        serial: c.serial,
        token_id: c.tokenId,
        nonce: c.nonce,
        status: 'pending',
        session: c.session,
        data: JSON.stringify(c.data),
        created_at: c.createdAt,
        expires_at: c.expiresAt,
      };
      await knex('challenges').insert(row);
      const r = await knex('challenges')
        .where({ transaction_id: c.transactionId, serial: c.serial, nonce: c.nonce })
        .orderBy('id', 'desc')
        .first();
      return toRecord(r);
    },
    async byTransaction(transactionId) {
      return (await knex('challenges').where({ transaction_id: transactionId }).orderBy('id')).map(toRecord);
    },
    async bySerialNonce(serial, nonce) {
      return (await knex('challenges').where({ serial, nonce }).orderBy('id')).map(toRecord);
    },
    async openForSerial(serial, now) {
      return (await knex('challenges').where({ serial, status: 'pending' }).andWhere('expires_at', '>', now).orderBy('id')).map(toRecord);
    },
    async newestOpen(serial, now, limit, exceptSession) {
      return (
        await knex('challenges')
          .where({ serial, status: 'pending' })
          .andWhere('expires_at', '>', now)
          .andWhereNot('session', exceptSession)
          .orderBy('id', 'desc')
          .limit(limit)
      ).map(toRecord);
    },
    async answer(id, decision, now) {
      return (
        rowCount(
          await knex('challenges')
            .where({ id, status: 'pending' })
            .andWhere('expires_at', '>', now)
            .whereExists((q) =>
              q.select(knex.raw('1')).from('tokens').whereRaw('tokens.id = challenges.token_id').andWhere('tokens.active', true),
            )
            .update({ status: decision, answered_at: now }),
        ) > 0
      );
    },
    async consume(id, from, now) {
      return rowCount(await knex('challenges').where({ id, status: from }).andWhere('expires_at', '>', now).delete()) > 0;
    },
    async consumeAccepted(transactionId, now) {
      return (
        rowCount(
          await knex('challenges').where({ transaction_id: transactionId, status: 'accepted' }).andWhere('expires_at', '>', now).delete(),
        ) > 0
      );
    },
    async deleteTransaction(transactionId) {
      return rowCount(await knex('challenges').where({ transaction_id: transactionId }).delete());
    },
    async delete(id) {
      return rowCount(await knex('challenges').where({ id }).delete()) > 0;
    },
    async deleteExpired(now, limit, keepDeclinedSince) {
      const q = knex('challenges').where('expires_at', '<=', now);
      if (keepDeclinedSince !== undefined)
        q.andWhere((w) => w.whereNot('status', 'declined').orWhereNull('answered_at').orWhere('answered_at', '<', keepDeclinedSince));
      const ids = (await q.select('id').limit(limit)).map((r) => num(r.id));
      if (!ids.length) return 0;
      return rowCount(await knex('challenges').whereIn('id', ids).delete());
    },
    async declinedSince(serials, since) {
      if (!serials.length) return false;
      const row = await knex('challenges')
        .whereIn('serial', [...serials])
        .andWhere({ status: 'declined' })
        .andWhere('answered_at', '>=', since)
        .select('id')
        .first();
      return row !== undefined;
    },
  };
  return guarded(repo);
}
