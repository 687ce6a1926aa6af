import test from 'ava';
import jsqrImport from 'jsqr';
import { PNG } from 'pngjs';
import type { ActionValue } from '../../policies/types.ts';
import type { Clock } from '../../core/clock.ts';
import { ConfigAdminError, ParameterError } from '../../core/errors.ts';
import { base32Decode } from '../../tokens/base32.ts';
import { hotp } from '../../tokens/hotp.ts';
import { spass } from '../../tokens/spass.ts';
import { totp } from '../../tokens/totp.ts';
import type { EnrollBeginResult, EnrollInput, TokenContext, TokenFields, TokenRecord, TokenType } from '../../tokens/types.ts';

type JsQr = typeof jsqrImport.default;
const jsQR = (typeof jsqrImport === 'function' ? jsqrImport : jsqrImport.default) as JsQr;
function decodeQr(uri: string): string | null {
  const png = PNG.sync.read(Buffer.from(uri.replace(/^data:image\/png;base64,/, ''), 'base64'));
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data ?? null;
}

function fakeCtx(actions: Record<string, ActionValue> = {}, nowMs = 0): TokenContext & { set(ms: number): void } {
  let now = nowMs;
  const clock: Clock = { now: () => now, schedule: () => () => undefined };
  return {
    clock,
    action: <T extends ActionValue>(name: string) => actions[name] as T | undefined,
    set(ms: number) {
      now = ms;
    },
  };
}

function enrollInput(params: Record<string, string>, extra: Partial<EnrollInput> = {}): EnrollInput {
  return { serial: 'OATH0001', params, user: null, publicUrl: 'https://mfa.example.org', ...extra };
}

function record(type: string, fields: TokenFields, over: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id: 1,
    serial: 'OATH0001',
    type,
    username: 'alice',
    realm: 'example',
    active: fields.active,
    rolloutState: fields.rolloutState,
    pinHash: null,
    otpLen: fields.otpLen,
    counter: fields.counter,
    failCount: 0,
    maxFail: 10,
    description: '',
    info: fields.info,
    secrets: fields.secrets,
    createdAt: 0,
    lastAuthAt: null,
    lockedAt: null,
    ...over,
  };
}

interface Detail {
  description: string;
  value: string;
  value_b32?: string;
  img: string;
}
const detail = (r: EnrollBeginResult, name: string): Detail => r.details[name] as Detail;

const RFC_HEX = Buffer.from('12345678901234567890').toString('hex');
const RFC_B32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

// ---------------------------------------------------------------------------------------------- identity

test('type identities', (t) => {
  const pick = (x: TokenType) => [x.type, x.title, x.serialPrefix, x.clientMode, x.splitsPass, x.canChallenge, x.outOfBand, x.checkOrder];
  t.deepEqual(pick(hotp), ['hotp', 'HOTP Token', 'OATH', 'interactive', true, true, false, 10]);
  t.deepEqual(pick(totp), ['totp', 'TOTP Token', 'TOTP', 'interactive', true, true, false, 20]);
  t.deepEqual(pick(spass), ['spass', 'Simple Pass Token', 'PISP', 'interactive', false, false, false, 0]);
  t.deepEqual(
    hotp.policyActions.map((a) => [a.name, a.scope, a.default]),
    [
      ['hotp_hashlib', 'enrollment', 'sha1'],
      ['hotp_otplen', 'enrollment', '6'],
      ['hotp_window', 'authentication', 10],
    ],
  );
  t.deepEqual(
    totp.policyActions.map((a) => [a.name, a.scope, a.default]),
    [
      ['totp_hashlib', 'enrollment', 'sha1'],
      ['totp_otplen', 'enrollment', '6'],
      ['totp_timestep', 'enrollment', '30'],
      ['totp_window', 'authentication', undefined],
    ],
  );
  for (const a of [...hotp.policyActions, ...totp.policyActions]) t.true(a.description.length > 10);
});

// ---------------------------------------------------------------------------------------------- HOTP enroll

