/**
 * GET /metrics: the Prometheus text format, every series the README lists present, histograms with
 * _bucket/_sum/_count, route labels that are patterns (never the raw URL), metrics.token and metrics.listen, and
 * process metrics collected once per process.
 * The text is parsed with parse-prometheus-text-format (families, HELP, TYPE, counter and gauge samples; it throws on
 * a malformed labelled line). It merges a histogram's label sets into one sample without labels and skips an
 * unparsable value silently, so histogram samples are read from the text lines, and every sample line is also
 * checked against the format's grammar.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import perfHooks from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { world, check } from '../helpers/kit.ts';
import { Events } from '../../core/events.ts';
import { createMetrics } from '../../server/metrics.ts';
import { envOverrides, parseConfig, parseConfigWith } from '../../server/config.ts';
import { startServer } from '../../server/main.ts';
import { TEST_PUSH } from '../helpers/test_app.ts';

// Counted before any test builds a registry: the process metrics' long-lived collectors (an event-loop-delay
// histogram, a GC PerformanceObserver) must be started once per process, however many Deps are built.
let eventLoopMonitors = 0;
const monitor = perfHooks.monitorEventLoopDelay;
perfHooks.monitorEventLoopDelay = (...args: Parameters<typeof monitor>) => {
  eventLoopMonitors++;
  return monitor(...args);
};

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The series names in the README's metrics table (first column, labels stripped). */
function readmeSeries(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Metrics'), readme.indexOf('### Health and readiness'));
  const names = new Set<string>();
  for (const line of section.split('\n')) {
    const first = /^\| (.+?) \| (counter|gauge|histogram|counter\/gauge) \|/.exec(line)?.[1];
    if (!first) continue;
    for (const m of first.matchAll(/`([a-z_]+)(?:\{[^}]*\})?`/g)) names.add(m[1]!);
  }
  return [...names];
}

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Array<{ labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

const sources = {
  waitsActive: () => 0,
  answerBusWaiters: () => 0,
  pinQueue: () => ({ waiting: 0, active: 0, waitingKeys: 0, longestKeyQueue: 0 }),
  dbPool: () => null,
};

test('a scrape is the Prometheus text format with HELP and TYPE; every series the README lists is there; histograms have _bucket, _sum, _count', async (t) => {
  const w = await world(t);
  t.is((await w.call('GET', '/healthz')).status, 200);
  t.is((await check(w, { user: 'alice', pass: '1234' })).status, 200);
  t.is((await w.call('DELETE', '/token/SERIAL-IN-THE-URL')).status, 401);
  // A delivery needs a Firebase channel; the metrics count the events business code emits (server/auth/push_services.ts).
  w.events.emit('delivery.sent', { serial: 'PUSH1', channel: 'fcm', ms: 240 });
  w.events.emit('delivery.failed', { serial: 'PUSH1', channel: 'fcm', reason: 'timeout', ms: 3000 });
  w.events.emit('pin.started', { waitMs: 20 });
  // Application series are labelled by application: they appear with the first push / webhook of one.
  w.events.emit('app.push_sent', { application: 'crm', pushId: 'psh_1', transactionId: '1' });
  w.events.emit('app.push_settled', { application: 'crm', pushId: 'psh_1', status: 'approved', ms: 4200 });
  w.events.emit('approval.completed', { application: 'crm', approvalId: 'apr_1', status: 'approved' });
  w.events.emit('webhook.attempted', {
    application: 'crm',
    webhookEvent: 'challenge.approved',
    eventId: 'evt_1',
    attempt: 1,
    ok: true,
    status: 200,
    ms: 12,
    final: true,
  });

  const r = await w.call('GET', '/metrics');
  t.is(r.status, 200);
  t.is(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const families: Family[] = parsePrometheusTextFormat(r.text);
  const byName = new Map(families.map((f) => [f.name, f]));
  for (const f of families) t.true(f.help.length > 0, `${f.name} has a HELP line`);
  // Prometheus reads the value with Go's ParseFloat: NaN and Inf in any case (prom-client writes the event-loop lag
  // summary's NaN, before its first sample, as `Nan`).
  const sample =
    /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? ([Nn][Aa][Nn]|[+-]?[Ii][Nn][Ff]|[+-]?\d+(\.\d+)?(e[+-]?\d+)?)$/;
  for (const line of r.text.split('\n')) if (line && !line.startsWith('#')) t.regex(line, sample);
  for (const name of byName.keys()) t.regex(r.text, new RegExp(`^# TYPE ${name} (counter|gauge|histogram|summary)$`, 'm'));

  const listed = readmeSeries();
  t.true(listed.length >= 30, `the README lists the series (${listed.length} found)`);
  const missing = listed.filter((n) => !byName.has(n));
  t.deepEqual(missing, [], 'every series the README lists is in the scrape');
  const unlisted = [...byName.keys()].filter((n) => n.startsWith('pushgate_') && !listed.includes(n));
  t.deepEqual(unlisted, [], 'every pushgate_ series is in the README');

  for (const f of families.filter((x) => x.type === 'HISTOGRAM')) {
    t.regex(r.text, new RegExp(`^${f.name}_bucket\\{.*le="\\+Inf".*\\} \\d+`, 'm'), `${f.name}_bucket`);
    t.regex(r.text, new RegExp(`^${f.name}_sum(\\{.*\\})? [\\d.e+-]+$`, 'm'), `${f.name}_sum`);
    t.regex(r.text, new RegExp(`^${f.name}_count(\\{.*\\})? \\d+$`, 'm'), `${f.name}_count`);
  }
  t.is(byName.get('pushgate_http_request_duration_seconds')?.type, 'HISTOGRAM');
  t.is(byName.get('pushgate_checks_total')?.type, 'COUNTER');
  t.is(byName.get('pushgate_waits_active')?.type, 'GAUGE');

  // Route labels are the router's patterns: bounded cardinality, no serial or other raw URL text.
  const line = (s: string) => t.true(r.text.split('\n').includes(s), `${s}\n--- got:\n${r.text}`);
  line('pushgate_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 1');
  line('pushgate_http_request_duration_seconds_count{method="POST",route="/validate/check",status="200"} 1');
  line('pushgate_http_request_duration_seconds_count{method="DELETE",route="/token/:serial",status="401"} 1');
  line('pushgate_http_request_duration_seconds_bucket{le="+Inf",method="DELETE",route="/token/:serial",status="401"} 1');
  t.false(r.text.includes('SERIAL-IN-THE-URL'));
  line('pushgate_delivery_duration_seconds_sum{channel="fcm",result="sent"} 0.24');
  line('pushgate_delivery_duration_seconds_bucket{le="0.25",channel="fcm",result="sent"} 1');
  line('pushgate_delivery_duration_seconds_bucket{le="2",channel="fcm",result="failed"} 0');
  line('pushgate_delivery_duration_seconds_bucket{le="3",channel="fcm",result="failed"} 1');
  line('pushgate_pin_queue_wait_seconds_sum 0.02');
  line('pushgate_pin_queue_wait_seconds_count 1');

  const value = (name: string, labels: Record<string, string> = {}) =>
    byName.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  t.is(value('pushgate_checks_total', { outcome: 'REJECT' })?.value, '1');
  t.is(value('pushgate_checks_total', { outcome: 'ACCEPT' })?.value, '0', 'known outcomes exist from the start');
  t.is(value('pushgate_deliveries_total', { channel: 'fcm', result: 'failed' })?.value, '1');
  // The database pool: SQLite's single connection (max 1); PostgreSQL/MariaDB: the world's pool size.
  t.is(value('pushgate_db_pool_connections', { state: 'max' })?.value, String(w.deps.store.poolStats()!.max));
  t.truthy(value('pushgate_db_pool_pending', { kind: 'acquire' }));
  t.truthy(byName.get('process_resident_memory_bytes'));
  t.truthy(byName.get('nodejs_eventloop_lag_seconds'));
});

test('metrics.token: /metrics answers 401 (envelope, WWW-Authenticate) without the bearer token, 200 with it', async (t) => {
  const token = 'scrape-secret-0123456789';
  const w = await world(t, { config: { metrics: { token } } });
  for (const headers of [{}, { Authorization: `Bearer ${token}x` }, { Authorization: token }] as Record<string, string>[]) {
    const r = await w.call('GET', '/metrics', {}, { headers });
    t.is(r.status, 401);
    t.is(r.headers.get('www-authenticate'), 'Bearer realm="pushgate metrics"');
    t.like(r.body, { result: { status: false, error: { code: 4033 } } });
  }
  const ok = await w.call('GET', '/metrics', {}, { headers: { Authorization: `Bearer ${token}` } });
  t.is(ok.status, 200);
  t.regex(ok.text, /^# TYPE pushgate_checks_total counter$/m);
  t.is((await w.call('GET', '/healthz')).status, 200, 'the token guards /metrics only');
});

test('metrics.token and metrics.listen are checked; PUSHGATE_METRICS_* set them', (t) => {
  t.throws(() => parseConfig({ metrics: { token: 'short' } }, '/'), { message: /metrics.token must be at least 16/ });
  t.throws(() => parseConfig({ metrics: { listen: '9464' } }, '/'), { message: /metrics.listen must be host:port/ });
  t.throws(() => parseConfig({ metrics: { listen: '127.0.0.1:70000' } }, '/'), { message: /metrics.listen must be host:port/ });
  t.deepEqual(parseConfig({ metrics: { listen: '[::1]:9464' } }, '/').metrics.listen, { host: '::1', port: 9464 });
  t.deepEqual(parseConfig({}, '/').metrics, { token: null, listen: null });
  const env = { PUSHGATE_METRICS_TOKEN: 'from-the-environment-0123', PUSHGATE_METRICS_LISTEN: '0.0.0.0:9464' };
  t.deepEqual(parseConfigWith({ metrics: { token: 'from-the-file-0123456789' } }, '/', envOverrides(env)).metrics, {
    token: 'from-the-environment-0123',
    listen: { host: '0.0.0.0', port: 9464 },
  });
  t.throws(() => parseConfigWith({}, '/', envOverrides({ PUSHGATE_METRICS_LISTEN: 'nope' })), {
    message: /PUSHGATE_METRICS_LISTEN \(metrics.listen\) must be host:port/,
  });
});

test('metrics.listen: /metrics is served on its own listener and no longer on the main port', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-metrics-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = parseConfig(
    {
      server: { port: 0 },
      database: { url: 'sqlite::memory:' },
      secrets: { key_file: path.join(dir, 'key') },
      pin: { memory_kib: 1024, time_cost: 1 },
      cleanup: { interval_seconds: 0 },
      metrics: { listen: '127.0.0.1:0' },
    },
    dir,
  );
  const s = await startServer(null, { config, push: TEST_PUSH, log: () => {} });
  t.teardown(() => s.stop());
  t.truthy(s.metricsUrl);
  const main = await fetch(`${s.url}/metrics`);
  t.is(main.status, 404, 'not on the main port');
  const own = await fetch(`${s.metricsUrl}/metrics`);
  t.is(own.status, 200);
  t.regex(await own.text(), /^pushgate_checks_total\{outcome="ACCEPT"\} 0$/m);
  const other = await fetch(`${s.metricsUrl}/healthz`);
  t.is(other.status, 404, 'the metrics listener serves /metrics only');
  t.like(await other.json(), { result: { status: false, error: { code: 404 } } });
  await s.stop();
  t.false(s.metricsServer!.listening, 'stop closes the metrics listener too');
});

test('metrics.listen on a port that is taken: the start fails with the reason', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-metrics-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  const config = parseConfig(
    {
      server: { port: 0 },
      database: { url: 'sqlite::memory:' },
      secrets: { key_file: path.join(dir, 'key') },
      pin: { memory_kib: 1024, time_cost: 1 },
      cleanup: { interval_seconds: 0 },
      metrics: { listen: `127.0.0.1:${port}` },
    },
    dir,
  );
  await t.throwsAsync(startServer(null, { config, push: TEST_PUSH, log: () => {} }), { code: 'EADDRINUSE' });
});

test('process metrics are collected once per process however many registries are built; close() stops counting', async (t) => {
  const built = Array.from({ length: 5 }, () => {
    const events = new Events();
    return { events, metrics: createMetrics(events, sources) };
  });
  t.is(eventLoopMonitors, 1, 'one event-loop-delay histogram for the whole process');
  for (const { metrics } of built) t.regex(await metrics.render(), /^nodejs_eventloop_lag_seconds /m);
  const [a, b] = built;
  a!.events.emit('check.result', { serials: [], outcome: 'ACCEPT', message: '', policies: [], client: '192.0.2.1' });
  t.is((await a!.metrics.counters()).get('pushgate_checks_total{outcome="ACCEPT"}'), 1);
  t.is((await b!.metrics.counters()).get('pushgate_checks_total{outcome="ACCEPT"}'), 0, 'each registry counts its own events');
  a!.metrics.close();
  a!.events.emit('check.result', { serials: [], outcome: 'ACCEPT', message: '', policies: [], client: '192.0.2.1' });
  t.is((await a!.metrics.counters()).get('pushgate_checks_total{outcome="ACCEPT"}'), 1, 'a closed one listens no more');
  for (const { metrics } of built) metrics.close();
});
