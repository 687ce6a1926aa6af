/**
 * Webhooks per application (issue 15). An event is written to the outbox where it happened (`queueWebhook`: one
 * INSERT, never awaited on a login's path — a slow or failing receiver never delays a login) and delivered by the
 * dispatcher of any node: a due row is taken with a lease (one conditional UPDATE decides which node sends it), sent
 * as a signed POST, and settled under that lease. A failed attempt is retried with exponential back-off on the
 * injected clock (WEBHOOK_RETRY_BASE_MS · 2^(attempt−1), at most WEBHOOK_RETRY_MAX_MS) up to WEBHOOK_MAX_ATTEMPTS.
 *
 * Wire: `POST <webhook_url>`, `Content-Type: application/json`, body `{id, event, created, application, data}`;
 * headers `X-Pushgate-Event`, `X-Pushgate-Event-Id` (the same on every retry: receivers deduplicate with it),
 * `X-Pushgate-Timestamp: <unix seconds of this attempt>`, `X-Pushgate-Signature: v1=<lowercase hex
 * HMAC-SHA256(application secret, TIMESTAMP + "." + raw body)>`. Any 2xx is delivered; redirects are not followed.
 */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import type { ApplicationRecord } from '../store/apps_repo.ts';
import type { OutboxRecord } from '../store/webhooks_repo.ts';

