import test from 'ava';
import crypto from 'node:crypto';
import { edupush, push } from '../../../tokens/push/index.ts';
import {
  buildSmartphoneData,
  buildSmartphoneDataAsync,
  deliverPushChallenge,
  newNonce,
  pollingAllowed,
  presignedSmartphoneData,
  pushMessage,
  smartphoneSignedText,
  smartphoneTexts,
  tokenServerKey,
} from '../../../tokens/push/challenge.ts';
import { serverSignatureCounts } from '../../../tokens/push/signatures.ts';
import { EDUPUSH, LEGACY_PUSH, POLLING_HINT } from '../../../tokens/push/variants.ts';
import { base32Decode } from '../../../tokens/base32.ts';
import { challengeRecord, policyCtx, recordingSupport, testServerKeys, tokenRecord } from '../../helpers/push_ctx.ts';

async function enrolledToken(over: Record<string, string> = {}, type: 'edupush' | 'push' = 'edupush') {
  const [key] = await testServerKeys();
  return tokenRecord({
    type,
    serial: type === 'edupush' ? 'EDUP0001' : 'PIPU0001',
    info: {
      [`${type}_firebase_configuration`]: 'fcm',
      registration_url: 'https://mfa.example.org/ttype/' + type,
      firebase_token: 'device-1',
      public_key_server: key!.publicPem,
      ...over,
    },
    secrets: { privateKeyServer: key!.privatePem },
  });
}

test('type identity: edupush/EDUP and push/PIPU, out of band, poll client mode, sorted last', (t) => {
  t.like(edupush, { type: 'edupush', serialPrefix: 'EDUP', clientMode: 'poll', outOfBand: true, canChallenge: true, splitsPass: false });
  t.like(push, { type: 'push', serialPrefix: 'PIPU', title: 'Legacy PUSH Token' });
  t.true(edupush.checkOrder > 50);
  const names = push.policyActions.map((a) => `${a.scope}:${a.name}`);
  for (const n of [
    'enrollment:push_firebase_configuration',
    'enrollment:push_ssl_verify',
    'authentication:push_ssl_verify',
    'authentication:push_allow_polling',
    'enrollment:push_force_app_pin',
    'authentication:push_wait',
  ])
    t.true(names.includes(n), n);
  t.false(
    names.some((n) => n.includes('edupush')),
    'only its own prefix',
  );
});

test('nonce: 20 random bytes as 32 base32 characters', (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const n = newNonce();
    t.regex(n, /^[A-Z2-7]{32}$/);
    t.is(base32Decode(n).length, 20);
    seen.add(n);
  }
  t.is(seen.size, 20);
});

test('createChallenge: default text or challenge_text; hideResponseInput', async (t) => {
  const spec = await edupush.createChallenge!(tokenRecord(), policyCtx());
  t.is(spec.message, 'Please confirm the authentication on your mobile device!');
  t.deepEqual(spec.attributes, { hideResponseInput: true });
  const custom = await edupush.createChallenge!(
    tokenRecord(),
    policyCtx([{ scope: 'authentication', actions: { challenge_text: 'Check your phone' } }]),
  );
  t.is(custom.message, 'Check your phone');
});

test('check: only an accepted challenge is valid; declined is declined; otherwise pending/invalid', async (t) => {
  const ctx = policyCtx();
  const tok = tokenRecord();
  t.deepEqual(await edupush.check(tok, { otp: '', challenge: challengeRecord({ status: 'accepted' }) }, ctx), { kind: 'valid' });
  t.deepEqual(await edupush.check(tok, { otp: '', challenge: challengeRecord({ status: 'declined' }) }, ctx), { kind: 'declined' });
  t.deepEqual(await edupush.check(tok, { otp: '', challenge: challengeRecord() }, ctx), { kind: 'pending' });
  t.deepEqual(await edupush.check(tok, { otp: '123456' }, ctx), { kind: 'invalid' });
});

test('smartphone data: signed nonce|url|serial|question|title|sslverify, texts from authentication policies', async (t) => {
  const token = await enrolledToken();
  const ctx = policyCtx([
    {
      scope: 'authentication',
      actions: { edupush_text_on_mobile: 'Login at Example?', edupush_title_on_mobile: 'Example', edupush_ssl_verify: '0' },
    },
    { scope: 'enrollment', actions: { edupush_registration_url: 'https://other.example.org/ttype/edupush' } },
  ]);
  const texts = smartphoneTexts(EDUPUSH, token, ctx)!;
  t.deepEqual(texts, { question: 'Login at Example?', title: 'Example', sslVerify: '0', url: 'https://other.example.org/ttype/edupush' });
  const data = buildSmartphoneData('N'.repeat(32), token.serial, texts, token.secrets['privateKeyServer']!);
  t.is(
    smartphoneSignedText(data.nonce, data.serial, texts),
    `${'N'.repeat(32)}|https://other.example.org/ttype/edupush|EDUP0001|Login at Example?|Example|0`,
  );
  t.true(
    crypto.verify(
      'sha256',
      Buffer.from(smartphoneSignedText(data.nonce, data.serial, texts)),
      token.info['public_key_server']!,
      base32Decode(data.signature),
    ),
  );
  // Defaults; URL from the token when no policy.
  t.deepEqual(smartphoneTexts(EDUPUSH, token, policyCtx()), {
    question: 'Do you want to confirm the login?',
    title: 'eduMFA',
    sslVerify: '1',
    url: 'https://mfa.example.org/ttype/edupush',
  });
  t.is(smartphoneTexts(EDUPUSH, tokenRecord(), policyCtx()), null, 'no URL known');
});

