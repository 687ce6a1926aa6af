/**
 * Statistics per application and day (issue 15), computed from its push rows (the push API and approval steps):
 * pushes sent, approvals, declines, timeouts, withdrawn, and the median and 95th percentile of the time to answer
 * (approved or declined pushes). Days are UTC calendar days.
 */
import type { Deps } from '../deps.ts';
import type { AppPushRecord } from '../store/app_pushes_repo.ts';

export interface DayStats {
  readonly day: string;
  readonly challenges: number;
  readonly approvals: number;
  readonly declines: number;
  readonly timeouts: number;
  readonly withdrawn: number;
  readonly failed: number;
  /** Seconds; null when nothing was answered that day. */
  readonly median_seconds: number | null;
  readonly p95_seconds: number | null;
}

/** At most this many push rows are read for one statistics request (about a busy month of one application). */
export const STATS_MAX_ROWS = 200_000;

/** The nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export function dayStats(rows: readonly AppPushRecord[]): DayStats[] {
  const days = new Map<string, AppPushRecord[]>();
  for (const r of rows) {
    if (r.status === 'waiting' || r.status === 'skipped') continue; // never sent
    const day = new Date(r.createdAt).toISOString().slice(0, 10);
    const list = days.get(day) ?? [];
    if (!list.length) days.set(day, list);
    list.push(r);
  }
  return [...days.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([day, list]) => {
      const times = list
        .filter((r) => (r.status === 'approved' || r.status === 'declined') && r.answeredAt !== null)
        .map((r) => (r.answeredAt! - (r.sentAt ?? r.createdAt)) / 1000)
        .sort((a, b) => a - b);
      const count = (s: AppPushRecord['status']) => list.filter((r) => r.status === s).length;
      return {
        day,
        challenges: list.filter((r) => r.status !== 'failed').length,
        approvals: count('approved'),
        declines: count('declined'),
        timeouts: count('expired'),
        withdrawn: count('withdrawn'),
        failed: count('failed'),
        median_seconds: percentile(times, 50),
        p95_seconds: percentile(times, 95),
      };
    });
}

/** The statistics of an application since `since` (epoch ms; default: 30 days ago). */
export async function appStats(deps: Deps, appId: string, since?: number): Promise<DayStats[]> {
  const from = since ?? deps.clock.now() - 30 * 86_400_000;
  return dayStats(await deps.store.appPushes.since(appId, from, STATS_MAX_ROWS));
}
