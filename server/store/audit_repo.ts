/** The audit trail: one row per /validate call and admin action. Never holds a PIN or an OTP. */
import type { Knex } from 'knex';
import { bool, guarded, json, num, rowCount } from './rows.ts';

export interface AuditEntry {
  time: number;
  action: string; // e.g. 'POST /validate/check', 'token init'
  success: boolean;
  outcome: string; // ACCEPT, REJECT, CHALLENGE, DECLINED, ERROR, OK
  username?: string | null;
  realm?: string | null;
  serials?: readonly string[];
  client?: string | null;
  admin?: string | null;
  transactionId?: string | null;
  policies?: readonly string[];
  info?: Record<string, unknown>;
}
export interface AuditRow extends Required<Omit<AuditEntry, 'info'>> { id: number; info: Record<string, unknown> }

export interface AuditRepo {
  insert(e: AuditEntry): Promise<void>;
  tail(limit: number, afterId?: number): Promise<AuditRow[]>;
  deleteOlderThan(time: number, limit: number): Promise<number>;
}

const clip = (s: string, n: number): string => (s.length > n ? s.slice(0, n - 1) + '…' : s);

export function createAuditRepo(knex: Knex): AuditRepo {
  return guarded<AuditRepo>({
    async insert(e) {
      await knex('audit').insert({
        time: e.time, action: clip(e.action, 60), success: e.success, outcome: e.outcome,
        username: e.username ? clip(e.username, 255) : null, realm: e.realm ?? null,
        serials: clip((e.serials ?? []).join(','), 1000), client: e.client ?? null, admin: e.admin ?? null,
        transaction_id: e.transactionId ?? null, policies: clip((e.policies ?? []).join(','), 1000),
        info: JSON.stringify(e.info ?? {}),
      });
    },
    async tail(limit, afterId) {
      const q = knex('audit').orderBy('id', 'desc').limit(limit);
      if (afterId !== undefined) q.where('id', '>', afterId);
      const rows = await q;
      return rows.reverse().map((r) => ({
        id: num(r.id), time: num(r.time), action: String(r.action), success: bool(r.success), outcome: String(r.outcome),
        username: r.username ?? null, realm: r.realm ?? null, serials: r.serials ? String(r.serials).split(',') : [],
        client: r.client ?? null, admin: r.admin ?? null, transactionId: r.transaction_id ?? null,
        policies: r.policies ? String(r.policies).split(',') : [], info: json<Record<string, unknown>>(r.info, {}),
      }));
    },
    async deleteOlderThan(time, limit) {
      const ids = (await knex('audit').where('time', '<', time).select('id').limit(limit)).map((r) => num(r.id));
      if (!ids.length) return 0;
      return rowCount(await knex('audit').whereIn('id', ids).delete());
    },
  });
}
