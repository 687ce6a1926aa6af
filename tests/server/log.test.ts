/**
 * The structured log (server/log.ts, issue 13 item 1 and issue 10's "Logs"): pino lines captured from the test
 * world — request ids on every line of a request and in the audit row, the fields operators asked for, the level
 * filter, no secrets, errors on one line, the database named on a connection failure, the "stopped" line.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { asAdmin, auditRows, check, enroll, enrollHotp, policy, RFC, track, world } from '../helpers/kit.ts';
import { TEST_PUSH, type TestWorld } from '../helpers/test_app.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import { parked, startedWaits } from '../helpers/wait.ts';
import { attachLog, createLogger, lineDestination, prettyWanted } from '../../server/log.ts';
import { Events } from '../../core/events.ts';
import { RequestScope } from '../../core/request_scope.ts';
import { FakeClock } from '../helpers/fake_clock.ts';
import { createStore } from '../../server/store/store.ts';
import { createSecretBox } from '../../server/store/secrets.ts';
import { errorReply } from '../../server/respond.ts';
import { errorLines } from '../../cli/main.ts';
import { DatabaseError } from '../../core/errors.ts';
import { startServer } from '../../server/main.ts';

type Line = Record<string, any>;

/** The lines of one request: from its request.started to its request.finished (requests of a test run one at a time). */
function linesOfRequest(w: TestWorld, reqId: string): Line[] {
  const lines = w.logLines();
  const start = lines.findIndex((l) => l.event === 'request.started' && l.req_id === reqId);
  const end = lines.findIndex((l) => l.event === 'request.finished' && l.req_id === reqId);
  if (start < 0 || end < start) throw new Error(`request ${reqId} not found in the log`);
  return lines.slice(start, end + 1);
}

