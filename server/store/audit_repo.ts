/** The audit trail: one row per /validate call and admin action. Never holds a PIN or an OTP. */
import type { Knex } from 'knex';
import { bool, guarded, json, num, rowCount } from './rows.ts';
import { COLUMN_LIMITS, charLength, fitColumn } from './limits.ts';

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
  /** The request id (X-Request-Id) of the request that wrote the row; null from the CLI and for older rows. */
  requestId?: string | null;
  /** The application (name) that signed the request (X-Pushgate-App); null for unsigned requests. */
  application?: string | null;
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

/** How one row is written. */
export interface AuditInsertOptions {
  /**
   * Written at once in a statement of its own instead of with the other rows of this turn of the event loop (the
   * group commit below): for a request with a latency target that must not wait for a whole turn of a flood's
   * requests — the phone's proven requests (its poll). Rows that a flood can produce in bulk must not set it.
   */
  readonly alone?: boolean;
}

export interface AuditRepo {
  insert(e: AuditEntry, opts?: AuditInsertOptions): Promise<void>;
  /** The newest `limit` rows (after `afterId`), oldest first. */
  tail(limit: number, afterId?: number, filter?: AuditFilter): Promise<AuditRow[]>;
  /** The oldest `limit` rows after `afterId`, oldest first (for following the trail without gaps). */
  after(afterId: number, limit: number, filter?: AuditFilter): Promise<AuditRow[]>;
  deleteOlderThan(time: number, limit: number): Promise<number>;
}

const W = COLUMN_LIMITS.audit;

/** NUL cannot be stored in PostgreSQL text; it never comes from a request (the edge refuses it), only from paths. */
const storable = (s: string): string => (s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s);

/**
 * The row as stored: every string cut to its column (COLUMN_LIMITS.audit), a cut value ends with CUT_MARK and
 * `info.cut` lists the columns that were cut (`info` itself when its JSON was too long: it then keeps the start of
 * that JSON under `info.text`).
 */
export function auditRowOf(e: AuditEntry): Record<string, unknown> {
  const cut: string[] = [];
  const fit = (column: keyof typeof W, v: string | null | undefined): string | null => {
    if (v === null || v === undefined) return null;
    const r = fitColumn(storable(v), W[column]);
    if (r.cut) cut.push(column);
    return r.value;
  };
  const row: Record<string, unknown> = {
    time: e.time,
    action: fit('action', e.action),
    success: e.success,
    outcome: fit('outcome', e.outcome),
    username: fit('username', e.username || null),
    realm: fit('realm', e.realm ?? null),
    serials: fit('serials', (e.serials ?? []).join(',')),
    client: fit('client', e.client ?? null),
    admin: fit('admin', e.admin ?? null),
    transaction_id: fit('transaction_id', e.transactionId ?? null),
    policies: fit('policies', (e.policies ?? []).join(',')),
    request_id: fit('request_id', e.requestId ?? null),
    application: fit('application', e.application ?? null),
  };
  const info: Record<string, unknown> = { ...(e.info ?? {}) };
  let text = JSON.stringify(cut.length ? { ...info, cut } : info);
  if (charLength(text) > W.info) {
    cut.push('info');
    // The start of the JSON, as a string (its escaping can make it longer: shrink until the whole fits).
    let keep = W.info - 200;
    do {
      text = JSON.stringify({ cut, text: fitColumn(JSON.stringify(info), keep).value });
      keep = Math.floor(keep / 2);
    } while (charLength(text) > W.info);
  }
  row.info = storable(text);
  return row;
}

/** `like` with `!` as the escape character (the same on SQLite, PostgreSQL and MariaDB). */
const likeEscape = (s: string): string => s.replace(/[!%_]/g, (c) => `!${c}`);

function applyFilter(q: Knex.QueryBuilder, f: AuditFilter = {}): Knex.QueryBuilder {
  if (f.user !== undefined) q.where('username', f.user);
  if (f.outcome !== undefined) q.where('outcome', f.outcome);
  if (f.action !== undefined) q.whereRaw("action like ? escape '!'", [`%${likeEscape(f.action)}%`]);
  if (f.serial !== undefined) {
    const s = likeEscape(f.serial);
    q.where((w) =>
      w
        .where('serials', f.serial!)
        .orWhereRaw("serials like ? escape '!'", [`${s},%`])
        .orWhereRaw("serials like ? escape '!'", [`%,${s}`])
        .orWhereRaw("serials like ? escape '!'", [`%,${s},%`]),
    );
  }
  return q;
}

