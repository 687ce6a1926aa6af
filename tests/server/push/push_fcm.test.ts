import test from 'ava';
import { check, policy, tokenOf, until } from '../../helpers/kit.ts';
import { startFakeFcm, type FakeFcm } from '../../helpers/fake_fcm.ts';
import { enrollPhone, phoneFor, pushWorld } from '../../helpers/push_world.ts';
import type { SmartphoneData } from '../../helpers/fake_phone.ts';
import type { TestWorld } from '../../helpers/test_app.ts';

const HINT = 'Use the polling feature of your unsupported privacyIDEA Authenticator App to check for a new Login request.';
const MESSAGE = 'Please confirm the authentication on your mobile device!';

async function fcmWorld(
  t: { teardown(fn: () => Promise<void> | void): void },
  policies: Array<Record<string, unknown>> = [],
  timeoutMs = 3000,
): Promise<{ w: TestWorld; fcm: FakeFcm }> {
  const fcm = await startFakeFcm();
  t.teardown(() => fcm.close());
  const w = await pushWorld(t, { channel: 'fcm', fcm, policies, timeoutMs });
  return { w, fcm };
}

test('Firebase: the push reaches the device through firebase-admin; the app verifies and answers it', async (t) => {
  const { w, fcm } = await fcmWorld(t, [
    policy('texts', 'authentication', { edupush_text_on_mobile: 'Sign in to Example?', edupush_title_on_mobile: 'Example' }),
  ]);
  const phone = phoneFor(w, 'edumfa-next');
  const serial = await enrollPhone(w, phone);
  t.is((await tokenOf(w, serial)).info['edupush_firebase_configuration'], 'fcm');
  t.is(fcm.received.length, 0, 'enrollment sends nothing');

  const c = await check(w, { user: 'alice', pass: '1234' });
  t.is(c.body.result.authentication, 'CHALLENGE');
  t.is(c.body.detail.multi_challenge[0].message, MESSAGE);
  t.is(fcm.received.length, 1);
  const { message } = fcm.received[0]!.body;
  t.is(message.token, phone.fbToken);
  t.like(message, { notification: { title: 'Example', body: 'Sign in to Example?' }, android: { priority: 'high', ttl: '120s' } });
  t.like(message.apns, {
    headers: { 'apns-push-type': 'alert', 'apns-priority': '10' },
    payload: { aps: { category: 'PUSH_AUTHENTICATION', sound: 'default' } },
  });
  t.is(message.apns.headers['apns-expiration'], String(w.clock.now() / 1000 + 120));
  const data: SmartphoneData = message.data;
  t.like(data, { serial, question: 'Sign in to Example?', title: 'Example', sslverify: '1', url: 'https://mfa.example.org/ttype/edupush' });
  t.true(phone.verifyPushData(data));
  t.true(w.seen.some((e) => e.name === 'delivery.sent'));

  t.like((await phone.answer(data)).body, { result: { value: true } });
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: c.body.detail.transaction_id })).body, {
    result: { authentication: 'ACCEPT' },
  });
});

test('Firebase 500: still CHALLENGE with the polling hint; the challenge is stored and reachable by polling', async (t) => {
  const { w, fcm } = await fcmWorld(t);
  const phone = phoneFor(w, 'edumfa-flutter');
  await enrollPhone(w, phone);
  fcm.mode = 'error500';
  const c = await check(w, { user: 'alice', pass: '1234' });
  t.like(c.body, { result: { value: false, authentication: 'CHALLENGE' } });
  t.is(c.body.detail.multi_challenge[0].message, `${MESSAGE} ${HINT}`);
  t.true(w.seen.some((e) => e.name === 'delivery.failed'));
  const polled = await phone.poll();
  t.is(polled.body.result.value.length, 1);
  t.like((await phone.answer(polled.body.result.value[0])).body, { result: { value: true } });
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: c.body.detail.transaction_id })).body, {
    result: { authentication: 'ACCEPT' },
  });
});

test('Firebase failure with polling denied (policy deny, or token + polling_allowed False): nothing to answer', async (t) => {
  for (const [name, setup] of [
    ['deny', 'deny'],
    ['token', 'token'],
  ] as const) {
    const { w, fcm } = await fcmWorld(t, [policy('poll', 'authentication', { edupush_allow_polling: setup })]);
    const phone = phoneFor(w);
    const serial = await enrollPhone(w, phone);
    if (name === 'token') {
      const tok = await tokenOf(w, serial);
      await w.deps.store.tokens.update(serial, { info: { ...tok.info, polling_allowed: 'False' } }, w.clock.now());
    }
    fcm.mode = 'error500';
    const c = await check(w, { user: 'alice', pass: '1234' });
    t.is(c.body.result.authentication, 'CHALLENGE', name);
    t.is(c.body.detail.multi_challenge[0].message, `${MESSAGE} ${HINT}`);
    const tid = c.body.detail.transaction_id as string;
    const rows = await w.deps.store.challenges.byTransaction(tid);
    t.deepEqual(rows, [], `${name}: the challenge was withdrawn`);
    const nonce = fcm.received.at(-1)!.body.message.data.nonce as string;
    const answer = await w.call('POST', '/ttype/edupush', { serial, nonce, signature: phone.sign(`${nonce}|${serial}`) }, { as: 'json' });
    t.like(answer, {
      status: 400,
      body: {
        result: {
          error: { code: 401, message: 'ERR401: The authentication request has expired or is finished: the answer was not accepted.' },
        },
      },
    });
    t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid })).body, { result: { value: false, authentication: 'REJECT' } });
  }
});

