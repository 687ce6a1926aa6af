/**
 * server/envelope.ts and core/errors.ts: the eduMFA JSON envelopes field by field (protocol.md §6.2, §6.5),
 * as pure functions and as they come over HTTP.
 */
import fs from 'node:fs';
import test from 'ava';
import {
  VERSION,
  VERSION_NUMBER,
  challengeDetail,
  challengeText,
  errorEnvelope,
  okEnvelope,
  outcomeEnvelope,
} from '../../server/envelope.ts';
import {
  AuthError,
  ConfigAdminError,
  DatabaseError,
  InternalError,
  MethodError,
  NotFoundError,
  ParameterError,
  PayloadTooLargeError,
  PolicyError,
  SignatureError,
  UnavailableError,
  UserError,
  ValidateError,
  missingParameter,
} from '../../core/errors.ts';
import type { ChallengeOut } from '../../server/auth/outcome.ts';
import { RFC, check, enrollHotp, policy, world } from '../helpers/kit.ts';

const NOW = 1_795_608_000_123;
const SUCCESS_KEYS = ['detail', 'id', 'jsonrpc', 'result', 'time', 'version', 'versionnumber'];
const ERROR_KEYS = ['detail', 'id', 'jsonrpc', 'result', 'time', 'version'];

const ch = (serial: string, over: Partial<ChallengeOut> = {}): ChallengeOut => ({
  transactionId: '01234567890123456789',
  serial,
  type: 'hotp',
  clientMode: 'interactive',
  message: 'please enter otp: ',
  ...over,
});

test('version strings: "pushgate <n>" and the package version', (t) => {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is(VERSION_NUMBER, pkg.version);
  t.is(VERSION, `pushgate ${pkg.version}`);
});

test('okEnvelope: every field, time in float seconds', (t) => {
  t.deepEqual(okEnvelope(NOW, { a: 1 }, { x: 'y' }, 2), {
    jsonrpc: '2.0',
    id: 2,
    time: 1_795_608_000.123,
    version: VERSION,
    versionnumber: VERSION_NUMBER,
    result: { status: true, value: { a: 1 } },
    detail: { x: 'y' },
  });
  const d = okEnvelope(NOW, true);
  t.is(d.id, 1);
  t.deepEqual(d.detail, {});
});

test('errorEnvelope: id 1, detail null, no versionnumber, prefixed or not per error class', (t) => {
  const env = errorEnvelope(NOW, new ParameterError('Invalid serial number.'));
  t.deepEqual(env, {
    jsonrpc: '2.0',
    id: 1,
    time: 1_795_608_000.123,
    version: VERSION,
    detail: null,
    result: { status: false, error: { code: 905, message: 'ERR905: Invalid serial number.' } },
  });
  t.deepEqual(Object.keys(env).sort(), ERROR_KEYS);
});

test('error classes: eduMFA codes, HTTP statuses and prefixes (protocol.md §6.5)', (t) => {
  const cases: Array<[Error & { code: number; status: number; wireMessage: string }, number, number, string]> = [
    [new ParameterError('x'), 905, 400, 'ERR905: x'],
    [missingParameter('pass'), 905, 400, "ERR905: Missing parameter: 'pass'"],
    [new UserError('User <a@b> does not exist.'), 904, 400, 'ERR904: User <a@b> does not exist.'],
    [new ValidateError('v'), 401, 400, 'ERR401: v'],
    [new PolicyError('p'), 303, 403, 'p'],
    [new NotFoundError('n'), 601, 404, 'n'],
    [new AuthError('a'), 4031, 401, 'a'],
    [
      new AuthError('Authentication failure. Missing Authorization header.', 4033),
      4033,
      401,
      'Authentication failure. Missing Authorization header.',
    ],
    [new SignatureError(), 10, 400, 'ERR10: Could not verify signature!'],
    [new ConfigAdminError('c'), 302, 400, 'ERR302: c'],
    [new DatabaseError(new Error('boom')), -600, 500, 'A database error occurred.'],
    [new InternalError(new Error('boom')), -500, 500, 'An internal error occurred.'],
    [new MethodError('m'), 405, 405, 'm'],
    [new PayloadTooLargeError(10), 905, 413, 'ERR905: Request body exceeds 10 bytes.'],
  ];
  for (const [err, code, status, msg] of cases) {
    t.is(err.code, code, err.name);
    t.is(err.status, status, err.name);
    t.is(err.wireMessage, msg, err.name);
  }
  const u = new UnavailableError('busy', 7);
  t.is(u.status, 503);
  t.deepEqual(u.headers, { 'Retry-After': '7' });
  t.false(new DatabaseError(new Error('secret detail')).wireMessage.includes('secret'));
});

