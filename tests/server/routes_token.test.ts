/**
 * server/routes/token.ts and server/auth/tokens_admin.ts: /token/init (hotp, totp, spass details), GET /token/,
 * DELETE, enable/disable, reset, setpin, enrollment and admin policies.
 */
import test from 'ava';
import { base32Decode } from '../../tokens/base32.ts';
import { hotpValue } from '../../tokens/otp.ts';
import { KEY_HEX, RFC, asAdmin, check, enroll, enrollHotp, policy, tokenOf, tokenRow, world } from '../helpers/kit.ts';
import type { TestWorld } from '../helpers/test_app.ts';

const RFC_B32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const PNG = /^data:image\/png;base64,[A-Za-z0-9+/]+=*$/;

async function init(w: TestWorld, params: Record<string, unknown>) {
  return w.call('POST', '/token/init', params, { headers: await asAdmin(w) });
}

async function listTokens(w: TestWorld, params: Record<string, unknown> = {}) {
  const r = await w.call('GET', '/token/', params, { headers: await asAdmin(w) });
  if (r.status !== 200) throw new Error(r.text);
  return r.body.result.value;
}

// ---------------------------------------------------------------------------------------------------------------
// /token/init

test('init hotp with otpkey: googleurl, oathurl and otpkey details', async (t) => {
  const w = await world(t);
  const r = await init(w, { type: 'hotp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'OATH0001' });
  t.is(r.status, 200);
  t.like(r.body, { jsonrpc: '2.0', id: 1, result: { status: true, value: true } });
  const d = r.body.detail;
  t.deepEqual(Object.keys(d).sort(), ['googleurl', 'oathurl', 'otpkey', 'rollout_state', 'serial']);
  t.is(d.serial, 'OATH0001');
  t.is(d.rollout_state, '');
  t.is(d.googleurl.description, 'URL for google Authenticator');
  t.is(d.googleurl.value, `otpauth://hotp/pushgate%3AOATH0001?secret=${RFC_B32}&counter=0&digits=6&algorithm=SHA1&issuer=pushgate`);
  t.regex(d.googleurl.img, PNG);
  t.is(d.otpkey.value, `seed://${KEY_HEX}`);
  t.regex(d.otpkey.img, PNG);
  t.is(d.otpkey.description, 'OTP seed');
  t.is(d.oathurl.value, `oathtoken:///addToken?name=OATH0001&lockdown=true&key=${KEY_HEX}`);
  t.regex(d.oathurl.img, PNG);
});

test('init hotp with genkey: the seed in the response is the stored key and authenticates', async (t) => {
  const w = await world(t);
  const r = await init(w, { type: 'hotp', genkey: 1, user: 'alice', pin: '1234', otplen: 8, hashlib: 'sha256' });
  t.is(r.status, 200);
  const d = r.body.detail;
  t.regex(d.serial, /^OATH[0-9A-F]{8}$/);
  const m = /^seed:\/\/([0-9a-f]{64})$/.exec(d.otpkey.value);
  t.truthy(m, d.otpkey.value);
  const key = Buffer.from(m![1]!, 'hex');
  const secret = new URL(d.googleurl.value).searchParams.get('secret')!;
  t.deepEqual(base32Decode(secret), key);
  t.regex(d.googleurl.value, /&digits=8&algorithm=SHA256&/);
  t.is((await tokenOf(w, d.serial)).secrets.otpKey, key.toString('hex'));
  t.like((await check(w, { user: 'alice', pass: '1234' + hotpValue(key, 0, 8, 'sha256') })).body, { result: { value: true } });
});

test('init totp: period in the URL, timeStep 60, no oathurl', async (t) => {
  const w = await world(t);
  const r = await init(w, { type: 'totp', otpkey: KEY_HEX, user: 'alice', serial: 'TOTP0001' });
  t.is(r.status, 200);
  t.is(
    r.body.detail.googleurl.value,
    `otpauth://totp/pushgate%3ATOTP0001?secret=${RFC_B32}&period=30&digits=6&algorithm=SHA1&issuer=pushgate`,
  );
  t.is(r.body.detail.otpkey.value, `seed://${KEY_HEX}`);
  t.false('oathurl' in r.body.detail);
  const g = await init(w, { type: 'totp', genkey: 1, user: 'alice', timeStep: 60 });
  t.regex(g.body.detail.serial, /^TOTP[0-9A-F]{8}$/);
  t.regex(g.body.detail.googleurl.value, /&period=60&/);
  const listed = await listTokens(w, { serial: g.body.detail.serial });
  t.is(listed.tokens[0].info.timeStep, '60');
  const bad = await init(w, { type: 'totp', genkey: 1, timeStep: 45 });
  t.is(bad.status, 400);
  t.is(bad.body.result.error.message, "ERR905: Invalid timeStep '45'. Allowed values: 30, 60.");
});

test('init spass: no key details', async (t) => {
  const w = await world(t);
  const r = await init(w, { type: 'spass', user: 'carol', pin: 'pw', serial: 'PISP0001' });
  t.is(r.status, 200);
  t.deepEqual(r.body.detail, { serial: 'PISP0001', rollout_state: '' });
  const g = await init(w, { type: 'spass', pin: 'pw' });
  t.regex(g.body.detail.serial, /^PISP[0-9A-F]{8}$/);
});

test('init: type defaults to hotp; tokenlabel and tokenissuer policies fill the URL', async (t) => {
  const w = await world(t, {
    config: { policies: [policy('label', 'enrollment', { tokenlabel: '<u>@<r>', tokenissuer: 'ACME {realm}' })] },
  });
  const r = await init(w, { otpkey: KEY_HEX, user: 'alice', serial: 'OATH0009' });
  t.is(r.status, 200);
  t.is(
    r.body.detail.googleurl.value,
    `otpauth://hotp/ACME%20default%3Aalice%40default?secret=${RFC_B32}&counter=0&digits=6&algorithm=SHA1&issuer=ACME%20default`,
  );
  t.is((await tokenOf(w, 'OATH0009')).type, 'hotp');
});

test('init errors: unknown type, duplicate serial, bad serial, missing key, both keys, unknown realm, no auth', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const err = async (params: Record<string, unknown>, status: number, code: number, message: string) => {
    const r = await init(w, params);
    t.is(r.status, status, message);
    t.deepEqual(r.body.result.error, { code, message });
  };
  await err({ type: 'x', genkey: 1 }, 400, 905, 'ERR905: Invalid tokentype provided. ttype: x');
  await err({ type: 'hotp', otpkey: KEY_HEX, serial: 'OATH0001' }, 400, 905, 'ERR905: A token with the serial OATH0001 already exists.');
  await err({ type: 'hotp', otpkey: KEY_HEX, serial: 'OATH*' }, 400, 905, 'ERR905: Invalid serial number.');
  await err({ type: 'hotp', serial: 'OATH0002' }, 400, 905, "ERR905: Missing parameter: 'otpkey'");
  await err({ type: 'hotp', genkey: 1, otpkey: KEY_HEX }, 400, 905, 'ERR905: You may either specify genkey or otpkey, but not both!');
  await err({ type: 'hotp', otpkey: 'xyz' }, 400, 905, 'ERR905: Invalid otpkey: expected an even number of hexadecimal characters.');
  await err({ type: 'hotp', genkey: 1, hashlib: 'md5' }, 400, 905, "ERR905: Invalid hashlib 'md5'. Allowed values: sha1, sha256, sha512.");
  await err({ type: 'hotp', genkey: 1, otplen: 7 }, 400, 905, "ERR905: Invalid otplen '7'. Allowed values: 6, 8.");
  await err({ type: 'hotp', genkey: 1, user: 'alice', realm: 'nope' }, 400, 904, 'ERR904: User <alice@nope> does not exist.');
  const noAuth = await w.call('POST', '/token/init', { type: 'hotp', genkey: 1 });
  t.is(noAuth.status, 401);
  t.deepEqual(noAuth.body.result.error, { code: 4033, message: 'Authentication failure. Missing Authorization header.' });
  t.is((await listTokens(w)).count, 1, 'nothing was stored by a failed init');
});

test('max_token_per_user: the next token is refused with 403', async (t) => {
  const w = await world(t, { config: { policies: [policy('max', 'enrollment', { max_token_per_user: 2 })] } });
  await enrollHotp(w);
  await enroll(w, { type: 'spass', user: 'alice', pin: 'x', serial: 'PISP0001' });
  const r = await init(w, { type: 'totp', genkey: 1, user: 'alice' });
  t.is(r.status, 403);
  t.deepEqual(r.body.result.error, { code: 303, message: 'The number of tokens for this user is limited!' });
  t.is((await init(w, { type: 'totp', genkey: 1, user: 'bob' })).status, 200, 'other users are not affected');
  t.is((await init(w, { type: 'totp', genkey: 1 })).status, 200, 'unassigned tokens are not counted');
  t.is((await listTokens(w, { user: 'alice' })).count, 2);
});

test('admin policies: an admin-scope policy without enroll refuses /token/init with 403', async (t) => {
  const w = await world(t, { config: { policies: [policy('helpdesk', 'admin', { triggerchallenge: true, reset: true })] } });
  const r = await init(w, { type: 'hotp', genkey: 1, user: 'alice' });
  t.is(r.status, 403);
  t.deepEqual(r.body.result.error, { code: 303, message: 'Admin actions are defined, but the action enroll is not allowed!' });
  await w.deps.store.tokens.insert(
    tokenRow({ serial: 'OATH0001', info: { hashlib: 'sha1' }, secrets: { otpKey: KEY_HEX } }),
    w.clock.now(),
  );
  const h = await asAdmin(w);
  t.is((await w.call('POST', '/token/reset/OATH0001', {}, { headers: h })).status, 200, 'granted right');
  t.is((await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h })).status, 200);
  for (const [method, path] of [
    ['DELETE', '/token/OATH0001'],
    ['POST', '/token/disable/OATH0001'],
    ['POST', '/token/enable/OATH0001'],
  ] as const) {
    const d = await w.call(method, path, {}, { headers: h });
    t.is(d.status, 403, path);
    t.is(d.body.result.error.code, 303);
  }
  const sp = await w.call('POST', '/token/setpin/OATH0001', { otppin: '1' }, { headers: h });
  t.is(sp.status, 403);
  t.is((await listTokens(w)).count, 0, 'admin policies without tokenlist: GET /token/ lists nothing (eduMFA)');
  const w2 = await world(t, { config: { policies: [policy('enroller', 'admin', { enroll: true }, { client: ['127.0.0.1'] })] } });
  t.is((await init(w2, { type: 'hotp', genkey: 1 })).status, 200, 'a policy that grants enroll');
});

