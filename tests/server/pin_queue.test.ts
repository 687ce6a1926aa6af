/**
 * The PIN queue through HTTP (server/auth/limiter.ts behind /validate/check and POST /auth): a full queue, a full
 * per-user queue and an expired wait answer 503 with Retry-After and the eduMFA envelope and leave an audit row; a
 * check whose client hung up is dropped unhashed and still audited. The hasher's slot is held by a task of the test
 * (a deferred), so nothing depends on timing; the wait deadline runs on the FakeClock.
 */
import http from 'node:http';
import test from 'ava';
import type { TestWorld } from '../helpers/test_app.ts';
import { RFC, auditRows, check, deferred, enrollHotp, tokenOf, track, until, world } from '../helpers/kit.ts';
import type { AuditRow } from '../../server/store/audit_repo.ts';

const PIN = { memory_kib: 1024, time_cost: 1, parallelism: 1, max_concurrent: 1 };

/** Occupies the only hashing slot until `release()`. */
function holdHasher(w: TestWorld): { release(): Promise<void> } {
  const gate = deferred();
  const held = w.deps.pins.limiter.run(() => gate.promise, { key: 'test-holder' });
  return {
    release: async () => {
      gate.resolve();
      await held;
    },
  };
}

/** Fills `n` places of the queue with held jobs of their own keys; `release()` lets them run (they do nothing). */
function fillQueue(w: TestWorld, n: number): { release(): Promise<void> } {
  const gate = deferred();
  const jobs = Array.from({ length: n }, (_, i) => w.deps.pins.limiter.run(() => gate.promise, { key: `test-filler-${i}` }));
  return {
    release: async () => {
      gate.resolve();
      await Promise.all(jobs);
    },
  };
}

