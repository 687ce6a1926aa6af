import test from 'ava';
import crypto from 'node:crypto';
import { check, enroll, asAdmin, policy, tokenOf } from '../../helpers/kit.ts';
import { beginEnrollment, enrollPhone, phoneFor, pushWorld } from '../../helpers/push_world.ts';
import type { SmartphoneData } from '../../helpers/fake_phone.ts';

const DEFAULT_MESSAGE = 'Please confirm the authentication on your mobile device!';

test('edupush, eduMFA authenticator-next style (JSON, RSA): enroll, push login, poll, accept, finalize once', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w, 'edumfa-next');
  const init = await beginEnrollment(w, phone);
  t.like(init.detail, { rollout_state: 'clientwait' });
  t.regex(init.detail.serial, /^EDUP[0-9A-F]{8}$/);
  t.regex(init.detail.pushurl.value, /&serial=EDUP/);
  t.false('otpkey' in init.detail);
  t.is(phone.token!.url, 'https://mfa.example.org/ttype/edupush', 'default registration URL from server.public_url');

  const step2 = await phone.enroll();
  t.is(step2.status, 200, step2.text);
  t.like(step2.body, { id: 1, result: { status: true, value: true }, detail: { serial: init.detail.serial, rollout_state: 'enrolled' } });
  t.false('authentication' in step2.body.result);
  t.true(step2.body.detail.public_key.includes('\n'), 'PKCS#1 body keeps its line breaks');
  t.truthy(phone.serverKey);
  const token = await tokenOf(w, init.detail.serial);
  t.like(token, { active: true, rolloutState: 'enrolled' });
  t.is(token.info['public_key_smartphone'], phone.publicKeyText());
  t.is(token.info['firebase_token'], phone.fbToken);
  t.is(token.info['edupush_firebase_configuration'], 'poll only');
  t.false('enrollmentCredential' in token.secrets);

  // Login: the PIN triggers a push challenge.
  const c = await check(w, { user: 'alice', pass: '1234' });
  t.like(c.body, { id: 2, result: { status: true, value: false, authentication: 'CHALLENGE' } });
  const mc = c.body.detail.multi_challenge;
  t.is(mc.length, 1);
  t.like(mc[0], {
    serial: init.detail.serial,
    type: 'edupush',
    client_mode: 'poll',
    message: DEFAULT_MESSAGE,
    attributes: { hideResponseInput: true },
  });
  t.regex(mc[0].transaction_id, /^\d{20}$/);
  t.is(c.body.detail.preferred_client_mode, 'poll');
  const tid = mc[0].transaction_id as string;

  const pending = await w.call('GET', '/validate/polltransaction', { transaction_id: tid });
  t.like(pending.body, { result: { value: false, authentication: 'REJECT' }, detail: { challenge_status: 'pending' } });
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid })).body, { result: { value: false, authentication: 'REJECT' } });

  // The app polls: one freshly signed item, no `detail`.
  const polled = await phone.poll();
  t.is(polled.status, 200, polled.text);
  t.false('detail' in polled.body);
  t.is(polled.body.result.value.length, 1);
  const data: SmartphoneData = polled.body.result.value[0];
  t.deepEqual(Object.keys(data).sort(), ['nonce', 'question', 'serial', 'signature', 'sslverify', 'title', 'url']);
  t.like(data, {
    serial: init.detail.serial,
    question: 'Do you want to confirm the login?',
    title: 'eduMFA',
    sslverify: '1',
    url: 'https://mfa.example.org/ttype/edupush',
  });
  t.regex(data.nonce, /^[A-Z2-7]{32}$/);
  t.true(phone.verifyPushData(data), 'the app verifies the server signature');
  const rows = await w.deps.store.challenges.byTransaction(tid);
  t.is(rows[0]!.nonce, data.nonce);

  const answered = await phone.answer(data);
  t.is(answered.status, 200, answered.text);
  t.like(answered.body, { id: 1, result: { status: true, value: true } });
  t.false('detail' in answered.body);
  t.true(w.seen.some((e) => e.name === 'challenge.answered' && (e.payload as { decision: string }).decision === 'accept'));
  t.deepEqual((await phone.poll()).body.result.value, [], 'an answered challenge is no longer offered');

  const accepted = await w.call('GET', `/validate/polltransaction/${tid}`);
  t.like(accepted.body, { result: { value: true, authentication: 'ACCEPT' }, detail: { challenge_status: 'accept' } });

  const fin = await check(w, { user: 'alice', pass: '', state: tid });
  t.like(fin.body, {
    result: { value: true, authentication: 'ACCEPT' },
    detail: { message: 'Found matching challenge', serial: init.detail.serial },
  });
  const again = await check(w, { user: 'alice', pass: '', transaction_id: tid });
  t.like(again.body, { result: { value: false, authentication: 'REJECT' } }, 'the transaction is consumed');
  t.like((await w.call('GET', '/validate/polltransaction', { transaction_id: tid })).body, { result: { value: false } });
});

