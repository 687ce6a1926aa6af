/**
 * Issue 11 items 2 and 3: number matching without an app change (push_matching), the secure push code typed at the
 * login (push_code_to_login) and privacyIDEA's presence check for legacy push (push_require_presence) — through the
 * real HTTP routes, with real signatures from the fake phones.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { check, policy, tokenOf } from '../../helpers/kit.ts';
import { enrollPhone, phoneFor, pushWorld } from '../../helpers/push_world.ts';
import { startFakeFcm } from '../../helpers/fake_fcm.ts';
import type { FakePhone, SmartphoneData } from '../../helpers/fake_phone.ts';
import type { TestWorld } from '../../helpers/test_app.ts';
import { runCleanup } from '../../../server/store/cleanup.ts';
import { assessPushRisk, LOGIN_ADDRESSES_PER_USER, rememberLogin } from '../../../server/auth/push_risk.ts';

const auth = (p: Record<string, unknown>) => policy('matching', 'authentication', p);
const PROXY = { server: { public_url: 'https://mfa.example.org', trusted_proxies: ['127.0.0.1'] } };
const MATCH_LOGIN = /Check that the push on your phone shows: (.+)$/;
const MATCH_PHONE = /Approve only if your login page shows: (.+)$/;

async function setup(
  t: ExecutionContext,
  policies: Array<Record<string, unknown>>,
  type: 'edupush' | 'push' = 'edupush',
): Promise<{ w: TestWorld; phone: FakePhone; serial: string }> {
  const w = await pushWorld(t, { policies, config: PROXY });
  const phone = phoneFor(w, type === 'push' ? 'privacyidea' : 'edumfa-next');
  const serial = await enrollPhone(w, phone, type);
  return { w, phone, serial };
}

/** A push login of alice from `client`: the challenge entry and what the phone polls for it. */
async function login(w: TestWorld, phone: FakePhone, client = '198.51.100.1') {
  const c = await check(w, { user: 'alice', pass: '1234', client });
  const entry = c.body.detail.multi_challenge[0];
  const polled = await phone.poll();
  const data = polled.body.result.value.find((d: SmartphoneData) => d.nonce !== undefined) as SmartphoneData;
  return { c, entry, tid: entry.transaction_id as string, data };
}

const finalize = (w: TestWorld, tid: string, pass = '', client = '198.51.100.1') =>
  check(w, { user: 'alice', pass, transaction_id: tid, client });
const proofs = (w: TestWorld) =>
  w.seen.filter((e) => e.name === 'challenge.proof').map((e) => e.payload as { proof: string; reasons: string[] });

// ---------------------------------------------------------------------------------------------------------------
// push_matching

test('push_matching always: the same word pair in the challenge message, the FCM notification and the polled question', async (t) => {
  const fcm = await startFakeFcm();
  t.teardown(() => fcm.close());
  const w = await pushWorld(t, { channel: 'fcm', fcm, policies: [auth({ push_matching: 'always' })], config: PROXY });
  const phone = phoneFor(w, 'edumfa-next');
  await enrollPhone(w, phone, 'edupush');
  const { c, entry, tid, data } = await login(w, phone);
  const code = MATCH_LOGIN.exec(entry.message)?.[1];
  t.truthy(code);
  t.regex(code!, /^[a-z]+ [a-z]+$/, 'two words by default');
  t.true(entry.message.startsWith('Please confirm the authentication on your mobile device! '));
  t.is(c.body.detail.message, entry.message, 'detail.message, the text the plugins display');
  t.deepEqual(entry.attributes, { hideResponseInput: true });
  t.is(entry.client_mode, 'poll');
  // The phone: the poll answer and the push notification carry the same code, signed (no app change).
  t.is(MATCH_PHONE.exec(data.question)?.[1], code);
  t.true(data.question.startsWith('Do you want to confirm the login? '));
  t.true(phone.verifyPushData(data));
  const pushed = fcm.received[0]!.body.message;
  t.is(pushed.notification.body, data.question);
  t.is(pushed.data.question, data.question);
  t.deepEqual(proofs(w), [{ serial: entry.serial, transactionId: tid, proof: 'match', reasons: [] }] as never);
  // Approving works as before.
  t.is((await phone.answer(data)).status, 200);
  t.is((await finalize(w, tid)).body.result.authentication, 'ACCEPT');
});

test('push_matching_format digits: four digits; legacy push with the privacyIDEA app shows them too', async (t) => {
  const { w, phone } = await setup(t, [auth({ push_matching: 'always', push_matching_format: 'digits' })], 'push');
  const { entry, data } = await login(w, phone);
  const code = MATCH_LOGIN.exec(entry.message)?.[1];
  t.regex(code ?? '', /^\d{4}$/);
  t.is(MATCH_PHONE.exec(data.question)?.[1], code);
  t.true(phone.verifyPushData(data));
  t.is(data.require_presence, undefined, 'no presence check without its policy');
});