test('request id: a sane X-Request-Id is echoed, on every line of the request and in its audit row; others are replaced', async (t) => {
  const w = await world(t);
  await enrollHotp(w, { pin: '1234' });
  const r = await check(w, { user: 'alice', pass: '1234' + RFC[0] }, { headers: { 'X-Request-Id': 'idp-7.login_42' } });
  t.is(r.status, 200);
  t.is(r.headers.get('x-request-id'), 'idp-7.login_42');
  const lines = linesOfRequest(w, 'idp-7.login_42');
  t.true(
    lines.every((l) => l.req_id === 'idp-7.login_42'),
    'every line between start and end',
  );
  t.deepEqual(
    [...new Set(lines.map((l) => l.event))],
    ['request.started', 'policy.matched', 'pin.started', 'check.result', 'request.finished'],
    'the debug lines say what happened: the request, the policies, the PIN check, the decision',
  );
  const rows = await auditRows(w);
  t.is(rows.at(-1)!.requestId, 'idp-7.login_42');
  const found = await w.call('GET', '/audit/', { request_id: 'idp-7.login_42' }, { headers: await asAdmin(w) });
  t.deepEqual(
    found.body.result.value.auditdata.map((e: any) => [e.action, e.request_id]),
    [['POST /validate/check', 'idp-7.login_42']],
    'GET /audit/ filters by request id',
  );

  // Not a sane token (a space, a 65-character id): a generated id instead, also on an error answer.
  for (const bad of ['a b', 'x'.repeat(65), 'id;drop']) {
    const e = await w.call('GET', '/validate/check', { user: 'alice' }, { headers: { 'X-Request-Id': bad } });
    t.is(e.status, 400);
    const id = e.headers.get('x-request-id')!;
    t.regex(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    t.true(linesOfRequest(w, id).some((l) => l.event === 'request.failed'));
    t.is((await auditRows(w)).at(-1)!.requestId, id);
  }
  t.is(w.logs.filter((l) => l.includes('a b') || l.includes('id;drop')).length, 0);
});

test('wait mode: the waiting login keeps its request id when the phone (another request) wakes it', async (t) => {
  const w = await pushWorld(t, { policies: [policy('wait', 'authentication', { edupush_wait: 20 })] });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const pending = track(check(w, { user: 'alice', pass: '1234' }, { headers: { 'X-Request-Id': 'login-1' } }));
  await parked(w);
  const [tid] = startedWaits(w);
  const data = (await phone.poll()).body.result.value[0];
  const answer = await phone.answer(data);
  t.is(answer.status, 200);
  const r = await pending.promise;
  t.is(r.body.result.authentication, 'ACCEPT');
  t.is(r.headers.get('x-request-id'), 'login-1', 'the answer written outside Koa carries the id too');
  const phoneId = answer.headers.get('x-request-id');
  t.truthy(phoneId);
  t.not(phoneId, 'login-1');
  const lines = w.logLines();
  const of = (event: string) => lines.filter((l) => l.event === event && (l.transactionId === tid || l.event === 'check.result'));
  t.deepEqual(
    of('challenge.answered').map((l) => l.req_id),
    [phoneId],
    "the phone's answer is the phone's request",
  );
  t.deepEqual(
    of('wait.finished').map((l) => l.req_id),
    ['login-1'],
  );
  t.is(of('check.result').at(-1)!.req_id, 'login-1');
  t.is(
    lines.filter((l) => l.event === 'request.finished' && l.req_id === 'login-1').length,
    1,
    'one end line, when the late answer was written',
  );
  const rows = (await auditRows(w)).filter((row) => row.action === 'POST /validate/check');
  t.is(rows.at(-1)!.requestId, 'login-1');
});

test('check.result names the client address; a failed /auth names the admin and the address, never the password', async (t) => {
  const w = await world(t, { config: { server: { trusted_proxies: ['127.0.0.1'] } } });
  await enrollHotp(w, { pin: '1234' });
  await check(w, { user: 'alice', pass: '1234' + RFC[0] }, { headers: { 'X-Forwarded-For': '198.51.100.7' } });
  const result = w.logLines().find((l) => l.event === 'check.result')!;
  t.like(result, { level: 'info', user: 'alice', outcome: 'ACCEPT', client: '198.51.100.7' });
  t.is(result.msg, 'ACCEPT alice from 198.51.100.7: matching 1 tokens');

  await w.adminToken(); // creates admin/admin-pw
  const bad = await w.call(
    'POST',
    '/auth',
    { username: 'admin', password: 'not-the-password' },
    { headers: { 'X-Forwarded-For': '203.0.113.9' } },
  );
  t.is(bad.status, 401);
  await w.call('POST', '/auth', { username: 'mallory', password: 'guess' });
  const logins = w.logLines().filter((l) => l.event === 'admin.login');
  t.like(logins.at(-2), { level: 'warn', username: 'admin', client: '203.0.113.9', success: false, reason: 'wrong_password' });
  t.like(logins.at(-1), { level: 'warn', username: 'mallory', client: '127.0.0.1', success: false, reason: 'unknown_admin' });
  t.like(logins[0], { level: 'info', username: 'admin', success: true });
  t.false(w.logs.some((l) => l.includes('not-the-password') || l.includes('admin-pw')));
});

test('log.level is honoured: warn writes no info or debug line, info no debug line, debug has the request lines', async (t) => {
  const levels = async (level: string) => {
    const w = await world(t, { config: { log: { level } } });
    await enrollHotp(w, { pin: '1234' });
    await check(w, { user: 'alice', pass: '1234' + RFC[0] });
    await check(w, { user: 'alice', pass: '0000' });
    await w.call('POST', '/auth', { username: 'nobody', password: 'x' }); // a warn line
    const seen = new Set(w.logLines().map((l) => l.level as string));
    await w.close();
    return seen;
  };
  t.deepEqual([...(await levels('warn'))].sort(), ['warn']);
  t.deepEqual([...(await levels('info'))].sort(), ['info', 'warn']);
  t.deepEqual([...(await levels('debug'))].sort(), ['debug', 'info', 'warn']);
});

test('no secret sent in a request appears in any log line (debug level, every way of sending it)', async (t) => {
  const w = await pushWorld(t);
  const secret = (name: string) => `S3cr3t${name}${crypto.randomBytes(6).toString('hex')}`;
  const s = {
    pin: secret('pin'),
    otpkey: crypto.randomBytes(20).toString('hex'),
    form: secret('form'),
    query: secret('query'),
    json: secret('json'),
    broken: secret('broken'),
    password: secret('password'),
    authorization: secret('authorization'),
    fbtoken: secret('fbtoken'),
  };
  const admin = await asAdmin(w);
  const jwt = admin.Authorization!;
  await enroll(w, { type: 'hotp', otpkey: s.otpkey, user: 'alice', pin: s.pin, serial: 'OATH0001' });
  await check(w, { user: 'alice', pass: s.form });
  await w.call('GET', '/validate/check', { user: 'alice', pass: s.query });
  await check(w, { user: 'alice', pass: s.json }, { as: 'json' });
  const broken = await w.call(
    'POST',
    '/validate/check',
    {},
    {
      rawBody: `{"user":"alice","pass":"${s.broken}"`,
      headers: { 'content-type': 'application/json' },
    },
  );
  t.is(broken.status, 400);
  await w.call('POST', '/auth', { username: 'admin', password: s.password });
  t.is((await w.call('GET', '/token/', {}, { headers: { Authorization: s.authorization } })).status, 401);
  const phone = phoneFor(w);
  phone.fbToken = s.fbtoken;
  const serial = await enrollPhone(w, phone, 'edupush', { pin: s.pin });
  t.truthy(serial);
  const all = w.logs.join('\n');
  t.true(w.logs.length > 20, 'the requests were logged');
  t.true(w.logLines().some((l) => l.level === 'debug'));
  for (const [name, value] of Object.entries({ ...s, jwt })) t.false(all.includes(value), `${name} is not in the log`);
  const key = phone.publicKeyText();
  t.false(all.includes(key.slice(0, 40)), "the phone's public key is not logged either");
});

test('redaction: secret fields are censored by pino whichever event carries them', (t) => {
  const events = new Events();
  const lines: string[] = [];
  const logger = createLogger({
    level: 'debug',
    format: 'json',
    clock: new FakeClock(),
    node: 'n1',
    destination: lineDestination((l) => lines.push(l)),
  });
  attachLog(events, logger, new RequestScope());
  events.emit('log', {
    level: 'info',
    msg: 'x',
    pass: 'p1',
    fbtoken: 'f1',
    params: { otpkey: 'k1', pin: 'n1', user: 'alice' },
    authorization: 'a1',
  });
  t.is(lines.length, 1);
  const line = JSON.parse(lines[0]!);
  t.like(line, {
    level: 'info',
    msg: 'x',
    event: 'log',
    node: 'n1',
    pass: '[redacted]',
    fbtoken: '[redacted]',
    authorization: '[redacted]',
  });
  t.deepEqual(line.params, { otpkey: '[redacted]', pin: '[redacted]', user: 'alice' });
  t.is(line.time, new Date(new FakeClock().now()).toISOString(), 'the injected clock');
  t.false(/p1|f1|k1|a1/.test(lines[0]!.replace(/"node":"n1"/, '')));
});

test('an error is one line: message and code at info, the stack as a string field only at debug', async (t) => {
  for (const level of ['info', 'debug'] as const) {
    const w = await world(t, { config: { log: { level } } });
    w.deps.store.tokens.list = async () => {
      throw new Error('boom\nsecond line');
    };
    const r = await check(w, { user: 'alice', pass: '1' }, { headers: { 'X-Request-Id': `err-${level}` } });
    t.is(r.status, 500);
    const failed = w.logLines().filter((l) => l.event === 'request.failed');
    t.is(failed.length, 1);
    t.like(failed[0], { level: 'error', req_id: `err-${level}`, status: 500, code: -500, error: 'boom\nsecond line' });
    if (level === 'debug') {
      t.is(typeof failed[0]!.stack, 'string');
      t.regex(String(failed[0]!.stack), /boom/);
    } else t.false('stack' in failed[0]!);
    t.true(
      w.logs.every((l) => !l.includes('\n')),
      'one physical line per event',
    );
    await w.close();
  }
});

test('a database that cannot be reached is named (dialect, host:port/db), never with its credentials', async (t) => {
  const driverLog: string[] = [];
  const store = createStore('postgres://pushgate:hunter2@127.0.0.1:1/mfa', createSecretBox(crypto.randomBytes(32)), {
    log: (_level, msg) => driverLog.push(msg),
  });
  t.teardown(() => store.close());
  t.is(store.name, 'postgres 127.0.0.1:1/mfa');
  const err = await t.throwsAsync(() => store.ping(), { instanceOf: DatabaseError });
  const lines = errorLines(err);
  t.is(lines.length, 1);
  t.regex(lines[0]!, /^error: A database error occurred\. \(database postgres 127\.0\.0\.1:1\/mfa: .*ECONNREFUSED/);
  t.false(lines[0]!.includes('hunter2'));

  // The same failure inside a request: request.failed says which database.
  const events = new Events();
  const seen: any[] = [];
  events.on('request.failed', (e) => seen.push(e));
  const repoErr = new DatabaseError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }));
  errorReply({ events, clock: new FakeClock(), store }, 'POST', '/validate/check', repoErr);
  t.like(seen[0], {
    status: 500,
    code: -600,
    database: 'postgres 127.0.0.1:1/mfa',
    errorCode: 'ECONNREFUSED',
    error: 'database postgres 127.0.0.1:1/mfa: connect ECONNREFUSED 127.0.0.1:1',
  });
  t.is(
    createStore('mysql://u:pw@db.example.org/pushgate', createSecretBox(crypto.randomBytes(32))).name,
    'mysql db.example.org:3306/pushgate',
  );
});

