/**
 * server/routes/validate.ts: /validate/check (HOTP, TOTP, spass, input checks, fail counter and lock, the
 * GHSA-74r7-3mjm-jc5v unknown-realm rule), /validate/triggerchallenge and /validate/polltransaction.
 */
import test from 'ava';
import { KEY_HEX, RFC, asAdmin, check, enroll, enrollHotp, hotpAt, policy, tokenOf, totpAt, usersYaml, world } from '../helpers/kit.ts';
import type { TestWorld } from '../helpers/test_app.ts';
import { apiKeyClaims, signJwt } from '../../server/auth/jwt.ts';

const REJECT = { status: true, value: false, authentication: 'REJECT' };
const ACCEPT = { status: true, value: true, authentication: 'ACCEPT' };

async function failcount(w: TestWorld, serial = 'OATH0001'): Promise<number> {
  return (await tokenOf(w, serial)).failCount;
}

// ---------------------------------------------------------------------------------------------------------------
// HOTP

test('hotp: look-ahead window of 10, a used or older counter is rejected, beyond the window too', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const a = await check(w, { user: 'alice', pass: '1234' + RFC[5] });
  t.deepEqual(a.body.result, ACCEPT, 'counter 5 is inside the window from 0');
  t.is((await tokenOf(w, 'OATH0001')).counter, 6);
  const older = await check(w, { user: 'alice', pass: '1234' + RFC[3] });
  t.deepEqual(older.body.result, REJECT);
  t.is(older.body.detail.message, 'wrong otp value');
  t.deepEqual((await check(w, { user: 'alice', pass: '1234' + RFC[6] })).body.result, ACCEPT);
  // next accepted counter is 7; window [7, 17)
  t.deepEqual((await check(w, { user: 'alice', pass: '1234' + hotpAt(17) })).body.result, REJECT, 'counter 17 is outside');
  t.deepEqual((await check(w, { user: 'alice', pass: '1234' + hotpAt(16) })).body.result, ACCEPT, 'counter 16 is the last inside');
});

test('hotp: 8 digits with sha256', async (t) => {
  const w = await world(t);
  await enrollHotp(w, { otplen: 8, hashlib: 'sha256' });
  const r = await check(w, { user: 'alice', pass: '1234' + hotpAt(0, 8, 'sha256') });
  t.like(r.body, { result: ACCEPT, detail: { otplen: 8, type: 'hotp' } });
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpAt(1, 8, 'sha1') })).body, {
    result: REJECT,
    detail: { message: 'wrong otp value' },
  });
});

test('check by serial only, GET and POST', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  t.like((await w.call('GET', '/validate/check', { serial: 'OATH0001', pass: '1234' + RFC[0] })).body, {
    result: ACCEPT,
    detail: { serial: 'OATH0001' },
  });
  t.like((await check(w, { serial: 'OATH0001', pass: '1234' + RFC[1] })).body, { result: ACCEPT });
  const unknown = await check(w, { serial: 'NOPE0001', pass: '1234' + RFC[2] });
  t.is(unknown.status, 404);
  t.deepEqual(unknown.body.result.error, { code: 601, message: 'The requested token could not be found.' });
});

// ---------------------------------------------------------------------------------------------------------------
// TOTP (fake clock)