/** The audit row matching `pred`, once it is written (the app writes it after the response). */
async function auditRow(w: TestWorld, pred: (r: AuditRow) => boolean): Promise<AuditRow> {
  for (let i = 0; i < 10_000; i++) {
    const row = (await auditRows(w)).find(pred);
    if (row) return row;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error('no such audit row');
}

const metricsOf = async (w: TestWorld): Promise<string> => (await w.call('GET', '/metrics')).text;

test('/validate/check with a full PIN queue: 503, Retry-After, the envelope, an audit row; nothing hashed', async (t) => {
  const w = await world(t, { config: { pin: { ...PIN, max_queue: 1, max_queue_per_key: 1, max_wait_ms: 3000 } } });
  await enrollHotp(w);
  const hold = holdHasher(w);
  const filler = fillQueue(w, 1);
  await until(() => w.deps.pins.limiter.waiting === 1);

  const r = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.is(r.status, 503);
  t.is(r.headers.get('retry-after'), '3');
  t.like(r.body, {
    jsonrpc: '2.0',
    detail: null,
    result: { status: false, error: { code: 503, message: 'Too many PIN checks are waiting; try again later.' } },
  });
  const row = await auditRow(w, (x) => x.action === 'POST /validate/check');
  t.like(row, {
    success: false,
    outcome: 'ERROR',
    username: 'alice',
    client: '127.0.0.1',
    info: { error: 'Too many PIN checks are waiting; try again later.' },
  });

  const metrics = await metricsOf(w);
  t.regex(metrics, /^pushgate_pin_rejected_total\{reason="queue_full"\} 1$/m);
  t.regex(metrics, /^pushgate_pin_hash_queue 1$/m);
  t.regex(metrics, /^pushgate_pin_hash_active 1$/m);
  t.regex(metrics, /^pushgate_pin_queue_keys 1$/m);
  t.regex(metrics, /^pushgate_pin_queue_longest_key 1$/m);

  await hold.release();
  await filler.release();
  t.is((await tokenOf(w, 'OATH0001')).failCount, 0, 'the refused check changed nothing');
  const ok = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.like(ok.body, { result: { value: true } }, 'the same OTP is still unused: it was never checked');
});

test('one flooded user gets 503 while another user — same client address — is queued and served', async (t) => {
  const w = await world(t, { config: { pin: { ...PIN, max_queue: 4, max_queue_per_key: 1 } } });
  await enrollHotp(w);
  await enrollHotp(w, { user: 'bob', serial: 'OATH0002' });
  const hold = holdHasher(w);
  const limiter = w.deps.pins.limiter;
  const first = track(check(w, { user: 'alice', pass: '9999' + RFC[0] }));
  await until(() => limiter.waitingFor('default/alice') === 1);
  // Another spelling of the same user is the same key: refused, not a second place in the queue.
  const flood = await check(w, { user: 'alice@default', pass: '9998' + RFC[0] });
  t.is(flood.status, 503);
  t.is(flood.body.result.error.message, 'Too many PIN checks of this user are waiting; try again later.');
  const bob = track(check(w, { user: 'bob', pass: '1234' + RFC[0] }));
  await until(() => limiter.waitingFor('default/bob') === 1);
  t.false(bob.settled(), 'bob found room although alice’s queue is full');
  await hold.release();
  t.like((await bob.promise).body, { result: { status: true, value: true } });
  t.like((await first.promise).body, { result: { value: false }, detail: { message: 'wrong otp pin' } });
  t.like(await auditRow(w, (x) => x.outcome === 'ERROR'), {
    username: 'alice@default',
    info: { error: 'Too many PIN checks of this user are waiting; try again later.' },
  });
  t.regex(await metricsOf(w), /^pushgate_pin_rejected_total\{reason="key_full"\} 1$/m);
  t.is((await tokenOf(w, 'OATH0001')).failCount, 1, 'only the check that was hashed counted');
});

test('behind a trusted proxy, a user flooded from one end-user address still logs in from another', async (t) => {
  const w = await world(t, {
    config: { server: { trusted_proxies: ['127.0.0.1'] }, pin: { ...PIN, max_queue: 4, max_queue_per_key: 1 } },
  });
  await enrollHotp(w);
  const hold = holdHasher(w);
  const limiter = w.deps.pins.limiter;
  const attacker = track(check(w, { user: 'alice', pass: '9999' + RFC[0], client: '198.51.100.66' }));
  await until(() => limiter.waitingFor('default/alice\u0000198.51.100.66') === 1);
  const flood = await check(w, { user: 'alice', pass: '9998' + RFC[0], client: '198.51.100.66' });
  t.is(flood.status, 503, "the attacker's address has its one place taken");
  const real = track(check(w, { user: 'alice', pass: '1234' + RFC[0], client: '10.1.0.1' }));
  await until(() => limiter.waitingFor('default/alice\u000010.1.0.1') === 1);
  t.false(real.settled(), 'queued in a place of its own, not refused behind the attacker');
  await hold.release();
  t.like((await attacker.promise).body, { result: { value: false } });
  t.like((await real.promise).body, { result: { status: true, value: true } });
});

test('POST /auth with a full PIN queue: 503, Retry-After, the envelope, audited as ERROR with the admin', async (t) => {
  const w = await world(t, { config: { pin: { ...PIN, max_queue: 1, max_queue_per_key: 1 } } });
  await w.deps.store.admins.insert('admin', await w.deps.pins.hash('admin-pw'), w.clock.now());
  const hold = holdHasher(w);
  const filler = fillQueue(w, 1);
  await until(() => w.deps.pins.limiter.waiting === 1);
  const r = await w.call('POST', '/auth', { username: 'admin', password: 'admin-pw' });
  t.is(r.status, 503);
  t.is(r.headers.get('retry-after'), '2', 'the default max_wait_ms is 2000');
  t.like(r.body, { result: { status: false, error: { code: 503, message: 'Too many PIN checks are waiting; try again later.' } } });
  t.like(await auditRow(w, (x) => x.action === 'POST /auth'), {
    success: false,
    outcome: 'ERROR',
    admin: 'admin',
    info: { error: 'Too many PIN checks are waiting; try again later.' },
  });
  // An unknown admin's dummy hash is refused alike, and a refused dummy hash is not kept.
  t.is((await w.call('POST', '/auth', { username: 'ghost', password: 'x' })).status, 503);
  await hold.release();
  await filler.release();
  t.is((await w.call('POST', '/auth', { username: 'ghost', password: 'x' })).status, 401);
  t.is((await w.call('POST', '/auth', { username: 'admin', password: 'admin-pw' })).status, 200);
  t.is((await w.call('POST', '/auth', { username: 'admin', password: 'wrong' })).status, 401);
  t.like((await auditRows(w)).at(-1), { action: 'POST /auth', outcome: 'REJECT' }, 'a wrong password is still a REJECT');
});

test('POST /auth: unknown admin names share one queue key (made-up names take no turn each)', async (t) => {
  const w = await world(t, { config: { pin: { ...PIN, max_queue: 4, max_queue_per_key: 1 } } });
  await w.deps.store.admins.insert('admin', await w.deps.pins.hash('admin-pw'), w.clock.now());
  t.is((await w.call('POST', '/auth', { username: 'ghost0', password: 'x' })).status, 401); // the dummy hash exists now
  const hold = holdHasher(w);
  const ghost1 = track(w.call('POST', '/auth', { username: 'ghost1', password: 'x' }));
  await until(() => w.deps.pins.limiter.waitingFor('admin:?') === 1);
  const ghost2 = await w.call('POST', '/auth', { username: 'ghost2', password: 'x' });
  t.is(ghost2.status, 503);
  const admin = track(w.call('POST', '/auth', { username: 'admin', password: 'admin-pw' }));
  await until(() => w.deps.pins.limiter.waitingFor('admin:admin') === 1);
  await hold.release();
  t.is((await admin.promise).status, 200);
  t.is((await ghost1.promise).status, 401);
});

test('a queued check older than pin.max_wait_ms is answered 503 without being hashed (FakeClock)', async (t) => {
  const w = await world(t, { config: { pin: { ...PIN, max_wait_ms: 5000 } } });
  await enrollHotp(w);
  const hold = holdHasher(w);
  const late = track(check(w, { user: 'alice', pass: '1234' + RFC[0] }));
  await until(() => w.deps.pins.limiter.waiting === 1);
  w.clock.advance(4999);
  t.false(late.settled());
  w.clock.advance(1);
  const r = await late.promise;
  t.is(r.status, 503);
  t.is(r.headers.get('retry-after'), '5');
  t.is(r.body.result.error.message, 'The server is too busy checking PINs; try again later.');
  t.like(await auditRow(w, (x) => x.action === 'POST /validate/check'), { outcome: 'ERROR', username: 'alice' });
  t.regex(await metricsOf(w), /^pushgate_pin_rejected_total\{reason="deadline"\} 1$/m);
  await hold.release();
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: { value: true } }, 'its OTP was never checked');
});

