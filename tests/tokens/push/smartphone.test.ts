import test from 'ava';
import { ParameterError, SignatureError } from '../../../core/errors.ts';
import { makeParams } from '../../../server/params.ts';
import {
  answerSignedText,
  checkPhoneSignature,
  checkTimestamp,
  classifySmartphoneRequest,
  firebaseUpdateSignedText,
  isDecline,
  parseIsoTimestamp,
  pollSignedText,
  tokenPhoneKey,
} from '../../../tokens/push/smartphone.ts';
import { EDUPUSH } from '../../../tokens/push/variants.ts';
import { FakePhone, makePhoneKey } from '../../helpers/fake_phone.ts';
import { tokenRecord } from '../../helpers/push_ctx.ts';

const params = (values: Record<string, string>, raw: Record<string, unknown> = {}) => makeParams(values, raw);

test('classify: the four kinds', (t) => {
  t.deepEqual(classifySmartphoneRequest('POST', params({ serial: 'S', enrollment_credential: 'c', fbtoken: '', pubkey: 'k' })), {
    kind: 'completeEnrollment',
    serial: 'S',
    enrollmentCredential: 'c',
    fbToken: '',
    pubkey: 'k',
  });
  t.deepEqual(classifySmartphoneRequest('POST', params({ serial: 'S', nonce: 'N', signature: 'X' })), {
    kind: 'answerChallenge',
    serial: 'S',
    nonce: 'N',
    signature: 'X',
    decline: false,
  });
  t.deepEqual(classifySmartphoneRequest('POST', params({ serial: 'S', new_fb_token: 'F', timestamp: 'T', signature: 'X' })), {
    kind: 'updateFirebaseToken',
    serial: 'S',
    newFbToken: 'F',
    timestamp: 'T',
    signature: 'X',
  });
  t.deepEqual(classifySmartphoneRequest('GET', params({ serial: 'S', timestamp: 'T', signature: 'X' })), {
    kind: 'poll',
    serial: 'S',
    timestamp: 'T',
    signature: 'X',
  });
});

test('classify: missing parameters are ERR905 400s', (t) => {
  const wire = (method: string, v: Record<string, string>) =>
    t.throws(() => classifySmartphoneRequest(method, params(v)), { instanceOf: ParameterError })?.wireMessage;
  t.is(wire('POST', {}), "ERR905: Missing parameter: 'serial'");
  t.is(wire('POST', { serial: 'S' }), 'ERR905: Missing parameters!');
  t.is(wire('POST', { serial: 'S', nonce: 'N' }), 'ERR905: Missing parameters!');
  t.is(wire('POST', { serial: 'S', fbtoken: '', pubkey: 'k' }), "ERR905: Missing parameter: 'enrollment_credential'");
  t.is(wire('GET', { serial: 'S', timestamp: 'T' }), "ERR905: Missing parameter: 'signature'");
});

test('decline: 1, "1", true, "true"/"True", non-zero JSON numbers decline; 0, "0", false, absent accept', (t) => {
  for (const yes of [1, '1', true, 'true', 'True', 'TRUE', 2]) t.true(isDecline(yes), String(yes));
  for (const no of [0, '0', false, 'false', '', undefined, null]) t.false(isDecline(no), String(no));
  const json = classifySmartphoneRequest('POST', params({ serial: 'S', nonce: 'N', signature: 'X', decline: '1' }, { decline: 1 }));
  t.true(json.kind === 'answerChallenge' && json.decline);
  const zero = classifySmartphoneRequest('POST', params({ serial: 'S', nonce: 'N', signature: 'X', decline: '0' }, { decline: 0 }));
  t.true(zero.kind === 'answerChallenge' && !zero.decline);
});

test('signed strings', (t) => {
  t.is(answerSignedText('N', 'S', false), 'N|S');
  t.is(answerSignedText('N', 'S', true), 'N|S|decline');
  t.is(pollSignedText('S', 'T'), 'S|T');
  t.is(firebaseUpdateSignedText('F', 'S', 'T'), 'F|S|T');
});

