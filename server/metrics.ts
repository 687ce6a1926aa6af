/**
 * Per-node metrics in the Prometheus exposition format, with prom-client: one Registry per Deps (never the library's
 * global default registry — tests build many worlds in one process), fed by events (core/events.ts) and by gauges
 * read at scrape time. Served at GET /metrics (server/routes/health.ts) or on its own listener (metrics.listen).
 * The README ("Operating pushgate" → "Metrics") lists every series; tests/server/metrics.test.ts checks that list
 * against a real scrape.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { EventName, EventMap, Events } from '../core/events.ts';

/** What the scrape reads from the running node (gauges). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

export interface MetricsSources {
  /** Waiting logins (wait mode) on this node. */
  waitsActive(): number;
  /** Listeners registered on the answer bus. */
  answerBusWaiters(): number;
  /** The PIN queue (server/auth/limiter.ts). */
  pinQueue(): { waiting: number; active: number; waitingKeys: number; longestKeyQueue: number };
  /** The database connection pool, or null where the driver has none to report. */
  dbPool(): { used: number; free: number; pendingAcquires: number; pendingCreates: number; max: number } | null;
}

export interface Metrics {
  /** This node's registry: its own series and the process metrics. */
  readonly registry: Registry;
  /** `text/plain; version=0.0.4; charset=utf-8` */
  readonly contentType: string;
  /** The exposition text. */
  render(): Promise<string>;
  /** Counter samples as `name{label="value",…}` → value (bench, tests). */
  counters(): Promise<Map<string, number>>;
  /** Stops listening to the events. */
  close(): void;
}

/** The check outcomes, wait results and refusal reasons are known in advance: their series exist (at 0) from the start. */
const CHECK_OUTCOMES = ['ACCEPT', 'REJECT', 'CHALLENGE', 'DECLINED'];
const WAIT_RESULTS: EventMap['wait.finished']['result'][] = ['accept', 'decline', 'timeout', 'disconnect', 'shutdown'];
const WAIT_REJECTS: EventMap['wait.rejected']['reason'][] = ['capacity', 'per_user', 'draining'];
const PIN_REJECTS: EventMap['pin.rejected']['reason'][] = ['queue_full', 'key_full', 'deadline', 'client_gone'];
const THROTTLE_LIMITS: EventMap['throttle.refused']['limit'][] = ['user', 'address', 'challenges'];
const ANSWER_DECISIONS: EventMap['challenge.answered']['decision'][] = ['accept', 'decline'];
const SIGNATURE_REASONS: EventMap['app.auth_failed']['reason'][] = [
  'unsigned',
  'malformed',
  'unknown_app',
  'disabled',
  'signature',
  'skew',
  'replay',
  'unsigned_body',
];