test('challengeDetail: multi_challenge, messages, transaction_ids and the flattened last challenge', (t) => {
  const a = ch('A1');
  const b = ch('B2', { type: 'totp', message: 'other', attributes: { k: 1 }, image: 'data:image/png;base64,xx' });
  t.deepEqual(challengeDetail([a, b], 'interactive'), {
    multi_challenge: [
      { transaction_id: a.transactionId, serial: 'A1', type: 'hotp', client_mode: 'interactive', message: 'please enter otp: ' },
      {
        transaction_id: a.transactionId,
        serial: 'B2',
        type: 'totp',
        client_mode: 'interactive',
        message: 'other',
        attributes: { k: 1 },
        image: 'data:image/png;base64,xx',
      },
    ],
    messages: ['please enter otp: ', 'other'],
    transaction_ids: [a.transactionId, a.transactionId],
    transaction_id: a.transactionId,
    serial: 'B2',
    type: 'totp',
    client_mode: 'interactive',
    attributes: { k: 1 },
    message: 'please enter otp: , other',
    preferred_client_mode: 'interactive',
    image: 'data:image/png;base64,xx',
  });
  t.is(challengeDetail([a, ch('C3')], 'poll').message, 'please enter otp: , please enter otp: ', 'every message, as eduMFA joins them');
  t.deepEqual(challengeDetail([], 'interactive'), { multi_challenge: [], messages: [], transaction_ids: [] });
  // No `attributes` key when a type adds none, also when given empty (the PHP client v2.0.x throws on any object).
  const empty = challengeDetail([ch('E1', { attributes: {} })], 'interactive');
  t.false('attributes' in empty, 'flattened: no attributes key');
  t.false('attributes' in (empty.multi_challenge as object[])[0]!, 'multi_challenge[]: no attributes key');
  t.deepEqual(challengeDetail([b, a], 'interactive').attributes, undefined, 'the flattened copy follows the last challenge');
});

test('outcomeEnvelope: authentication per kind, detail fields, no_detail_on_* remove the detail key', (t) => {
  const accept = outcomeEnvelope(NOW, {
    kind: 'accept',
    message: 'matching 1 tokens',
    serial: 'S',
    type: 'hotp',
    otpLen: 6,
    serials: ['S'],
    policies: [],
  });
  t.deepEqual(accept.result, { status: true, value: true, authentication: 'ACCEPT' });
  t.deepEqual(accept.detail, { message: 'matching 1 tokens', serial: 'S', type: 'hotp', otplen: 6 });
  t.is(accept.id, 2);
  const reject = outcomeEnvelope(NOW, { kind: 'reject', message: 'wrong otp pin', serials: ['S'], policies: [] });
  t.deepEqual(reject.result, { status: true, value: false, authentication: 'REJECT' });
  t.deepEqual(reject.detail, { message: 'wrong otp pin' });
  const declinedOutcome = { kind: 'declined', message: 'd', serial: 'S', type: 'edupush', serials: [], policies: [] } as const;
  const declined = outcomeEnvelope(NOW, declinedOutcome);
  t.deepEqual(declined.result, { status: true, value: false, authentication: 'REJECT' }, "eduMFA's wire by default");
  t.deepEqual(declined.detail, { message: 'd', serial: 'S', type: 'edupush', challenge_status: 'declined' });
  t.is(outcomeEnvelope(NOW, declinedOutcome, { declinedAuthentication: 'reject' }).result.authentication, 'REJECT');
  t.is(outcomeEnvelope(NOW, declinedOutcome, { declinedAuthentication: 'declined' }).result.authentication, 'DECLINED');
  const chal = outcomeEnvelope(NOW, {
    kind: 'challenge',
    challenges: [ch('S')],
    preferredClientMode: 'interactive',
    serials: ['S'],
    policies: [],
  });
  t.deepEqual(chal.result, { status: true, value: false, authentication: 'CHALLENGE' });

  const strip = { noDetailOnSuccess: true, noDetailOnFail: true };
  const a2 = outcomeEnvelope(NOW, { kind: 'accept', message: 'm', serials: [], policies: [] }, strip);
  t.false('detail' in a2, 'eduMFA deletes the detail key');
  const r2 = outcomeEnvelope(NOW, { kind: 'reject', message: 'm', serials: [], policies: [] }, strip);
  t.false('detail' in r2);
  const c2 = outcomeEnvelope(
    NOW,
    { kind: 'challenge', challenges: [ch('S')], preferredClientMode: 'interactive', serials: [], policies: [] },
    strip,
  );
  t.truthy(c2.detail?.multi_challenge, 'a challenge keeps its detail: the client needs the transaction id');
  t.truthy(outcomeEnvelope(NOW, { kind: 'accept', message: 'm', serials: [], policies: [] }, { noDetailOnFail: true }).detail);
  t.truthy(outcomeEnvelope(NOW, { kind: 'reject', message: 'm', serials: [], policies: [] }, { noDetailOnSuccess: true }).detail);
});

// ---------------------------------------------------------------------------------------------------------------
// Over HTTP, field by field