test('hotp enroll with a given hex key: exact details', async (t) => {
  const r = await hotp.enrollBegin(enrollInput({ otpkey: RFC_HEX }), fakeCtx());
  const google = `otpauth://hotp/pushgate%3AOATH0001?secret=${RFC_B32}&counter=0&digits=6&algorithm=SHA1&issuer=pushgate`;
  t.deepEqual(r.fields, {
    otpLen: 6,
    counter: 0,
    rolloutState: '',
    active: true,
    info: { hashlib: 'sha1', tokenkind: 'software' },
    secrets: { otpKey: RFC_HEX },
  });
  t.deepEqual(Object.keys(r.details).sort(), ['googleurl', 'oathurl', 'otpkey']);
  t.is(detail(r, 'googleurl').description, 'URL for google Authenticator');
  t.is(detail(r, 'googleurl').value, google);
  t.is(detail(r, 'otpkey').description, 'OTP seed');
  t.is(detail(r, 'otpkey').value, `seed://${RFC_HEX}`);
  t.is(detail(r, 'otpkey').value_b32, RFC_B32);
  t.is(detail(r, 'oathurl').description, 'URL for OATH token');
  t.is(detail(r, 'oathurl').value, `oathtoken:///addToken?name=OATH0001&lockdown=true&key=${RFC_HEX}`);
  t.is(r.qrUrl, google);
  for (const name of ['googleurl', 'otpkey', 'oathurl']) {
    const d = detail(r, name);
    t.regex(d.img, /^data:image\/png;base64,/);
    t.is(decodeQr(d.img), d.value, `${name} QR decodes to its value`);
  }
});

test('hotp genkey: key size follows the hash, secret round-trips', async (t) => {
  for (const [hashlib, size] of [
    ['sha1', 20],
    ['sha256', 32],
    ['sha512', 64],
  ] as const) {
    const r = await hotp.enrollBegin(enrollInput({ genkey: '1', hashlib }), fakeCtx());
    const hex = r.fields.secrets['otpKey']!;
    t.regex(hex, /^[0-9a-f]+$/);
    t.is(hex.length, size * 2);
    t.is(r.fields.info['hashlib'], hashlib);
    const url = new URL(detail(r, 'googleurl').value);
    t.is(url.searchParams.get('algorithm'), hashlib.toUpperCase());
    const secret = url.searchParams.get('secret')!;
    t.false(secret.includes('='), 'otpauth secret has no padding');
    t.is(base32Decode(secret).toString('hex'), hex);
    t.is(base32Decode(detail(r, 'otpkey').value_b32!).toString('hex'), hex);
    t.is(detail(r, 'otpkey').value, `seed://${hex}`);
  }
  const a = await hotp.enrollBegin(enrollInput({ genkey: 'true' }), fakeCtx());
  const b = await hotp.enrollBegin(enrollInput({ genkey: '1' }), fakeCtx());
  t.not(a.fields.secrets['otpKey'], b.fields.secrets['otpKey']);
});

test('hotp enroll: params win over policies, policies over defaults', async (t) => {
  const ctx = fakeCtx({ hotp_hashlib: 'sha256', hotp_otplen: 8 });
  const fromPolicy = await hotp.enrollBegin(enrollInput({ genkey: '1' }), ctx);
  t.is(fromPolicy.fields.otpLen, 8);
  t.is(fromPolicy.fields.info['hashlib'], 'sha256');
  t.regex(detail(fromPolicy, 'googleurl').value, /&counter=0&digits=8&algorithm=SHA256&issuer=pushgate$/);
  const fromParams = await hotp.enrollBegin(enrollInput({ genkey: '1', hashlib: 'SHA1', otplen: '6' }), ctx);
  t.is(fromParams.fields.otpLen, 6);
  t.is(fromParams.fields.info['hashlib'], 'sha1');
  const stringPolicy = await hotp.enrollBegin(enrollInput({ genkey: '1' }), fakeCtx({ hotp_otplen: '8' }));
  t.is(stringPolicy.fields.otpLen, 8);
  await t.throwsAsync(hotp.enrollBegin(enrollInput({ genkey: '1' }), fakeCtx({ hotp_otplen: 7 })), { instanceOf: ConfigAdminError });
});