test('serve: a started line naming the database, and a "stopped" line last on shutdown', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-log-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(
    file,
    'server: { port: 0 }\ndatabase: { url: "sqlite:./db.sqlite" }\nsecrets: { key_file: ./key }\ncleanup: { interval_seconds: 0 }\n',
  );
  const lines: string[] = [];
  const s = await startServer(file, { push: TEST_PUSH, log: (l) => lines.push(l) });
  await s.stop('SIGTERM');
  const parsed = lines.map((l) => JSON.parse(l) as Line);
  const started = parsed.find((l) => l.event === 'server.started')!;
  t.like(started, { level: 'info', database: `sqlite ${path.join(dir, 'db.sqlite')}` });
  t.like(parsed.at(-1), { level: 'info', event: 'server.stopped', reason: 'SIGTERM', msg: 'stopped (SIGTERM)' });
  t.true(parsed.every((l) => typeof l.time === 'string' && typeof l.node === 'string' && typeof l.pid === 'number'));
});

test('pretty output only on a terminal (auto) or when asked for; JSON otherwise', (t) => {
  t.true(prettyWanted('auto', true, true));
  t.false(prettyWanted('auto', true, false), 'stdout is a pipe or a file: JSON');
  t.false(prettyWanted('auto', false, true), 'a destination that is not stdout: JSON');
  t.false(prettyWanted('json', true, true));
  t.true(prettyWanted('pretty', true, false));
  const out: string[] = [];
  const events = new Events();
  const logger = createLogger({
    level: 'info',
    format: 'pretty',
    clock: new FakeClock(),
    node: 'n1',
    destination: { write: (s: string) => out.push(s) },
  });
  attachLog(events, logger, new RequestScope());
  events.emit('server.stopped', { reason: 'SIGINT' });
  const text = out.join('');
  t.regex(text, /INFO.*stopped \(SIGINT\)/);
  t.throws(() => JSON.parse(text) as unknown);
});

