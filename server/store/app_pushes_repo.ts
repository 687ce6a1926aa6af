/**
 * Pushes of applications and approval chains (issue 15). A push row moves
 * waiting → sending → pending → approved | declined | expired | withdrawn (or failed, when no push could be sent);
 * every move is one conditional UPDATE guarded by the status it leaves, so of two nodes (or the answer path and a
 * reader) only one wins each move, and only the winner acts on it (the next step, the webhook, the statistics).
 */
import type { Knex } from 'knex';
import { guarded, json, num, numOrNull, rowCount } from './rows.ts';

export type PushStatus = 'waiting' | 'sending' | 'pending' | 'approved' | 'declined' | 'expired' | 'withdrawn' | 'failed' | 'skipped';
export type ApprovalStatus = 'pending' | 'approved' | 'declined' | 'expired';
export type ApprovalMode = 'ordered' | 'parallel';

export interface AppPushRecord {
  readonly id: string;
  readonly appId: string;
  readonly approvalId: string | null;
  readonly step: number | null;
  readonly username: string;
  readonly realm: string;
  readonly transactionId: string | null;
  readonly status: PushStatus;
  readonly question: string;
  readonly title: string;
  readonly context: Record<string, unknown> | null;
  readonly matching: string | null;
  readonly timeoutMs: number;
  readonly createdAt: number;
  readonly sentAt: number | null;
  readonly expiresAt: number | null;
  readonly answeredAt: number | null;
  readonly answeredSerial: string | null;
}

export interface ApprovalRecord {
  readonly id: string;
  readonly appId: string;
  readonly mode: ApprovalMode;
  readonly status: ApprovalStatus;
  readonly question: string;
  readonly title: string;
  readonly timeoutMs: number;
  readonly steps: number;
  readonly createdAt: number;
  readonly finishedAt: number | null;
}

export interface NewAppPush {
  id: string;
  appId: string;
  approvalId?: string | null;
  step?: number | null;
  username: string;
  realm: string;
  status: 'waiting' | 'sending';
  /** Set for a push that is sent now; a waiting step gets its own when it is claimed. */
  transactionId: string | null;
  question: string;
  title: string;
  context?: Record<string, unknown> | null;
  matching?: string | null;
  timeoutMs: number;
  createdAt: number;
}

export interface AppPushesRepo {
  insert(p: NewAppPush): Promise<void>;
  byId(id: string): Promise<AppPushRecord | null>;
  byTransaction(transactionId: string): Promise<AppPushRecord | null>;
  ofApproval(approvalId: string): Promise<AppPushRecord[]>;
  /** waiting → sending with its transaction (the next step of an ordered chain): true for the one caller that may send it. */
  claimStep(id: string, transactionId: string): Promise<boolean>;
  /** sending → pending with its transaction: the push is out. */
  markSent(id: string, transactionId: string, sentAt: number, expiresAt: number): Promise<boolean>;
  /** pending (or `from`) → a final status, conditional on the status it leaves; true if this call decided. */
  finish(id: string, from: readonly PushStatus[], to: PushStatus, at: number | null, serial?: string | null): Promise<boolean>;
  /** Pending pushes whose expiry passed (at most `limit`): candidates for `finish(… 'expired')`. */
  overdue(now: number, limit: number): Promise<AppPushRecord[]>;
  /** The pushes of an application created at or after `since` (statistics), at most `limit`. */
  since(appId: string, since: number, limit: number): Promise<AppPushRecord[]>;
  insertApproval(a: Omit<ApprovalRecord, 'status' | 'finishedAt'>): Promise<void>;
  approval(id: string): Promise<ApprovalRecord | null>;
  /** pending → a final status: true for the one caller that decided the chain. */
  finishApproval(id: string, to: Exclude<ApprovalStatus, 'pending'>, at: number): Promise<boolean>;
}

