/**
 * Issue 10, wire fixes 1, 2, 3 and 5 as the real clients see them (admin_api_facts §5, §6): each test sends the
 * request a client sends and reads the answer with a model of that client's parser — only the fields it reads, and
 * failing where the client fails. (Fix 4, the JWT payload, is tests/server/auth/jwt_base64.test.ts.)
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { KEY_HEX, barrier, check, enroll, enrollHotp, hotpAt, policy, totpAt, usersYaml, world } from '../helpers/kit.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import { parked } from '../helpers/wait.ts';
import type { Reply, TestWorld } from '../helpers/test_app.ts';
import type { FakePhone, SmartphoneData } from '../helpers/fake_phone.ts';
import { DECLINED_MESSAGE } from '../../server/auth/outcome.ts';

// ---------------------------------------------------------------------------------------------------------------
// Client models

interface PhpResponse {
  status: boolean;
  value: boolean;
  authentication: 'CHALLENGE' | 'ACCEPT' | 'REJECT' | 'NONE';
  message: string;
  transactionId: string;
  multiChallenge: Array<{ transactionId: string; message: string; serial: string; type: string; attributes: unknown }>;
  userAttributes: Record<string, unknown> | null;
  realm?: unknown;
  resolver?: unknown;
  warnings: string[];
}

/**
 * privacyIDEA PHP client v2.0.x `PIResponse::fromJSON` with `PIChallenge` (PHP 8 typed properties): `transaction_id`,
 * `message`, `serial`, `type` are assigned unconditionally to `string` properties; `attributes`, when set and not null,
 * to `public string $attributes` (SSP and Nextcloud bundle a copy typed `array`: `attributesType: 'array'`).
 * Throws the TypeError PHP throws.
 */
function phpClient(body: any, o: { attributesType?: 'string' | 'array' } = {}): PhpResponse {
  const typed = (cls: string, prop: string, v: unknown, type: 'string' | 'array') => {
    const ok =
      type === 'string' ? typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' : typeof v === 'object' && v !== null;
    if (!ok)
      throw new TypeError(
        `Cannot assign ${v === null || v === undefined ? 'null' : Array.isArray(v) || typeof v === 'object' ? 'array' : typeof v} to property ${cls}::$${prop} of type ${type}`,
      );
    return v;
  };
  const result = body.result;
  const r: PhpResponse = {
    status: Boolean(result.status),
    value: Boolean(result.value),
    authentication: 'NONE',
    message: '',
    transactionId: '',
    multiChallenge: [],
    userAttributes: null,
    warnings: [],
  };
  const auth = result.authentication;
  r.authentication = auth === 'CHALLENGE' || auth === 'ACCEPT' || auth === 'REJECT' ? auth : 'NONE'; // "Unknown authentication status."
  const detail = body.detail ?? {};
  if (detail.message != null) r.message = detail.message;
  if (detail.transaction_id != null) r.transactionId = detail.transaction_id;
  for (const c of detail.multi_challenge ?? []) {
    r.multiChallenge.push({
      transactionId: typed('PIChallenge', 'transaction_id', c.transaction_id, 'string') as string,
      message: typed('PIChallenge', 'message', c.message, 'string') as string,
      serial: typed('PIChallenge', 'serial', c.serial, 'string') as string,
      type: typed('PIChallenge', 'type', c.type, 'string') as string,
      attributes: c.attributes != null ? typed('PIChallenge', 'attributes', c.attributes, o.attributesType ?? 'string') : '',
    });
    for (const k of ['image', 'client_mode']) if (c[k] != null) typed('PIChallenge', k, c[k], 'string');
  }
  if (detail.user && Object.keys(detail.user).length) {
    r.userAttributes = detail.user;
    if ('username' in detail.user) {
      if (!('user-realm' in detail)) r.warnings.push('Undefined array key "user-realm"');
      if (!('user-resolver' in detail)) r.warnings.push('Undefined array key "user-resolver"');
      r.realm = detail['user-realm'];
      r.resolver = detail['user-resolver'];
    }
  }
  return r;
}