test('edupush, Flutter style (form, URL-safe EC key, µs timestamps, raw query): decline is final', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w, 'edumfa-flutter', 'ec');
  const serial = await enrollPhone(w, phone);
  t.true(phone.publicKeyText().includes('-') || phone.publicKeyText().includes('_') || !/[+/]/.test(phone.publicKeyText()));
  t.is((await tokenOf(w, serial)).info['public_key_smartphone'], phone.publicKeyText(), 'stored as sent');

  const c = await check(w, { user: 'alice', pass: '1234' });
  const tid = c.body.detail.transaction_id as string;
  t.regex(phone.timestamp(), /\.\d{6}Z$/);
  const polled = await phone.poll();
  t.is(polled.status, 200, polled.text);
  const data: SmartphoneData = polled.body.result.value[0];
  t.true(phone.verifyPushData(data));

  // A decline signature without the decline flag does not verify.
  const mismatched = await phone.answer(data, { signature: phone.sign(`${data.nonce}|${data.serial}|decline`) });
  t.like(mismatched, {
    status: 400,
    body: { result: { status: false, error: { code: 10, message: 'ERR10: Could not verify signature!' } } },
  });

  const declined = await phone.answer(data, { decline: true });
  t.like(declined.body, { result: { status: true, value: true } });
  const status = await w.call('GET', '/validate/polltransaction', { transaction_id: tid });
  t.like(status.body, { result: { value: false, authentication: 'DECLINED' }, detail: { challenge_status: 'declined' } });

  // eduMFA quirk fixed: a declined challenge can never become accepted.
  const late = await phone.answer(data);
  t.is(late.status, 400, 'the app must not play its success feedback');
  t.is(late.body.result.error.message, 'ERR401: The authentication request was already declined: the answer was not accepted.');
  t.like((await w.call('GET', '/validate/polltransaction', { transaction_id: tid })).body, { detail: { challenge_status: 'declined' } });
  const fin = await check(w, { user: 'alice', pass: '', transaction_id: tid });
  t.like(fin.body, { result: { value: false, authentication: 'REJECT' }, detail: { challenge_status: 'declined' } });
});

test('legacy push with the privacyIDEA app: PIPU, otpauth://pipush/, /ttype/push, multi_challenge type "push"', async (t) => {
  const w = await pushWorld(t, {
    policies: [policy('legacy-texts', 'authentication', { push_text_on_mobile: 'Legacy login?', push_title_on_mobile: 'privacyIDEA' })],
  });
  const phone = phoneFor(w, 'privacyidea');
  const init = await beginEnrollment(w, phone, 'push');
  t.regex(init.detail.serial, /^PIPU[0-9A-F]{8}$/);
  t.true(init.detail.pushurl.value.startsWith('otpauth://pipush/'));
  t.regex(init.detail.pushurl.value, /url=https%3A\/\/mfa\.example\.org\/ttype\/push&/);
  t.is(init.detail.pushurl.description, 'URL for privacyIDEA Push Token');
  // The endpoint type matters: the edupush endpoint does not know this token.
  const wrongEndpoint = await w.call('POST', '/ttype/edupush', {
    serial: init.detail.serial,
    enrollment_credential: phone.token!.enrollmentCredential,
    fbtoken: 'x',
    pubkey: phone.publicKeyText(),
  });
  t.is(wrongEndpoint.status, 404);
  t.is((await phone.enroll()).status, 200);

  const c = await check(w, { user: 'alice', pass: '1234' });
  t.like(c.body.detail.multi_challenge[0], { type: 'push', client_mode: 'poll' });
  const data: SmartphoneData = (await phone.poll()).body.result.value[0];
  t.like(data, { question: 'Legacy login?', title: 'privacyIDEA', url: 'https://mfa.example.org/ttype/push' });
  t.true(phone.verifyPushData(data));
  t.like((await phone.answer(data)).body, { result: { value: true } });
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: c.body.detail.transaction_id })).body, {
    result: { authentication: 'ACCEPT' },
  });
});