test('totp: current step accepted once; after a later step was used an earlier one is rejected', async (t) => {
  const w = await world(t);
  await enroll(w, { type: 'totp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'TOTP0001' });
  const t0 = w.clock.now();
  const ok = await check(w, { user: 'alice', pass: '1234' + totpAt(t0) });
  t.like(ok.body, { result: ACCEPT, detail: { message: 'matching 1 tokens', serial: 'TOTP0001', type: 'totp', otplen: 6 } });
  t.like(
    (await check(w, { user: 'alice', pass: '1234' + totpAt(t0) })).body,
    { result: REJECT, detail: { message: 'wrong otp value' } },
    'replay',
  );

  w.clock.advance(30_000);
  t.like((await check(w, { user: 'alice', pass: '1234' + totpAt(w.clock.now()) })).body, { result: ACCEPT }, 'the next step');
  // The previous step (t0 + 0) is still inside the ±1 window, but older than the step just used.
  t.like((await check(w, { user: 'alice', pass: '1234' + totpAt(t0) })).body, { result: REJECT });
});

test('totp: a future step inside the window is accepted, then the current step is rejected', async (t) => {
  const w = await world(t);
  await enroll(w, { type: 'totp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'TOTP0001' });
  const now = w.clock.now();
  t.like((await check(w, { user: 'alice', pass: '1234' + totpAt(now + 30_000) })).body, { result: ACCEPT });
  t.like((await check(w, { user: 'alice', pass: '1234' + totpAt(now) })).body, { result: REJECT, detail: { message: 'wrong otp value' } });
});

test('totp: the default window is 180 s each side (eduMFA timeWindow); outside it is rejected; 60 s steps', async (t) => {
  const w = await world(t);
  await enroll(w, { type: 'totp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'TOTP0001' });
  const now = w.clock.now();
  t.like((await check(w, { user: 'alice', pass: '1234' + totpAt(now - 210_000) })).body, { result: REJECT });
  t.like((await check(w, { user: 'alice', pass: '1234' + totpAt(now + 210_000) })).body, { result: REJECT });
  t.like((await check(w, { user: 'alice', pass: '1234' + totpAt(now + 180_000) })).body, { result: ACCEPT }, '6 steps ahead');
  await enroll(w, { type: 'totp', otpkey: KEY_HEX, user: 'bob', pin: '1234', serial: 'TOTP0060', timeStep: 60 });
  w.clock.advance(60_000);
  t.like((await check(w, { user: 'bob', pass: '1234' + totpAt(w.clock.now(), 60) })).body, {
    result: ACCEPT,
    detail: { serial: 'TOTP0060' },
  });
  t.like((await check(w, { user: 'bob', pass: '1234' + totpAt(w.clock.now(), 60) })).body, { result: REJECT });
});

// ---------------------------------------------------------------------------------------------------------------
// spass

test('spass: the whole pass is the PIN; accepted repeatedly; wrong pass is wrong otp pin', async (t) => {
  const w = await world(t);
  await enroll(w, { type: 'spass', user: 'carol', pin: 'letmein', serial: 'PISP0001' });
  const r = await check(w, { user: 'carol', pass: 'letmein' });
  t.like(r.body, { id: 2, result: ACCEPT, detail: { message: 'matching 1 tokens', serial: 'PISP0001', type: 'spass' } });
  t.like((await check(w, { user: 'carol', pass: 'letmein' })).body, { result: ACCEPT }, 'a static password has no replay guard');
  const bad = await check(w, { user: 'carol', pass: 'letmein1' });
  t.like(bad.body, { result: REJECT, detail: { message: 'wrong otp pin' } });
  t.is(await failcount(w, 'PISP0001'), 1);
});

test('type restricts the tokens of a user', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  await enroll(w, { type: 'spass', user: 'alice', pin: 'static', serial: 'PISP0001' });
  t.like((await check(w, { user: 'alice', pass: 'static', type: 'hotp' })).body, { result: REJECT });
  t.like((await check(w, { user: 'alice', pass: 'static', type: 'spass' })).body, { result: ACCEPT, detail: { serial: 'PISP0001' } });
  t.like((await check(w, { user: 'alice', pass: 'static' })).body, { result: ACCEPT });
});

// ---------------------------------------------------------------------------------------------------------------
// Input checks

test('input: * in serial, % in user, no user/serial, missing pass, foreign serial, bad transaction_id', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  await enrollHotp(w, { user: 'bob', serial: 'OATH0002' });
  const err = async (params: Record<string, unknown>, message: string, as: 'form' | 'json' = 'form') => {
    const r = await check(w, params, { as });
    t.is(r.status, 400, message);
    t.deepEqual(r.body.result, { status: false, error: { code: 905, message } });
  };
  await err({ serial: 'OATH*', pass: 'x' }, 'ERR905: Invalid serial number.');
  await err({ user: 'al%ice', pass: 'x' }, 'ERR905: Invalid user.', 'json');
  await err({ user: 'al%ice', pass: 'x' }, 'ERR905: Invalid user.');
  await err({ pass: 'x' }, 'ERR905: You need to specify a serial or a user.');
  await err({ user: '', serial: '', pass: 'x' }, 'ERR905: You need to specify a serial or a user.');
  await err({ user: 'alice' }, "ERR905: Missing parameter: 'pass'");
  await err({ user: 'alice', serial: 'OATH0002', pass: '1234' + RFC[0] }, 'ERR905: Given serial does not belong to given user!');
  await err({ user: 'alice', pass: '1234', transaction_id: 'a b' }, 'ERR905: Invalid transaction_id.');
  t.is(await failcount(w), 0, 'no input error touched a fail counter');
  t.is(await failcount(w, 'OATH0002'), 0);
  const empty = await check(w, { user: 'alice', pass: '' });
  t.is(empty.status, 200, 'an empty pass is allowed');
  t.like(empty.body, { result: REJECT, detail: { message: 'wrong otp pin' } });
});

test('a user without tokens: The user has no tokens assigned', async (t) => {
  const w = await world(t);
  const r = await check(w, { user: 'nobody', pass: 'x' });
  t.is(r.status, 200);
  t.deepEqual(r.body.result, REJECT);
  t.deepEqual(r.body.detail, { message: 'The user has no tokens assigned' });
});

test('a disabled token: No suitable token found for authentication.; enabled again it works', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const h = await asAdmin(w);
  t.is((await w.call('POST', '/token/disable/OATH0001', {}, { headers: h })).status, 200);
  const r = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.deepEqual(r.body.result, REJECT);
  t.is(r.body.detail.message, 'No suitable token found for authentication.');
  t.is(await failcount(w), 0);
  t.is((await w.call('POST', '/token/enable/OATH0001', {}, { headers: h })).status, 200);
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: ACCEPT });
});

// ---------------------------------------------------------------------------------------------------------------
// Fail counter and max_fail

test('fail counter: wrong value and wrong pin count, success resets', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  await check(w, { user: 'alice', pass: '1234000000' });
  t.is(await failcount(w), 1);
  await check(w, { user: 'alice', pass: '0000' + RFC[0] });
  t.is(await failcount(w), 2);
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: ACCEPT });
  t.is(await failcount(w), 0);
  t.deepEqual(
    w.seen.filter((e) => e.name === 'token.fail_counter').map((e) => e.payload),
    [
      { serial: 'OATH0001', failCount: 1, maxFail: 10 },
      { serial: 'OATH0001', failCount: 2, maxFail: 10 },
    ],
  );
});