/** privacyIDEA Java client `JSONParser.parsePIResponse`: the enums it maps by exact string, unknown → NONE / none. */
function javaClient(body: any) {
  const auth = body.result.authentication;
  const cs = body.detail?.challenge_status;
  return {
    authentication: ['CHALLENGE', 'ACCEPT', 'REJECT'].includes(auth) ? (auth as string) : 'NONE',
    value: body.result.value === true,
    message: typeof body.detail?.message === 'string' ? (body.detail.message as string) : '',
    challengeStatus: ['accept', 'declined', 'pending'].includes(cs) ? (cs as string) : 'none',
    pushAvailable: (body.detail?.multi_challenge ?? []).some(
      (c: any) => (c.type === 'push' || c.type === 'smartphone') && c.client_mode === 'poll',
    ),
  };
}

/** The PHP client's transport: CURLOPT_POSTFIELDS with an array (multipart/form-data); simpleSAMLphp's User-Agent. */
const phpCheck = (w: TestWorld, params: Record<string, unknown>) =>
  check(w, params, { as: 'multipart', headers: { 'user-agent': 'simpleSAMLphp' } });
/** The Java client (OkHttp FormBody): form-urlencoded. */
const javaCheck = (w: TestWorld, params: Record<string, unknown>) =>
  check(w, params, { headers: { 'user-agent': 'privacyIDEA-Keycloak' } });

