/** Behaviours that keep real clients working (found in a protocol review). */
import test from 'ava';
import { world, enroll, enrollHotp, check, policy, tokenOf, RFC, asAdmin } from '../helpers/kit.ts';
import { pushWorld, phoneFor, enrollPhone } from '../helpers/push_world.ts';

test('a finished or unknown transaction_id never starts a new push login (push token without PIN, empty pass)', async (t) => {
  const w = await pushWorld(t);
  const phone = phoneFor(w);
  const body = await enroll(w, { type: 'edupush', genkey: 1, user: 'alice' });
  phone.scan(body.detail.pushurl.value);
  t.is((await phone.enroll()).status, 200);
  const c = await check(w, { user: 'alice', pass: '' });
  t.is(c.body.result.authentication, 'CHALLENGE');
  const tid = c.body.detail.transaction_id as string;
  const [data] = (await phone.poll()).body.result.value;
  await phone.answer(data);
  t.like((await check(w, { user: 'alice', pass: '', transaction_id: tid })).body, { result: { authentication: 'ACCEPT' } });
  const created = w.seen.filter((e) => e.name === 'challenge.created').length;
  const again = await check(w, { user: 'alice', pass: '', transaction_id: tid });
  // eduMFA says "wrong otp pin" here; the message (free text the plugins show) says what happened, the result is eduMFA's.
  t.like(again.body, {
    result: { value: false, authentication: 'REJECT' },
    detail: { message: 'transaction already finished or unknown' },
  });
  const unknown = await check(w, { user: 'alice', pass: '', transaction_id: '12345678901234567890' });
  t.like(unknown.body, { result: { authentication: 'REJECT' } });
  t.is(w.seen.filter((e) => e.name === 'challenge.created').length, created, 'no new challenge, no new push');
});

test('a stale state with a valid PIN+OTP is rejected, not accepted (the transaction decides)', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const r = await check(w, { user: 'alice', pass: '1234' + RFC[0], state: '11111111111111111111' });
  t.like(r.body, { result: { authentication: 'REJECT' }, detail: { message: 'transaction already finished or unknown' } });
  t.is((await tokenOf(w, 'OATH0001')).counter, 0, 'the OTP was not used up');
});

test('a locked push token whose PIN matches: "Failcounter exceeded", no further count', async (t) => {
  const w = await pushWorld(t, { config: { tokens: { max_fail: 2 } } });
  const serial = await enrollPhone(w, phoneFor(w));
  await check(w, { user: 'alice', pass: 'wrong' });
  await check(w, { user: 'alice', pass: 'wrong' });
  t.is((await tokenOf(w, serial)).failCount, 2);
  const r = await check(w, { user: 'alice', pass: '1234' });
  t.like(r.body, { result: { value: false, authentication: 'REJECT' }, detail: { message: 'Failcounter exceeded', serial } });
  t.is((await tokenOf(w, serial)).failCount, 2);
});

test('user names: surrounding spaces are trimmed, realm\\user and user@realm are split', async (t) => {
  const w = await world(t, {
    config: {
      realms: [
        { name: 'main', default: true, users: { type: 'any' } },
        { name: 'staff', users: { type: 'any' } },
      ],
    },
  });
  await enroll(w, { type: 'spass', user: 'bob', realm: 'staff', pin: 'pw', serial: 'PISP0001' });
  for (const user of ['staff\\bob', 'bob@staff', ' bob@staff ']) {
    t.like((await check(w, { user, pass: 'pw' })).body, { result: { authentication: 'ACCEPT' } }, user);
  }
  t.like(
    (await check(w, { user: 'bob', pass: 'pw' })).body,
    { detail: { message: 'The user has no tokens assigned' } },
    'bob@main has none',
  );
});

test('triggerchallenge applies authorized=deny_access and increase_failcounter_on_challenge', async (t) => {
  const w = await world(t, { config: { policies: [policy('inc', 'authentication', { increase_failcounter_on_challenge: true })] } });
  await enrollHotp(w);
  const r = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: await asAdmin(w) });
  t.is(r.body.result.value, 1);
  t.is((await tokenOf(w, 'OATH0001')).failCount, 1);
  const w2 = await world(t, { config: { policies: [policy('deny', 'authorization', { authorized: 'deny_access' })] } });
  await enrollHotp(w2);
  const d = await w2.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: await asAdmin(w2) });
  t.is(d.status, 400);
  t.is(d.body.result.error.message, 'ERR401: User is not authorized to authenticate under these conditions.');
});

test('/validate/radiuscheck: 204 without body on success, 400 without body otherwise (also on errors)', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const ok = await w.call('POST', '/validate/radiuscheck', { user: 'alice', pass: '1234' + RFC[0] });
  t.is(ok.status, 204);
  t.is(ok.text, '');
  const bad = await w.call('POST', '/validate/radiuscheck', { user: 'alice', pass: '1234' + RFC[0] });
  t.is(bad.status, 400);
  t.is(bad.text, '');
  const err = await w.call('POST', '/validate/radiuscheck', { user: 'alice' });
  t.is(err.status, 400);
  t.is(err.text, '');
});

test('/validate/samlcheck: value {auth, attributes}', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const ok = await w.call('POST', '/validate/samlcheck', { user: 'alice', pass: '1234' + RFC[0] });
  t.like(ok.body, {
    id: 2,
    result: { status: true, value: { auth: true, attributes: { username: 'alice', realm: 'default' } }, authentication: 'ACCEPT' },
  });
  const bad = await w.call('POST', '/validate/samlcheck', { user: 'alice', pass: '1234' + RFC[0] });
  t.deepEqual(bad.body.result.value, { auth: false, attributes: {} });
  t.is(bad.body.result.authentication, 'REJECT');
});