test('label and issuer policies with tags and encoding', async (t) => {
  const ctx = fakeCtx({ tokenlabel: '<u>@<r> {serial}', tokenissuer: '{realm} MFA' });
  const input = enrollInput({ otpkey: RFC_HEX }, { user: { name: 'alice', realm: 'example org' } });
  const r = await hotp.enrollBegin(input, ctx);
  t.is(
    detail(r, 'googleurl').value,
    `otpauth://hotp/example%20org%20MFA%3Aalice%40example%20org%20OATH0001?secret=${RFC_B32}&counter=0&digits=6&algorithm=SHA1&issuer=example%20org%20MFA`,
  );
  t.is(detail(r, 'oathurl').value, `oathtoken:///addToken?name=alice%40example%20org%20OATH0001&lockdown=true&key=${RFC_HEX}`);
  // without a user, user and realm tags are empty
  const noUser = await totp.enrollBegin(enrollInput({ otpkey: RFC_HEX }), fakeCtx({ tokenlabel: '{user}-<s>', tokenissuer: 'Acme & Co' }));
  t.is(
    detail(noUser, 'googleurl').value,
    `otpauth://totp/Acme%20%26%20Co%3A-OATH0001?secret=${RFC_B32}&period=30&digits=6&algorithm=SHA1&issuer=Acme%20%26%20Co`,
  );
});

test('otpkey_format=base32 and whitespace in hex', async (t) => {
  const b32 = await hotp.enrollBegin(
    enrollInput({ otpkey: 'gezd gnbv gy3t qojq gezd gnbv gy3t qojq', otpkey_format: 'base32' }),
    fakeCtx(),
  );
  t.is(b32.fields.secrets['otpKey'], RFC_HEX);
  const upper = await hotp.enrollBegin(enrollInput({ otpkey: RFC_HEX.toUpperCase() }), fakeCtx());
  t.is(upper.fields.secrets['otpKey'], RFC_HEX);
});

test('enroll parameter errors', async (t) => {
  const cases: ReadonlyArray<readonly [TokenType, Record<string, string>, RegExp]> = [
    [hotp, {}, /^Missing parameter: 'otpkey'$/],
    [totp, { genkey: '0' }, /^Missing parameter: 'otpkey'$/],
    [hotp, { genkey: '1', otpkey: RFC_HEX }, /either specify genkey or otpkey/],
    [hotp, { otpkey: 'xyz1' }, /Invalid otpkey/],
    [hotp, { otpkey: 'abc' }, /Invalid otpkey/],
    [hotp, { otpkey: 'ab'.repeat(257) }, /longer than 256 bytes/],
    [hotp, { otpkey: '1!', otpkey_format: 'base32' }, /Invalid base32/],
    [hotp, { otpkey: RFC_HEX, otpkey_format: 'base64' }, /Invalid otpkey_format 'base64'/],
    [hotp, { genkey: '1', otplen: '7' }, /Invalid otplen '7'/],
    [totp, { genkey: '1', otplen: 'six' }, /Invalid otplen 'six'/],
    [hotp, { genkey: '1', hashlib: 'md5' }, /Invalid hashlib 'md5'/],
    [totp, { genkey: '1', timeStep: '45' }, /Invalid timeStep '45'/],
  ];
  for (const [type, params, message] of cases) {
    const err = await t.throwsAsync(
      type.enrollBegin(enrollInput(params), fakeCtx()),
      { instanceOf: ParameterError },
      JSON.stringify(params),
    );
    t.regex(err?.message ?? '', message);
    t.is(err?.wireMessage.slice(0, 8), 'ERR905: ');
  }
});

// ---------------------------------------------------------------------------------------------- TOTP enroll