// ---------------------------------------------------------------------------------------------------------------
// GET /token/

test('GET /token/: the fields clients read, no secrets', async (t) => {
  const w = await world(t);
  await enrollHotp(w, { description: 'phone' });
  await check(w, { user: 'alice', pass: '1234000000' });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: { value: true } });
  const authAt = w.clock.now();
  const r = await w.call('GET', '/token/', {}, { headers: await asAdmin(w) });
  t.like(r.body, { id: 1, result: { status: true } });
  const v = r.body.result.value;
  t.like(v, { count: 1, current: 1, next: null, prev: null });
  const tok = v.tokens[0];
  t.deepEqual(tok, {
    id: tok.id,
    serial: 'OATH0001',
    tokentype: 'hotp',
    active: true,
    revoked: false,
    locked: false,
    rollout_state: '',
    description: 'phone',
    otplen: 6,
    count: 1,
    failcount: 0,
    maxfail: 10,
    count_window: 10,
    sync_window: 1000,
    username: 'alice',
    user_realm: 'default',
    realms: ['default'],
    resolver: 'default_any',
    user_id: 'alice',
    user_editable: false,
    info: { hashlib: 'sha1', tokenkind: 'software' },
    created: tok.created,
    last_auth: authAt,
  });
  t.is(typeof tok.id, 'number');
  t.false(r.text.includes(KEY_HEX), 'no seed');
  t.false(r.text.includes(RFC_B32));
  t.false(r.text.includes('$argon2'), 'no PIN hash');
  t.false(r.text.includes('otpKey'));
});