test("HTTP: ACCEPT envelope of /validate/check is exactly eduMFA's", async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const r = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.is(r.status, 200);
  t.regex(r.headers.get('content-type') ?? '', /^application\/json/);
  t.is(r.headers.get('cache-control'), 'no-cache');
  t.deepEqual(Object.keys(r.body).sort(), SUCCESS_KEYS);
  t.deepEqual(r.body, {
    jsonrpc: '2.0',
    id: 2,
    time: w.clock.now() / 1000,
    version: VERSION,
    versionnumber: VERSION_NUMBER,
    result: { status: true, value: true, authentication: 'ACCEPT' },
    detail: { message: 'matching 1 tokens', serial: 'OATH0001', type: 'hotp', otplen: 6 },
  });
});

test('HTTP: REJECT envelopes — wrong otp value carries serial/type/otplen, wrong otp pin only the message', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const value = await check(w, { user: 'alice', pass: '1234000000' });
  t.deepEqual(value.body, {
    jsonrpc: '2.0',
    id: 2,
    time: w.clock.now() / 1000,
    version: VERSION,
    versionnumber: VERSION_NUMBER,
    result: { status: true, value: false, authentication: 'REJECT' },
    detail: { message: 'wrong otp value', serial: 'OATH0001', type: 'hotp', otplen: 6 },
  });
  const pin = await check(w, { user: 'alice', pass: '9999' + RFC[0] });
  t.deepEqual(pin.body.result, { status: true, value: false, authentication: 'REJECT' });
  t.deepEqual(pin.body.detail, { message: 'wrong otp pin' });
});

test('HTTP: CHALLENGE envelope with every field of protocol.md §6.2', async (t) => {
  const w = await world(t, { config: { policies: [policy('cr', 'authentication', { challenge_response: ['hotp'] })] } });
  await enrollHotp(w);
  const r = await check(w, { user: 'alice', pass: '1234' });
  t.is(r.status, 200);
  const tid = r.body.detail.transaction_id as string;
  t.regex(tid, /^\d{20}$/);
  t.deepEqual(r.body, {
    jsonrpc: '2.0',
    id: 2,
    time: w.clock.now() / 1000,
    version: VERSION,
    versionnumber: VERSION_NUMBER,
    result: { status: true, value: false, authentication: 'CHALLENGE' },
    detail: {
      multi_challenge: [
        { transaction_id: tid, serial: 'OATH0001', type: 'hotp', client_mode: 'interactive', message: 'please enter otp: ' },
      ],
      messages: ['please enter otp: '],
      transaction_ids: [tid],
      transaction_id: tid,
      serial: 'OATH0001',
      type: 'hotp',
      client_mode: 'interactive',
      message: 'please enter otp: ',
      preferred_client_mode: 'interactive',
    },
  });
});

test('HTTP: error envelope of 400, 401, 403, 404 and 405', async (t) => {
  const w = await world(t);
  const expectError = async (p: Promise<{ status: number; body: any }>, status: number, code: number, message: string) => {
    const r = await p;
    t.is(r.status, status, message);
    t.deepEqual(Object.keys(r.body).sort(), ERROR_KEYS, message);
    t.deepEqual(r.body, {
      jsonrpc: '2.0',
      id: 1,
      time: w.clock.now() / 1000,
      version: VERSION,
      detail: null,
      result: { status: false, error: { code, message } },
    });
  };
  await expectError(check(w, { user: 'alice' }), 400, 905, "ERR905: Missing parameter: 'pass'");
  await expectError(w.call('GET', '/token/'), 401, 4033, 'Authentication failure. Missing Authorization header.');
  await expectError(w.call('GET', '/nowhere'), 404, 404, 'The requested URL was not found on the server.');
  await expectError(
    w.call('POST', '/validate/polltransaction', { transaction_id: '1' }),
    405,
    405,
    'The method is not allowed for the requested URL.',
  );
  const admin = await w.adminToken();
  await expectError(
    w.call('DELETE', '/token/NOPE0001', {}, { headers: { Authorization: admin } }),
    404,
    601,
    'The requested token could not be found.',
  );
});

test('challengeText: the header/footer layout of eduMFA — <li> items after a list header, else one comma line', (t) => {
  const messages = ['enter the HOTP from your email', 'enter the HOTP from your email', 'enter the TOTP from your SMS'];
  t.is(
    challengeText('These are your options:<ul>', 'Happy authenticating!', messages),
    'These are your options:<ul><li>enter the HOTP from your email</li>\n<li>enter the TOTP from your SMS</li>\nHappy authenticating!',
  );
  t.is(
    challengeText('These are your options:', 'Happy authenticating!', messages),
    'These are your options:\nenter the HOTP from your email, enter the TOTP from your SMS\nHappy authenticating!',
  );
  t.is(challengeText('Pick:<OL>', '', ['b', 'a']), 'Pick:<OL><li>a</li>\n<li>b</li>\n');
});