export function createAppPushesRepo(knex: Knex): AppPushesRepo {
  // biome-ignore lint/suspicious/noExplicitAny: a raw knex row
  const toPush = (r: Record<string, any>): AppPushRecord => ({
    id: String(r.id),
    appId: String(r.app_id),
    approvalId: r.approval_id ?? null,
    step: numOrNull(r.step),
    username: String(r.username),
    realm: String(r.realm),
    transactionId: r.transaction_id ?? null,
    status: String(r.status) as PushStatus,
    question: String(r.question),
    title: String(r.title),
    context: json<Record<string, unknown> | null>(r.context, null),
    matching: r.matching ?? null,
    timeoutMs: num(r.timeout_ms),
    createdAt: num(r.created_at),
    sentAt: numOrNull(r.sent_at),
    expiresAt: numOrNull(r.expires_at),
    answeredAt: numOrNull(r.answered_at),
    answeredSerial: r.answered_serial ?? null,
  });
  // biome-ignore lint/suspicious/noExplicitAny: a raw knex row
  const toApproval = (r: Record<string, any>): ApprovalRecord => ({
    id: String(r.id),
    appId: String(r.app_id),
    mode: String(r.mode) as ApprovalMode,
    status: String(r.status) as ApprovalStatus,
    question: String(r.question),
    title: String(r.title),
    timeoutMs: num(r.timeout_ms),
    steps: num(r.steps),
    createdAt: num(r.created_at),
    finishedAt: numOrNull(r.finished_at),
  });
  const repo: AppPushesRepo = {
    async insert(p) {
      await knex('app_pushes').insert({
        id: p.id,
        app_id: p.appId,
        approval_id: p.approvalId ?? null,
        step: p.step ?? null,
        username: p.username,
        realm: p.realm,
        status: p.status,
        transaction_id: p.transactionId,
        question: p.question,
        title: p.title,
        context: p.context ? JSON.stringify(p.context) : null,
        matching: p.matching ?? null,
        timeout_ms: p.timeoutMs,
        created_at: p.createdAt,
      });
    },
    async byId(id) {
      const r = await knex('app_pushes').where({ id }).first();
      return r ? toPush(r) : null;
    },
    async byTransaction(transactionId) {
      const r = await knex('app_pushes').where({ transaction_id: transactionId }).first();
      return r ? toPush(r) : null;
    },
    async ofApproval(approvalId) {
      return (await knex('app_pushes').where({ approval_id: approvalId }).orderBy('step')).map(toPush);
    },
    async claimStep(id, transactionId) {
      return (
        rowCount(await knex('app_pushes').where({ id, status: 'waiting' }).update({ status: 'sending', transaction_id: transactionId })) > 0
      );
    },
    async markSent(id, transactionId, sentAt, expiresAt) {
      return (
        rowCount(
          await knex('app_pushes')
            .where({ id, status: 'sending' })
            .update({ status: 'pending', transaction_id: transactionId, sent_at: sentAt, expires_at: expiresAt }),
        ) > 0
      );
    },
    async finish(id, from, to, at, serial = null) {
      return (
        rowCount(
          await knex('app_pushes')
            .where({ id })
            .whereIn('status', [...from])
            .update({ status: to, answered_at: at, answered_serial: serial }),
        ) > 0
      );
    },
    async overdue(now, limit) {
      return (
        await knex('app_pushes').where({ status: 'pending' }).andWhere('expires_at', '<=', now).orderBy('expires_at').limit(limit)
      ).map(toPush);
    },
    async since(appId, since, limit) {
      return (await knex('app_pushes').where({ app_id: appId }).andWhere('created_at', '>=', since).orderBy('created_at').limit(limit)).map(
        toPush,
      );
    },
    async insertApproval(a) {
      await knex('approvals').insert({
        id: a.id,
        app_id: a.appId,
        mode: a.mode,
        status: 'pending',
        question: a.question,
        title: a.title,
        timeout_ms: a.timeoutMs,
        steps: a.steps,
        created_at: a.createdAt,
      });
    },
    async approval(id) {
      const r = await knex('approvals').where({ id }).first();
      return r ? toApproval(r) : null;
    },
    async finishApproval(id, to, at) {
      return rowCount(await knex('approvals').where({ id, status: 'pending' }).update({ status: to, finished_at: at })) > 0;
    },
  };
  return guarded(repo);
}