test('step 2 errors: unknown serial 404/601, wrong credential 400/905, second step 2 404, bad key 400', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  const init = await beginEnrollment(w, phone);
  const base = {
    serial: init.detail.serial,
    enrollment_credential: phone.token!.enrollmentCredential,
    fbtoken: 'f',
    pubkey: phone.publicKeyText(),
  };

  t.like(
    (await check(w, { user: 'alice', pass: '1234' })).body,
    { result: { value: false }, detail: { message: 'No suitable token found for authentication.' } },
    'inactive until step 2',
  );
  await w.deps.store.tokens.update(base.serial, { active: true }, w.clock.now());
  const notEnrolled = await check(w, { user: 'alice', pass: '1234' });
  t.like(
    notEnrolled.body,
    { result: { value: false }, detail: { message: 'Token is not yet enrolled' } },
    'force-enabled but still in clientwait',
  );

  const unknown = await w.call('POST', '/ttype/edupush', { ...base, serial: 'EDUP00000000' });
  t.is(unknown.status, 404);
  t.deepEqual(unknown.body.result, {
    status: false,
    error: { code: 601, message: "No token with this serial number in the rollout state 'clientwait'." },
  });
  const wrong = await w.call('POST', '/ttype/edupush', { ...base, enrollment_credential: 'f'.repeat(40) });
  t.is(wrong.status, 400);
  t.deepEqual(wrong.body.result.error, {
    code: 905,
    message: 'ERR905: Invalid enrollment credential. You are not authorized to finalize this token.',
  });
  const badKey = await w.call('POST', '/ttype/edupush', { ...base, pubkey: 'bm90IGEga2V5' });
  t.is(badKey.status, 400);
  t.regex(badKey.body.result.error.message, /^ERR905: Invalid public key/);
  const missing = await w.call('POST', '/ttype/edupush', { serial: base.serial, fbtoken: 'f', pubkey: base.pubkey });
  t.is(missing.body.result.error.message, "ERR905: Missing parameter: 'enrollment_credential'");

  t.is((await w.call('POST', '/ttype/edupush', base, { as: 'multipart' })).status, 200, 'multipart works too');
  const second = await w.call('POST', '/ttype/edupush', base);
  t.is(second.status, 404, 'a token completes step 2 exactly once');
});

test('step 2 is refused after the enrollment TTL (enforced, unlike eduMFA), accepted just before it', async (t) => {
  const w = await pushWorld(t, { policies: [policy('ttl', 'enrollment', { edupush_ttl: 2 })] });
  const early = phoneFor(w);
  await beginEnrollment(w, early);
  t.regex(early.token!.params['ttl']!, /^2$/);
  w.clock.advance(2 * 60_000 - 1);
  t.is((await early.enroll()).status, 200);

  const late = phoneFor(w);
  const init = await beginEnrollment(w, late);
  w.clock.advance(2 * 60_000);
  const r = await late.enroll();
  t.is(r.status, 400);
  t.deepEqual(r.body.result.error, {
    code: 905,
    message: 'ERR905: The enrollment of this token has expired. Please enroll the token again.',
  });
  t.is((await tokenOf(w, init.detail.serial)).rolloutState, 'clientwait');
});

test('step 2 race: two simultaneous completions, exactly one wins', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  await beginEnrollment(w, phone);
  const [a, b] = await Promise.all([phone.enroll(), phone.enroll()]);
  t.deepEqual([a.status, b.status].sort(), [200, 404]);
});