async function openChallenge(t: ExecutionContext, phone: FakePhone): Promise<SmartphoneData> {
  const r = await phone.poll();
  t.is(r.status, 200, r.text);
  return r.body.result.value[0] as SmartphoneData;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. attributes

test('fix 1: PIN-then-OTP through the PHP client (simpleSAMLphp): HOTP and TOTP challenges carry no attributes key, the login goes through', async (t) => {
  const w = await world(t, { config: { policies: [policy('cr', 'authentication', { challenge_response: ['hotp', 'totp'] })] } });
  await enrollHotp(w);
  await enroll(w, { type: 'totp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'TOTP0001' });

  const first = await phpCheck(w, { user: 'alice', pass: '1234' });
  t.is(first.status, 200, first.text);
  for (const c of first.body.detail.multi_challenge)
    t.false('attributes' in c, `${c.serial}: no attributes key (eduMFA sends none for HOTP/TOTP)`);
  t.false('attributes' in first.body.detail, 'nor in the flattened copy of the last challenge');
  const step1 = phpClient(first.body); // v2.0.x threw a TypeError here on `"attributes": {}`
  t.is(step1.authentication, 'CHALLENGE');
  t.deepEqual(
    step1.multiChallenge.map((c) => [c.serial, c.type, typeof c.transactionId, typeof c.message]),
    [
      ['OATH0001', 'hotp', 'string', 'string'],
      ['TOTP0001', 'totp', 'string', 'string'],
    ],
  );
  t.regex(step1.transactionId, /^\d{20}$/);

  const second = await phpCheck(w, { user: 'alice', pass: totpAt(w.clock.now()), transaction_id: step1.transactionId });
  const step2 = phpClient(second.body);
  t.is(step2.authentication, 'ACCEPT', second.text);
  t.true(step2.value);
});

test("fix 1: a push challenge keeps eduMFA's attributes {hideResponseInput: true} (the SSP and Nextcloud copies read it as an array)", async (t) => {
  const w = await pushWorld(t, { policies: [policy('cr', 'authentication', { challenge_response: ['hotp'] })] });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  await enrollHotp(w, { serial: 'OATH0002' });
  const r = await phpCheck(w, { user: 'alice', pass: '1234' });
  const [hotpChallenge, pushChallenge] = r.body.detail.multi_challenge;
  t.false('attributes' in hotpChallenge);
  t.deepEqual(pushChallenge.attributes, { hideResponseInput: true });
  t.deepEqual(r.body.detail.attributes, { hideResponseInput: true }, 'flattened: the last challenge (push) as eduMFA');
  const ssp = phpClient(r.body, { attributesType: 'array' });
  t.is(ssp.authentication, 'CHALLENGE');
  t.deepEqual(
    ssp.multiChallenge.map((c) => c.attributes),
    ['', { hideResponseInput: true }],
  );
});

// ---------------------------------------------------------------------------------------------------------------
// 2. DECLINED

async function legacyPushLogin(t: ExecutionContext, policies: Array<Record<string, unknown>> = []) {
  const w = await pushWorld(t, { policies });
  const phone = phoneFor(w, 'privacyidea');
  await enrollPhone(w, phone, 'push');
  // Keycloak: POST /validate/check user + pass (the PIN) → a push challenge it recognises (type push, client_mode poll).
  const c = await javaCheck(w, { user: 'alice', pass: '1234' });
  const parsed = javaClient(c.body);
  t.is(parsed.authentication, 'CHALLENGE');
  t.true(parsed.pushAvailable);
  return { w, phone, tid: c.body.detail.transaction_id as string };
}

test("fix 2: after a decline the finalizing check answers REJECT (the Java client knows it) with challenge_status declined and a message; polltransaction stays eduMFA's DECLINED", async (t) => {
  const { w, phone, tid } = await legacyPushLogin(t);
  t.is((await phone.answer(await openChallenge(t, phone), { decline: true })).status, 200, 'a decline that lands is a 200');
  // pollTransaction: GET /validate/polltransaction?transaction_id= → detail.challenge_status (eduMFA: authentication DECLINED).
  const poll = await w.call('GET', '/validate/polltransaction', { transaction_id: tid });
  t.like(poll.body, { result: { value: false, authentication: 'DECLINED' }, detail: { challenge_status: 'declined' } });
  t.is(javaClient(poll.body).challengeStatus, 'declined', 'Keycloak cancels the login');
  // A client that finalizes anyway (user, pass "", transaction_id).
  const fin = await javaCheck(w, { user: 'alice', pass: '', transaction_id: tid });
  t.like(fin.body, {
    result: { status: true, value: false, authentication: 'REJECT' },
    detail: { challenge_status: 'declined', message: DECLINED_MESSAGE },
  });
  const java = javaClient(fin.body);
  t.is(java.authentication, 'REJECT', 'not NONE: the client shows detail.message');
  t.is(java.message, DECLINED_MESSAGE);
  t.is(phpClient(fin.body).authentication, 'REJECT');
});

test('fix 2: the policy declined_authentication: declined answers DECLINED (privacyIDEA >= 3.10 clients); reject is the default', async (t) => {
  const { w, phone, tid } = await legacyPushLogin(t, [policy('pi310', 'authorization', { declined_authentication: 'declined' })]);
  await phone.answer(await openChallenge(t, phone), { decline: true });
  const fin = await javaCheck(w, { user: 'alice', pass: '', transaction_id: tid });
  t.like(fin.body, { result: { status: true, value: false, authentication: 'DECLINED' }, detail: { challenge_status: 'declined' } });
  const audit = (await w.deps.store.audit.tail(100)).filter((a) => a.action === 'POST /validate/check' && a.transactionId === tid);
  t.deepEqual(audit.map((a) => a.outcome).sort(), ['CHALLENGE', 'DECLINED'], 'the audit names what happened whatever the wire says');
});

test('fix 2: wait mode — a decline ends the waiting check at once with REJECT + challenge_status declined (PHP client: REJECT, not NONE)', async (t) => {
  const w = await pushWorld(t, { policies: [policy('wait', 'authentication', { edupush_wait: 20 })] });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const pending = phpCheck(w, { user: 'alice', pass: '1234' });
  await parked(w);
  await phone.answer(await openChallenge(t, phone), { decline: true });
  const r = await pending; // no clock advance: ended by the decline, not by the 20 s timeout
  t.like(r.body, {
    result: { status: true, value: false, authentication: 'REJECT' },
    detail: { challenge_status: 'declined', message: DECLINED_MESSAGE },
  });
  const php = phpClient(r.body);
  t.is(php.authentication, 'REJECT');
  t.is(php.message, DECLINED_MESSAGE);
});

// ---------------------------------------------------------------------------------------------------------------
// 3. add_user_in_response / add_resolver_in_response

const STAFF = {
  files: {
    'users.yaml': usersYaml([
      { username: 'alice', givenname: 'Alice', surname: 'Liddell', email: 'alice@example.org', phone: '+49 551 0' },
    ]),
  },
  realms: [
    { name: 'staff', default: true, users: { type: 'file', path: './users.yaml' } },
    { name: 'guests', users: { type: 'any' } },
  ],
};

async function staffWorld(t: ExecutionContext, policies: Array<Record<string, unknown>>): Promise<TestWorld> {
  const w = await world(t, { files: STAFF.files, config: { realms: STAFF.realms, policies } });
  await enrollHotp(w);
  return w;
}

/** FreeRADIUS rlm_perl (eduMFA / privacyIDEA module): form POST user, pass, client; `[Mapping user]` reads detail.user.<key>. */
const radius = (w: TestWorld, params: Record<string, unknown>) => check(w, params, { headers: { 'user-agent': 'FreeRADIUS' } });

test('fix 3: add_user_in_response + add_resolver_in_response — detail.user (attributes, password ""), user-realm, user-resolver on success', async (t) => {
  const w = await staffWorld(t, [policy('radius', 'authorization', { add_user_in_response: true, add_resolver_in_response: true })]);
  const r = await radius(w, { user: 'alice', pass: '1234' + hotpAt(0), client: '10.1.2.3' });
  t.like(r.body, { result: { value: true, authentication: 'ACCEPT' } });
  t.deepEqual(r.body.detail.user, {
    username: 'alice',
    email: 'alice@example.org',
    givenname: 'Alice',
    surname: 'Liddell',
    phone: '+49 551 0',
    password: '',
  });
  t.is(r.body.detail['user-realm'], 'staff');
  t.is(r.body.detail['user-resolver'], 'staff_file');
  // PHP client: detail.user → attributes, with realm/resolver from the hyphenated keys (no warnings).
  const php = phpClient(r.body);
  t.is(php.userAttributes?.email, 'alice@example.org');
  t.is(php.realm, 'staff');
  t.is(php.resolver, 'staff_file');
  t.deepEqual(php.warnings, []);
  // samlcheck: the same postpolicy in eduMFA.
  const saml = await w.call('POST', '/validate/samlcheck', { user: 'alice', pass: '1234' + hotpAt(1) });
  t.like(saml.body, {
    result: { value: { auth: true } },
    detail: { user: { username: 'alice', password: '' }, 'user-realm': 'staff', 'user-resolver': 'staff_file' },
  });
});

test('fix 3: the user details only on success, only for a request with a user, only where the policy matches; no_detail_on_success removes them', async (t) => {
  const w = await staffWorld(t, [
    policy('radius', 'authorization', { add_user_in_response: true, add_resolver_in_response: true }, { realm: ['staff'] }),
  ]);
  const noUserKeys = (r: Reply, why: string) => {
    for (const k of ['user', 'user-realm', 'user-resolver']) t.false(k in (r.body.detail ?? {}), `${why}: no ${k}`);
  };
  noUserKeys(await radius(w, { user: 'alice', pass: '1234000000' }), 'REJECT');
  noUserKeys(await radius(w, { serial: 'OATH0001', pass: '1234' + hotpAt(0) }), 'serial-only (eduMFA: request.User is empty)');
  const ok = await radius(w, { user: 'alice', pass: '1234' + hotpAt(1) });
  t.is(ok.body.detail.user.username, 'alice');
  // A policy of another realm does not add them.
  await enroll(w, { type: 'hotp', otpkey: KEY_HEX, user: 'bob', realm: 'guests', pin: '1234', serial: 'OATH0009' });
  const guest = await radius(w, { user: 'bob', realm: 'guests', pass: '1234' + hotpAt(0) });
  t.like(guest.body, { result: { value: true } });
  noUserKeys(guest, 'policy restricted to realm staff');
  // add_user_detail runs before no_detail_on_success (eduMFA's postpolicy order).
  const w2 = await staffWorld(t, [policy('both', 'authorization', { add_user_in_response: true, no_detail_on_success: true })]);
  const stripped = await radius(w2, { user: 'alice', pass: '1234' + hotpAt(0) });
  t.like(stripped.body, { result: { value: true } });
  t.false('detail' in stripped.body);
});

// ---------------------------------------------------------------------------------------------------------------
// 5. phone answers

/** The apps (authenticator-next and the Flutter app) count an answer as successful iff the HTTP status is 200. */
const appSaysSuccess = (r: Reply) => r.status === 200;

test('fix 5: a late answer (expired challenge) is an error status the apps treat as failure — authenticator-next (JSON) and the Flutter app (form)', async (t) => {
  for (const style of ['edumfa-next', 'edumfa-flutter'] as const) {
    const w = await pushWorld(t);
    const phone = phoneFor(w, style);
    await enrollPhone(w, phone);
    const c = await check(w, { user: 'alice', pass: '1234' });
    const data = await openChallenge(t, phone);
    w.clock.advance(120_000); // the challenge validity
    const late = await phone.answer(data);
    t.false(appSaysSuccess(late), `${style}: no success feedback`);
    t.is(late.status, 400);
    t.deepEqual(late.body.result.error, {
      code: 401,
      message: 'ERR401: The authentication request has expired: the answer was not accepted.',
    });
    const fin = await check(w, { user: 'alice', pass: '', transaction_id: c.body.detail.transaction_id });
    t.like(fin.body, { result: { value: false, authentication: 'REJECT' } });
  }
});

test('fix 5: every refused answer is non-200 (already declined / accepted, disabled token, wrong signature); answers that land and their retries are 200', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const login = async () => {
    await check(w, { user: 'alice', pass: '1234' });
    return openChallenge(t, phone);
  };

  const a = await login();
  t.true(appSaysSuccess(await phone.answer(a)), 'accept lands');
  t.true(appSaysSuccess(await phone.answer(a)), 'the retry of an accept that landed');
  const flip = await phone.answer(a, { decline: true });
  t.false(appSaysSuccess(flip));
  t.is(flip.body.result.error.message, 'ERR401: The authentication request was already accepted: the decline was not accepted.');

  const d = await login();
  t.true(appSaysSuccess(await phone.answer(d, { decline: true })), 'a decline that lands is a 200 (N plays its warning haptic)');
  const late = await phone.answer(d);
  t.false(appSaysSuccess(late));
  t.is(late.body.result.error.message, 'ERR401: The authentication request was already declined: the answer was not accepted.');

  const x = await login();
  const wrong = await phone.answer(x, { signature: phone.sign(`${x.nonce}|${serial}|decline`) });
  t.false(appSaysSuccess(wrong), 'a signature that does not verify');
  t.deepEqual(wrong.body.result.error, { code: 10, message: 'ERR10: Could not verify signature!' });

  const admin = { Authorization: await w.adminToken() };
  t.is((await w.call('POST', `/token/disable/${serial}`, {}, { headers: admin })).status, 200);
  const answered = () => w.seen.filter((e) => e.name === 'challenge.answered').length;
  const before = answered();
  const disabled = await phone.answer(x);
  t.false(appSaysSuccess(disabled));
  t.deepEqual(disabled.body.result.error, { code: 401, message: 'ERR401: The token is disabled: the answer was not accepted.' });
  t.is(answered(), before, 'nothing was answered');
});

test('fix 5: two copies of one answer racing (an app retry): both 200 — the loser of the conditional update reads the decision that landed', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w, 'edumfa-flutter'); // the Flutter app re-queues the request on any non-200
  await enrollPhone(w, phone);
  await check(w, { user: 'alice', pass: '1234' });
  const data = await openChallenge(t, phone);
  const raced = barrier(w.deps.store.challenges, 'answer', 2, 'before'); // both read `pending` before either updates
  const [a, b] = await Promise.all([phone.answer(data), phone.answer(data)]);
  t.is(raced(), 2);
  t.deepEqual([a.status, b.status], [200, 200]);
  t.is(w.seen.filter((e) => e.name === 'challenge.answered').length, 1, 'one of them changed the challenge');
});
