/**
 * GET /audit/: one page of the audit trail with column filters (eduMFA's search), newest first by default.
 * Kept apart from audit_repo (the writer) so the two change independently.
 */
import type { Knex } from 'knex';
import { guarded, num } from './rows.ts';
import { auditRowFromDb, type AuditRow } from './audit_repo.ts';

/** A column filter: `exact` equality, `pattern` a `*` pattern, `member` one entry of a comma list (serials, policies). */
export type AuditCondition =
  | { readonly column: AuditFilterColumn; readonly exact: string }
  | { readonly column: AuditFilterColumn; readonly pattern: string }
  | { readonly column: 'serials' | 'policies'; readonly member: string }
  | { readonly column: 'success'; readonly flag: boolean }
  | { readonly column: 'id'; readonly id: number }
  | { readonly column: 'realm'; readonly in: readonly string[] }
  | { readonly column: 'time'; readonly from: number; readonly before: number };

export type AuditFilterColumn =
  | 'action'
  | 'username'
  | 'realm'
  | 'serials'
  | 'client'
  | 'admin'
  | 'policies'
  | 'info'
  | 'outcome'
  | 'transaction_id'
  | 'request_id'
  | 'application';

export interface AuditQuery {
  readonly conditions: readonly AuditCondition[];
  readonly page: number;
  readonly pageSize: number;
  readonly desc: boolean;
}

/** A row of the audit trail as GET /audit/ reads it (the same shape as the CLI's tail). */
export type AuditSearchRow = AuditRow;

export interface AuditSearch {
  search(q: AuditQuery): Promise<{ rows: AuditSearchRow[]; count: number }>;
}

/** `like` with `!` as the escape character (the same on SQLite, PostgreSQL and MariaDB). */
const likeEscape = (s: string): string => s.replace(/[!%_]/g, (c) => `!${c}`);

export function createAuditSearch(knex: Knex): AuditSearch {
  const sqlite = String(knex.client.driverName) === 'better-sqlite3';
  return guarded<AuditSearch>({
    async search(query) {
      const q = knex('audit');
      for (const c of query.conditions) {
        if ('exact' in c) q.where(c.column, c.exact);
        else if ('pattern' in c) {
          if (sqlite) q.whereRaw('?? glob ?', [c.column, c.pattern.replace(/[[?]/g, (x) => `[${x}]`)]);
          else q.whereRaw("?? like ? escape '!'", [c.column, likeEscape(c.pattern).replaceAll('*', '%')]);
        } else if ('member' in c) {
          const m = likeEscape(c.member);
          q.where((w) =>
            w
              .where(c.column, c.member)
              .orWhereRaw("?? like ? escape '!'", [c.column, `${m},%`])
              .orWhereRaw("?? like ? escape '!'", [c.column, `%,${m}`])
              .orWhereRaw("?? like ? escape '!'", [c.column, `%,${m},%`]),
          );
        } else if ('flag' in c) q.where('success', c.flag);
        else if ('id' in c) q.where('id', c.id);
        else if ('in' in c) q.whereIn('realm', [...c.in]);
        else q.where('time', '>=', c.from).andWhere('time', '<', c.before);
      }
      const counted = await q.clone().count<{ n: number | string }[]>({ n: '*' });
      const rows = await q
        .select('*')
        .orderBy('id', query.desc ? 'desc' : 'asc')
        .limit(query.pageSize)
        .offset((query.page - 1) * query.pageSize);
      return {
        count: num(counted[0]?.n ?? 0),
        rows: rows.map(auditRowFromDb),
      };
    },
  });
}
