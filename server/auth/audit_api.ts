/**
 * GET /audit/ in eduMFA's shape (facts §2.4): `page`, `page_size` (default 15), `sortorder` (desc unless `asc`…),
 * `timelimit` (`30m`, `1d`, …); every other parameter naming an eduMFA audit column is a filter (`*` wildcards;
 * `date` takes a prefix such as `2026-08-21*`); unknown parameters are ignored, as eduMFA does.
 * Answer: `{auditdata, auditcolumns, count, current, next, prev}`.
 */
import type { Deps } from '../deps.ts';
import { ParameterError } from '../../core/errors.ts';
import type { Params } from '../params.ts';
import type { AuditCondition, AuditFilterColumn, AuditSearchRow } from '../store/audit_search.ts';

/** The entry fields, in eduMFA's order where eduMFA has them, then pushgate's own (outcome, transaction_id,
 * request_id, application). */
export const AUDIT_COLUMNS = [
  'number',
  'date',
  'action',
  'success',
  'serial',
  'user',
  'realm',
  'resolver',
  'administrator',
  'info',
  'edumfa_server',
  'policies',
  'client',
  'outcome',
  'transaction_id',
  'request_id',
  'application',
] as const;

/** eduMFA column name → the stored column it filters. */
const TEXT_FILTERS: Readonly<Record<string, AuditFilterColumn>> = {
  action: 'action',
  user: 'username',
  realm: 'realm',
  client: 'client',
  administrator: 'admin',
  info: 'info',
  outcome: 'outcome',
  transaction_id: 'transaction_id',
  request_id: 'request_id',
  application: 'application',
};

const UNIT_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, y: 365 * 86_400_000 };

/** `date` filter: the ISO prefix (before `*`) as a time range — year, month, day, hour, minute or second. */
export function dateRange(value: string): { from: number; before: number } {
  const prefix = value.replace(/\*+$/, '').replace(/[-T: ]$/, '');
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2}))?)?)?)?)?$/.exec(prefix);
  if (!m || value.slice(0, -1).includes('*')) throw new ParameterError(`Invalid date filter '${value}': use a prefix like 2026-08-21*.`);
  const [, y, mo, d, h, mi, sec] = m;
  const parts = [
    Number(y),
    mo ? Number(mo) - 1 : 0,
    d ? Number(d) : 1,
    h ? Number(h) : 0,
    mi ? Number(mi) : 0,
    sec ? Number(sec) : 0,
  ] as const;
  const from = Date.UTC(...parts);
  const level = [mo, d, h, mi, sec].filter((x) => x !== undefined).length;
  const next = [...parts] as number[];
  next[level] = next[level]! + 1; // the next year / month / day / hour / minute / second
  const before = Date.UTC(next[0]!, next[1]!, next[2]!, next[3]!, next[4]!, next[5]!);
  if (new Date(from).toISOString().slice(0, prefix.length) !== prefix.replace(' ', 'T'))
    throw new ParameterError(`Invalid date filter '${value}'.`);
  return { from, before };
}

export async function searchAudit(deps: Deps, params: Params): Promise<Record<string, unknown>> {
  const int = (name: string, dflt: number, max: number): number => {
    const raw = params.get(name);
    if (raw === undefined || raw.trim() === '') return dflt;
    const v = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new ParameterError(`Invalid ${name} '${raw}': an integer from 1 to ${max}.`);
    return v;
  };
  const page = int('page', 1, 1_000_000);
  const pageSize = int('page_size', 15, 1000);
  const conditions: AuditCondition[] = [];
  const timelimit = params.get('timelimit');
  if (timelimit !== undefined && timelimit.trim() !== '') {
    const m = /^[+-]?(\d+)([smhdy])$/.exec(timelimit.trim());
    if (!m) throw new ParameterError(`Invalid timelimit '${timelimit}': a number with s, m, h, d or y (e.g. 1d).`);
    conditions.push({ column: 'time', from: deps.clock.now() - Number(m[1]) * UNIT_MS[m[2]!]!, before: Number.MAX_SAFE_INTEGER });
  }
  for (const [key, raw] of Object.entries(params.all())) {
    const v = raw.trim();
    if (v === '' || /^\*+$/.test(v)) continue;
    const column = TEXT_FILTERS[key];
    if (column) conditions.push(v.includes('*') ? { column, pattern: v } : { column, exact: v });
    else if (key === 'serial' || key === 'policies') {
      const col = key === 'serial' ? 'serials' : 'policies';
      conditions.push(v.includes('*') ? { column: col, pattern: v } : { column: col, member: v });
    } else if (key === 'success') conditions.push({ column: 'success', flag: ['1', 'true'].includes(v.toLowerCase()) });
    else if (key === 'number') {
      if (!/^\d+$/.test(v)) throw new ParameterError(`Invalid number '${raw}'.`);
      conditions.push({ column: 'id', id: Number(v) });
    } else if (key === 'date') conditions.push({ column: 'time', ...dateRange(v) });
    else if (key === 'resolver') {
      const realms = deps.realms.names().filter((n) => deps.realms.get(n)!.resolver === v);
      conditions.push({ column: 'realm', in: realms });
    }
  }
  const desc = (params.get('sortorder') ?? 'desc').trim().toLowerCase() === 'desc';
  const { rows, count } = await deps.store.auditSearch.search({ conditions, page, pageSize, desc });
  const hasNode = rows.some((r) => 'node' in r);
  return {
    auditdata: rows.map((r) => auditEntry(deps, r)),
    auditcolumns: hasNode || rows.length === 0 ? [...AUDIT_COLUMNS] : AUDIT_COLUMNS.filter((c) => c !== 'edumfa_server'),
    count,
    current: page,
    next: count > page * pageSize ? page + 1 : null,
    prev: page > 1 ? page - 1 : null,
  };
}

/** One audit row with eduMFA's field names. */
export function auditEntry(deps: Pick<Deps, 'realms'>, r: AuditSearchRow): Record<string, unknown> {
  return {
    number: r.id,
    date: new Date(r.time).toISOString(),
    action: r.action,
    success: r.success ? 1 : 0,
    serial: r.serials.join(','),
    user: r.username ?? '',
    realm: r.realm ?? '',
    resolver: r.realm ? (deps.realms.get(r.realm)?.resolver ?? '') : '',
    administrator: r.admin ?? '',
    info: Object.keys(r.info).length ? JSON.stringify(r.info) : '',
    ...('node' in r ? { edumfa_server: r.node ?? '' } : {}),
    policies: r.policies.join(','),
    client: r.client ?? '',
    outcome: r.outcome,
    transaction_id: r.transactionId ?? '',
    request_id: r.requestId ?? '',
    application: r.application ?? '',
  };
}
