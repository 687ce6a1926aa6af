/**
 * server/routes/admin.ts + server/auth/admin_api.ts — the token admin API as privacyideaadm and the Java clients
 * call it (facts §1, §4): assign, unassign, set, resync, revoke, lost; with eduMFA's values and error envelopes,
 * and the behaviour each accepted key changes (windows, max_failcount, validity period).
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { hotpValue } from '../../tokens/otp.ts';
import {
  KEY,
  KEY_HEX,
  RFC,
  asAdmin,
  auditRows,
  check,
  enroll,
  enrollHotp,
  hotpAt,
  policy,
  tokenOf,
  usersYaml,
  world,
} from '../helpers/kit.ts';
import type { TestWorld } from '../helpers/test_app.ts';

const REJECT = { status: true, value: false, authentication: 'REJECT' };
const ACCEPT = { status: true, value: true, authentication: 'ACCEPT' };

/** Realm `corp` (default, users file: alice, bob) and an `any` realm `ext`. */
function corp(t: ExecutionContext, policies: unknown[] = []): Promise<TestWorld> {
  return world(t, {
    config: {
      realms: [
        { name: 'corp', default: true, users: { type: 'file', path: 'users.yaml' } },
        { name: 'ext', users: { type: 'any' } },
      ],
      policies,
    },
    files: { 'users.yaml': usersYaml([{ username: 'alice', givenname: 'Alice', email: 'alice@example.org' }, { username: 'bob' }]) },
  });
}

/** A POST as privacyideaadm sends it: form-urlencoded, raw JWT in Authorization. */
async function post(w: TestWorld, path: string, params: Record<string, unknown> = {}) {
  return w.call('POST', path, params, { headers: await asAdmin(w) });
}

function err(t: ExecutionContext, r: { status: number; body: any }, status: number, code: number, message: string) {
  t.is(r.status, status, message);
  t.deepEqual(r.body?.result?.error, { code, message }, message);
  t.is(r.body.result.status, false);
}

/** An unassigned HOTP token with the RFC key. */
const unowned = (w: TestWorld, serial = 'OATH0001') => enroll(w, { type: 'hotp', otpkey: KEY_HEX, serial });

// ---------------------------------------------------------------------------------------------------------------
// assign

test('POST /token/assign (privacyideaadm: form user, serial): value true, owner set, PIN given, fail counter 0; audited', async (t) => {
  const w = await corp(t);
  await unowned(w);
  await w.deps.store.tokens.incrementFailCount([(await tokenOf(w, 'OATH0001')).id], w.clock.now());
  const r = await post(w, '/token/assign', { user: 'alice', serial: 'OATH0001', pin: '1234' });
  t.is(r.status, 200);
  t.like(r.body, { id: 1, result: { status: true, value: true } });
  t.like(await tokenOf(w, 'OATH0001'), { username: 'alice', realm: 'corp', failCount: 0 });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: ACCEPT }, 'the user logs in with the assigned PIN');
  const row = (await auditRows(w)).find((a) => a.action === 'POST /token/assign');
  t.like(row, { success: true, outcome: 'OK', username: 'alice', serials: ['OATH0001'], admin: 'admin' });
  // user@realm (no realm parameter), and a realm parameter
  await unowned(w, 'OATH0002');
  t.like((await post(w, '/token/assign', { user: 'carol@ext', serial: 'OATH0002' })).body, { result: { value: true } });
  t.like(await tokenOf(w, 'OATH0002'), { username: 'carol', realm: 'ext' });
});