test('answers: wrong key/data → 400 ERR10; unknown/empty nonce, expired → 400 ERR401; malformed base32 → 400', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const c = await check(w, { user: 'alice', pass: '1234' });
  const tid = c.body.detail.transaction_id as string;
  const data: SmartphoneData = (await phone.poll()).body.result.value[0];

  const other = phoneFor(w, 'edumfa-next', 'ec');
  // Every refused answer is a 400 (the apps count only a 200 as success).
  const error = async (params: Record<string, unknown>) => {
    const r = await w.call('POST', '/ttype/edupush', params, { as: 'json' });
    t.is(r.status, 400, r.text);
    return r.body.result.error as { code: number; message: string };
  };
  const gone = { code: 401, message: 'ERR401: The authentication request has expired or is finished: the answer was not accepted.' };
  const badSignature = { code: 10, message: 'ERR10: Could not verify signature!' };
  t.deepEqual(await error({ serial, nonce: data.nonce, signature: other.sign(`${data.nonce}|${serial}`) }), badSignature, 'wrong key');
  t.deepEqual(await error({ serial, nonce: 'A'.repeat(32), signature: phone.sign(`${'A'.repeat(32)}|${serial}`) }), gone, 'unknown nonce');
  t.deepEqual(await error({ serial, nonce: '', signature: phone.sign(`|${serial}`) }), gone, 'empty nonce');
  t.deepEqual(await error({ serial, nonce: data.nonce, signature: phone.sign(`${data.nonce}|${serial}x`) }), badSignature, 'wrong data');
  const unknown = await w.call(
    'POST',
    '/ttype/edupush',
    { serial: 'EDUP99999999', nonce: data.nonce, signature: phone.sign(`${data.nonce}|EDUP99999999`) },
    { as: 'json' },
  );
  t.is(unknown.status, 404, 'unknown serial: 404 as eduMFA, so the app does not report success');
  t.deepEqual(unknown.body.result.error, { code: 601, message: 'The requested token could not be found.' });

  const malformed = await w.call('POST', '/ttype/edupush', { serial, nonce: data.nonce, signature: 'not-base32!' });
  t.is(malformed.status, 400);
  t.deepEqual(malformed.body.result.error, { code: 10, message: 'ERR10: Could not verify signature!' });
  const onlyNonce = await w.call('POST', '/ttype/edupush', { serial, nonce: data.nonce });
  t.is(onlyNonce.status, 400);
  t.is(onlyNonce.body.result.error.message, 'ERR905: Missing parameters!');
  t.like((await w.call('GET', '/validate/polltransaction', { transaction_id: tid })).body, { detail: { challenge_status: 'pending' } });

  w.clock.advance(120_000);
  t.like(
    await phone.answer(data),
    {
      status: 400,
      body: { result: { error: { code: 401, message: 'ERR401: The authentication request has expired: the answer was not accepted.' } } },
    },
    'expired: nothing changes',
  );
  t.is((await w.deps.store.challenges.byTransaction(tid))[0]!.status, 'pending');
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid })).body, { result: { value: false } });
});

test('answers: a repeated accept is idempotent (value true, one event); answer during validity from config', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  await check(w, { user: 'alice', pass: '1234' });
  const data: SmartphoneData = (await phone.poll()).body.result.value[0];
  w.clock.advance(119_000);
  t.like((await phone.answer(data)).body, { result: { value: true } });
  t.like((await phone.answer(data)).body, { result: { value: true } });
  t.is(w.seen.filter((e) => e.name === 'challenge.answered').length, 1);
});