test('push_matching never: no code, not even for a risky login (after a decline)', async (t) => {
  const { w, phone } = await setup(t, [auth({ push_matching: 'never' })]);
  const first = await login(w, phone);
  t.is((await phone.answer(first.data, { decline: true })).status, 200);
  w.clock.advance(30_000); // past the push-fatigue back-off of the decline
  const second = await login(w, phone);
  t.is(second.entry.message, 'Please confirm the authentication on your mobile device!');
  t.is(second.data.question, 'Do you want to confirm the login?');
  t.deepEqual(proofs(w), []);
});

test('push_matching on_risk (default): a recent decline makes the next login risky, for DECLINE_MEMORY_MS', async (t) => {
  const { w, phone } = await setup(t, []);
  const first = await login(w, phone);
  t.is(first.entry.message, 'Please confirm the authentication on your mobile device!', 'nothing risky yet');
  t.is((await phone.answer(first.data, { decline: true })).status, 200);
  w.clock.advance(30_000); // past the push-fatigue back-off of the decline
  const second = await login(w, phone);
  const code = MATCH_LOGIN.exec(second.entry.message)?.[1];
  t.truthy(code);
  t.is(MATCH_PHONE.exec(second.data.question)?.[1], code);
  t.deepEqual(proofs(w).at(-1)?.reasons, ['backed_off', 'recent_decline'], 'the decline is also a strike of the back-off');
  // Approved (ends the back-off's strikes). The declined challenge outlives its expiry in the cleanup for 15 minutes,
  // then the decline is forgotten.
  t.is((await phone.answer(second.data)).status, 200);
  w.clock.advance(10 * 60_000);
  await runCleanup(w.deps);
  const third = await login(w, phone);
  t.regex(third.entry.message, MATCH_LOGIN, 'still remembered after 10 minutes and a cleanup');
  t.deepEqual(proofs(w).at(-1)?.reasons, ['recent_decline']);
  t.is((await phone.answer(third.data)).status, 200);
  w.clock.advance(6 * 60_000);
  await runCleanup(w.deps);
  t.is((await login(w, phone)).entry.message, 'Please confirm the authentication on your mobile device!');
});

test('push_matching on_risk: a login from an address with no earlier success; the first success teaches the address', async (t) => {
  const { w, phone } = await setup(t, []);
  const first = await login(w, phone, '198.51.100.1');
  t.is(first.entry.message, 'Please confirm the authentication on your mobile device!', 'no history yet: trust on first use');
  await phone.answer(first.data);
  t.is((await finalize(w, first.tid, '', '198.51.100.1')).body.result.authentication, 'ACCEPT');

  const same = await login(w, phone, '198.51.100.1');
  t.is(same.entry.message, 'Please confirm the authentication on your mobile device!', 'a known address');
  const other = await login(w, phone, '203.0.113.9');
  t.regex(other.entry.message, MATCH_LOGIN, 'a new address');
  t.deepEqual(proofs(w).at(-1)?.reasons, ['new_address']);
  // A success from the new address makes it known.
  const next = (await phone.poll()).body.result.value.find((d: SmartphoneData) => d.question.match(MATCH_PHONE)) as SmartphoneData;
  await phone.answer(next);
  t.is((await finalize(w, other.tid, '', '203.0.113.9')).body.result.authentication, 'ACCEPT');
  t.is((await login(w, phone, '203.0.113.9')).entry.message, 'Please confirm the authentication on your mobile device!');
});

test('push_matching on_risk: a user with failed attempts in the back-off is risky (backed_off)', async (t) => {
  const { w, phone } = await setup(t, []);
  t.is((await check(w, { user: 'alice', pass: 'wrong', client: '198.51.100.1' })).body.result.authentication, 'REJECT');
  const { entry } = await login(w, phone);
  t.regex(entry.message, MATCH_LOGIN);
  t.deepEqual(proofs(w).at(-1)?.reasons, ['backed_off']);
});