test('totp enroll: exact details, no oathurl, timeStep', async (t) => {
  const r = await totp.enrollBegin(enrollInput({ otpkey: RFC_HEX, timeStep: '60', otplen: '8' }), fakeCtx());
  const google = `otpauth://totp/pushgate%3AOATH0001?secret=${RFC_B32}&period=60&digits=8&algorithm=SHA1&issuer=pushgate`;
  t.deepEqual(r.fields, {
    otpLen: 8,
    counter: 0,
    rolloutState: '',
    active: true,
    info: { hashlib: 'sha1', timeStep: '60', tokenkind: 'software' },
    secrets: { otpKey: RFC_HEX },
  });
  t.deepEqual(Object.keys(r.details).sort(), ['googleurl', 'otpkey']);
  t.is(detail(r, 'googleurl').value, google);
  t.is(r.qrUrl, google);
  t.is(decodeQr(detail(r, 'googleurl').img), google);
  t.is(decodeQr(detail(r, 'otpkey').img), `seed://${RFC_HEX}`);
  const byPolicy = await totp.enrollBegin(enrollInput({ genkey: '1' }), fakeCtx({ totp_timestep: 60, totp_hashlib: 'sha512' }));
  t.is(byPolicy.fields.info['timeStep'], '60');
  t.is(byPolicy.fields.secrets['otpKey']!.length, 128);
  t.regex(detail(byPolicy, 'googleurl').value, /&period=60&digits=6&algorithm=SHA512&issuer=pushgate$/);
  const dflt = await totp.enrollBegin(enrollInput({ genkey: '1' }), fakeCtx());
  t.is(dflt.fields.info['timeStep'], '30');
});

test('value_b32 keeps RFC 4648 padding for keys that need it', async (t) => {
  const r = await totp.enrollBegin(enrollInput({ genkey: '1', hashlib: 'sha256' }), fakeCtx());
  t.regex(detail(r, 'otpkey').value_b32!, /^[A-Z2-7]{52}={4}$/);
  t.regex(new URL(detail(r, 'googleurl').value).searchParams.get('secret')!, /^[A-Z2-7]{52}$/);
});

// ---------------------------------------------------------------------------------------------- HOTP check

const RFC4226 = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];

test('hotp check: counter, look-ahead window, replay', async (t) => {
  const { fields } = await hotp.enrollBegin(enrollInput({ otpkey: RFC_HEX }), fakeCtx());
  const ctx = fakeCtx();
  const tok = (counter: number) => record('hotp', fields, { counter });
  t.deepEqual(await hotp.check(tok(0), { otp: RFC4226[0]! }, ctx), { kind: 'valid', counter: 0 });
  t.deepEqual(await hotp.check(tok(1), { otp: RFC4226[0]! }, ctx), { kind: 'invalid' }, 'replay of an used value');
  t.deepEqual(await hotp.check(tok(0), { otp: RFC4226[9]! }, ctx), { kind: 'valid', counter: 9 }, 'default window 10');
  t.deepEqual(await hotp.check(tok(0), { otp: RFC4226[3]! }, fakeCtx({ hotp_window: 3 })), { kind: 'invalid' });
  t.deepEqual(await hotp.check(tok(0), { otp: RFC4226[3]! }, fakeCtx({ hotp_window: 4 })), { kind: 'valid', counter: 3 });
  t.deepEqual(await hotp.check(tok(3), { otp: RFC4226[3]! }, fakeCtx({ hotp_window: 1 })), { kind: 'valid', counter: 3 });
  for (const otp of ['', '75522', '7552240', 'abcdef', '75522a', '000000']) {
    t.deepEqual(await hotp.check(tok(0), { otp }, ctx), { kind: 'invalid' }, otp);
  }
});

test('hotp check: 8 digits and sha256 from the record', async (t) => {
  const { fields } = await hotp.enrollBegin(enrollInput({ otpkey: RFC_HEX, otplen: '8' }), fakeCtx());
  t.deepEqual(await hotp.check(record('hotp', fields), { otp: '84755224' }, fakeCtx()), { kind: 'valid', counter: 0 });
  t.deepEqual(await hotp.check(record('hotp', fields), { otp: '755224' }, fakeCtx()), { kind: 'invalid' });
  const key32 = Buffer.from('12345678901234567890123456789012').toString('hex');
  const s256 = await hotp.enrollBegin(enrollInput({ otpkey: key32, hashlib: 'sha256', otplen: '8' }), fakeCtx());
  // RFC 6238 SHA256 at T=59 is step 1 → HOTP counter 1
  t.deepEqual(await hotp.check(record('hotp', s256.fields), { otp: '46119246' }, fakeCtx()), { kind: 'valid', counter: 1 });
});

