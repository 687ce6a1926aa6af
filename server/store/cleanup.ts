/**
 * Built-in cleanup: expired challenges, half-enrolled tokens past their TTL and audit rows past the retention,
 * deleted in small chunks. Safe on every node at once (each delete is by id and idempotent).
 */
import type { Deps } from '../deps.ts';

export interface CleanupResult { challenges: number; tokens: number; audit: number }

export async function runCleanup(deps: Deps, opts: { maxChunks?: number } = {}): Promise<CleanupResult> {
  const { chunk } = deps.config.cleanup;
  const now = deps.clock.now();
  const auditBefore = now - deps.config.audit.retentionDays * 86_400_000;
  const total: CleanupResult = { challenges: 0, tokens: 0, audit: 0 };
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
  total.challenges = await drain(() => deps.store.challenges.deleteExpired(now, chunk));
  // Half-enrolled tokens stay a while past their TTL so a late phone still gets the clear "expired" error.
  const rolloutBefore = now - deps.config.tokens.rolloutPurgeMinutes * 60_000;
  total.tokens = await drain(() => deps.store.tokens.deleteExpiredRollouts(rolloutBefore, chunk));
  total.audit = await drain(() => deps.store.audit.deleteOlderThan(auditBefore, chunk));
  deps.events.emit('cleanup.ran', total);
  return total;
}

/** Runs cleanup every `cleanup.interval_seconds` (0 = never). Returns a stop function. */
export function startCleanup(deps: Deps): () => void {
  const every = deps.config.cleanup.intervalSeconds * 1000;
  if (!every) return () => {};
  let cancel: () => void = () => {};
  let stopped = false;
  const tick = () => {
    runCleanup(deps, { maxChunks: 20 })
      .catch((err) => deps.events.emit('log', { level: 'warn', msg: 'cleanup failed', error: String(err) }))
      .finally(() => { if (!stopped) cancel = deps.clock.schedule(every, tick); });
  };
  cancel = deps.clock.schedule(every, tick);
  return () => { stopped = true; cancel(); };
}
