import test from 'ava';
import crypto from 'node:crypto';
import jsqrImport from 'jsqr';
import { PNG } from 'pngjs';
import { ParameterError, PolicyError } from '../../../core/errors.ts';
import { edupush, push } from '../../../tokens/push/index.ts';
import { checkEnrollmentCredential, completeEnrollment, pushUrl, pyQuote, sslVerifyValue } from '../../../tokens/push/enrollment.ts';
import { EDUPUSH, LEGACY_PUSH } from '../../../tokens/push/variants.ts';
import { stripPemArmor } from '../../../tokens/push/signatures.ts';
import type { EnrollInput } from '../../../tokens/types.ts';
import { policyCtx, recordingSupport, testServerKeys, tokenRecord } from '../../helpers/push_ctx.ts';
import { makePhoneKey } from '../../helpers/fake_phone.ts';

type JsQr = typeof jsqrImport.default;
const jsQR = (typeof jsqrImport === 'function' ? jsqrImport : jsqrImport.default) as JsQr;
function decodeQr(uri: string): string | null {
  const png = PNG.sync.read(Buffer.from(uri.replace(/^data:image\/png;base64,/, ''), 'base64'));
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data ?? null;
}

const input = (over: Partial<EnrollInput> = {}): EnrollInput => ({
  serial: 'EDUP0003A1F9',
  params: { genkey: '1' },
  user: { name: 'alice', realm: 'example' },
  publicUrl: 'https://mfa.example.org',
  ...over,
});
const pollOnly = (p: 'edupush' | 'push' = 'edupush', extra: Record<string, unknown> = {}) => ({
  scope: 'enrollment' as const,
  actions: { [`${p}_firebase_configuration`]: 'poll only', ...extra },
});

test('pyQuote behaves like Python quote(safe="/")', (t) => {
  t.is(pyQuote('https://mfa.example.org/ttype/edupush'), 'https%3A//mfa.example.org/ttype/edupush');
  t.is(pyQuote('a b+c&d=e?f#g'), 'a%20b%2Bc%26d%3De%3Ff%23g');
  t.is(pyQuote("!'()*~-._"), '%21%27%28%29%2A~-._');
  t.is(pyQuote('Müller'), 'M%C3%BCller');
  t.is(pyQuote('a/b'), 'a/b');
});

test('pushUrl: eduMFA parameter order, optional image and pin', (t) => {
  const base = {
    label: 'EDUP0003A1F9',
    registrationUrl: 'https://mfa.example.org/ttype/edupush',
    ttlMinutes: 10,
    issuer: 'eduMFA',
    enrollmentCredential: '9311ee50678983c0f29d3d843f86e39405e2b427',
    serial: 'EDUP0003A1F9',
    sslVerify: '1' as const,
    forceAppPin: false,
  };
  t.is(
    pushUrl(EDUPUSH, base),
    'edumfa-push://edumfa/EDUP0003A1F9?url=https%3A//mfa.example.org/ttype/edupush&ttl=10&issuer=eduMFA&enrollment_credential=9311ee50678983c0f29d3d843f86e39405e2b427&v=1&serial=EDUP0003A1F9&sslverify=1',
  );
  t.is(
    pushUrl(LEGACY_PUSH, {
      ...base,
      label: 'alice@x y',
      imageUrl: 'https://img.example.org/a.png',
      sslVerify: '0',
      forceAppPin: true,
      serial: 'PIPU1',
    }),
    'otpauth://pipush/alice%40x%20y?url=https%3A//mfa.example.org/ttype/edupush&ttl=10&issuer=eduMFA&enrollment_credential=9311ee50678983c0f29d3d843f86e39405e2b427&image=https%3A//img.example.org/a.png&v=1&serial=PIPU1&sslverify=0&pin=True',
  );
});

test('sslVerifyValue: only 0 is 0', (t) => {
  t.is(sslVerifyValue('0'), '0');
  t.is(sslVerifyValue(0), '0');
  t.is(sslVerifyValue('1'), '1');
  t.is(sslVerifyValue('yes'), '1');
  t.is(sslVerifyValue(undefined), '1');
});