test('poll policy: deny → 403/303, token + polling_allowed False → 403, allow ignores tokeninfo', async (t) => {
  const deny = await pushWorld(t, { policies: [policy('nopoll', 'authentication', { edupush_allow_polling: 'deny' })] });
  const p1 = phoneFor(deny);
  await enrollPhone(deny, p1);
  const r = await p1.poll();
  t.is(r.status, 403);
  t.deepEqual(r.body.result.error, { code: 303, message: 'Polling not allowed!' });
  const noSig = await deny.call('GET', '/ttype/edupush', { serial: p1.token!.serial });
  t.is(noSig.status, 403, 'the policy is checked before anything else');
  await deny.close(); // one world after the other: a test holds at most two (tests/helpers/db_budget.ts)

  const perToken = await pushWorld(t, { policies: [policy('tokenpoll', 'authentication', { edupush_allow_polling: 'token' })] });
  const p2 = phoneFor(perToken);
  const serial = await enrollPhone(perToken, p2);
  t.is((await p2.poll()).status, 200, 'no tokeninfo → allowed');
  const tok = await tokenOf(perToken, serial);
  await perToken.deps.store.tokens.update(serial, { info: { ...tok.info, polling_allowed: 'False' } }, perToken.clock.now());
  const denied = await p2.poll();
  t.is(denied.status, 403);
  t.is(denied.body.result.error.message, 'Polling not allowed!');
  await perToken.close();

  const allow = await pushWorld(t);
  const p3 = phoneFor(allow);
  const s3 = await enrollPhone(allow, p3);
  const t3 = await tokenOf(allow, s3);
  await allow.deps.store.tokens.update(s3, { info: { ...t3.info, polling_allowed: 'False' } }, allow.clock.now());
  t.is((await p3.poll()).status, 200);
});

test('poll errors: timestamps ±1 min, parse errors, uniform ERR10 for serial/signature problems', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  const iso = (deltaMs: number) => new Date(w.clock.now() + deltaMs).toISOString();
  const err = async (o: Parameters<typeof phone.poll>[0]) => {
    const r = await phone.poll(o);
    return [r.status, r.body.result.error?.message];
  };
  t.is((await phone.poll({ timestamp: iso(59_000) })).status, 200);
  t.is((await phone.poll({ timestamp: iso(-59_000) })).status, 200);
  t.deepEqual(await err({ timestamp: iso(2 * 60_000) }), [400, `ERR10: Timestamp ${iso(2 * 60_000)} not in valid range.`]);
  t.deepEqual(await err({ timestamp: iso(-2 * 60_000) }), [400, `ERR10: Timestamp ${iso(-2 * 60_000)} not in valid range.`]);
  t.deepEqual(await err({ timestamp: 'yesterday' }), [400, 'ERR10: Could not parse timestamp yesterday. ISO-Format required.']);
  const naive = iso(0).replace('Z', '');
  t.deepEqual(
    await err({ timestamp: naive, serial: 'EDUP00000000' }),
    [400, 'ERR10: Could not verify signature!'],
    'naive UTC accepted, unknown serial',
  );
  const ts = phone.timestamp();
  t.deepEqual(await err({ timestamp: ts, signature: phone.sign(`${serial}|${ts}x`) }), [400, 'ERR10: Could not verify signature!']);
  t.deepEqual(await err({ timestamp: ts, signature: phone.sign(`${ts}|${serial}`) }), [400, 'ERR10: Could not verify signature!']);
  t.deepEqual(await err({ timestamp: ts, signature: '!!!!' }), [400, 'ERR10: Could not verify signature!'], 'bad base32 is a 400');
  const missing = await w.call('GET', '/ttype/edupush', { serial, timestamp: ts });
  t.is(missing.body.result.error.message, "ERR905: Missing parameter: 'signature'");
  // A serial of another type: same uniform answer.
  await enroll(w, { type: 'hotp', genkey: 1, serial: 'OATH0001' });
  t.deepEqual(await err({ serial: 'OATH0001', timestamp: ts, signature: phone.sign(`OATH0001|${ts}`) }), [
    400,
    'ERR10: Could not verify signature!',
  ]);
});

test('Firebase token update: signed new_fb_token|serial|timestamp within ±5 min', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w, 'edumfa-flutter');
  const serial = await enrollPhone(w, phone);
  const ok = await phone.updateFirebaseToken('new-fcm-token');
  t.is(ok.status, 200, ok.text);
  t.like(ok.body, { result: { status: true, value: true } });
  const tok = await tokenOf(w, serial);
  t.is(tok.info['firebase_token'], 'new-fcm-token');
  t.is(tok.rolloutState, 'enrolled');
  const bad = await phone.updateFirebaseToken('evil', { signature: phone.sign('other|x|y') });
  t.is(bad.status, 400);
  t.deepEqual(bad.body.result.error, { code: 10, message: 'ERR10: Could not verify signature!' });
  const old = new Date(w.clock.now() - 6 * 60_000).toISOString();
  const stale = await phone.updateFirebaseToken('x', { timestamp: old });
  t.is(stale.body.result.error.message, `ERR10: Timestamp ${old} not in valid range.`);
  t.is((await phone.updateFirebaseToken('y', { timestamp: new Date(w.clock.now() - 4 * 60_000).toISOString() })).status, 200);
});