test('POST /token/assign errors: already assigned 1103 (owner repr), unknown user 904, unknown realm 404, missing serial/user 905, unknown serial 404', async (t) => {
  const w = await corp(t);
  await enrollHotp(w); // alice@corp
  await unowned(w, 'OATH0002');
  err(
    t,
    await post(w, '/token/assign', { user: 'bob', serial: 'OATH0001' }),
    400,
    1103,
    "ERR1103: Token already assigned to user User(login='alice', realm='corp', resolver='corp_file')",
  );
  err(
    t,
    await post(w, '/token/assign', { user: 'alice', serial: 'OATH0001' }),
    400,
    1103,
    "ERR1103: Token already assigned to user User(login='alice', realm='corp', resolver='corp_file')",
  );
  err(
    t,
    await post(w, '/token/assign', { user: 'nobody', serial: 'OATH0002' }),
    400,
    904,
    'ERR904: The user can not be found in any resolver in this realm!',
  );
  err(t, await post(w, '/token/assign', { user: 'bob', realm: 'nope', serial: 'OATH0002' }), 404, 601, "Realm 'nope' does not exist.");
  err(t, await post(w, '/token/assign', { user: 'bob' }), 400, 905, "ERR905: Missing parameter: 'serial'");
  err(t, await post(w, '/token/assign', { user: 'bob', serial: '' }), 400, 905, "ERR905: Missing parameter: 'serial'");
  err(t, await post(w, '/token/assign', { serial: 'OATH0002' }), 400, 905, "ERR905: Missing parameter: 'user'");
  err(t, await post(w, '/token/assign', { user: 'bob', serial: 'NOPE' }), 404, 601, 'The requested token could not be found.');
  t.is((await tokenOf(w, 'OATH0002')).username, null, 'nothing was assigned');
  t.true((await auditRows(w)).filter((a) => a.action === 'POST /token/assign').every((a) => !a.success && a.outcome === 'ERROR'));
});

test('POST /token/assign: max_token_per_user counts the assigned tokens', async (t) => {
  const w = await corp(t, [policy('max', 'enrollment', { max_token_per_user: 1 })]);
  await enrollHotp(w);
  await unowned(w, 'OATH0002');
  err(t, await post(w, '/token/assign', { user: 'alice', serial: 'OATH0002' }), 403, 303, 'The number of tokens for this user is limited!');
});

// ---------------------------------------------------------------------------------------------------------------
// unassign

test('POST /token/unassign: by serial value 1 (owner and PIN gone, fail counter 0); by user the count; neither 905; unknown 404', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  await enroll(w, { type: 'spass', user: 'alice', pin: 'pw', serial: 'PISP0001' });
  await enroll(w, { type: 'spass', user: 'bob', pin: 'pw', serial: 'PISP0002' });
  await check(w, { user: 'alice', pass: 'wrong' });
  const r = await post(w, '/token/unassign', { serial: 'OATH0001' });
  t.is(r.status, 200);
  t.like(r.body, { result: { status: true, value: 1 } });
  t.like(await tokenOf(w, 'OATH0001'), { username: null, realm: null, pinHash: null, failCount: 0 });
  const byUser = await post(w, '/token/unassign', { user: 'alice' });
  t.like(byUser.body, { result: { value: 1 } }, 'the one token alice still had');
  t.is((await tokenOf(w, 'PISP0002')).username, 'bob', "bob's token untouched");
  t.like((await check(w, { user: 'alice', pass: 'pw' })).body, { result: REJECT, detail: { message: 'The user has no tokens assigned' } });
  err(t, await post(w, '/token/unassign', {}), 400, 905, 'ERR905: You either need to provide user or serial');
  err(t, await post(w, '/token/unassign', { serial: 'NOPE' }), 404, 601, 'The requested token could not be found.');
  err(t, await post(w, '/token/unassign', { user: 'ghost' }), 400, 904, 'ERR904: The user can not be found in any resolver in this realm!');
  t.like((await post(w, '/token/unassign/PISP0002')).body, { result: { value: 1 } }, 'serial in the path');
});

// ---------------------------------------------------------------------------------------------------------------
// set

test('POST /token/set: value = number of attributes set; privacyideaadm camelCase keys change nothing (as eduMFA)', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  const r = await post(w, '/token/set', { serial: 'OATH0001', description: 'new phone', max_failcount: 3 });
  t.is(r.status, 200);
  t.like(r.body, { result: { status: true, value: 2 } });
  t.like(await tokenOf(w, 'OATH0001'), { description: 'new phone', maxFail: 3 });
  const adm = await post(w, '/token/set', { serial: 'OATH0001', MaxFailCount: 7, SyncWindow: 5 });
  t.like(adm.body, { result: { value: 0 } }, "privacyideaadm's legacy names are not eduMFA's");
  t.is((await tokenOf(w, 'OATH0001')).maxFail, 3);
  t.like((await post(w, '/token/set/OATH0001', { description: 'x' })).body, { result: { value: 1 } }, 'serial in the path');
  const row = (await auditRows(w)).filter((a) => a.action === 'POST /token/set')[0];
  t.like(row, { success: true, outcome: 'OK', serials: ['OATH0001'], info: { keys: ['description', 'max_failcount'] } });
});