test('push message: data + notification + android HIGH/120s + APNs alert category PUSH_AUTHENTICATION', async (t) => {
  const token = await enrolledToken();
  const data = buildSmartphoneData(
    'N'.repeat(32),
    token.serial,
    smartphoneTexts(EDUPUSH, token, policyCtx())!,
    token.secrets['privateKeyServer']!,
  );
  const m = pushMessage(data, Date.UTC(2026, 10, 25, 12, 0, 0));
  t.deepEqual(m.data, { ...data });
  t.deepEqual(m.notification, { title: 'eduMFA', body: 'Do you want to confirm the login?' });
  t.deepEqual(m.android, { priority: 'high', ttlMs: 120_000, analyticsLabel: 'AndroidPushToken' });
  t.deepEqual(m.apns.headers, {
    'apns-priority': '10',
    'apns-push-type': 'alert',
    'apns-collapse-id': 'privacyidea.pushtoken',
    'apns-expiration': String(Date.UTC(2026, 10, 25, 12, 2, 0) / 1000),
  });
  t.like(m.apns, {
    alert: { title: 'eduMFA', body: 'Do you want to confirm the login?' },
    sound: 'default',
    category: 'PUSH_AUTHENTICATION',
    analyticsLabel: 'iOSPushToken',
  });
});

test('deliver: poll only and enrollment challenges send nothing', async (t) => {
  const support = recordingSupport();
  const ctx = policyCtx([], { push: support });
  t.deepEqual(
    await deliverPushChallenge(EDUPUSH, await enrolledToken({ edupush_firebase_configuration: 'poll only' }), challengeRecord(), ctx),
    { delivered: true },
  );
  t.deepEqual(await deliverPushChallenge(EDUPUSH, await enrolledToken(), challengeRecord({ session: 'enrollment' }), ctx), {
    delivered: true,
  });
  t.is(support.sent.length, 0);
});

test('deliver: through the token channel to its device; legacy uses push_* policies', async (t) => {
  const support = recordingSupport();
  const ctx = policyCtx([{ scope: 'authentication', actions: { push_title_on_mobile: 'Legacy', edupush_title_on_mobile: 'Edu' } }], {
    push: support,
  });
  const r = await deliverPushChallenge(LEGACY_PUSH, await enrolledToken({}, 'push'), challengeRecord({ serial: 'PIPU0001' }), ctx);
  t.deepEqual(r, { delivered: true });
  t.is(support.sent.length, 1);
  t.like(support.sent[0], { channel: 'fcm', serial: 'PIPU0001', target: 'device-1' });
  t.is(support.sent[0]!.message.data['title'], 'Legacy');
  t.is(support.sent[0]!.message.data['url'], 'https://mfa.example.org/ttype/push');
});

test('deliver failure: polling hint; challenge kept when polling is allowed, withdrawn when denied', async (t) => {
  const support = recordingSupport();
  support.result = { ok: false, reason: 'unavailable', detail: '500', ms: 3 };
  const token = await enrolledToken();
  const allow = await deliverPushChallenge(EDUPUSH, token, challengeRecord({ id: 1 }), policyCtx([], { push: support }));
  t.deepEqual(allow, { delivered: false, messageSuffix: POLLING_HINT });
  t.deepEqual(support.withdrawn, []);
  const deny = policyCtx([{ scope: 'authentication', actions: { edupush_allow_polling: 'deny' } }], { push: support });
  t.is((await deliverPushChallenge(EDUPUSH, token, challengeRecord({ id: 2 }), deny)).messageSuffix, POLLING_HINT);
  t.deepEqual(support.withdrawn, [2]);
  const perToken = policyCtx([{ scope: 'authentication', actions: { edupush_allow_polling: 'token' } }], { push: support });
  await deliverPushChallenge(EDUPUSH, await enrolledToken({ polling_allowed: 'False' }), challengeRecord({ id: 3 }), perToken);
  await deliverPushChallenge(EDUPUSH, await enrolledToken({ polling_allowed: 'True' }), challengeRecord({ id: 4 }), perToken);
  await deliverPushChallenge(EDUPUSH, token, challengeRecord({ id: 5 }), perToken);
  t.deepEqual(support.withdrawn, [2, 3]);
  // No device registered (poll-only app with a channel token): nothing is sent, the hint is shown.
  const before = support.sent.length;
  support.result = { ok: true, ms: 1 };
  t.is(
    (await deliverPushChallenge(EDUPUSH, await enrolledToken({ firebase_token: '' }), challengeRecord(), policyCtx([], { push: support })))
      .delivered,
    false,
  );
  t.is(support.sent.length, before);
});