test('GET /token/: filters and pages', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  await enroll(w, { type: 'spass', user: 'alice', pin: 'x', serial: 'PISP0001' });
  await enroll(w, { type: 'totp', genkey: 1, user: 'bob', serial: 'TOTP0001' });
  await enroll(w, { type: 'totp', genkey: 1, serial: 'TOTP0002' });
  t.is((await listTokens(w)).count, 4);
  t.deepEqual(
    (await listTokens(w, { user: 'alice' })).tokens.map((x: any) => x.serial),
    ['OATH0001', 'PISP0001'],
  );
  t.deepEqual(
    (await listTokens(w, { user: 'alice@default' })).tokens.map((x: any) => x.serial),
    ['OATH0001', 'PISP0001'],
  );
  t.deepEqual(
    (await listTokens(w, { type: 'totp' })).tokens.map((x: any) => x.serial),
    ['TOTP0001', 'TOTP0002'],
  );
  t.deepEqual(
    (await listTokens(w, { serial: 'TOTP0002' })).tokens.map((x: any) => [x.serial, x.username, x.user_realm, x.realms]),
    [['TOTP0002', '', '', []]],
  );
  const p1 = await listTokens(w, { pagesize: 3 });
  t.like(p1, { count: 4, current: 1, next: 2, prev: null });
  t.is(p1.tokens.length, 3);
  const p2 = await listTokens(w, { pagesize: 3, page: 2 });
  t.like(p2, { count: 4, current: 2, next: null, prev: 1 });
  t.deepEqual(
    p2.tokens.map((x: any) => x.serial),
    ['TOTP0002'],
  );
  const none = await w.call('GET', '/token/', { user: 'x', realm: 'nope' }, { headers: await asAdmin(w) });
  t.is(none.status, 404);
  t.deepEqual(none.body.result.error, { code: 601, message: "Realm 'nope' does not exist." });
});

