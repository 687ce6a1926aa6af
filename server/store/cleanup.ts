/**
 * Built-in cleanup: expired challenges, half-enrolled tokens past their TTL, audit rows past the retention and
 * push back-off rows untouched for a day (not a decline lock), self-service sessions past their timeouts, nonces of
 * signed requests past the replay window and finished webhook events past their retention, deleted in small chunks.
 * Safe on every node at once (each delete is by id and idempotent).
 */
import type { Clock } from '../../core/clock.ts';
import type { Config } from '../config.ts';
import type { EventMap, Events } from '../../core/events.ts';
import type { Store } from './store.ts';
import { sessionLimitsAt } from './selfservice_sessions_repo.ts';

/** What cleanup needs: a slice of Deps (server/deps.ts sits above the store; a leaf does not import it). */
export interface CleanupDeps {
  readonly config: Pick<Config, 'cleanup' | 'audit' | 'tokens' | 'selfservice'>;
  readonly clock: Clock;
  readonly events: Events;
  readonly store: Pick<
    Store,
    'challenges' | 'tokens' | 'audit' | 'loginAddresses' | 'pushFatigue' | 'selfserviceSessions' | 'apps' | 'webhooks'
  >;
}

/** What one run deleted: the `cleanup.ran` event's payload (core/events.ts documents each count). */
export type CleanupResult = EventMap['cleanup.ran'];

/** How long the delivery log keeps a finished webhook event. */
export const WEBHOOK_RETENTION_DAYS = 30;

/** How long a declined push is remembered (its challenge row is kept past its expiry): "after a decline" is risky. */
export const DECLINE_MEMORY_MS = 15 * 60_000;
/** Login addresses unused this long are forgotten (a login from there is "from a new address" again). */
export const LOGIN_ADDRESS_RETENTION_DAYS = 90;

/**
 * A push back-off row untouched this long is forgotten: strikes "in a row" end after a day without one, and the rows
 * of addresses an attacker went through do not pile up. A decline lock stays until an administrator unblocks it.
 */
export const PUSH_BACKOFF_FORGET_MS = 86_400_000;

export async function runCleanup(deps: CleanupDeps, opts: { maxChunks?: number } = {}): Promise<CleanupResult> {
  const { chunk } = deps.config.cleanup;
  const now = deps.clock.now();
  const auditBefore = now - deps.config.audit.retentionDays * 86_400_000;
  const total: CleanupResult = {
    challenges: 0,
    tokens: 0,
    audit: 0,
    loginAddresses: 0,
    pushBackoff: 0,
    selfserviceSessions: 0,
    nonces: 0,
    webhooks: 0,
  };
  const maxChunks = opts.maxChunks ?? Infinity;
  const drain = async (fn: () => Promise<number>): Promise<number> => {
    let sum = 0;
    for (let i = 0; i < maxChunks; i++) {
      const n = await fn();
      sum += n;
      if (n < chunk) break;
    }
    return sum;
  };
  total.challenges = await drain(() => deps.store.challenges.deleteExpired(now, chunk, now - DECLINE_MEMORY_MS));
  // Half-enrolled tokens stay a while past their TTL so a late phone still gets the clear "expired" error.
  const rolloutBefore = now - deps.config.tokens.rolloutPurgeMinutes * 60_000;
  total.tokens = await drain(() => deps.store.tokens.deleteExpiredRollouts(rolloutBefore, chunk));
  total.audit = await drain(() => deps.store.audit.deleteOlderThan(auditBefore, chunk));
  const addressesBefore = now - LOGIN_ADDRESS_RETENTION_DAYS * 86_400_000;
  total.loginAddresses = await drain(() => deps.store.loginAddresses.deleteOlderThan(addressesBefore, chunk));
  total.pushBackoff = await drain(() => deps.store.pushFatigue.deleteStale(now - PUSH_BACKOFF_FORGET_MS, chunk));
  const limits = sessionLimitsAt(deps.config.selfservice, now);
  total.selfserviceSessions = await drain(() => deps.store.selfserviceSessions.deleteExpired(limits, chunk));
  total.nonces = await deps.store.apps.deleteExpiredNonces(now);
  total.webhooks = await drain(() => deps.store.webhooks.deleteFinishedBefore(now - WEBHOOK_RETENTION_DAYS * 86_400_000, chunk));
  deps.events.emit('cleanup.ran', total);
  return total;
}

/** Runs cleanup every `cleanup.interval_seconds` (0 = never). Returns a stop function. */
export function startCleanup(deps: CleanupDeps): () => void {
  const every = deps.config.cleanup.intervalSeconds * 1000;
  if (!every) return () => {};
  let cancel: () => void = () => {};
  let stopped = false;
  const tick = () => {
    runCleanup(deps, { maxChunks: 20 })
      .catch((err) => deps.events.emit('log', { level: 'warn', msg: 'cleanup failed', error: String(err) }))
      .finally(() => {
        if (!stopped) cancel = deps.clock.schedule(every, tick);
      });
  };
  cancel = deps.clock.schedule(every, tick);
  return () => {
    stopped = true;
    cancel();
  };
}
