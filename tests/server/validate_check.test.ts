import test from 'ava';
import { createWorld, type TestWorld } from '../helpers/test_app.ts';
import { hotpValue } from '../../tokens/otp.ts';

const KEY_HEX = Buffer.from('12345678901234567890').toString('hex');
const RFC = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];

async function withHotp(t: { teardown(fn: () => Promise<void>): void }, config: Record<string, unknown> = {}): Promise<TestWorld> {
  const w = await createWorld({ config });
  t.teardown(() => w.close());
  const admin = await w.adminToken();
  const r = await w.call(
    'POST',
    '/token/init',
    { type: 'hotp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'OATH0001' },
    { headers: { Authorization: admin } },
  );
  if (r.status !== 200) throw new Error(r.text);
  return w;
}

test('hotp: PIN + OTP accepts with eduMFA envelope, replay rejects', async (t) => {
  const w = await withHotp(t);
  const r = await w.call('POST', '/validate/check', { user: 'alice', pass: '1234' + RFC[0] });
  t.is(r.status, 200);
  t.like(r.body, {
    jsonrpc: '2.0',
    id: 2,
    result: { status: true, value: true, authentication: 'ACCEPT' },
    detail: { message: 'matching 1 tokens', serial: 'OATH0001', type: 'hotp', otplen: 6 },
  });
  t.is(typeof r.body.time, 'number');
  t.regex(r.body.version, /^pushgate /);
  const again = await w.call('POST', '/validate/check', { user: 'alice', pass: '1234' + RFC[0] });
  t.like(again.body, { result: { status: true, value: false, authentication: 'REJECT' }, detail: { message: 'wrong otp value' } });
  const wrongPin = await w.call('GET', '/validate/check', { user: 'alice', pass: '9999' + RFC[1] });
  t.like(wrongPin.body, { result: { value: false, authentication: 'REJECT' }, detail: { message: 'wrong otp pin' } });
  t.is(hotpValue(Buffer.from('12345678901234567890'), 1, 6, 'sha1'), RFC[1]);
});

test('errors: missing pass, missing user, unknown user, bad json', async (t) => {
  const w = await withHotp(t);
  const a = await w.call('POST', '/validate/check', { user: 'alice' });
  t.is(a.status, 400);
  t.deepEqual(a.body.result, { status: false, error: { code: 905, message: "ERR905: Missing parameter: 'pass'" } });
  t.is(a.body.detail, null);
  t.is(a.body.id, 1);
  const b = await w.call('POST', '/validate/check', { pass: 'x' });
  t.is(b.body.result.error.message, 'ERR905: You need to specify a serial or a user.');
  const c = await w.call('POST', '/validate/check', { user: 'eve', realm: 'nope', pass: 'x' });
  t.is(c.status, 400);
  t.deepEqual(c.body.result.error, { code: 904, message: 'ERR904: User <eve@nope> does not exist.' });
  const d = await w.call('POST', '/validate/check', {}, { rawBody: '{"user": ', headers: { 'content-type': 'application/json' } });
  t.is(d.status, 400);
  t.is(d.body.result.error.code, 905);
});
