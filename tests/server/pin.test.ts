/**
 * server/auth/pin.ts: argon2id PIN hashes (OWASP defaults), bounded concurrency, and the property that a flood of
 * PIN checks never stalls the health check. The queue itself (bounds, fairness): tests/server/auth/limiter.test.ts.
 */
import test from 'ava';
import { createPinHasher } from '../../server/auth/pin.ts';
import { parseConfig } from '../../server/config.ts';
import { RFC, check, deferred, enroll, enrollHotp, tokenOf, track, until, world } from '../helpers/kit.ts';

/** `$argon2id$v=19$m=…,t=…,p=…$salt$hash` → { m, t, p } (the parameter order is not fixed by PHC). */
function argonParams(hash: string): Record<string, string> {
  const m = /^\$argon2id\$v=19\$([^$]+)\$[^$]+\$[^$]+$/.exec(hash);
  if (!m) throw new Error(`not an argon2id PHC string: ${hash}`);
  return Object.fromEntries(m[1]!.split(',').map((kv) => kv.split('=') as [string, string]));
}

test('stored token PIN is an argon2id hash with the configured parameters, salted', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  await enrollHotp(w, { user: 'bob', serial: 'OATH0002' });
  const a = (await tokenOf(w, 'OATH0001')).pinHash!;
  const b = (await tokenOf(w, 'OATH0002')).pinHash!;
  t.deepEqual(argonParams(a), { m: '1024', t: '1', p: '1' });
  t.false(a.includes('1234'));
  t.not(a, b, 'same PIN, different salt');
  t.true(await w.deps.pins.verify(a, '1234'));
  t.false(await w.deps.pins.verify(a, '12345'));
  const admin = await w.deps.store.admins.byName('admin');
  t.true(admin!.passwordHash.startsWith('$argon2id$'));
});

test('a token without a PIN stores no hash; only the empty PIN matches', async (t) => {
  const w = await world(t);
  await enroll(w, { type: 'hotp', otpkey: '3132333435363738393031323334353637383930', user: 'alice', serial: 'OATH0001' });
  t.is((await tokenOf(w, 'OATH0001')).pinHash, null);
  t.like((await check(w, { user: 'alice', pass: RFC[0] })).body, { result: { value: true } });
  t.like((await check(w, { user: 'alice', pass: '0' + RFC[1] })).body, { result: { value: false } });
});

test('default parameters are OWASP argon2id (m=19456 KiB, t=2, p=1)', async (t) => {
  const hasher = createPinHasher(parseConfig({}, '/').pin);
  const h = await hasher.hash('pin');
  t.deepEqual(argonParams(h), { m: '19456', t: '2', p: '1' });
  t.true(await hasher.verify(h, 'pin'));
});

test('verify: null or empty stored hash matches only the empty secret; a malformed hash never matches', async (t) => {
  const hasher = createPinHasher({ memoryKib: 1024, timeCost: 1, parallelism: 1, maxConcurrent: 1 });
  t.true(await hasher.verify(null, ''));
  t.false(await hasher.verify(null, 'x'));
  t.true(await hasher.verify('', ''));
  t.false(await hasher.verify('$argon2id$garbage', 'x'));
  t.false(await hasher.verify('plain-text', 'plain-text'), 'a stored plain text is not a hash');
  t.is(hasher.limiter.active, 0, 'a failed verify released its slot');
});

test('PIN hashing concurrency is bounded by pin.max_concurrent', async (t) => {
  const hasher = createPinHasher({ memoryKib: 1024, timeCost: 1, parallelism: 1, maxConcurrent: 2, maxQueue: 10, maxQueuePerKey: 10 });
  const stored = await hasher.hash('x');
  let peak = 0;
  const all = Array.from({ length: 12 }, () =>
    hasher.verify(stored, 'x').finally(() => {
      peak = Math.max(peak, hasher.limiter.active);
    }),
  );
  peak = Math.max(peak, hasher.limiter.active);
  t.is(hasher.limiter.active, 2);
  t.is(hasher.limiter.waiting, 10);
  t.deepEqual(await Promise.all(all), Array(12).fill(true));
  t.true(peak <= 2);
});

test('healthz answers while a burst of 20 PIN checks is queued behind a busy hasher', async (t) => {
  // One user's burst of 20 fits the queue (by default one user may only hold a few places in it) and the back-off.
  const w = await world(t, {
    config: {
      tokens: { max_fail: 100 },
      limits: { failed_per_user: 0 },
      pin: { memory_kib: 1024, time_cost: 1, parallelism: 1, max_queue: 20, max_queue_per_key: 20 },
    },
  });
  await enrollHotp(w);
  const limiter = w.deps.pins.limiter;
  // Occupy every hashing slot until we say so.
  const gate = deferred();
  const held = Array.from({ length: limiter.max }, () => limiter.run(() => gate.promise));
  const checks = Array.from({ length: 20 }, (_, i) =>
    track(check(w, { user: 'alice', pass: i === 0 ? '1234' + RFC[0] : `1234${100000 + i}` })),
  );
  await until(() => limiter.waiting === 20);

  const health = await w.call('GET', '/healthz');
  t.is(health.status, 200);
  t.like(health.body, { result: { status: true, value: { status: 'ok', pin_queue: 20 } } });
  t.true(
    checks.every((c) => !c.settled()),
    'every PIN check is still in flight while the health check completed',
  );
  const poll = await w.call('GET', '/validate/polltransaction', { transaction_id: '12345678901234567890' });
  t.is(poll.status, 200, 'polls are not queued behind PIN checks either');

  gate.resolve();
  await Promise.all(held);
  const replies = await Promise.all(checks.map((c) => c.promise));
  t.true(replies.every((r) => r.status === 200));
  t.is(replies.filter((r) => r.body.result.value === true).length, 1);
  t.is(limiter.waiting, 0);
});

test('healthz completes before a burst of 20 real OWASP-cost PIN checks does (order, not time)', async (t) => {
  const w = await world(t, {
    config: {
      pin: { memory_kib: 19456, time_cost: 2, parallelism: 1, max_concurrent: 1, max_queue: 20, max_queue_per_key: 20 },
      tokens: { max_fail: 100 },
      limits: { failed_per_user: 0 },
    },
  });
  await enrollHotp(w);
  const checks = Array.from({ length: 20 }, (_, i) => track(check(w, { user: 'alice', pass: `1234${100000 + i}` })));
  await until(() => w.deps.pins.limiter.waiting > 0);
  const health = await w.call('GET', '/healthz');
  t.is(health.status, 200);
  t.false(
    checks.every((c) => c.settled()),
    'the burst was still running when the health check answered',
  );
  const replies = await Promise.all(checks.map((c) => c.promise));
  t.true(replies.every((r) => r.status === 200 && r.body.detail.message === 'wrong otp value'));
});