// ---------------------------------------------------------------------------------------------------------------
// DELETE, enable/disable, reset, setpin

test('DELETE /token/<serial>: gone with its challenges; a second delete is 404', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const h = await asAdmin(w);
  const tid = (await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h })).body.detail.transaction_id as string;
  t.is((await w.deps.store.challenges.byTransaction(tid)).length, 1);
  const r = await w.call('DELETE', '/token/OATH0001', {}, { headers: h });
  t.is(r.status, 200);
  t.like(r.body, { id: 1, result: { status: true, value: 1 } });
  t.is((await listTokens(w)).count, 0);
  t.is((await w.deps.store.challenges.byTransaction(tid)).length, 0, 'challenges of the token are deleted too');
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { detail: { message: 'The user has no tokens assigned' } });
  const again = await w.call('DELETE', '/token/OATH0001', {}, { headers: h });
  t.is(again.status, 404);
  t.deepEqual(again.body.result.error, { code: 601, message: 'The requested token could not be found.' });
  t.is((await w.call('DELETE', '/token/OATH0001')).status, 401);
});

test('enable/disable by path or serial parameter; unknown serial 404; no serial 400', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const h = await asAdmin(w);
  t.like((await w.call('POST', '/token/disable', { serial: 'OATH0001' }, { headers: h })).body, { result: { value: 1 } });
  t.is((await listTokens(w)).tokens[0].active, false);
  t.like((await w.call('POST', '/token/enable/OATH0001', {}, { headers: h })).body, { result: { value: 1 } });
  t.is((await listTokens(w)).tokens[0].active, true);
  t.is((await w.call('POST', '/token/disable/NOPE0001', {}, { headers: h })).status, 404);
  t.is((await w.call('POST', '/token/reset/NOPE0001', {}, { headers: h })).status, 404);
  const none = await w.call('POST', '/token/enable', {}, { headers: h });
  t.is(none.status, 400);
  t.is(none.body.result.error.message, "ERR905: Missing parameter: 'serial'");
});

test('setpin: the new PIN works, the old does not; pin alias; empty PIN; errors', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const h = await asAdmin(w);
  t.like((await w.call('POST', '/token/setpin/OATH0001', { otppin: '5678' }, { headers: h })).body, { result: { value: 1 } });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { detail: { message: 'wrong otp pin' } });
  t.like((await check(w, { user: 'alice', pass: '5678' + RFC[0] })).body, { result: { value: true } });
  t.is((await w.call('POST', '/token/setpin', { serial: 'OATH0001', pin: '9999' }, { headers: h })).status, 200);
  t.like((await check(w, { user: 'alice', pass: '9999' + RFC[1] })).body, { result: { value: true } });
  t.is((await w.call('POST', '/token/setpin/OATH0001', { otppin: '' }, { headers: h })).status, 200);
  t.is((await tokenOf(w, 'OATH0001')).pinHash, null);
  t.like((await check(w, { user: 'alice', pass: RFC[2] })).body, { result: { value: true } }, 'no PIN: the OTP alone');
  const missing = await w.call('POST', '/token/setpin/OATH0001', {}, { headers: h });
  t.is(missing.status, 400);
  t.is(missing.body.result.error.message, "ERR905: Missing parameter: 'otppin'");
  t.is((await w.call('POST', '/token/setpin/NOPE0001', { otppin: '1' }, { headers: h })).status, 404);
});