test('max_fail: the token locks (Failcounter exceeded), stays at max, POST /token/reset/<serial> unlocks', async (t) => {
  const w = await world(t, { config: { tokens: { max_fail: 3 } } });
  await enrollHotp(w);
  for (let i = 0; i < 3; i++) await check(w, { user: 'alice', pass: '1234999999' });
  t.is(await failcount(w), 3);
  t.is(w.seen.filter((e) => e.name === 'token.locked').length, 1);
  const locked = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.deepEqual(locked.body.result, REJECT);
  t.regex(locked.body.detail.message, /Failcounter exceeded/);
  t.is(locked.body.detail.message, 'Failcounter exceeded', 'a locked token answers without looking at the pass');
  await check(w, { user: 'alice', pass: '1234999999' });
  t.is(await failcount(w), 3, 'never past max_fail');
  const h = await asAdmin(w);
  const list = await w.call('GET', '/token/', { serial: 'OATH0001' }, { headers: h });
  // eduMFA's `locked` means revoked; a token at its fail counter limit shows failcount == maxfail.
  t.like(list.body.result.value.tokens[0], { failcount: 3, maxfail: 3, locked: false, revoked: false });

  const reset = await w.call('POST', '/token/reset/OATH0001', {}, { headers: h });
  t.is(reset.status, 200);
  t.is(await failcount(w), 0);
  t.like(
    (await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body,
    { result: ACCEPT },
    'the OTP rejected while locked was not consumed',
  );
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[1] })).body, { result: ACCEPT });
});