test('POST /token/set max_failcount: the token locks after that many failures', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  await post(w, '/token/set', { serial: 'OATH0001', max_failcount: 2 });
  await check(w, { user: 'alice', pass: '1234000000' });
  await check(w, { user: 'alice', pass: '1234000000' });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: REJECT, detail: { message: 'Failcounter exceeded' } }); // a locked token answers every pass alike
});

test('POST /token/set count_window: the HOTP look-ahead of the check (default 10)', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpAt(15) })).body, { result: REJECT }, '15 ahead: outside the default 10');
  t.like((await post(w, '/token/set', { serial: 'OATH0001', count_window: 20 })).body, { result: { value: 1 } });
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpAt(15) })).body, { result: ACCEPT }, 'inside count_window 20');
  await post(w, '/token/set', { serial: 'OATH0001', count_window: 1 });
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpAt(17) })).body, { result: REJECT }, 'count_window 1: only the next value');
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpAt(16) })).body, { result: ACCEPT });
  const listed = await w.call('GET', '/token/', { serial: 'OATH0001' }, { headers: await asAdmin(w) });
  t.like(listed.body.result.value.tokens[0], { count_window: 1, sync_window: 1000 });
});

test('POST /token/set count_window on TOTP: the steps either side of now (default 180 s)', async (t) => {
  const w = await corp(t);
  await enroll(w, { type: 'totp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'TOTP0001' });
  const at = (ms: number) => hotpValue(KEY, Math.floor(ms / 30_000), 6, 'sha1');
  t.like(
    (await check(w, { user: 'alice', pass: '1234' + at(w.clock.now() - 120_000) })).body,
    { result: ACCEPT },
    '4 steps old: inside the default',
  );
  w.clock.advance(30_000);
  await post(w, '/token/set', { serial: 'TOTP0001', count_window: 1 });
  t.like(
    (await check(w, { user: 'alice', pass: '1234' + at(w.clock.now() - 60_000) })).body,
    { result: REJECT },
    '2 steps old: outside count_window 1',
  );
  t.like((await check(w, { user: 'alice', pass: '1234' + at(w.clock.now() - 30_000) })).body, { result: ACCEPT });
});

test('POST /token/set validity_period_start/end: a check outside the period fails; empty removes it; bad date ERR301', async (t) => {
  const w = await corp(t, [policy('cr', 'authentication', { challenge_response: ['hotp'] })]);
  await enrollHotp(w);
  // 2026-11-25T12:00Z is now: an end one minute before now
  t.like((await post(w, '/token/set', { serial: 'OATH0001', validity_period_end: '2026-11-25T12:59+0100' })).body, {
    result: { value: 1 },
  });
  const out = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.like(out.body, { result: REJECT, detail: { message: 'matching 1 tokens, Outside validity period', serial: 'OATH0001' } });
  t.like(
    (await check(w, { user: 'alice', pass: '1234' })).body,
    { result: REJECT, detail: { message: 'Outside validity period' } },
    'no challenge either',
  );
  const listed = await w.call('GET', '/token/', { serial: 'OATH0001' }, { headers: await asAdmin(w) });
  t.is(listed.body.result.value.tokens[0].info.validity_period_end, '2026-11-25T11:59+0000');
  t.like((await post(w, '/token/set', { serial: 'OATH0001', validity_period_end: '' })).body, { result: { value: 1 } });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[1] })).body, { result: ACCEPT }, 'period removed');
  await post(w, '/token/set', { serial: 'OATH0001', validity_period_start: '2026-11-26' });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[2] })).body, {
    result: REJECT,
    detail: { message: 'matching 1 tokens, Outside validity period' },
  });
  err(
    t,
    await post(w, '/token/set', { serial: 'OATH0001', validity_period_start: 'tomorrow' }),
    400,
    301,
    'ERR301: Could not parse validity period start date!',
  );
  err(
    t,
    await post(w, '/token/set', { serial: 'OATH0001', validity_period_end: '2026-02-30T10:00' }),
    400,
    301,
    'ERR301: Could not parse validity period end date!',
  );
  w.clock.advance(86_400_000);
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[3] })).body, { result: ACCEPT }, 'the period has begun');
});