test('parseIsoTimestamp: ms and µs fractions, Z, offsets, naive = UTC; garbage is null', (t) => {
  const base = Date.UTC(2026, 7, 21, 10, 11, 12);
  t.is(parseIsoTimestamp('2026-08-21T10:11:12Z'), base);
  t.is(parseIsoTimestamp('2026-08-21T10:11:12.123Z'), base + 123);
  t.is(parseIsoTimestamp('2026-08-21T10:11:12.123456Z'), base + 123);
  t.is(parseIsoTimestamp('2026-08-21T10:11:12.123456'), base + 123);
  t.is(parseIsoTimestamp('2026-08-21T12:11:12+02:00'), base);
  t.is(parseIsoTimestamp('2026-08-21T09:11:12-0100'), base);
  t.is(parseIsoTimestamp('2026-08-21 10:11:12'), base);
  for (const bad of ['', 'yesterday', '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-08-21T25:00:00Z', '1724000000']) {
    t.is(parseIsoTimestamp(bad), null, bad);
  }
});

test('checkTimestamp: eduMFA error texts, window inclusive', (t) => {
  const now = Date.UTC(2026, 7, 21, 10, 0, 0);
  t.notThrows(() => checkTimestamp('2026-08-21T10:00:59Z', now, 60_000));
  t.notThrows(() => checkTimestamp('2026-08-21T09:59:00Z', now, 60_000));
  const late = t.throws(() => checkTimestamp('2026-08-21T10:02:00Z', now, 60_000), { instanceOf: SignatureError });
  t.is(late?.wireMessage, 'ERR10: Timestamp 2026-08-21T10:02:00Z not in valid range.');
  t.is(late?.status, 400);
  const broken = t.throws(() => checkTimestamp('broken', now, 60_000), { instanceOf: SignatureError });
  t.is(broken?.wireMessage, 'ERR10: Could not parse timestamp broken. ISO-Format required.');
  t.notThrows(() => checkTimestamp('2026-08-21T09:55:01Z', now, 5 * 60_000));
  t.throws(() => checkTimestamp('2026-08-21T09:54:59Z', now, 5 * 60_000));
});

test('checkPhoneSignature: valid / invalid / malformed with the stored (URL-safe) key', (t) => {
  const host = {
    clock: { now: () => 0 },
    call: async () => {
      throw new Error('no network');
    },
  };
  for (const style of ['edumfa-next', 'edumfa-flutter'] as const) {
    for (const kind of ['rsa', 'ec'] as const) {
      const phone = new FakePhone(host, style, makePhoneKey(kind));
      const token = tokenRecord({ info: { public_key_smartphone: phone.publicKeyText() } });
      t.is(checkPhoneSignature(EDUPUSH, token, 'N|EDUP0001', phone.sign('N|EDUP0001')), 'valid', `${style} ${kind}`);
      t.is(checkPhoneSignature(EDUPUSH, token, 'N|EDUP0001', phone.sign('N|EDUP0001|decline')), 'invalid');
      t.is(checkPhoneSignature(EDUPUSH, token, 'N|EDUP0001', 'not base32!'), 'malformed');
      t.is(checkPhoneSignature(EDUPUSH, tokenRecord(), 'N|EDUP0001', phone.sign('N|EDUP0001')), 'invalid', 'no stored key');
    }
  }
});

test('tokenPhoneKey: parsed once per stored key text; a re-enrolled key is parsed anew and verifies, the old one no longer', (t) => {
  const host = {
    clock: { now: () => 0 },
    call: async () => {
      throw new Error('no network');
    },
  };
  const first = new FakePhone(host, 'edumfa-next', makePhoneKey('rsa'));
  const second = new FakePhone(host, 'edumfa-next', makePhoneKey('rsa'));
  const token = tokenRecord({ info: { public_key_smartphone: first.publicKeyText() } });
  const key = tokenPhoneKey(EDUPUSH, token);
  t.truthy(key);
  t.is(tokenPhoneKey(EDUPUSH, { ...token, info: { ...token.info } }), key, 'the same parsed key for the same text');
  const reenrolled = { ...token, info: { public_key_smartphone: second.publicKeyText() } };
  t.not(tokenPhoneKey(EDUPUSH, reenrolled), key);
  t.is(checkPhoneSignature(EDUPUSH, reenrolled, 'N|EDUP0001', second.sign('N|EDUP0001')), 'valid');
  t.is(checkPhoneSignature(EDUPUSH, reenrolled, 'N|EDUP0001', first.sign('N|EDUP0001')), 'invalid');
  t.is(checkPhoneSignature(EDUPUSH, token, 'N|EDUP0001', first.sign('N|EDUP0001')), 'valid');
  t.is(tokenPhoneKey(EDUPUSH, { ...token, info: { public_key_smartphone: 'not a key' } }), null, 'a text that does not parse is null');
});