// ---------------------------------------------------------------------------------------------------------------
// GHSA-74r7-3mjm-jc5v: an unknown realm never touches a fail counter

test('unknown realm or user in a realm: 904 before any token is touched', async (t) => {
  const w = await world(t, {
    config: {
      realms: [
        { name: 'default', default: true },
        { name: 'corp', users: { type: 'file', path: 'users.yaml' } },
      ],
    },
    files: { 'users.yaml': usersYaml([{ username: 'bob' }]) },
  });
  await enrollHotp(w);
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ user: 'alice', realm: 'nope', pass: '1234000000' }, 'ERR904: User <alice@nope> does not exist.'],
    [{ user: 'alice', realm: 'corp', pass: '1234000000' }, 'ERR904: User <alice@corp> does not exist.'],
    [{ user: 'alice@corp', pass: '1234000000' }, 'ERR904: User <alice@corp> does not exist.'],
    [{ user: 'alice', realm: 'nope', serial: 'OATH0001', pass: '1234000000' }, 'ERR904: User <alice@nope> does not exist.'],
  ];
  for (const [params, message] of cases) {
    const r = await check(w, params);
    t.is(r.status, 400, message);
    t.deepEqual(r.body.result.error, { code: 904, message });
  }
  t.is(await failcount(w), 0, 'alice in the default realm keeps failcount 0');
  t.false(w.seen.some((e) => e.name === 'token.fail_counter'));
  const admin = await asAdmin(w);
  const trig = await w.call('POST', '/validate/triggerchallenge', { user: 'alice', realm: 'nope' }, { headers: admin });
  t.is(trig.status, 400);
  t.is(trig.body.result.error.code, 904);
  t.false(w.seen.some((e) => e.name === 'challenge.created'));
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: ACCEPT });
  t.like((await check(w, { user: 'alice@default', pass: '1234' + RFC[1] })).body, { result: ACCEPT }, 'user@realm of an existing realm');
});

// ---------------------------------------------------------------------------------------------------------------
// /validate/triggerchallenge

test('triggerchallenge: missing or bad Authorization → 401', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const none = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' });
  t.is(none.status, 401);
  t.deepEqual(none.body.result.error, { code: 4033, message: 'Authentication failure. Missing Authorization header.' });
  const bad = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: { Authorization: 'not-a-jwt' } });
  t.is(bad.status, 401);
  t.is(bad.body.result.error.code, 4304);
  t.false(w.seen.some((e) => e.name === 'challenge.created'));
});

test('triggerchallenge: one challenge per token, shared transaction_id, value = count, CHALLENGE', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  await enroll(w, { type: 'hotp', genkey: 1, user: 'alice', pin: '5555', serial: 'OATH0002' });
  await enroll(w, { type: 'spass', user: 'alice', pin: 'x', serial: 'PISP0001' });
  const admin = await w.adminToken();
  const r = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: { Authorization: admin } });
  t.is(r.status, 200);
  t.like(r.body, { jsonrpc: '2.0', id: 2, result: { status: true, value: 2, authentication: 'CHALLENGE' } });
  const d = r.body.detail;
  const tid = d.transaction_id as string;
  t.regex(tid, /^\d{20}$/);
  t.deepEqual(d.transaction_ids, [tid, tid]);
  t.deepEqual(
    d.multi_challenge.map((c: any) => [c.serial, c.type, c.client_mode, c.transaction_id, c.message]),
    [
      ['OATH0001', 'hotp', 'interactive', tid, 'please enter otp: '],
      ['OATH0002', 'hotp', 'interactive', tid, 'please enter otp: '],
    ],
  );
  t.is(d.serial, 'OATH0002', 'flattened = last challenge');
  t.is(d.preferred_client_mode, 'interactive');
  t.deepEqual(d.messages, ['please enter otp: ', 'please enter otp: ']);
  t.is((await w.deps.store.challenges.byTransaction(tid)).length, 2);

  // No PIN needed to answer a triggered challenge.
  const ans = await check(w, { user: 'alice', transaction_id: tid, pass: RFC[0] });
  t.like(ans.body, { result: ACCEPT, detail: { message: 'Found matching challenge', serial: 'OATH0001' } });
  t.false('type' in ans.body.detail, 'eduMFA has no type in this branch');
  t.is((await w.deps.store.challenges.byTransaction(tid)).length, 0, 'all rows of the transaction are gone');
});