test('routing and enrollment policy errors: /ttype/<unknown>, missing firebase policy 403/303', async (t) => {
  const w = await pushWorld(t);
  for (const name of ['wrong', 'hotp']) {
    const r = await w.call('POST', `/ttype/${name}`, { serial: 'x' });
    t.is(r.status, 400);
    t.is(r.body.result.error.message, `ERR905: Invalid tokentype provided. ttype: ${name}`);
  }
  await w.close(); // one world after the other: a test holds at most two (tests/helpers/db_budget.ts)
  const bare = await (await import('../../helpers/kit.ts')).world(t);
  const r = await bare.call('POST', '/token/init', { type: 'edupush', genkey: 1 }, { headers: await asAdmin(bare) });
  t.is(r.status, 403);
  t.deepEqual(r.body.result.error, { code: 303, message: 'Missing enrollment policy for push token: edupush_firebase_configuration' });
  await bare.close();
  const unknown = await pushWorld(t, { channel: 'no such channel' });
  const u = await unknown.call('POST', '/token/init', { type: 'push', genkey: 1 }, { headers: await asAdmin(unknown) });
  t.is(u.status, 400);
  t.is(u.body.result.error.message, 'ERR905: Unknown Firebase configuration!');
});

test('a push token without PIN is triggered by an empty pass; triggerchallenge answers CHALLENGE', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  const body = await enroll(w, { type: 'edupush', genkey: 1, user: 'bob' });
  phone.scan(body.detail.pushurl.value);
  t.is((await phone.enroll({ fbToken: '' })).status, 200, 'fbtoken may be empty (poll-only app)');
  t.is((await tokenOf(w, body.detail.serial)).info['firebase_token'], '');
  const c = await check(w, { user: 'bob', pass: '' });
  t.is(c.body.result.authentication, 'CHALLENGE');
  const tr = await w.call('POST', '/validate/triggerchallenge', { user: 'bob' }, { headers: await asAdmin(w) });
  t.like(tr.body, {
    result: { value: 1, authentication: 'CHALLENGE' },
    detail: { multi_challenge: [{ type: 'edupush', client_mode: 'poll' }] },
  });
  t.is((await phone.poll()).body.result.value.length, 2);
});

test('step 2 stores the server key encrypted and a fresh key per token', async (t) => {
  const w = await pushWorld(t);
  const a = phoneFor(w);
  const b = phoneFor(w, 'edumfa-flutter');
  const sa = await enrollPhone(w, a);
  const sb = await enrollPhone(w, b);
  const ta = await tokenOf(w, sa);
  const tb = await tokenOf(w, sb);
  t.not(ta.info['public_key_server'], tb.info['public_key_server']);
  t.true(ta.secrets['privateKeyServer']!.startsWith('-----BEGIN RSA PRIVATE KEY-----'));
  const raw = await w.deps.store.knex('tokens').where({ serial: sa }).first();
  t.false(String(raw.secrets_enc).includes('PRIVATE KEY'), 'the private key is stored encrypted');
  t.true(crypto.createPublicKey(ta.info['public_key_server']!).equals(a.serverKey!));
});

test('challenge validity per type (challenge.type_validity_seconds.edupush) bounds answer and finalize', async (t) => {
  const w = await pushWorld(t, { config: { challenge: { validity_seconds: 120, type_validity_seconds: { edupush: 30 } } } });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const first = await check(w, { user: 'alice', pass: '1234' });
  const row = (await w.deps.store.challenges.byTransaction(first.body.detail.transaction_id))[0]!;
  t.is(row.expiresAt - row.createdAt, 30_000);
  const data: SmartphoneData = (await phone.poll()).body.result.value[0];
  w.clock.advance(30_000);
  t.deepEqual((await phone.poll()).body.result.value, [], 'expired challenges are not offered');
  t.like(await phone.answer(data), { status: 400, body: { result: { error: { code: 401 } } } });
});