test('push_matching on_risk: a strike of the push-fatigue back-off (an unanswered push) makes the next login risky', async (t) => {
  const { w, phone } = await setup(t, []);
  const first = await login(w, phone);
  t.notRegex(first.entry.message, MATCH_LOGIN, 'nothing risky yet');
  // The push expires unanswered: a strike dated at its expiry, noticed at the next trigger (back-off 30 s from then).
  const expiresAt = (await w.deps.store.challenges.byTransaction(first.tid))[0]!.expiresAt;
  w.clock.advance(expiresAt - w.clock.now() + 1);
  const refused = await check(w, { user: 'alice', pass: '1234', client: '198.51.100.1' });
  t.is(refused.status, 429, 'backed off for push_backoff_start');
  w.clock.advance(30_000);
  const { entry } = await login(w, phone);
  t.regex(entry.message, MATCH_LOGIN);
  t.deepEqual(proofs(w).at(-1)?.reasons, ['backed_off']);
});

test('assessPushRisk: reasons from the three sources; a serial-only login has no address history', async (t) => {
  const { w, serial } = await setup(t, []);
  const who = {
    user: { name: 'alice', realm: 'default' },
    userKey: 'user:default:alice',
    heldAttempts: 0,
    address: '192.0.2.1',
    serials: [serial],
  };
  t.deepEqual(await assessPushRisk(w.deps, who), { risky: false, reasons: [] });
  await rememberLogin(w.deps, who.user, '192.0.2.200');
  t.deepEqual(await assessPushRisk(w.deps, who), { risky: true, reasons: ['new_address'] });
  t.deepEqual(await assessPushRisk(w.deps, { ...who, user: null }), { risky: false, reasons: [] });
});

test('login addresses are bounded per user: the newest LOGIN_ADDRESSES_PER_USER stay', async (t) => {
  const { w } = await setup(t, []);
  const user = { name: 'alice', realm: 'default' };
  for (let i = 0; i < LOGIN_ADDRESSES_PER_USER + 5; i++) {
    w.clock.advance(1000);
    await rememberLogin(w.deps, user, `192.0.2.${i}`);
  }
  await rememberLogin(w.deps, user, '192.0.2.10'); // touching a known one adds no row
  const since = 0;
  t.is((await w.deps.store.loginAddresses.history('default', 'alice', '192.0.2.0', since)).addresses, LOGIN_ADDRESSES_PER_USER);
  t.false((await w.deps.store.loginAddresses.history('default', 'alice', '192.0.2.0', since)).known, 'the oldest went');
  t.true((await w.deps.store.loginAddresses.history('default', 'alice', '192.0.2.24', since)).known);
  // Unused for the retention period: forgotten by the cleanup.
  w.clock.advance(91 * 86_400_000);
  const r = await runCleanup(w.deps);
  t.is(r.loginAddresses, LOGIN_ADDRESSES_PER_USER);
});

test('wait mode shows no code (the login shows nothing before the phone answers): the wait runs as before', async (t) => {
  const { w, phone } = await setup(t, [auth({ push_matching: 'always', edupush_wait: 20 })]);
  const pending = check(w, { user: 'alice', pass: '1234', client: '198.51.100.1' });
  let data: SmartphoneData | undefined;
  while (!data) data = (await phone.poll()).body.result.value[0];
  t.is(data.question, 'Do you want to confirm the login?');
  await phone.answer(data);
  t.is((await pending).body.result.authentication, 'ACCEPT');
  t.deepEqual(proofs(w), []);
});

// ---------------------------------------------------------------------------------------------------------------
// push_code_to_login

test('push_code_to_login: the code goes to the phone only; typed at the login it is accepted once', async (t) => {
  const { w, phone, serial } = await setup(t, [auth({ push_code_to_login: true })]);
  const { c, entry, tid, data } = await login(w, phone);
  t.like(entry, {
    client_mode: 'interactive',
    attributes: { hideResponseInput: false },
    message: 'Please enter the code shown on your mobile device.',
  });
  t.is(c.body.detail.preferred_client_mode, 'interactive');
  const code = /Your login code: (\d{6})\./.exec(data.question)?.[1];
  t.truthy(code);
  t.false(JSON.stringify(c.body).includes(code!), 'the login never sees the code');
  t.true(phone.verifyPushData(data));
  // Approving on the phone changes nothing (200 for the app); the login is still open.
  t.is((await phone.answer(data)).status, 200);
  t.is((await w.call('GET', '/validate/polltransaction', { transaction_id: tid })).body.detail.challenge_status, 'pending');
  t.is((await finalize(w, tid, '')).body.result.authentication, 'REJECT', 'no code, no login');
  // A wrong code is a failed attempt on the token.
  const failBefore = (await tokenOf(w, serial)).failCount;
  const wrong = await finalize(w, tid, code === '000000' ? '111111' : '000000');
  t.like(wrong.body, { result: { authentication: 'REJECT' }, detail: { message: 'Response did not match the challenge.' } });
  t.is((await tokenOf(w, serial)).failCount, failBefore + 1);
  // The right code: ACCEPT, once.
  t.is((await finalize(w, tid, code!)).body.result.authentication, 'ACCEPT');
  t.is((await finalize(w, tid, code!)).body.result.authentication, 'REJECT', 'single use');
});