let processRegistry: Registry | undefined;
/**
 * The process metrics (prom-client's default metrics: CPU, memory, heap, event-loop lag, GC, handles, …) describe
 * the process, not a Deps, and their collectors are long-lived: an event-loop-delay histogram sampling every 10 ms
 * and a PerformanceObserver on GC that prom-client never stops. Collected per Deps, every world a test builds would
 * leave one of each running for the rest of the process. So they are collected once per process, into a registry of
 * their own that every Deps' registry merges (the one other module-level value besides the server-key cache).
 * Neither collector keeps the process alive (the histogram's timer is unref'd, observers hold no handle).
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

const ms = (n: number) => n / 1000;

export function createMetrics(
  events: Events,
  sources: MetricsSources,
  opts: { channels?: readonly string[]; readinessChecks?: readonly string[] } = {},
): Metrics {
  const own = new Registry();
  const registers = [own];
  const subscriptions: Array<() => void> = [];
  const on = <K extends EventName>(name: K, fn: (e: EventMap[K]) => void) => subscriptions.push(events.on(name, fn));

  const http = new Histogram({
    name: 'pushgate_http_request_duration_seconds',
    help: 'HTTP requests by method, route pattern (not the raw URL) and status, from the first byte read to the last written.',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers,
  });
  // Methods as they are, any other token a client sends as OTHER; a response the client left before is a 499.
  on('request.finished', (e) =>
    http.observe(
      { method: KNOWN_METHODS.has(e.method) ? e.method : 'OTHER', route: e.route, status: e.aborted ? '499' : String(e.status) },
      ms(e.ms),
    ),
  );
  const requestErrors = new Counter({
    name: 'pushgate_request_errors_total',
    help: 'Requests answered with an error envelope, by HTTP status.',
    labelNames: ['status'],
    registers,
  });
  on('request.failed', (e) => requestErrors.inc({ status: String(e.status) }));

  const checks = new Counter({
    name: 'pushgate_checks_total',
    help: 'Finished /validate/check (radiuscheck, samlcheck) requests by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  for (const outcome of CHECK_OUTCOMES) checks.inc({ outcome }, 0);
  on('check.result', (e) => checks.inc({ outcome: e.outcome }));

  const created = new Counter({
    name: 'pushgate_challenges_created_total',
    help: 'Challenges created, by token type.',
    labelNames: ['type'],
    registers,
  });
  on('challenge.created', (e) => created.inc({ type: e.type }));
  const answered = new Counter({
    name: 'pushgate_challenges_answered_total',
    help: "Push challenges answered by the phone, by the phone's decision.",
    labelNames: ['decision'],
    registers,
  });
  for (const decision of ANSWER_DECISIONS) answered.inc({ decision }, 0);
  on('challenge.answered', (e) => answered.inc({ decision: e.decision }));

  // Push fatigue (server/auth/push_fatigue.ts): "this wasn't me", pushes nobody answered, repeated triggers that got
  // their open login back instead of a new push, and users whose push logins were locked after declines in a row.
  const pushCounter = (name: string, help: string, event: 'push.declined' | 'push.unanswered' | 'push.reused' | 'push.locked') => {
    const c = new Counter({ name, help, registers });
    on(event, () => c.inc());
  };
  pushCounter('pushgate_push_declines_total', 'Push logins the phone declined ("this wasn\'t me").', 'push.declined');
  pushCounter('pushgate_push_unanswered_total', 'Push logins that expired without an answer.', 'push.unanswered');
  pushCounter('pushgate_push_logins_reused_total', 'Repeated triggers answered with their open push login (no new push).', 'push.reused');
  pushCounter('pushgate_push_locks_total', "Users' push logins locked after declines in a row (push_decline_lock).", 'push.locked');

  const deliveries = new Counter({
    name: 'pushgate_deliveries_total',
    help: 'Push deliveries through a channel (Firebase), by channel and result (sent, failed).',
    labelNames: ['channel', 'result'],
    registers,
  });
  const deliveryTime = new Histogram({
    name: 'pushgate_delivery_duration_seconds',
    help: 'Time a push channel took to accept or refuse a message, by channel and result (sent, failed).',
    labelNames: ['channel', 'result'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10],
    registers,
  });
  for (const channel of opts.channels ?? [])
    for (const result of ['sent', 'failed']) {
      deliveries.inc({ channel, result }, 0);
      deliveryTime.zero({ channel, result });
    }
  on('delivery.sent', (e) => {
    deliveries.inc({ channel: e.channel, result: 'sent' });
    deliveryTime.observe({ channel: e.channel, result: 'sent' }, ms(e.ms));
  });
  on('delivery.failed', (e) => {
    deliveries.inc({ channel: e.channel, result: 'failed' });
    deliveryTime.observe({ channel: e.channel, result: 'failed' }, ms(e.ms));
  });

  // Applications (issue 15): labelled by the application's name — bounded by the number of applications an
  // administrator made (never by anything a client sends: a refused signature is counted by reason only).
  const appPushes = new Counter({
    name: 'pushgate_app_pushes_total',
    help: 'Pushes of applications (push API and approval steps), by application and result (sent, approved, declined, expired, withdrawn).',
    labelNames: ['application', 'result'],
    registers,
  });
  const appAnswer = new Histogram({
    name: 'pushgate_app_answer_seconds',
    help: 'Time from an application push to its answer (approved or declined), by application.',
    labelNames: ['application'],
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
    registers,
  });
  on('app.push_sent', (e) => appPushes.inc({ application: e.application, result: 'sent' }));
  on('app.push_settled', (e) => {
    appPushes.inc({ application: e.application, result: e.status });
    if (e.ms !== undefined) appAnswer.observe({ application: e.application }, ms(e.ms));
  });
  const approvals = new Counter({
    name: 'pushgate_app_approvals_total',
    help: 'Approval chains finished, by application and status (approved, declined, expired).',
    labelNames: ['application', 'status'],
    registers,
  });
  on('approval.completed', (e) => approvals.inc({ application: e.application, status: e.status }));
  const signatureFailures = new Counter({
    name: 'pushgate_app_signature_failures_total',
    help: 'Signed requests refused (401), by reason (never told to the client).',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of SIGNATURE_REASONS) signatureFailures.inc({ reason }, 0);
  on('app.auth_failed', (e) => signatureFailures.inc({ reason: e.reason }));
  const webhookAttempts = new Counter({
    name: 'pushgate_webhook_attempts_total',
    help: 'Webhook delivery attempts, by application and result (delivered, retry, failed: given up).',
    labelNames: ['application', 'result'],
    registers,
  });
  const webhookTime = new Histogram({
    name: 'pushgate_webhook_duration_seconds',
    help: 'Time a webhook receiver took to answer a delivery attempt, by application.',
    labelNames: ['application'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  on('webhook.attempted', (e) => {
    webhookAttempts.inc({ application: e.application, result: e.ok ? 'delivered' : e.final ? 'failed' : 'retry' });
    webhookTime.observe({ application: e.application }, ms(e.ms));
  });

  new Gauge({
    name: 'pushgate_waits_active',
    help: 'Logins waiting for a phone answer in wait mode (edupush_wait / push_wait) on this node.',
    registers,
    collect() {
      this.set(sources.waitsActive());
    },
  });
  new Gauge({
    name: 'pushgate_answer_bus_waiters',
    help: 'Listeners registered on the answer bus on this node.',
    registers,
    collect() {
      this.set(sources.answerBusWaiters());
    },
  });
  const waitsStarted = new Counter({ name: 'pushgate_waits_started_total', help: 'Waits started (wait mode).', registers });
  const waitsFinished = new Counter({
    name: 'pushgate_waits_finished_total',
    help: 'Waits finished, by result (accept, decline, timeout, disconnect, shutdown).',
    labelNames: ['result'],
    registers,
  });
  const waitTime = new Histogram({
    name: 'pushgate_wait_duration_seconds',
    help: 'How long finished waits lasted, by result.',
    labelNames: ['result'],
    buckets: [0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300],
    registers,
  });
  const waitsRejected = new Counter({
    name: 'pushgate_waits_rejected_total',
    help: 'Waits refused with 503, by reason (capacity, per_user, draining).',
    labelNames: ['reason'],
    registers,
  });
  waitsStarted.inc(0);
  for (const result of WAIT_RESULTS) {
    waitsFinished.inc({ result }, 0);
    waitTime.zero({ result });
  }
  for (const reason of WAIT_REJECTS) waitsRejected.inc({ reason }, 0);
  on('wait.started', () => waitsStarted.inc());
  on('wait.finished', (e) => {
    waitsFinished.inc({ result: e.result });
    waitTime.observe({ result: e.result }, ms(e.ms));
  });
  on('wait.rejected', (e) => waitsRejected.inc({ reason: e.reason }));

  const pinGauge = (name: string, help: string, read: (q: ReturnType<MetricsSources['pinQueue']>) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(sources.pinQueue()));
      },
    });
  pinGauge('pushgate_pin_hash_queue', 'PIN/password checks waiting in the PIN queue.', (q) => q.waiting);
  pinGauge('pushgate_pin_hash_active', 'PIN/password hashes running now (at most pin.max_concurrent).', (q) => q.active);
  pinGauge('pushgate_pin_queue_keys', 'Users (keys) with at least one PIN check waiting.', (q) => q.waitingKeys);
  pinGauge('pushgate_pin_queue_longest_key', "The longest single user's queue of waiting PIN checks.", (q) => q.longestKeyQueue);
  const pinWait = new Histogram({
    name: 'pushgate_pin_queue_wait_seconds',
    help: "How long a client's PIN check waited in the PIN queue before it was hashed.",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers,
  });
  on('pin.started', (e) => pinWait.observe(ms(e.waitMs)));
  const pinRejected = new Counter({
    name: 'pushgate_pin_rejected_total',
    help: 'PIN checks refused (503) or dropped (client gone), by reason.',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of PIN_REJECTS) pinRejected.inc({ reason }, 0);
  on('pin.rejected', (e) => pinRejected.inc({ reason: e.reason }));

  new Gauge({
    name: 'pushgate_db_pool_connections',
    help: 'Database pool connections by state (used, free; max: the pool size). SQLite: one connection.',
    labelNames: ['state'],
    registers,
    collect() {
      const pool = sources.dbPool();
      if (!pool) return;
      this.set({ state: 'used' }, pool.used);
      this.set({ state: 'free' }, pool.free);
      this.set({ state: 'max' }, pool.max);
    },
  });
  new Gauge({
    name: 'pushgate_db_pool_pending',
    help: 'Requests waiting for a pooled connection (acquire) and connections being opened (create).',
    labelNames: ['kind'],
    registers,
    collect() {
      const pool = sources.dbPool();
      if (!pool) return;
      this.set({ kind: 'acquire' }, pool.pendingAcquires);
      this.set({ kind: 'create' }, pool.pendingCreates);
    },
  });

  const auditFailures = new Counter({
    name: 'pushgate_audit_write_failures_total',
    help: 'Audit rows that could not be written (alert on any increase).',
    registers,
  });
  auditFailures.inc(0);
  on('audit.write_failed', () => auditFailures.inc());
  const throttled = new Counter({
    name: 'pushgate_throttled_total',
    help: 'Requests refused by the back-off (429), by limit (user, address, challenges).',
    labelNames: ['limit'],
    registers,
  });
  for (const limit of THROTTLE_LIMITS) throttled.inc({ limit }, 0);
  on('throttle.refused', (e) => throttled.inc({ limit: e.limit }));

  const readinessFailures = new Counter({
    name: 'pushgate_readiness_failures_total',
    help: 'Failed GET /readyz checks, by check (database, answer_bus, …).',
    labelNames: ['check'],
    registers,
  });
  for (const check of opts.readinessChecks ?? []) readinessFailures.inc({ check }, 0);
  on('readiness.failed', (e) => readinessFailures.inc({ check: e.check }));

  const registry = Registry.merge([processMetrics(), own]);
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    async counters() {
      const out = new Map<string, number>();
      for (const m of await own.getMetricsAsJSON()) {
        if (String(m.type) !== 'counter') continue;
        for (const v of m.values) {
          const labels = Object.entries(v.labels)
            .map(([k, x]) => `${k}="${x}"`)
            .join(',');
          out.set(labels ? `${m.name}{${labels}}` : m.name, v.value);
        }
      }
      return out;
    },
    close() {
      for (const off of subscriptions.splice(0)) off();
    },
  };
}
