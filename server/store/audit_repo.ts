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
export interface AuditRow extends Required<Omit<AuditEntry, 'info'>> {
  id: number;
  info: Record<string, unknown>;
  /** The node (server.node_name) that wrote the row; null for rows from before it was recorded. */
  node: string | null;
}

/** Rows matching all given fields: user name, a serial among the row's serials, action containing, outcome. */
export interface AuditFilter {
  user?: string;
  serial?: string;
  action?: string;
  outcome?: string;
}

export interface AuditRepo {
  insert(e: AuditEntry): Promise<void>;
  /** The newest `limit` rows (after `afterId`), oldest first. */
  tail(limit: number, afterId?: number, filter?: AuditFilter): Promise<AuditRow[]>;
  /** The oldest `limit` rows after `afterId`, oldest first (for following the trail without gaps). */
  after(afterId: number, limit: number, filter?: AuditFilter): Promise<AuditRow[]>;
  deleteOlderThan(time: number, limit: number): Promise<number>;
}

const clip = (s: string, n: number): string => (s.length > n ? s.slice(0, n - 1) + '…' : s);

/** `like` with `!` as the escape character (the same on SQLite, PostgreSQL and MariaDB). */
const likeEscape = (s: string): string => s.replace(/[!%_]/g, (c) => `!${c}`);

function applyFilter(q: Knex.QueryBuilder, f: AuditFilter = {}): Knex.QueryBuilder {
  if (f.user !== undefined) q.where('username', f.user);
  if (f.outcome !== undefined) q.where('outcome', f.outcome);
  if (f.action !== undefined) q.whereRaw("action like ? escape '!'", [`%${likeEscape(f.action)}%`]);
  if (f.serial !== undefined) {
    const s = likeEscape(f.serial);
    q.where((w) => w.where('serials', f.serial!)
      .orWhereRaw("serials like ? escape '!'", [`${s},%`])
      .orWhereRaw("serials like ? escape '!'", [`%,${s}`])
      .orWhereRaw("serials like ? escape '!'", [`%,${s},%`]));
  }
  return q;
}

function toRow(r: Record<string, any>): AuditRow {
  return {
    id: num(r.id), time: num(r.time), action: String(r.action), success: bool(r.success), outcome: String(r.outcome),
    username: r.username ?? null, realm: r.realm ?? null, serials: r.serials ? String(r.serials).split(',') : [],
    client: r.client ?? null, admin: r.admin ?? null, transactionId: r.transaction_id ?? null,
    policies: r.policies ? String(r.policies).split(',') : [], info: json<Record<string, unknown>>(r.info, {}), node: r.node ?? null,
  };
}

/** `node`: written into every row (server.node_name). */
export function createAuditRepo(knex: Knex, node: string | null = null): AuditRepo {
  return guarded<AuditRepo>({
    async insert(e) {
      await knex('audit').insert({
        time: e.time, action: clip(e.action, 60), success: e.success, outcome: e.outcome,
        username: e.username ? clip(e.username, 255) : null, realm: e.realm ?? null,
        serials: clip((e.serials ?? []).join(','), 1000), client: e.client ?? null, admin: e.admin ?? null,
        transaction_id: e.transactionId ?? null, policies: clip((e.policies ?? []).join(','), 1000),
        info: JSON.stringify(e.info ?? {}), node,
      });
    },
    async tail(limit, afterId, filter) {
      const q = applyFilter(knex('audit').orderBy('id', 'desc').limit(limit), filter);
      if (afterId !== undefined) q.where('id', '>', afterId);
      return (await q).reverse().map(toRow);
    },
    async after(afterId, limit, filter) {
      return (await applyFilter(knex('audit').where('id', '>', afterId).orderBy('id', 'asc').limit(limit), filter)).map(toRow);
    },
    async deleteOlderThan(time, limit) {
      const ids = (await knex('audit').where('time', '<', time).select('id').limit(limit)).map((r) => num(r.id));
      if (!ids.length) return 0;
      return rowCount(await knex('audit').whereIn('id', ids).delete());
    },
  });
}