test('POST /token/set errors: serial required, unknown serial, bad numbers, unsupported keys, hashlib only for OTP types', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  await enroll(w, { type: 'spass', user: 'bob', pin: 'pw', serial: 'PISP0001' });
  err(t, await post(w, '/token/set', { user: 'alice', description: 'x' }), 400, 905, "ERR905: Missing parameter: 'serial'");
  err(t, await post(w, '/token/set', { serial: 'NOPE', description: 'x' }), 404, 601, 'The requested token could not be found.');
  err(
    t,
    await post(w, '/token/set', { serial: 'OATH0001', user: 'bob', description: 'x' }),
    404,
    601,
    'The requested token could not be found.',
  );
  err(
    t,
    await post(w, '/token/set', { serial: 'OATH0001', count_window: 'ten' }),
    400,
    905,
    "ERR905: Invalid count_window 'ten': an integer from 1 to 1000.",
  );
  err(
    t,
    await post(w, '/token/set', { serial: 'OATH0001', max_failcount: 0 }),
    400,
    905,
    "ERR905: Invalid max_failcount '0': an integer from 1 to 2147483647.",
  );
  err(
    t,
    await post(w, '/token/set', { serial: 'OATH0001', count_auth_max: 5 }),
    400,
    905,
    "ERR905: Parameter 'count_auth_max' is not supported by this server.",
  );
  err(t, await post(w, '/token/set', { serial: 'PISP0001', hashlib: 'sha256' }), 400, 905, 'ERR905: A spass token has no hashlib.');
  t.like(
    await tokenOf(w, 'OATH0001'),
    { description: '', maxFail: 10, countWindow: null },
    'a refused request sets nothing, not even the valid keys',
  );
  // hashlib on HOTP changes the algorithm of the check
  t.like((await post(w, '/token/set', { serial: 'OATH0001', hashlib: 'sha256' })).body, { result: { value: 1 } });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: REJECT });
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpValue(KEY, 0, 6, 'sha256') })).body, { result: ACCEPT });
});

// ---------------------------------------------------------------------------------------------------------------
// resync

test('POST /token/resync HOTP: two consecutive values far ahead put the counter after them; a wrong pair is value false (200)', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpAt(50) })).body, { result: REJECT }, 'out of the window');
  const bad = await post(w, '/token/resync', { serial: 'OATH0001', otp1: hotpAt(50), otp2: hotpAt(52) });
  t.is(bad.status, 200);
  t.like(bad.body, { result: { status: true, value: false } });
  t.like(
    (await auditRows(w)).find((a) => a.action === 'POST /token/resync'),
    { success: false, outcome: 'REJECT' },
  );
  const r = await post(w, '/token/resync', { serial: 'OATH0001', otp1: hotpAt(50), otp2: hotpAt(51) });
  t.like(r.body, { result: { status: true, value: true } });
  t.like(await tokenOf(w, 'OATH0001'), { counter: 52, failCount: 0 });
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpAt(51) })).body, { result: REJECT }, 'otp2 is spent');
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpAt(52) })).body, { result: ACCEPT });
  err(t, await post(w, '/token/resync', { serial: 'OATH0001', otp1: hotpAt(60) }), 400, 905, "ERR905: Missing parameter: 'otp2'");
  err(t, await post(w, '/token/resync', { otp1: '1', otp2: '2' }), 400, 905, "ERR905: Missing parameter: 'serial'");
  err(t, await post(w, '/token/resync/NOPE', { otp1: '1', otp2: '2' }), 404, 601, 'The requested token could not be found.');
});

