/** Per-node counters built from events (never a shared database row): exposed at GET /metrics (Prometheus text). */
import type { Events } from '../core/events.ts';

export interface Metrics {
  readonly counters: ReadonlyMap<string, number>;
  /** Wait durations (ms) of finished waits that ended with an answer, most recent 1000. */
  readonly waitAnswerMs: readonly number[];
  render(gauges: Record<string, number>): string;
}

export function createMetrics(events: Events): Metrics {
  const counters = new Map<string, number>();
  const waitAnswerMs: number[] = [];
  const inc = (key: string) => counters.set(key, (counters.get(key) ?? 0) + 1);
  events.on('check.result', (e) => inc(`pushgate_checks_total{outcome="${e.outcome}"}`));
  events.on('wait.started', () => inc('pushgate_waits_started_total'));
  events.on('wait.finished', (e) => {
    inc(`pushgate_waits_finished_total{result="${e.result}"}`);
    if (e.wakeMs !== undefined) {
      waitAnswerMs.push(e.wakeMs);
      if (waitAnswerMs.length > 1000) waitAnswerMs.shift();
    }
  });
  events.on('wait.rejected', (e) => inc(`pushgate_waits_rejected_total{reason="${e.reason}"}`));
  events.on('pin.rejected', (e) => inc(`pushgate_pin_rejected_total{reason="${e.reason}"}`));
  events.on('challenge.created', (e) => inc(`pushgate_challenges_created_total{type="${e.type}"}`));
  events.on('challenge.answered', (e) => inc(`pushgate_challenges_answered_total{decision="${e.decision}"}`));
  events.on('delivery.sent', (e) => inc(`pushgate_deliveries_total{channel="${e.channel}",result="sent"}`));
  events.on('delivery.failed', (e) => inc(`pushgate_deliveries_total{channel="${e.channel}",result="failed"}`));
  events.on('audit.write_failed', () => inc('pushgate_audit_write_failures_total'));
  events.on('throttle.refused', (e) => inc(`pushgate_throttled_total{limit="${e.limit}"}`));
  events.on('push.declined', () => inc('pushgate_push_declines_total'));
  events.on('push.unanswered', () => inc('pushgate_push_unanswered_total'));
  events.on('push.reused', () => inc('pushgate_push_logins_reused_total'));
  events.on('push.locked', () => inc('pushgate_push_locks_total'));
  events.on('request.failed', (e) => inc(`pushgate_request_errors_total{status="${e.status}"}`));
  return {
    counters,
    waitAnswerMs,
    render(gauges) {
      const lines: string[] = [];
      for (const [k, v] of [...counters].sort()) lines.push(`${k} ${v}`);
      for (const [k, v] of Object.entries(gauges)) lines.push(`${k} ${v}`);
      const sorted = [...waitAnswerMs].sort((a, b) => a - b);
      const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : 0);
      lines.push(`pushgate_wait_duration_ms{quantile="0.5"} ${q(0.5)}`, `pushgate_wait_duration_ms{quantile="0.99"} ${q(0.99)}`);
      return lines.join('\n') + '\n';
    },
  };
}