test('enrollBegin: missing firebase policy is a 403/303 PolicyError naming the action', async (t) => {
  const err = await t.throwsAsync(edupush.enrollBegin(input(), policyCtx()), { instanceOf: PolicyError });
  t.is(err?.message, 'Missing enrollment policy for push token: edupush_firebase_configuration');
  t.is(err?.code, 303);
  const legacy = await t.throwsAsync(push.enrollBegin(input(), policyCtx([pollOnly('edupush')])), { instanceOf: PolicyError });
  t.is(legacy?.message, 'Missing enrollment policy for push token: push_firebase_configuration', 'only the own prefix counts');
});

test('enrollBegin: unknown channel is ParameterError "Unknown Firebase configuration!"', async (t) => {
  const ctx = policyCtx([{ scope: 'enrollment', actions: { edupush_firebase_configuration: 'nope' } }], {
    push: recordingSupport(['fcm']),
  });
  const err = await t.throwsAsync(edupush.enrollBegin(input(), ctx), { instanceOf: ParameterError });
  t.is(err?.wireMessage, 'ERR905: Unknown Firebase configuration!');
  const noSupport = policyCtx([{ scope: 'enrollment', actions: { edupush_firebase_configuration: 'fcm' } }]);
  await t.throwsAsync(edupush.enrollBegin(input(), noSupport), { message: 'Unknown Firebase configuration!' });
});

test('enrollBegin: poll only, defaults — clientwait, inactive, TTL, credential, URL from public_url', async (t) => {
  const support = recordingSupport([]);
  const r = await edupush.enrollBegin(input(), policyCtx([pollOnly()], { push: support }));
  const cred = r.details['enrollment_credential'] as string;
  t.regex(cred, /^[0-9a-f]{40}$/);
  const pushurl = r.details['pushurl'] as { description: string; value: string; img: string };
  t.is(pushurl.description, 'URL for eduMFA Push Token');
  t.is(
    pushurl.value,
    `edumfa-push://edumfa/EDUP0003A1F9?url=https%3A//mfa.example.org/ttype/edupush&ttl=10&issuer=pushgate&enrollment_credential=${cred}&v=1&serial=EDUP0003A1F9&sslverify=1`,
  );
  t.is(r.qrUrl, pushurl.value);
  t.false('otpkey' in r.details);
  t.false(pushurl.value.includes('pin=True'));
  for (const absent of ['appid=', 'appidios=', 'apikeyios=']) t.false(pushurl.value.includes(absent));
  t.is(decodeQr(pushurl.img), pushurl.value, 'the QR PNG decodes to the exact URL');
  t.like(r.fields, { rolloutState: 'clientwait', active: false, rolloutTtlMs: 600_000 });
  t.deepEqual(r.fields.info, {
    edupush_firebase_configuration: 'poll only',
    registration_url: 'https://mfa.example.org/ttype/edupush',
    tokenkind: 'software',
  });
  t.deepEqual(r.fields.secrets, { enrollmentCredential: cred });
  t.is(support.prepared, 1, 'key preparation starts with step 1');
});

test('enrollBegin: policies — registration URL, ttl, ssl_verify, force_app_pin, label, issuer, image; legacy names', async (t) => {
  const ctx = policyCtx([
    pollOnly('push', {
      push_registration_url: 'https://push.example.org/ttype/push',
      push_ttl: 3,
      push_ssl_verify: '0',
      push_force_app_pin: true,
      tokenlabel: '{user}@{realm}',
      tokenissuer: 'Example <r>',
      appimageurl: 'https://img.example.org/logo.png',
    }),
  ]);
  const r = await push.enrollBegin(input({ serial: 'PIPU00000001' }), ctx);
  const url = r.details['pushurl'] as { value: string; description: string };
  t.is(url.description, 'URL for privacyIDEA Push Token');
  t.regex(
    url.value,
    /^otpauth:\/\/pipush\/alice%40example\?url=https%3A\/\/push\.example\.org\/ttype\/push&ttl=3&issuer=Example%20example&enrollment_credential=[0-9a-f]{40}&image=https%3A\/\/img\.example\.org\/logo\.png&v=1&serial=PIPU00000001&sslverify=0&pin=True$/,
  );
  t.is(r.fields.rolloutTtlMs, 180_000);
  t.is(r.fields.info['push_firebase_configuration'], 'poll only');
  t.is(r.fields.info['registration_url'], 'https://push.example.org/ttype/push');
});