test('Firebase success with polling denied: the challenge is stored and answerable', async (t) => {
  const { w, fcm } = await fcmWorld(t, [policy('poll', 'authentication', { edupush_allow_polling: 'deny' })]);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const c = await check(w, { user: 'alice', pass: '1234' });
  t.is(c.body.detail.multi_challenge[0].message, MESSAGE);
  t.like((await phone.answer(fcm.received[0]!.body.message.data)).body, { result: { value: true } });
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: c.body.detail.transaction_id })).body, {
    result: { authentication: 'ACCEPT' },
  });
});

test('UNREGISTERED marks the device stale (tokeninfo + event); a Firebase token update clears it', async (t) => {
  const { w, fcm } = await fcmWorld(t);
  const phone = phoneFor(w, 'edumfa-flutter');
  const serial = await enrollPhone(w, phone);
  fcm.mode = 'unregistered';
  const c = await check(w, { user: 'alice', pass: '1234' });
  t.is(c.body.detail.multi_challenge[0].message, `${MESSAGE} ${HINT}`);
  t.is((await tokenOf(w, serial)).info['device_stale'], new Date(w.clock.now()).toISOString());
  const ev = w.seen.find((e) => e.name === 'token.stale_device');
  t.like(ev?.payload, { serial });
  t.is((await phone.updateFirebaseToken('fresh-token')).status, 200);
  const tok = await tokenOf(w, serial);
  t.false('device_stale' in tok.info);
  fcm.mode = 'ok';
  await check(w, { user: 'alice', pass: '1234' });
  t.is(fcm.received.at(-1)!.body.message.token, 'fresh-token');
});

test('a hanging Firebase never holds the login beyond timeout_ms', async (t) => {
  const { w, fcm } = await fcmWorld(t, [], 2000);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  fcm.mode = 'hang';
  const arrived = fcm.nextRequest();
  let done = false;
  const pending = check(w, { user: 'alice', pass: '1234' }).finally(() => {
    done = true;
  });
  await arrived;
  t.false(done);
  w.clock.advance(2000);
  const c = await pending;
  t.is(c.body.result.authentication, 'CHALLENGE');
  t.is(c.body.detail.multi_challenge[0].message, `${MESSAGE} ${HINT}`);
  t.like(w.seen.find((e) => e.name === 'delivery.failed')?.payload, { channel: 'fcm', ms: 2000 });
  t.is((await phone.poll()).body.result.value.length, 1, 'still answerable by polling');
});

test('edupush_wait: the login waits for the phone in the same request and is accepted by its answer', async (t) => {
  const { w, fcm } = await fcmWorld(t, [policy('wait', 'authentication', { edupush_wait: 20 })]);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const pending = check(w, { user: 'alice', pass: '1234' });
  const req = await fcm.nextRequest();
  await until(() => w.seen.some((e) => e.name === 'wait.started'));
  t.like((await phone.answer(req.body.message.data)).body, { result: { value: true } });
  const c = await pending;
  t.like(c.body, { result: { value: true, authentication: 'ACCEPT' } });
});

test('exception=1: a failed Firebase delivery is HTTP 400 code 401; the challenge stays stored for polling', async (t) => {
  const { w, fcm } = await fcmWorld(t);
  const phone = phoneFor(w);
  const serial = await enrollPhone(w, phone);
  fcm.mode = 'error500';
  const r = await check(w, { user: 'alice', pass: '1234', exception: 1 });
  t.is(r.status, 400);
  t.deepEqual(r.body.result.error, { code: 401, message: 'ERR401: Failed to submit message to Firebase service.' });
  const polled = await phone.poll();
  t.is(polled.body.result.value.length, 1, 'still answerable by polling');
  t.is(polled.body.result.value[0].serial, serial);
  fcm.mode = 'ok';
  t.is(
    (await check(w, { user: 'alice', pass: '1234', exception: 1 })).body.result.authentication,
    'CHALLENGE',
    'a delivered push is unaffected',
  );
});