test('triggerchallenge: Bearer prefix accepted, serial only, no challengeable token → value 0 and empty lists', async (t) => {
  const w = await world(t);
  await enroll(w, { type: 'spass', user: 'carol', pin: 'x', serial: 'PISP0001' });
  await enrollHotp(w);
  const h = { Authorization: `Bearer ${await w.adminToken()}` };
  const none = await w.call('POST', '/validate/triggerchallenge', { user: 'carol' }, { headers: h });
  t.is(none.status, 200);
  t.deepEqual(none.body.result, { status: true, value: 0, authentication: 'REJECT' });
  t.deepEqual(none.body.detail, { messages: [], transaction_ids: [], multi_challenge: [] });
  const bySerial = await w.call('GET', '/validate/triggerchallenge', { serial: 'OATH0001' }, { headers: h });
  t.like(bySerial.body, { result: { value: 1, authentication: 'CHALLENGE' }, detail: { serial: 'OATH0001' } });
  const nobody = await w.call('POST', '/validate/triggerchallenge', { user: 'dave' }, { headers: h });
  t.deepEqual(nobody.body.result, { status: true, value: 0, authentication: 'REJECT' });
  const missing = await w.call('POST', '/validate/triggerchallenge', {}, { headers: h });
  t.is(missing.body.result.error.message, 'ERR905: You need to specify a serial or a user.');
});

test('triggerchallenge: disabled and locked tokens get no challenge', async (t) => {
  const w = await world(t, { config: { tokens: { max_fail: 1 } } });
  await enrollHotp(w);
  await enroll(w, { type: 'hotp', genkey: 1, user: 'alice', pin: '5555', serial: 'OATH0002' });
  const h = await asAdmin(w);
  await w.call('POST', '/token/disable/OATH0002', {}, { headers: h });
  t.like((await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h })).body, {
    result: { value: 1 },
    detail: { serial: 'OATH0001' },
  });
  await check(w, { serial: 'OATH0001', pass: '1234000000' });
  t.is(await failcount(w), 1);
  t.like((await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h })).body, { result: { value: 0 } });
});

// ---------------------------------------------------------------------------------------------------------------
// /validate/polltransaction

test('polltransaction: POST 405, missing id 400, unknown id pending/REJECT with id 2, path form', async (t) => {
  const w = await world(t);
  const post = await w.call('POST', '/validate/polltransaction', { transaction_id: '12345678901234567890' });
  t.is(post.status, 405);
  const missing = await w.call('GET', '/validate/polltransaction');
  t.is(missing.status, 400);
  t.deepEqual(missing.body.result.error, { code: 905, message: "ERR905: Missing parameter: 'transaction_id'" });
  const unknown = await w.call('GET', '/validate/polltransaction', { transaction_id: '12345678901234567890' });
  t.is(unknown.status, 200);
  t.deepEqual(unknown.body, {
    jsonrpc: '2.0',
    id: 2,
    time: w.clock.now() / 1000,
    version: unknown.body.version,
    versionnumber: unknown.body.versionnumber,
    result: { status: true, value: false, authentication: 'REJECT' },
    detail: { challenge_status: 'pending' },
  });
  const path = await w.call('GET', '/validate/polltransaction/12345678901234567890');
  t.deepEqual(path.body.result, { status: true, value: false, authentication: 'REJECT' });
  t.deepEqual(path.body.detail, { challenge_status: 'pending' });
});