/** Sends a form POST and returns the request, so the test can hang up before the answer. */
function hangUpLater(w: TestWorld, path: string, form: Record<string, string>): http.ClientRequest {
  const url = new URL(path, w.url);
  const body = new URLSearchParams(form).toString();
  const req = http.request({
    host: url.hostname,
    port: url.port,
    path: url.pathname,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) },
  });
  req.on('error', () => {}); // the hang-up
  req.end(body);
  return req;
}

test('a check whose client hung up is dropped before it is hashed, and audited as ERROR', async (t) => {
  const w = await world(t, { config: { pin: { ...PIN } } });
  await enrollHotp(w);
  const hold = holdHasher(w);
  const req = hangUpLater(w, '/validate/check', { user: 'alice', pass: '0000' + RFC[0] });
  await until(() => w.deps.pins.limiter.waitingFor('default/alice') === 1);
  req.destroy();
  await until(() => w.deps.pins.limiter.waiting === 0);
  t.like(await auditRow(w, (x) => x.action === 'POST /validate/check'), {
    success: false,
    outcome: 'ERROR',
    username: 'alice',
    info: { error: 'The client went away; the request was dropped.' },
  });
  t.true(w.seen.some((e) => e.name === 'pin.rejected' && (e.payload as { reason: string }).reason === 'client_gone'));
  await hold.release();
  t.is((await tokenOf(w, 'OATH0001')).failCount, 0, 'the wrong PIN was never hashed (a hashed one would have counted)');
  t.regex(await metricsOf(w), /^pushgate_pin_rejected_total\{reason="client_gone"\} 1$/m);
});

test('POST /auth whose client hung up is dropped before it is hashed, and audited as ERROR', async (t) => {
  const w = await world(t, { config: { pin: { ...PIN } } });
  await w.deps.store.admins.insert('admin', await w.deps.pins.hash('admin-pw'), w.clock.now());
  const hold = holdHasher(w);
  const req = hangUpLater(w, '/auth', { username: 'admin', password: 'admin-pw' });
  await until(() => w.deps.pins.limiter.waitingFor('admin:admin') === 1);
  req.destroy();
  await until(() => w.deps.pins.limiter.waiting === 0);
  t.like(await auditRow(w, (x) => x.action === 'POST /auth'), {
    success: false,
    outcome: 'ERROR',
    admin: 'admin',
    info: { error: 'The client went away; the request was dropped.' },
  });
  await hold.release();
});