test('pollingAllowed: allow ignores tokeninfo; token reads polling_allowed (default allowed); deny', async (t) => {
  const off = await enrolledToken({ polling_allowed: 'False' });
  const on = await enrolledToken({ polling_allowed: 'True' });
  const none = await enrolledToken();
  const ctx = (v?: string) => policyCtx(v ? [{ scope: 'authentication', actions: { edupush_allow_polling: v } }] : []);
  t.true(pollingAllowed(EDUPUSH, off, ctx()));
  t.true(pollingAllowed(EDUPUSH, off, ctx('allow')));
  t.false(pollingAllowed(EDUPUSH, none, ctx('deny')));
  t.false(pollingAllowed(EDUPUSH, off, ctx('token')));
  t.true(pollingAllowed(EDUPUSH, on, ctx('token')));
  t.true(pollingAllowed(EDUPUSH, none, ctx('token')));
});

test('tokenServerKey: the parsed key is cached per serial and replaced when the token gets a new key', async (t) => {
  const [a, b] = await testServerKeys();
  const withKey = (pem: string) => tokenRecord({ serial: 'EDUPCACHE1', secrets: { privateKeyServer: pem } });
  const k1 = tokenServerKey(withKey(a!.privatePem));
  t.truthy(k1);
  t.is(tokenServerKey(withKey(a!.privatePem)), k1, 'same PEM → the same parsed KeyObject');
  const k2 = tokenServerKey(withKey(b!.privatePem));
  t.not(k2, k1, 're-enrolled token: its new key, never the cached old one');
  t.true(k2!.equals(crypto.createPrivateKey(b!.privatePem)));
  t.is(tokenServerKey(withKey('not a pem')), null);
  t.is(tokenServerKey(tokenRecord({ serial: 'EDUPCACHE2' })), null);
});

test('buildSmartphoneDataAsync signs the same bytes as the synchronous path', async (t) => {
  const [a] = await testServerKeys();
  const key = crypto.createPrivateKey(a!.privatePem);
  const texts = { question: 'q?', title: 'T', sslVerify: '1' as const, url: 'https://mfa.example.org/ttype/edupush' };
  t.deepEqual(
    await buildSmartphoneDataAsync('N'.repeat(32), 'EDUP0001', texts, key),
    buildSmartphoneData('N'.repeat(32), 'EDUP0001', texts, key),
  );
});

test("createChallenge presigns the smartphone data with the login's texts; the row gives it back byte for byte", async (t) => {
  const token = await enrolledToken();
  const ctx = policyCtx([{ scope: 'authentication', actions: { edupush_text_on_mobile: 'Login at Example?', edupush_ssl_verify: '0' } }]);
  const spec = await edupush.createChallenge!(token, ctx);
  const row = challengeRecord({ nonce: spec.nonce, serial: token.serial, data: spec.data ?? {} });
  const texts = smartphoneTexts(EDUPUSH, token, ctx)!;
  const data = presignedSmartphoneData(row);
  t.deepEqual(data, buildSmartphoneData(spec.nonce, token.serial, texts, token.secrets['privateKeyServer']!));
  t.deepEqual(Object.keys(data!), ['nonce', 'question', 'serial', 'title', 'sslverify', 'url', 'signature']);
  t.is(data!.question, 'Login at Example?');
  t.is(data!.sslverify, '0');
  // Nothing to sign without a server key (a token still in clientwait): no presigned data.
  t.is((await edupush.createChallenge!(tokenRecord(), ctx)).data, undefined);
  t.is(presignedSmartphoneData(challengeRecord()), null, 'a row without presigned data');
  t.is(presignedSmartphoneData(challengeRecord({ data: { ...spec.data, push_sslverify: 'yes' } })), null, 'a damaged row is not trusted');
});

test.serial('deliver sends the presigned data and signs nothing more (serial: the counts are per process)', async (t) => {
  const token = await enrolledToken();
  const support = recordingSupport();
  const ctx = policyCtx([], { push: support });
  const spec = await edupush.createChallenge!(token, ctx);
  const before = serverSignatureCounts();
  t.deepEqual(await deliverPushChallenge(EDUPUSH, token, challengeRecord({ nonce: spec.nonce, data: spec.data ?? {} }), ctx), {
    delivered: true,
  });
  const after = serverSignatureCounts();
  t.deepEqual([after.sync - before.sync, after.async - before.async], [0, 0]);
  t.deepEqual(support.sent[0]!.message.data, {
    ...presignedSmartphoneData(challengeRecord({ nonce: spec.nonce, data: spec.data ?? {} }))!,
  });
});