export const WEBHOOK_EVENTS = [
  'challenge.created',
  'challenge.approved',
  'challenge.declined',
  'challenge.expired',
  'auth.accept',
  'auth.reject',
  'approval.completed',
  'token.enrolled',
  'token.revoked',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

export const WEBHOOK_MAX_ATTEMPTS = 8;
export const WEBHOOK_RETRY_BASE_MS = 10_000;
export const WEBHOOK_RETRY_MAX_MS = 3_600_000;
/** How long a node holds a row it is delivering (well above the request timeout: no second node sends it meanwhile). */
export const WEBHOOK_LEASE_MS = 60_000;
export const WEBHOOK_TIMEOUT_MS = 10_000;

type QueueDeps = Pick<Deps, 'store' | 'clock' | 'events'>;

/** The delay before attempt `attempt + 1` after `attempt` failed. */
export function retryDelayMs(attempt: number): number {
  return Math.min(WEBHOOK_RETRY_BASE_MS * 2 ** Math.max(0, attempt - 1), WEBHOOK_RETRY_MAX_MS);
}

export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `v1=${crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Writes one event for one application to the outbox (when it has a webhook for this event). Resolves when the row
 * is stored; a failure is reported, never thrown (callers on a login's path do not wait for it at all).
 */
export async function queueWebhook(
  deps: QueueDeps,
  app: ApplicationRecord,
  event: WebhookEvent,
  data: Record<string, unknown>,
): Promise<void> {
  if (!app.webhookUrl || !app.active) return;
  if (app.webhookEvents && !app.webhookEvents.includes(event)) return;
  const eventId = `evt_${crypto.randomBytes(12).toString('hex')}`;
  const now = deps.clock.now();
  const body = JSON.stringify({ id: eventId, event, created: now, application: app.name, data });
  try {
    await deps.store.webhooks.enqueue({ appId: app.id, event, eventId, body, now });
    deps.events.emit('webhook.queued', { appId: app.id, webhookEvent: event, eventId });
  } catch (err) {
    deps.events.emit('log', {
      level: 'error',
      msg: 'a webhook event could not be queued',
      event,
      application: app.name,
      error: String(err),
    });
  }
}

/** `auth.accept` / `auth.reject` of a /validate request signed by `app`: queued without waiting (the login's path). */
export function authWebhook(deps: QueueDeps, app: ApplicationRecord, accepted: boolean, data: Record<string, unknown>): void {
  void queueWebhook(deps, app, accepted ? 'auth.accept' : 'auth.reject', data);
}

/**
 * token.enrolled / token.revoked for every application with a webhook whose realm is the token's (or any realm).
 * Returns the unsubscribe function.
 */
export function subscribeTokenWebhooks(deps: QueueDeps): () => void {
  const fan = (event: WebhookEvent, data: { serial: string; user?: string; realm?: string; type?: string }) => {
    void (async () => {
      const apps = (await deps.store.apps.list()).filter((a) => a.webhookUrl && (!a.realm || a.realm === data.realm));
      for (const app of apps) await queueWebhook(deps, app, event, { ...data });
    })().catch((err) => deps.events.emit('log', { level: 'error', msg: 'token webhooks failed', error: String(err) }));
  };
  const offs = [
    deps.events.on('token.enrolled', (e) => fan('token.enrolled', { serial: e.serial, type: e.type, user: e.user, realm: e.realm })),
    deps.events.on('token.changed', (e) => {
      if (e.action === 'revoke') fan('token.revoked', { serial: e.serial, user: e.user, realm: e.realm });
    }),
  ];
  return () => {
    for (const off of offs) off();
  };
}

export interface WebhookDispatcher {
  /** Delivers every due event once (tests and the timer); resolves with the number of attempts made. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

export interface DispatcherOptions {
  /** How often due rows are looked for (retries, other nodes' events); a queued event on this node wakes it at once. */
  intervalMs?: number;
  /** This node's name in the lease. */
  owner?: string;
  timeoutMs?: number;
  /** At most this many deliveries at once. */
  concurrency?: number;
  /** Also run on every timer tick, before the deliveries (the server expires overdue application pushes here). */
  onTick?: () => Promise<unknown>;
}

/** The dispatcher of this node: started by the server (server/main.ts), stopped with it. */
export function startWebhookDispatcher(deps: Pick<Deps, 'store' | 'clock' | 'events'>, opts: DispatcherOptions = {}): WebhookDispatcher {
  const intervalMs = opts.intervalMs ?? 1000;
  const owner = `${opts.owner ?? 'node'}:${crypto.randomBytes(6).toString('hex')}`;
  const timeoutMs = opts.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  const concurrency = opts.concurrency ?? 8;
  let stopped = false;
  let running: Promise<number> | null = null;
  let again = false;
  let cancel: () => void = () => {};

  const deliver = async (row: OutboxRecord): Promise<void> => {
    const attempt = row.attempts + 1;
    const found = await deps.store.apps.withSecret(row.appId);
    const started = deps.clock.now();
    let status: number | null = null;
    let error: string | null = null;
    if (!found?.app.webhookUrl) error = 'the application or its webhook is gone';
    else {
      const timestamp = String(Math.floor(started / 1000));
      try {
        const res = await fetch(found.app.webhookUrl, {
          method: 'POST',
          redirect: 'manual',
          signal: AbortSignal.timeout(timeoutMs),
          headers: {
            'Content-Type': 'application/json',
            'User-Agent': 'pushgate-webhook',
            'X-Pushgate-Event': row.event,
            'X-Pushgate-Event-Id': row.eventId,
            'X-Pushgate-Timestamp': timestamp,
            'X-Pushgate-Signature': webhookSignature(found.secret, timestamp, row.body),
          },
          body: row.body,
        });
        status = res.status;
        await res.body?.cancel().catch(() => {});
        if (status < 200 || status > 299) error = `HTTP ${status}`;
      } catch (err) {
        error = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
      }
    }
    const at = deps.clock.now();
    const ok = error === null;
    const gone = !found?.app.webhookUrl;
    const final = ok || gone || attempt >= WEBHOOK_MAX_ATTEMPTS;
    await deps.store.webhooks.settle(row.id, owner, {
      appId: row.appId,
      attempt,
      at,
      status,
      error,
      ms: at - started,
      outcome: ok ? 'delivered' : final ? 'failed' : 'pending',
      nextAt: ok || final ? at : at + retryDelayMs(attempt),
    });
    deps.events.emit('webhook.attempted', {
      application: found?.app.name ?? row.appId,
      webhookEvent: row.event,
      eventId: row.eventId,
      attempt,
      ok,
      ...(status !== null ? { status } : {}),
      ...(error !== null ? { error } : {}),
      ms: at - started,
      final,
    });
  };

  const pass = async (): Promise<number> => {
    const now = deps.clock.now();
    const ids = await deps.store.webhooks.due(now, 100);
    let attempts = 0;
    let next = 0;
    const worker = async () => {
      while (next < ids.length && !stopped) {
        const id = ids[next++]!;
        const row = await deps.store.webhooks.lease(id, owner, now, now + WEBHOOK_LEASE_MS);
        if (!row) continue; // another node has it
        attempts++;
        await deliver(row);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
    return attempts;
  };

  const runOnce = (): Promise<number> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let total = 0;
      do {
        again = false;
        total += await pass();
      } while (again && !stopped);
      return total;
    })().finally(() => {
      running = null;
    });
    return running;
  };
  const report = (err: unknown) => deps.events.emit('log', { level: 'warn', msg: 'webhook dispatch failed', error: String(err) });
  const tick = () => {
    if (stopped) return;
    (opts.onTick ?? (async () => {}))()
      .catch(report)
      .then(() => runOnce())
      .catch(report)
      .finally(() => {
        if (!stopped) cancel = deps.clock.schedule(intervalMs, tick);
      });
  };
  const off = deps.events.on('webhook.queued', () => {
    if (!stopped) runOnce().catch(report);
  });
  if (intervalMs > 0) cancel = deps.clock.schedule(intervalMs, tick);
  return {
    runOnce,
    async stop() {
      stopped = true;
      off();
      cancel();
      await running?.catch(() => {});
    },
  };
}