test('push_code_to_login: a decline on the phone ends it; an expired challenge takes no code', async (t) => {
  const { w, phone } = await setup(t, [auth({ push_code_to_login: true })]);
  const a = await login(w, phone);
  const codeA = /Your login code: (\d{6})\./.exec(a.data.question)![1]!;
  t.is((await phone.answer(a.data, { decline: true })).status, 200);
  t.like((await finalize(w, a.tid, codeA)).body, { result: { authentication: 'REJECT' }, detail: { challenge_status: 'declined' } });

  w.clock.advance(30_000); // past the push-fatigue back-off of the decline
  const b = await login(w, phone);
  const codeB = /Your login code: (\d{6})\./.exec(b.data.question)![1]!;
  w.clock.advance(121_000);
  t.is((await finalize(w, b.tid, codeB)).body.result.authentication, 'REJECT');
});

// ---------------------------------------------------------------------------------------------------------------
// push_require_presence (legacy push, privacyIDEA Authenticator)

const PRESENCE = (extra: Record<string, unknown> = {}) => auth({ push_require_presence: true, ...extra });

test('presence: several signed options on the phone, the right one named at the login; the right choice accepts', async (t) => {
  const { w, phone } = await setup(t, [PRESENCE({ push_presence_options: 'NUMERIC', push_presence_num_options: 4 })], 'push');
  const { entry, tid, data } = await login(w, phone);
  const answer = entry.presence_answer as string;
  t.regex(answer, /^\d\d$/);
  t.is(entry.message, `Please confirm the authentication on your mobile device! Choose ${answer} on your phone.`);
  t.is(data.version, '2');
  const options = data.require_presence!.split(',');
  t.is(options.length, 4);
  t.is(new Set(options).size, 4);
  t.true(options.includes(answer));
  t.true(phone.verifyPushData(data), 'signed over …|sslverify|options, as the privacyIDEA app checks');
  // The signature without the options does not verify: the options are covered.
  t.false(phone.verifyPushData({ ...data, require_presence: options.reverse().join(',') }));
  t.is((await phone.answer(data, { presenceAnswer: answer })).status, 200);
  t.is((await finalize(w, tid)).body.result.authentication, 'ACCEPT');
});

test('presence: a wrong choice declines the login; an answer without a choice is refused and changes nothing', async (t) => {
  const { w, phone } = await setup(t, [PRESENCE()], 'push');
  const { entry, tid, data } = await login(w, phone);
  const options = data.require_presence!.split(',');
  t.is(options.length, 3, 'three options by default');
  t.true(
    options.every((o) => /^[A-Z]$/.test(o)),
    'A–Z by default',
  );
  const wrong = options.find((o) => o !== entry.presence_answer)!;

  const none = await phone.answer(data);
  t.is(none.status, 400);
  t.regex(none.body.result.error.message, /choose the option shown at the login/);
  // A choice the phone did not sign is a bad signature.
  t.is((await phone.answer(data, { presenceAnswer: wrong, signature: phone.sign(`${data.nonce}|${data.serial}`) })).status, 400);
  t.is((await w.call('GET', '/validate/polltransaction', { transaction_id: tid })).body.detail.challenge_status, 'pending');

  t.is((await phone.answer(data, { presenceAnswer: wrong })).status, 200, 'the wrong choice landed: as a decline');
  t.is((await w.call('GET', '/validate/polltransaction', { transaction_id: tid })).body.result.authentication, 'DECLINED');
  t.like((await finalize(w, tid)).body, { result: { authentication: 'REJECT' }, detail: { challenge_status: 'declined' } });
  t.is((await phone.answer(data, { presenceAnswer: entry.presence_answer })).status, 400, 'a declined login is never accepted');
});

test('presence: CUSTOM options; the eduMFA type never gets a presence check (its app does not know it)', async (t) => {
  const { w, phone } = await setup(t, [PRESENCE({ push_presence_options: 'CUSTOM', push_presence_custom_options: 'red:green' })], 'push');
  const { entry, data } = await login(w, phone);
  t.deepEqual(data.require_presence!.split(',').sort(), ['green', 'red']);
  t.true(['red', 'green'].includes(entry.presence_answer));

  const edu = await setup(t, [PRESENCE()], 'edupush');
  const e = await login(edu.w, edu.phone);
  t.is(e.entry.presence_answer, undefined);
  t.is(e.data.require_presence, undefined);
  t.is(e.entry.message, 'Please confirm the authentication on your mobile device!');
});