test('POST /token/resync uses sync_window (default 1000): values beyond it do not resync', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  await post(w, '/token/set', { serial: 'OATH0001', sync_window: 20 });
  t.like((await post(w, '/token/resync', { serial: 'OATH0001', otp1: hotpAt(30), otp2: hotpAt(31) })).body, { result: { value: false } });
  await post(w, '/token/set', { serial: 'OATH0001', sync_window: 40 });
  t.like((await post(w, '/token/resync', { serial: 'OATH0001', otp1: hotpAt(30), otp2: hotpAt(31) })).body, { result: { value: true } });
  t.is((await tokenOf(w, 'OATH0001')).counter, 32);
});

test('POST /token/resync TOTP: a token whose clock runs an hour ahead is followed from then on', async (t) => {
  const w = await corp(t);
  await enroll(w, { type: 'totp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'TOTP0001' });
  const phone = (offsetSteps: number) => hotpValue(KEY, Math.floor((w.clock.now() + 3_600_000) / 30_000) + offsetSteps, 6, 'sha1');
  t.like((await check(w, { user: 'alice', pass: '1234' + phone(0) })).body, { result: REJECT }, 'an hour ahead: outside the window');
  const r = await post(w, '/token/resync', { serial: 'TOTP0001', otp1: phone(0), otp2: phone(1) });
  t.like(r.body, { result: { value: true } });
  t.is((await tokenOf(w, 'TOTP0001')).info.timeShift, '3630', 'the offset of otp2 (one step after now + 1 h)');
  w.clock.advance(90_000);
  t.like((await check(w, { user: 'alice', pass: '1234' + phone(0) })).body, { result: ACCEPT }, 'the phone time is now the reference');
  w.clock.advance(30_000);
  t.like((await check(w, { user: 'alice', pass: '1234' + phone(0) })).body, { result: ACCEPT });
});

// ---------------------------------------------------------------------------------------------------------------
// revoke

test('POST /token/revoke: value 1; revoked, disabled, locked in GET /token/; check 1007; no admin change but delete; for good', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  const r = await post(w, '/token/revoke', { serial: 'OATH0001' });
  t.is(r.status, 200);
  t.like(r.body, { result: { status: true, value: 1 } });
  t.like(await tokenOf(w, 'OATH0001'), { revoked: true, active: false });
  const listed = await w.call('GET', '/token/', { serial: 'OATH0001' }, { headers: await asAdmin(w) });
  t.like(listed.body.result.value.tokens[0], { revoked: true, locked: true, active: false });
  const locked = 'ERR1007: This action is not possible, since the token is locked';
  err(t, await check(w, { user: 'alice', pass: '1234' + RFC[0] }), 400, 1007, locked);
  err(t, await check(w, { serial: 'OATH0001', pass: '1234' + RFC[0] }), 400, 1007, locked);
  for (const [path, params] of [
    ['/token/enable', { serial: 'OATH0001' }],
    ['/token/disable/OATH0001', {}],
    ['/token/setpin/OATH0001', { otppin: '1' }],
    ['/token/reset/OATH0001', {}],
    ['/token/set', { serial: 'OATH0001', description: 'x' }],
    ['/token/revoke', { serial: 'OATH0001' }],
    ['/token/unassign', { serial: 'OATH0001' }],
    ['/token/resync', { serial: 'OATH0001', otp1: RFC[1], otp2: RFC[2] }],
    ['/token/lost/OATH0001', {}],
  ] as const) {
    err(t, await post(w, path, params), 400, 1007, locked);
  }
  t.like(await tokenOf(w, 'OATH0001'), { revoked: true, active: false, description: '', counter: 0 }, 'nothing changed it');
  // another token of the user still works: revoked ones are only left out
  await enroll(w, { type: 'spass', user: 'alice', pin: 'pw', serial: 'PISP0001' });
  t.like((await check(w, { user: 'alice', pass: 'pw' })).body, { result: ACCEPT });
  t.is((await w.call('DELETE', '/token/OATH0001', {}, { headers: await asAdmin(w) })).status, 200, 'delete still works');
});

test('POST /token/revoke withdraws pending challenges: their answer is refused', async (t) => {
  const w = await corp(t, [policy('cr', 'authentication', { challenge_response: ['hotp'] })]);
  await enrollHotp(w);
  const c = await check(w, { user: 'alice', pass: '1234' });
  t.is(c.body.result.authentication, 'CHALLENGE');
  await post(w, '/token/revoke', { serial: 'OATH0001' });
  t.deepEqual(await w.deps.store.challenges.byTransaction(c.body.detail.transaction_id), [], 'withdrawn');
  err(
    t,
    await check(w, { user: 'alice', pass: RFC[0], transaction_id: c.body.detail.transaction_id }),
    400,
    1007,
    'ERR1007: This action is not possible, since the token is locked',
  );
});

test('POST /token/revoke by user: every token of the user, the count; neither user nor serial 905', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  await enroll(w, { type: 'spass', user: 'alice', pin: 'pw', serial: 'PISP0001' });
  await enroll(w, { type: 'spass', user: 'bob', pin: 'pw', serial: 'PISP0002' });
  t.like((await post(w, '/token/revoke', { user: 'alice' })).body, { result: { value: 2 } });
  t.like((await post(w, '/token/revoke', { user: 'alice' })).body, { result: { value: 0 } }, 'already revoked: not counted');
  t.false((await tokenOf(w, 'PISP0002')).revoked ?? false);
  err(t, await post(w, '/token/revoke', {}), 400, 905, 'ERR905: You either need to provide user or serial');
  t.like(
    (await auditRows(w)).find((a) => a.action === 'POST /token/revoke'),
    { success: true, serials: ['OATH0001', 'PISP0001'] },
  );
});

