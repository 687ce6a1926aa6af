/**
 * The webhook outbox (issue 15): one row per event and application, written where the event happened (never sent on
 * the request's path), delivered by the dispatcher of any node. A node takes a due row with a lease — one
 * conditional UPDATE (`lease_until <= now`) decides which node delivers it — and settles it with another one that
 * names its lease; every attempt is logged in `webhook_attempts` (`pushgate app deliveries`).
 */
import type { Knex } from 'knex';
import { guarded, num, numOrNull, rowCount } from './rows.ts';
import { COLUMN_LIMITS, fitColumn } from './limits.ts';

export type OutboxStatus = 'pending' | 'delivered' | 'failed';

export interface OutboxRecord {
  readonly id: number;
  readonly appId: string;
  readonly event: string;
  readonly eventId: string;
  readonly body: string;
  readonly status: OutboxStatus;
  readonly attempts: number;
  readonly nextAt: number;
  readonly createdAt: number;
  readonly deliveredAt: number | null;
  readonly lastStatus: number | null;
  readonly lastError: string | null;
}

export interface AttemptRecord {
  readonly outboxId: number;
  readonly attempt: number;
  readonly at: number;
  readonly status: number | null;
  readonly error: string | null;
  readonly ms: number;
}

export interface WebhooksRepo {
  enqueue(e: { appId: string; event: string; eventId: string; body: string; now: number }): Promise<void>;
  /** Ids of pending rows due at `now` and not leased, oldest first. */
  due(now: number, limit: number): Promise<number[]>;
  /** Takes the lease of a due row: true for the one node that delivers it now. */
  lease(id: number, owner: string, now: number, until: number): Promise<OutboxRecord | null>;
  /** Records an attempt and settles the row (delivered, failed for good, or pending again at `nextAt`) under the lease. */
  settle(
    id: number,
    owner: string,
    r: {
      appId: string;
      attempt: number;
      at: number;
      status: number | null;
      error: string | null;
      ms: number;
      outcome: OutboxStatus;
      nextAt: number;
    },
  ): Promise<boolean>;
  /** The newest rows of an application with their attempts (the delivery log). */
  log(appId: string, limit: number): Promise<Array<OutboxRecord & { tries: AttemptRecord[] }>>;
  deleteFinishedBefore(time: number, limit: number): Promise<number>;
}

const W = COLUMN_LIMITS.webhook_outbox;

export function createWebhooksRepo(knex: Knex): WebhooksRepo {
  // biome-ignore lint/suspicious/noExplicitAny: a raw knex row
  const toRecord = (r: Record<string, any>): OutboxRecord => ({
    id: num(r.id),
    appId: String(r.app_id),
    event: String(r.event),
    eventId: String(r.event_id),
    body: String(r.body),
    status: String(r.status) as OutboxStatus,
    attempts: num(r.attempts),
    nextAt: num(r.next_at),
    createdAt: num(r.created_at),
    deliveredAt: numOrNull(r.delivered_at),
    lastStatus: numOrNull(r.last_status),
    lastError: r.last_error ?? null,
  });
  const repo: WebhooksRepo = {
    async enqueue(e) {
      await knex('webhook_outbox').insert({
        app_id: e.appId,
        event: e.event,
        event_id: e.eventId,
        body: e.body,
        status: 'pending',
        attempts: 0,
        next_at: e.now,
        lease_until: 0,
        created_at: e.now,
      });
    },
    async due(now, limit) {
      return (
        await knex('webhook_outbox')
          .where({ status: 'pending' })
          .andWhere('next_at', '<=', now)
          .andWhere('lease_until', '<=', now)
          .orderBy('id')
          .select('id')
          .limit(limit)
      ).map((r) => num(r.id));
    },
    async lease(id, owner, now, until) {
      const won = rowCount(
        await knex('webhook_outbox')
          .where({ id, status: 'pending' })
          .andWhere('next_at', '<=', now)
          .andWhere('lease_until', '<=', now)
          .update({ lease_until: until, lease_owner: owner }),
      );
      if (!won) return null;
      const r = await knex('webhook_outbox').where({ id }).first();
      return r ? toRecord(r) : null;
    },
    async settle(id, owner, r) {
      const error = r.error === null ? null : fitColumn(r.error, W.last_error).value;
      await knex('webhook_attempts').insert({
        outbox_id: id,
        app_id: r.appId,
        attempt: r.attempt,
        at: r.at,
        status: r.status,
        error,
        ms: r.ms,
      });
      return (
        rowCount(
          await knex('webhook_outbox')
            .where({ id, status: 'pending', lease_owner: owner })
            .update({
              status: r.outcome,
              attempts: r.attempt,
              next_at: r.nextAt,
              lease_until: 0,
              lease_owner: null,
              last_status: r.status,
              last_error: error,
              ...(r.outcome === 'delivered' ? { delivered_at: r.at } : {}),
            }),
        ) > 0
      );
    },
    async log(appId, limit) {
      const rows = (await knex('webhook_outbox').where({ app_id: appId }).orderBy('id', 'desc').limit(limit)).map(toRecord);
      if (!rows.length) return [];
      const tries = await knex('webhook_attempts')
        .whereIn(
          'outbox_id',
          rows.map((r) => r.id),
        )
        .orderBy('id');
      return rows.map((r) => ({
        ...r,
        tries: tries
          .filter((t) => num(t.outbox_id) === r.id)
          .map((t) => ({
            outboxId: r.id,
            attempt: num(t.attempt),
            at: num(t.at),
            status: numOrNull(t.status),
            error: t.error ?? null,
            ms: num(t.ms),
          })),
      }));
    },
    async deleteFinishedBefore(time, limit) {
      const ids = (
        await knex('webhook_outbox').whereNot({ status: 'pending' }).andWhere('created_at', '<', time).select('id').limit(limit)
      ).map((r) => num(r.id));
      if (!ids.length) return 0;
      await knex('webhook_attempts').whereIn('outbox_id', ids).delete();
      return rowCount(await knex('webhook_outbox').whereIn('id', ids).delete());
    },
  };
  return guarded(repo);
}