/** A logger on a fake clock and the JSON lines it wrote. */
function refusalLog(windowMs?: number) {
  const clock = new FakeClock();
  const events = new Events();
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', format: 'json', clock, node: 'n1', destination: lineDestination((l) => lines.push(l)) });
  const detach = attachLog(events, logger, new RequestScope(), { clock, ...(windowMs === undefined ? {} : { refusalWindowMs: windowMs }) });
  return { clock, events, detach, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}
const refused = (key: string, retryAfterSeconds = 5) => ({ limit: 'user' as const, key, retryAfterSeconds });

test('repeated refusals: the first one is a line at once, the same ones in the next 10 s are one line with their count', (t) => {
  const { clock, events, parsed } = refusalLog();
  events.emit('throttle.refused', refused('user:default:victim', 9));
  t.is(parsed().length, 1, 'the first refusal is written at once');
  for (let i = 0; i < 41; i++) events.emit('throttle.refused', refused('user:default:victim', 8));
  events.emit('throttle.refused', refused('user:default:other')); // another key: its own line
  events.emit('check.result', { serials: ['S1'], outcome: 'REJECT', message: 'wrong otp pin', policies: [], client: '10.0.0.1' });
  events.emit('check.result', { serials: ['S1'], outcome: 'REJECT', message: 'wrong otp pin', policies: [], client: '10.0.0.1' });
  t.deepEqual(
    parsed().map((l) => [l.event, l.key]),
    [
      ['throttle.refused', 'user:default:victim'],
      ['throttle.refused', 'user:default:other'],
      ['check.result', undefined],
      ['check.result', undefined],
    ],
    'only refusals are summed; every other event stays one line each',
  );
  clock.advance(9_999);
  t.is(parsed().length, 4, 'nothing before the window ends');
  clock.advance(1);
  const summary = parsed()[4]!;
  t.like(summary, {
    level: 'warn',
    event: 'throttle.refused',
    key: 'user:default:victim',
    limit: 'user',
    retryAfterSeconds: 8,
    repeated: 41,
    window_ms: 10_000,
  });
  t.regex(String(summary.msg), /and 41 more like it in 10 s/);
  t.is(parsed().length, 5, 'the other key had no repeat: no summary line');
  t.is(clock.pending, 0);
  // Every refusal is in the log: 1 line + the sum of `repeated`.
  const victim = parsed().filter((l) => l.key === 'user:default:victim');
  t.is(victim.length, 2);
  t.is(1 + Number(victim[1]!.repeated), 42, 'one line at once + 41 summed = the 42 refusals');
  // After the window the next refusal opens a new one: written at once again.
  events.emit('throttle.refused', refused('user:default:victim'));
  t.is(parsed().length, 6);
  t.falsy(parsed()[5]!.repeated);
});

test('refusal windows: 429/503 request.failed lines are summed, 5xx faults never; closing the log writes the open counts', (t) => {
  const { clock, events, detach, parsed } = refusalLog();
  const failed = (status: number, code: number) => ({ method: 'POST', path: '/validate/check', status, code, error: 'x' });
  for (let i = 0; i < 3; i++) events.emit('request.failed', failed(429, 429));
  for (let i = 0; i < 3; i++) events.emit('request.failed', failed(503, 503));
  for (let i = 0; i < 2; i++) events.emit('request.failed', failed(500, -500));
  for (let i = 0; i < 2; i++) events.emit('pin.rejected', { reason: 'queue_full', key: 'user:default:victim' });
  t.deepEqual(
    parsed().map((l) => [l.level, l.status ?? l.reason]),
    [
      ['info', 429],
      ['warn', 503],
      ['error', 500],
      ['error', 500],
      ['warn', 'queue_full'],
    ],
    'a 503 (refused under load) is a warning, a 500 an error — each 500 its own line',
  );
  clock.advance(3_000);
  detach();
  const summaries = parsed().slice(5);
  t.deepEqual(
    summaries.map((l) => [l.event, l.status ?? l.reason, l.repeated]),
    [
      ['request.failed', 429, 2],
      ['request.failed', 503, 2],
      ['pin.rejected', 'queue_full', 1],
    ],
  );
  t.is(clock.pending, 0, 'the detach cancelled the windows');
  events.emit('request.failed', failed(429, 429));
  t.is(parsed().length, 8, 'detached: nothing more');
});

test('refusalWindowMs 0: every refusal is its own line', (t) => {
  const { events, parsed } = refusalLog(0);
  for (let i = 0; i < 5; i++) events.emit('throttle.refused', refused('user:default:victim'));
  t.is(parsed().length, 5);
});

test('a wrong-PIN flood: every refused request has its audit row and its count in /metrics, the log sums them', async (t) => {
  const w = await world(t, { config: { limits: { failed_per_user: 2 } } });
  await enrollHotp(w);
  const answers = [];
  for (let i = 0; i < 12; i++) answers.push((await check(w, { user: 'alice', pass: `wrong${i}` })).status);
  t.deepEqual(answers, [200, 200, ...Array(10).fill(429)]);
  const rows = (await auditRows(w)).filter((r) => r.action === 'POST /validate/check');
  t.is(rows.length, 12, 'an audit row per request');
  t.is(new Set(rows.map((r) => r.requestId)).size, 12, 'each with its own request id');
  t.is((await w.deps.metrics.counters()).get('pushgate_throttled_total{limit="user"}'), 10, 'every refusal counted');
  const throttled = () => w.logLines().filter((l) => l.event === 'throttle.refused');
  t.is(throttled().length, 1, 'one line at once…');
  w.clock.advance(10_000);
  t.is(throttled().length, 2);
  t.is(1 + Number(throttled()[1]!.repeated), 10, '…and one with the other nine');
  const failed = w.logLines().filter((l) => l.event === 'request.failed' && l.status === 429);
  t.is(failed.length, 2);
  t.is(1 + Number(failed[1]!.repeated), 10);
});