// ---------------------------------------------------------------------------------------------------------------
// lost token

test('POST /token/lost/<serial>: pw token lost<serial> (old PIN + password, 10 days), the old token disabled; eduMFA value', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  const r = await post(w, '/token/lost/OATH0001');
  t.is(r.status, 200);
  const v = r.body.result.value;
  t.deepEqual(Object.keys(v).sort(), ['disable', 'end_date', 'init', 'password', 'pin', 'serial', 'user', 'valid_to']);
  t.like(v, { serial: 'lostOATH0001', init: true, user: true, pin: true, valid_to: 'xxxx', disable: 1, end_date: '2026-12-05T12:00+0000' });
  t.regex(v.password, /^[1-9A-HJ-NP-Za-km-z]{16}$/, '16 base58 characters');
  t.like(await tokenOf(w, 'OATH0001'), { active: false });
  t.like(await tokenOf(w, 'lostOATH0001'), {
    type: 'pw',
    username: 'alice',
    realm: 'corp',
    description: 'temporary replacement for OATH0001',
    otpLen: 16,
  });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: REJECT }, 'the lost token no longer works');
  const ok = await check(w, { user: 'alice', pass: '1234' + v.password });
  t.like(ok.body, { result: ACCEPT, detail: { serial: 'lostOATH0001' } });
  t.like((await check(w, { user: 'alice', pass: '0000' + v.password })).body, { result: REJECT }, 'the PIN is still needed');
  w.clock.advance(10 * 86_400_000 + 60_000);
  t.like(
    (await check(w, { user: 'alice', pass: '1234' + v.password })).body,
    { result: REJECT, detail: { message: 'matching 1 tokens, Outside validity period' } },
    'after its 10 days',
  );
  const row = (await auditRows(w)).find((a) => a.action === 'POST /token/lost');
  t.like(row, { success: true, serials: ['OATH0001', 'lostOATH0001'] });
  t.false(JSON.stringify(await auditRows(w)).includes(v.password), 'the password is in no audit row');
});

test('POST /token/lost: losttoken_PW_length/_contents/_valid policies; unassigned 2012; unknown 404; twice 905', async (t) => {
  const w = await corp(t, [policy('lost', 'enrollment', { losttoken_PW_length: 8, losttoken_PW_contents: 'n', losttoken_valid: 1 })]);
  await enrollHotp(w);
  await unowned(w, 'OATH0002');
  const v = (await post(w, '/token/lost/OATH0001')).body.result.value;
  t.regex(v.password, /^\d{8}$/);
  t.is(v.end_date, '2026-11-26T12:00+0000');
  err(t, await post(w, '/token/lost/OATH0001'), 400, 905, 'ERR905: A token with the serial lostOATH0001 already exists.');
  err(t, await post(w, '/token/lost/OATH0002'), 400, 2012, 'ERR2012: You can only define a lost token for an assigned token.');
  err(t, await post(w, '/token/lost/NOPE'), 404, 601, 'The requested token could not be found.');
  err(t, await post(w, '/token/lost/OATH0001', { user: 'bob' }), 404, 601, 'The requested token could not be found.');
});

