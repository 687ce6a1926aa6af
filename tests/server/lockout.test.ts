/**
 * Lockout semantics (issue 9, item 2): a locked token answers a right and a wrong PIN alike (no PIN oracle, no PIN
 * hash), and eduMFA's failcounter_clear_timeout (`tokens.failcounter_clear_timeout`, minutes): once the lock is
 * older than that, a correct authentication resets the fail counter and succeeds; a wrong one leaves it locked.
 * Time comes from the world's FakeClock.
 */
import test from 'ava';
import { RFC, check, enrollHotp, policy, tokenOf, world } from '../helpers/kit.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import type { Reply, TestWorld } from '../helpers/test_app.ts';

const MINUTE = 60_000;

/** Counts PIN hashes. */
function countVerifies(w: TestWorld): () => number {
  let n = 0;
  const orig = w.deps.pins.verify.bind(w.deps.pins);
  (w.deps.pins as { verify: typeof orig }).verify = (stored, secret) => {
    n++;
    return orig(stored, secret);
  };
  return () => n;
}

/** A reply without the fields that differ per request (time, id). */
const comparable = (r: Reply) => ({ status: r.status, body: { ...r.body, time: undefined, id: undefined } });

/** Locks OATH0001 (max_fail 3) with three wrong PINs. */
async function lock(w: TestWorld): Promise<void> {
  for (let i = 0; i < 3; i++) await check(w, { user: 'alice', pass: '0000000000' });
  const t = await tokenOf(w, 'OATH0001');
  if (t.failCount !== 3) throw new Error(`not locked: ${t.failCount}`);
}

test('a locked HOTP token: right PIN + right OTP, right PIN + wrong OTP and wrong PIN get identical answers, with no PIN hashed', async (t) => {
  const w = await world(t, { config: { tokens: { max_fail: 3, failcounter_clear_timeout: 0 } } });
  await enrollHotp(w);
  await lock(w);
  const verifies = countVerifies(w);
  const rightBoth = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  const rightPin = await check(w, { user: 'alice', pass: '1234999999' });
  const wrongPin = await check(w, { user: 'alice', pass: '9999999999' });
  t.deepEqual(comparable(rightPin), comparable(wrongPin));
  t.deepEqual(comparable(rightBoth), comparable(wrongPin));
  t.like(wrongPin.body, {
    result: { status: true, value: false, authentication: 'REJECT' },
    detail: { message: 'Failcounter exceeded', serial: 'OATH0001', type: 'hotp' },
  });
  t.is(verifies(), 0, 'no PIN hash for a locked token');
  t.is((await tokenOf(w, 'OATH0001')).counter, 0, 'the OTP was not used up');
});

test('a locked push token: right PIN and wrong PIN get identical answers, no challenge, no PIN hashed', async (t) => {
  const w = await pushWorld(t, { config: { tokens: { max_fail: 2, failcounter_clear_timeout: 0 } } });
  const serial = await enrollPhone(w, phoneFor(w));
  await check(w, { user: 'alice', pass: 'wrong' });
  await check(w, { user: 'alice', pass: 'wrong' });
  const verifies = countVerifies(w);
  const right = await check(w, { user: 'alice', pass: '1234' });
  const wrong = await check(w, { user: 'alice', pass: 'wrong' });
  t.deepEqual(comparable(right), comparable(wrong));
  t.like(right.body, { detail: { message: 'Failcounter exceeded', serial } });
  t.is(verifies(), 0);
  t.false(w.seen.some((e) => e.name === 'challenge.created'));
});

test("a locked token next to an unlocked one: the answer does not depend on the locked token's PIN", async (t) => {
  const w = await world(t, { config: { tokens: { max_fail: 3, failcounter_clear_timeout: 0 } } });
  await enrollHotp(w);
  await lock(w);
  await enrollHotp(w, { serial: 'OATH0002', pin: '5678' }); // a second token, PIN 5678, same OTP key
  const rightForLocked = await check(w, { user: 'alice', pass: '1234999999' });
  const wrongForBoth = await check(w, { user: 'alice', pass: '9999999999' });
  t.deepEqual(comparable(rightForLocked).body.detail, comparable(wrongForBoth).body.detail);
  t.like(wrongForBoth.body, { detail: { message: 'wrong otp pin' } });
  t.like((await check(w, { user: 'alice', pass: '5678' + RFC[0] })).body, { result: { value: true }, detail: { serial: 'OATH0002' } });
});

