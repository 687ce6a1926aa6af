/**
 * Where each user has logged in from (migration 008): one row per (realm, user, end-user address). A success from a
 * known address is one UPDATE (move last_at); only a new address inserts (ignoring a row a parallel login just made)
 * and then prunes the user's oldest rows. Pruning and the cleanup are idempotent deletes by id. Read by the push risk decision (server/auth/push_risk.ts): is this address new?
 */
import type { Knex } from 'knex';
import { guarded, num, rowCount } from './rows.ts';

export interface LoginHistory {
  /** Rows of this user used at or after `since` (bounded by the per-user limit). */
  readonly addresses: number;
  /** This address is one of them. */
  readonly known: boolean;
}

export interface LoginAddressesRepo {
  /**
   * Records a successful login of the user from `address`: moves its last_at (one UPDATE) or inserts the row. Returns
   * true when the address was new (the caller then prunes).
   */
  touch(realm: string, username: string, address: string, now: number): Promise<boolean>;
  /** The user's addresses used since `since`, and whether `address` is one of them (one query). */
  history(realm: string, username: string, address: string, since: number): Promise<LoginHistory>;
  /** Deletes the user's rows beyond the `keep` most recently used. Returns how many went. */
  prune(realm: string, username: string, keep: number): Promise<number>;
  /** Cleanup: at most `limit` rows last used before `before`. */
  deleteOlderThan(before: number, limit: number): Promise<number>;
}

export function createLoginAddressesRepo(knex: Knex): LoginAddressesRepo {
  const repo: LoginAddressesRepo = {
    async touch(realm, username, address, now) {
      const moved = rowCount(await knex('login_addresses').where({ realm, username, address }).update({ last_at: now }));
      if (moved > 0) return false;
      await knex('login_addresses')
        .insert({ realm, username, address, first_at: now, last_at: now })
        .onConflict(['realm', 'username', 'address'])
        .merge({ last_at: now });
      return true;
    },
    async history(realm, username, address, since) {
      const row = await knex('login_addresses')
        .where({ realm, username })
        .andWhere('last_at', '>=', since)
        .select(knex.raw('count(*) as n'), knex.raw('sum(case when address = ? then 1 else 0 end) as hit', [address]))
        .first();
      return { addresses: num(row?.n ?? 0), known: num(row?.hit ?? 0) > 0 };
    },
    async prune(realm, username, keep) {
      const ids = (
        await knex('login_addresses')
          .where({ realm, username })
          .orderBy('last_at', 'desc')
          .orderBy('id', 'desc')
          .offset(keep)
          .limit(100)
          .select('id')
      ).map((r) => num(r.id));
      if (!ids.length) return 0;
      return rowCount(await knex('login_addresses').whereIn('id', ids).delete());
    },
    async deleteOlderThan(before, limit) {
      const ids = (await knex('login_addresses').where('last_at', '<', before).select('id').limit(limit)).map((r) => num(r.id));
      if (!ids.length) return 0;
      return rowCount(await knex('login_addresses').whereIn('id', ids).delete());
    },
  };
  return guarded(repo);
}