test('pw token by /token/init (privacyideaadm --type pw --otpkey): PIN + password', async (t) => {
  const w = await corp(t);
  const r = await post(w, '/token/init', {
    type: 'pw',
    otpkey: 'Secret-1',
    user: 'bob',
    pin: 'p',
    serial: 'PW0001',
    description: 'command line enrolled',
  });
  t.is(r.status, 200);
  t.like((await check(w, { user: 'bob', pass: 'pSecret-1' })).body, { result: ACCEPT });
  t.like((await check(w, { user: 'bob', pass: 'pSecret-2' })).body, { result: REJECT });
  err(t, await post(w, '/token/init', { type: 'pw', user: 'bob' }), 400, 905, "ERR905: Missing parameter: 'otpkey'");
});

// ---------------------------------------------------------------------------------------------------------------
// rights

test('admin rights: with admin policies each endpoint needs its action (403 / 303)', async (t) => {
  const w = await corp(t, [policy('helpdesk', 'admin', { enroll: true })]);
  await enrollHotp(w);
  for (const [path, right, params] of [
    ['/token/assign', 'assign', { serial: 'OATH0001', user: 'bob' }],
    ['/token/unassign', 'unassign', { serial: 'OATH0001' }],
    ['/token/set', 'set', { serial: 'OATH0001', description: 'x' }],
    ['/token/resync', 'resync', { serial: 'OATH0001', otp1: '1', otp2: '2' }],
    ['/token/revoke', 'revoke', { serial: 'OATH0001' }],
    ['/token/lost/OATH0001', 'losttoken', {}],
  ] as const) {
    err(t, await post(w, path, params), 403, 303, `Admin actions are defined, but the action ${right} is not allowed!`);
  }
  t.like(await tokenOf(w, 'OATH0001'), { username: 'alice', description: '', active: true, revoked: false });
  const w2 = await corp(t, [policy('tokens', 'admin', { enroll: true, assign: true, unassign: true, set: true, revoke: true })]);
  await unowned(w2);
  t.is((await post(w2, '/token/assign', { serial: 'OATH0001', user: 'bob' })).status, 200);
  t.is((await post(w2, '/token/set', { serial: 'OATH0001', description: 'x' })).status, 200);
  t.is((await post(w2, '/token/unassign', { serial: 'OATH0001' })).status, 200);
  t.is((await post(w2, '/token/revoke', { serial: 'OATH0001' })).status, 200);
  const noJwt = await w2.call('POST', '/token/assign', { serial: 'OATH0001', user: 'bob' });
  err(t, noJwt, 401, 4033, 'Authentication failure. Missing Authorization header.');
});

test('store: a revoked token is changed by no statement but delete (an enable or a login racing the revoke loses)', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  const tok = await tokenOf(w, 'OATH0001');
  t.is(await w.deps.store.tokens.revoke([tok.id], w.clock.now()), 1);
  const now = w.clock.now();
  t.false(await w.deps.store.tokens.update('OATH0001', { active: true }, now), 'enable');
  t.false(await w.deps.store.tokens.recordSuccess(tok.id, 0, now), 'a login that read the token before the revoke');
  t.false(await w.deps.store.tokens.assign('OATH0001', 'bob', 'corp', undefined, now));
  t.is(await w.deps.store.tokens.unassign([tok.id], now), 0);
  t.false(await w.deps.store.tokens.resync(tok.id, 0, 5, undefined, now));
  t.is(await w.deps.store.tokens.revoke([tok.id], now), 0, 'revoked once');
  t.like(await tokenOf(w, 'OATH0001'), { active: false, revoked: true, username: 'alice', counter: 0 });
});