test('locked_at: set by the increment that locks, kept by later failures, cleared by POST /token/reset', async (t) => {
  const w = await world(t, { config: { tokens: { max_fail: 3, failcounter_clear_timeout: 0 } } });
  await enrollHotp(w);
  const start = w.clock.now();
  await check(w, { user: 'alice', pass: '0000000000' });
  t.is((await tokenOf(w, 'OATH0001')).lockedAt, null);
  w.clock.advance(MINUTE);
  await check(w, { user: 'alice', pass: '0000000000' });
  t.like(
    await tokenOf(w, 'OATH0001'),
    { failCount: 2, lockedAt: null },
    'one below max_fail: not locked (MariaDB evaluates SET left to right)',
  );
  w.clock.advance(MINUTE);
  await check(w, { user: 'alice', pass: '0000000000' });
  t.like(await tokenOf(w, 'OATH0001'), { failCount: 3, lockedAt: start + 2 * MINUTE });
  w.clock.advance(MINUTE);
  await check(w, { user: 'alice', pass: '0000000000' });
  t.like(await tokenOf(w, 'OATH0001'), { failCount: 3, lockedAt: start + 2 * MINUTE }, 'a failure while locked does not move it');
  const { asAdmin } = await import('../helpers/kit.ts');
  t.is((await w.call('POST', '/token/reset/OATH0001', {}, { headers: await asAdmin(w) })).status, 200);
  t.like(await tokenOf(w, 'OATH0001'), { failCount: 0, lockedAt: null });
});

test('failcounter_clear_timeout: before it the right pass is refused; after it a wrong pass stays locked (lock time unchanged), the right one resets and succeeds', async (t) => {
  const w = await world(t, { config: { tokens: { max_fail: 3, failcounter_clear_timeout: 5 } } });
  await enrollHotp(w);
  await lock(w);
  const lockedAt = (await tokenOf(w, 'OATH0001')).lockedAt!;
  w.clock.advance(5 * MINUTE); // exactly the timeout: eduMFA clears only after it (now > locked + timeout)
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, {
    result: { value: false },
    detail: { message: 'Failcounter exceeded' },
  });
  w.clock.advance(1);
  const wrongOtp = await check(w, { user: 'alice', pass: '1234999999' });
  const wrongPin = await check(w, { user: 'alice', pass: '9999' + RFC[0] });
  t.deepEqual(comparable(wrongOtp), comparable(wrongPin), 'after the timeout, still no PIN oracle');
  t.like(wrongPin.body, { result: { value: false }, detail: { message: 'Failcounter exceeded' } });
  t.like(await tokenOf(w, 'OATH0001'), { failCount: 3, lockedAt });
  const ok = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.like(ok.body, { result: { value: true, authentication: 'ACCEPT' }, detail: { serial: 'OATH0001' } });
  t.like(await tokenOf(w, 'OATH0001'), { failCount: 0, lockedAt: null, counter: 1 });
});

test("failcounter_clear_timeout 0 (eduMFA's off): a lock stays however long it is", async (t) => {
  const w = await world(t, { config: { tokens: { max_fail: 3, failcounter_clear_timeout: 0 } } });
  await enrollHotp(w);
  await lock(w);
  w.clock.advance(365 * 24 * 60 * MINUTE);
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, {
    result: { value: false },
    detail: { message: 'Failcounter exceeded' },
  });
  t.is((await tokenOf(w, 'OATH0001')).failCount, 3);
});

test('failcounter_clear_timeout: the PIN of a stale-locked challenge token triggers again and clears the lock (HOTP challenge and push)', async (t) => {
  const w = await world(t, {
    config: {
      tokens: { max_fail: 3, failcounter_clear_timeout: 10 },
      policies: [policy('cr', 'authentication', { challenge_response: ['hotp'] })],
    },
  });
  await enrollHotp(w);
  await lock(w);
  t.like((await check(w, { user: 'alice', pass: '1234' })).body, { detail: { message: 'Failcounter exceeded' } });
  w.clock.advance(10 * MINUTE + 1);
  const r = await check(w, { user: 'alice', pass: '1234' });
  t.like(r.body, { result: { authentication: 'CHALLENGE' } });
  t.like(await tokenOf(w, 'OATH0001'), { failCount: 0, lockedAt: null });

  const p = await pushWorld(t, { config: { tokens: { max_fail: 2, failcounter_clear_timeout: 10 } } });
  const serial = await enrollPhone(p, phoneFor(p));
  await check(p, { user: 'alice', pass: 'wrong' });
  await check(p, { user: 'alice', pass: 'wrong' });
  p.clock.advance(10 * MINUTE + 1);
  t.like(
    (await check(p, { user: 'alice', pass: 'wrong' })).body,
    { detail: { message: 'Failcounter exceeded', serial } },
    'a wrong PIN: still locked',
  );
  t.like((await check(p, { user: 'alice', pass: '1234' })).body, { result: { authentication: 'CHALLENGE' } });
  t.like(await tokenOf(p, serial), { failCount: 0, lockedAt: null });
});