test('checks of unusable records are invalid, not errors', async (t) => {
  const { fields } = await hotp.enrollBegin(enrollInput({ otpkey: RFC_HEX }), fakeCtx());
  t.deepEqual(await hotp.check(record('hotp', fields, { secrets: {} }), { otp: RFC4226[0]! }, fakeCtx()), { kind: 'invalid' });
  t.deepEqual(await hotp.check(record('hotp', fields, { otpLen: 7 }), { otp: RFC4226[0]! }, fakeCtx()), { kind: 'invalid' });
  t.deepEqual(await hotp.check(record('hotp', fields, { info: { hashlib: 'md5' } }), { otp: RFC4226[0]! }, fakeCtx()), { kind: 'invalid' });
  t.deepEqual(await totp.check(record('totp', fields, { info: { timeStep: '0' } }), { otp: RFC4226[0]! }, fakeCtx()), { kind: 'invalid' });
});

// ---------------------------------------------------------------------------------------------- TOTP check

test('totp check: RFC 6238 value, drift window, replay floor, clock from ctx', async (t) => {
  const { fields } = await totp.enrollBegin(enrollInput({ otpkey: RFC_HEX, otplen: '8' }), fakeCtx());
  const otp = '94287082'; // RFC 6238 SHA1 at T=59 → step 1
  const ctx = fakeCtx({}, 59_000);
  const tok = (counter: number) => record('totp', fields, { counter });
  t.deepEqual(await totp.check(tok(0), { otp }, ctx), { kind: 'valid', counter: 1 });
  t.deepEqual(await totp.check(tok(2), { otp }, ctx), { kind: 'invalid' }, 'same step again is a replay');
  ctx.set(239_000); // step 7, six steps after step 1: 180 s of drift are tolerated by default, as eduMFA's timeWindow
  t.deepEqual(await totp.check(tok(0), { otp }, ctx), { kind: 'valid', counter: 1 });
  ctx.set(240_000); // step 8
  t.deepEqual(await totp.check(tok(0), { otp }, ctx), { kind: 'invalid' });
  t.deepEqual(await totp.check(tok(0), { otp }, fakeCtx({ totp_window: 1 }, 119_000)), { kind: 'invalid' });
  t.deepEqual(await totp.check(tok(0), { otp }, fakeCtx({ totp_window: 2 }, 119_000)), { kind: 'valid', counter: 1 });
  ctx.set(0); // step 0: the value of step 1 is one step ahead
  t.deepEqual(await totp.check(tok(0), { otp }, ctx), { kind: 'valid', counter: 1 });
  t.deepEqual(await totp.check(tok(0), { otp }, fakeCtx({ totp_window: 0 }, 0)), { kind: 'invalid' });
  t.deepEqual(await totp.check(tok(0), { otp: '9428708' }, fakeCtx({}, 59_000)), { kind: 'invalid' });
});

test('totp check with 60 s steps', async (t) => {
  const { fields } = await totp.enrollBegin(enrollInput({ otpkey: RFC_HEX, otplen: '8', timeStep: '60' }), fakeCtx());
  // step 1 of a 60 s token is [60 s, 120 s); its value equals the RFC value of 30-s step 1
  t.deepEqual(await totp.check(record('totp', fields), { otp: '94287082' }, fakeCtx({ totp_window: 0 }, 90_000)), {
    kind: 'valid',
    counter: 1,
  });
  t.deepEqual(await totp.check(record('totp', fields), { otp: '94287082' }, fakeCtx({ totp_window: 0 }, 59_000)), { kind: 'invalid' });
});

// ---------------------------------------------------------------------------------------------- spass

test('spass: no key, empty details, empty otp only', async (t) => {
  const r = await spass.enrollBegin(enrollInput({}), fakeCtx());
  t.deepEqual(r, { fields: { otpLen: 0, counter: 0, rolloutState: '', active: true, info: {}, secrets: {} }, details: {} });
  const tok = record('spass', r.fields);
  t.deepEqual(await spass.check(tok, { otp: '' }, fakeCtx()), { kind: 'valid' });
  t.deepEqual(await spass.check(tok, { otp: '123456' }, fakeCtx()), { kind: 'invalid' });
});