// biome-ignore lint/suspicious/noExplicitAny: a raw knex row; auditRowFromDb is where its driver-specific column types are normalised
export function auditRowFromDb(r: Record<string, any>): AuditRow {
  return {
    id: num(r.id),
    time: num(r.time),
    action: String(r.action),
    success: bool(r.success),
    outcome: String(r.outcome),
    username: r.username ?? null,
    realm: r.realm ?? null,
    serials: r.serials ? String(r.serials).split(',') : [],
    client: r.client ?? null,
    admin: r.admin ?? null,
    transactionId: r.transaction_id ?? null,
    policies: r.policies ? String(r.policies).split(',') : [],
    info: json<Record<string, unknown>>(r.info, {}),
    node: r.node ?? null,
    requestId: r.request_id ?? null,
    application: r.application ?? null,
  };
}

/** The most rows one INSERT of a group commit carries (15 columns each: far below every database's parameter limit). */
export const AUDIT_BATCH_MAX = 256;

/**
 * Group commit: `insert` resolves once its row is stored, as before (a login is in the audit before its client hears
 * the answer), but the rows of every request that reached its audit row in the same turn of the event loop go into
 * one multi-row INSERT, queued with setImmediate. Under a flood of refused requests this is what keeps the audit from
 * eating the event loop (one statement compiled and run per turn instead of one per request) without dropping or
 * delaying a row past its own answer. When a batch fails, its rows are written one by one, so one bad row fails
 * only its own request.
 *
 * The price is one turn: a row waits until every socket that was ready in its turn has been served (under a flood,
 * tens of requests), and then for the rows of the batch ahead of it. A row inserted `alone` skips the queue: its own
 * INSERT at once (on SQLite a synchronous statement, no turn at all), the rows already queued keep their batch.
 */
function groupCommit(
  write: (rows: Record<string, unknown>[]) => Promise<unknown>,
): (row: Record<string, unknown>, alone?: boolean) => Promise<void> {
  type Pending = { row: Record<string, unknown>; done: (err?: unknown) => void };
  let queue: Pending[] = [];
  let scheduled = false;
  const settle = async (batch: Pending[]) => {
    try {
      await write(batch.map((p) => p.row));
      for (const p of batch) p.done();
    } catch (err) {
      if (batch.length === 1) return batch[0]!.done(err);
      for (const p of batch)
        await write([p.row]).then(
          () => p.done(),
          (e: unknown) => p.done(e ?? new Error('audit insert failed')),
        );
    }
  };
  const flush = () => {
    scheduled = false;
    const all = queue;
    queue = [];
    for (let i = 0; i < all.length; i += AUDIT_BATCH_MAX) void settle(all.slice(i, i + AUDIT_BATCH_MAX));
  };
  return (row, alone) =>
    alone
      ? write([row]).then(() => undefined)
      : new Promise<void>((resolve, reject) => {
          queue.push({ row, done: (err) => (err === undefined ? resolve() : reject(err)) });
          if (!scheduled) {
            scheduled = true;
            setImmediate(flush);
          }
        });
}

/** `node`: written into every row (server.node_name). */
export function createAuditRepo(knex: Knex, node: string | null = null): AuditRepo {
  const nodeValue = node === null ? null : fitColumn(node, W.node).value;
  const write = groupCommit((rows) => knex('audit').insert(rows));
  return guarded<AuditRepo>({
    async insert(e, opts) {
      await write({ ...auditRowOf(e), node: nodeValue }, opts?.alone === true);
    },
    async tail(limit, afterId, filter) {
      const q = applyFilter(knex('audit').orderBy('id', 'desc').limit(limit), filter);
      if (afterId !== undefined) q.where('id', '>', afterId);
      return (await q).reverse().map(auditRowFromDb);
    },
    async after(afterId, limit, filter) {
      return (await applyFilter(knex('audit').where('id', '>', afterId).orderBy('id', 'asc').limit(limit), filter)).map(auditRowFromDb);
    },
    async deleteOlderThan(time, limit) {
      const ids = (await knex('audit').where('time', '<', time).select('id').limit(limit)).map((r) => num(r.id));
      if (!ids.length) return 0;
      return rowCount(await knex('audit').whereIn('id', ids).delete());
    },
  });
}