test('enrollBegin: a configured channel is accepted; step-2 parameters at /token/init are refused', async (t) => {
  const ctx = policyCtx([{ scope: 'enrollment', actions: { edupush_firebase_configuration: 'my firebase config' } }], {
    push: recordingSupport(['my firebase config']),
  });
  const r = await edupush.enrollBegin(input(), ctx);
  t.is(r.fields.info['edupush_firebase_configuration'], 'my firebase config');
  const bads: Array<Record<string, string>> = [{ otpkey: 'aa' }, { pubkey: 'x' }, { fbtoken: 'y' }, { genkey: '0' }];
  for (const bad of bads) {
    await t.throwsAsync(edupush.enrollBegin(input({ params: bad }), ctx), {
      message: 'Invalid Parameters. Either provide (genkey) or (serial, fbtoken, pubkey).',
    });
  }
});

test('completeEnrollment: stores keys, returns PKCS#1 body with line breaks; credential is checked', async (t) => {
  const [serverKey] = await testServerKeys();
  const phone = makePhoneKey('ec');
  const urlSafe = (phone.publicKey.export({ type: 'spki', format: 'der' }) as Buffer)
    .toString('base64')
    .replace(/\+/g, '-')
    .replace(/\//g, '_');
  const token = tokenRecord({
    rolloutState: 'clientwait',
    active: false,
    info: { edupush_firebase_configuration: 'poll only', tokenkind: 'software' },
    secrets: { enrollmentCredential: 'c'.repeat(40) },
  });
  const done = completeEnrollment(
    EDUPUSH,
    token,
    { serial: token.serial, enrollmentCredential: 'c'.repeat(40), fbToken: '', pubkey: urlSafe },
    serverKey!,
  );
  t.is(done.info['public_key_smartphone'], urlSafe, 'stored verbatim');
  t.is(done.info['firebase_token'], '');
  t.true(done.info['public_key_server']!.startsWith('-----BEGIN RSA PUBLIC KEY-----\n'));
  t.true(done.secrets['privateKeyServer']!.startsWith('-----BEGIN RSA PRIVATE KEY-----\n'));
  t.false('enrollmentCredential' in done.secrets);
  t.is(done.details.rollout_state, 'enrolled');
  t.true(done.details.public_key.includes('\n'));
  t.false(done.details.public_key.includes('-----'));
  t.is(`-----BEGIN RSA PUBLIC KEY-----\n${done.details.public_key}\n-----END RSA PUBLIC KEY-----\n`, done.info['public_key_server']);
  const parsed = crypto.createPublicKey({
    key: Buffer.from(done.details.public_key.replace(/\n/g, ''), 'base64'),
    format: 'der',
    type: 'pkcs1',
  });
  t.is(parsed.asymmetricKeyType, 'rsa');
  t.is(stripPemArmor(done.info['public_key_server']!), done.details.public_key);

  const wrong = t.throws(() => checkEnrollmentCredential(token, 'd'.repeat(40)), { instanceOf: ParameterError });
  t.is(wrong?.wireMessage, 'ERR905: Invalid enrollment credential. You are not authorized to finalize this token.');
  t.throws(() => checkEnrollmentCredential(token, ''), { instanceOf: ParameterError });
  t.throws(
    () =>
      completeEnrollment(
        EDUPUSH,
        token,
        { serial: token.serial, enrollmentCredential: 'c'.repeat(40), fbToken: '', pubkey: 'bm90IGEga2V5' },
        serverKey!,
      ),
    { message: /^Invalid public key/ },
  );
});