test('polltransaction: pending, accepted, declined and expired rows', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  await enroll(w, { type: 'hotp', genkey: 1, user: 'alice', pin: '5555', serial: 'OATH0002' });
  const h = await asAdmin(w);
  const poll = async (tid: string) => (await w.call('GET', `/validate/polltransaction/${tid}`)).body;

  const tid = (await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h })).body.detail.transaction_id as string;
  t.like(await poll(tid), { result: { value: false, authentication: 'REJECT' }, detail: { challenge_status: 'pending' } });
  const [row1, row2] = await w.deps.store.challenges.byTransaction(tid);
  t.true(await w.deps.store.challenges.answer(row2!.id, 'declined', w.clock.now()));
  t.like(await poll(tid), { result: { value: false, authentication: 'DECLINED' }, detail: { challenge_status: 'declined' } });
  t.true(await w.deps.store.challenges.answer(row1!.id, 'accepted', w.clock.now()));
  const acc = await poll(tid);
  t.deepEqual(acc.result, { status: true, value: true, authentication: 'ACCEPT' });
  t.deepEqual(acc.detail, { challenge_status: 'accept' });
  t.like((await w.call('GET', '/validate/polltransaction', { transaction_id: tid })).body, { result: { value: true } });

  w.clock.advance(120_000);
  t.like(
    await poll(tid),
    { result: { value: false, authentication: 'REJECT' }, detail: { challenge_status: 'pending' } },
    'expired rows count as pending',
  );
});

test('api_key_required: /validate/check and /validate/polltransaction need a JWT with role validate where the policy applies', async (t) => {
  const w = await world(t, { config: { policies: [policy('keys', 'authorization', { api_key_required: true }, { user: ['alice'] })] } });
  await enrollHotp(w);
  await enrollHotp(w, { user: 'bob', serial: 'OATH0002', pin: '5678' });
  const noKey = { result: { status: false, error: { code: 303, message: 'No valid API key was passed.' } } };

  const missing = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.is(missing.status, 403, missing.text);
  t.like(missing.body, noKey);
  t.like(await check(w, { user: 'alice', pass: '1234' + RFC[0] }, { headers: { Authorization: 'not-a-jwt' } }).then((r) => r.body), noKey);
  const admin = await check(w, { user: 'alice', pass: '1234' + RFC[0] }, { headers: { Authorization: await w.adminToken() } });
  t.is(admin.status, 403);
  t.like(admin.body, { result: { error: { code: 303, message: 'A correct JWT was passed, but it was no API key.' } } });
  t.like(await tokenOf(w, 'OATH0001'), { failCount: 0, lastAuthAt: null }, 'refused before any token was touched');

  const key = await signJwt(apiKeyClaims('idp', w.clock.now(), 30), w.deps.jwtKey);
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] }, { headers: { Authorization: key } })).body, { result: ACCEPT });
  t.like((await check(w, { user: 'bob', pass: '5678' + RFC[0] })).body, { result: ACCEPT }, 'the policy is for alice only');
  const other = await signJwt(apiKeyClaims('idp', w.clock.now(), 30), Buffer.alloc(32, 7));
  t.like(
    (await check(w, { user: 'alice', pass: '1234' + RFC[1] }, { headers: { Authorization: other } })).body,
    noKey,
    'signed with another key',
  );
  const expired = await signJwt(apiKeyClaims('idp', w.clock.now() - 31 * 86_400_000, 30), w.deps.jwtKey);
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[1] }, { headers: { Authorization: expired } })).body, noKey, 'expired');
  const radius = await w.call('POST', '/validate/radiuscheck', { user: 'alice', pass: '1234' + RFC[1] });
  t.is(radius.status, 400, 'radiuscheck: refused like any failure (no body)');

  // polltransaction names no user, so user filters do not narrow the policy (as for every policy without a user).
  const poll = await w.call('GET', '/validate/polltransaction', { transaction_id: '123' });
  t.is(poll.status, 403);
  t.like(poll.body, noKey);
  t.is((await w.call('GET', '/validate/polltransaction', { transaction_id: '123' }, { headers: { Authorization: key } })).status, 200);
  const none = await world(t);
  t.is((await none.call('GET', '/validate/polltransaction', { transaction_id: '123' })).status, 200, 'no policy, no key needed');
});
