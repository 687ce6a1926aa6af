/**
 * server/auth/check.ts with policies (protocol.md §7.2/§7.3): passOnNoToken, passOnNoUser, passthru, otppin,
 * challenge-response for HOTP (trigger with the PIN, answer with transaction_id or state), no_detail_on_*,
 * last_auth, authorized, tokentype, conflicts (403/303) and the client IP filter.
 */
import test from 'ava';
import { RFC, asAdmin, cheapHasher, check, enroll, enrollHotp, policy, tokenOf, usersYaml, world } from '../helpers/kit.ts';
import type { WorldOptions } from '../helpers/test_app.ts';

const REJECT = { status: true, value: false, authentication: 'REJECT' };
const ACCEPT = { status: true, value: true, authentication: 'ACCEPT' };
const CR = policy('cr', 'authentication', { challenge_response: ['hotp'] });

/** Realm `corp` (default) from a users file: bob has a password, eve has none. Plus an `any` realm `ext`. */
async function corpWorld(t: Parameters<typeof world>[0], policies: unknown[] = [], extra: Record<string, unknown> = {}) {
  const opts: WorldOptions = {
    config: {
      realms: [
        { name: 'corp', default: true, users: { type: 'file', path: 'users.yaml' } },
        { name: 'ext', users: { type: 'any' } },
      ],
      policies,
      ...extra,
    },
    files: {
      'users.yaml': usersYaml([
        { username: 'bob', password_hash: await cheapHasher.hash('bob-pw'), givenname: 'Bob' },
        { username: 'eve' },
      ]),
    },
  };
  return world(t, opts);
}

// ---------------------------------------------------------------------------------------------------------------
// passOnNoToken / passOnNoUser / passthru

test('passOnNoToken: a user without tokens is accepted, a user with tokens is still checked', async (t) => {
  const w = await world(t, { config: { policies: [policy('pnt', 'authentication', { passOnNoToken: true })] } });
  await enrollHotp(w);
  const r = await check(w, { user: 'dave', pass: 'anything' });
  t.deepEqual(r.body.result, ACCEPT);
  t.deepEqual(r.body.detail, { message: "user has no token, accepted due to 'pnt'" });
  t.like((await check(w, { user: 'alice', pass: '1234000000' })).body, { result: REJECT, detail: { message: 'wrong otp value' } });
});

test('passOnNoUser: an unknown user is accepted; without a matching policy it is 904', async (t) => {
  const w = await corpWorld(t, [policy('pnu', 'authentication', { passOnNoUser: true }, { realm: ['corp'] })]);
  const r = await check(w, { user: 'ghost', pass: 'x' });
  t.deepEqual(r.body.result, ACCEPT);
  t.deepEqual(r.body.detail, { message: "user does not exist, accepted due to 'pnu'" });
  const bob = await check(w, { user: 'bob', pass: 'x' });
  t.like(bob.body, { result: REJECT, detail: { message: 'The user has no tokens assigned' } }, 'known users are not affected');
  const w2 = await corpWorld(t);
  const r2 = await check(w2, { user: 'ghost', pass: 'x' });
  t.is(r2.status, 400);
  t.deepEqual(r2.body.result.error, { code: 904, message: 'ERR904: User <ghost@corp> does not exist.' });
});

test('passthru: a user without tokens logs in with the user store password only', async (t) => {
  const w = await corpWorld(t, [policy('pt', 'authentication', { passthru: true })]);
  const ok = await check(w, { user: 'bob', pass: 'bob-pw' });
  t.deepEqual(ok.body.result, ACCEPT);
  t.deepEqual(ok.body.detail, { message: "against userstore due to 'pt'" });
  t.like((await check(w, { user: 'bob', pass: 'wrong' })).body, { result: REJECT, detail: { message: 'The user has no tokens assigned' } });
  t.like((await check(w, { user: 'eve', pass: '' })).body, { result: REJECT }, 'no password hash → never matches');
  t.like((await check(w, { user: 'anyone', realm: 'ext', pass: 'x' })).body, { result: REJECT }, 'an any-realm has no passwords');
  await enroll(w, { type: 'spass', user: 'bob', pin: 'static', serial: 'PISP0001' });
  t.like(
    (await check(w, { user: 'bob', pass: 'bob-pw' })).body,
    { result: REJECT, detail: { message: 'wrong otp pin' } },
    'only without tokens',
  );
});

// ---------------------------------------------------------------------------------------------------------------
// otppin

test('otppin userstore: the PIN part is the user store password', async (t) => {
  const w = await corpWorld(t, [policy('up', 'authentication', { otppin: 'userstore' })]);
  await enrollHotp(w, { user: 'bob' });
  t.like((await check(w, { user: 'bob', pass: 'bob-pw' + RFC[0] })).body, { result: ACCEPT, detail: { serial: 'OATH0001' } });
  t.like(
    (await check(w, { user: 'bob', pass: '1234' + RFC[1] })).body,
    { result: REJECT, detail: { message: 'wrong otp pin' } },
    'the token PIN no longer counts',
  );
  t.like((await check(w, { user: 'bob', pass: 'bob-pw' + RFC[1] })).body, { result: ACCEPT });
});

test('otppin none: the pass is the OTP alone', async (t) => {
  const w = await world(t, { config: { policies: [policy('np', 'authentication', { otppin: 'none' })] } });
  await enrollHotp(w);
  t.like((await check(w, { user: 'alice', pass: RFC[0] })).body, { result: ACCEPT });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[1] })).body, { result: REJECT, detail: { message: 'wrong otp pin' } });
});

// ---------------------------------------------------------------------------------------------------------------
// challenge-response

test('challenge_response: PIN → CHALLENGE; transaction_id + OTP → Found matching challenge; second use REJECT', async (t) => {
  const w = await world(t, { config: { policies: [CR] } });
  await enrollHotp(w);
  const c = await check(w, { user: 'alice', pass: '1234' });
  t.deepEqual(c.body.result, { status: true, value: false, authentication: 'CHALLENGE' });
  const tid = c.body.detail.transaction_id as string;
  t.regex(tid, /^\d{20}$/);
  t.like(c.body.detail.multi_challenge[0], {
    transaction_id: tid,
    serial: 'OATH0001',
    type: 'hotp',
    client_mode: 'interactive',
    message: 'please enter otp: ',
  });
  t.deepEqual(c.body.detail.transaction_ids, [tid]);
  t.is(c.body.detail.preferred_client_mode, 'interactive');
  t.is((await tokenOf(w, 'OATH0001')).failCount, 0, 'a challenge is not a failure');

  const a = await check(w, { user: 'alice', transaction_id: tid, pass: RFC[0] });
  t.deepEqual(a.body.result, ACCEPT);
  t.deepEqual(a.body.detail, { message: 'Found matching challenge', serial: 'OATH0001' });
  const again = await check(w, { user: 'alice', transaction_id: tid, pass: RFC[1] });
  t.deepEqual(again.body.result, REJECT, 'the transaction is finished');
  t.like((await check(w, { user: 'alice', transaction_id: tid, pass: RFC[0] })).body, { result: REJECT });
});

test('challenge_response: state (RADIUS) is an alias of transaction_id; serial-only answers work', async (t) => {
  const w = await world(t, { config: { policies: [CR] } });
  await enrollHotp(w);
  const tid = (await check(w, { user: 'alice', pass: '1234' })).body.detail.transaction_id as string;
  const a = await check(w, { user: 'alice', state: tid, pass: RFC[0] });
  t.like(a.body, { result: ACCEPT, detail: { message: 'Found matching challenge' } });
  const tid2 = (await check(w, { serial: 'OATH0001', pass: '1234' })).body.detail.transaction_id as string;
  t.not(tid2, tid);
  t.like((await w.call('GET', '/validate/check', { serial: 'OATH0001', state: tid2, pass: RFC[1] })).body, {
    result: ACCEPT,
    detail: { message: 'Found matching challenge' },
  });
});

test('challenge_response: wrong answer counts a failure, expired challenge is rejected, PIN+OTP still works', async (t) => {
  const w = await world(t, { config: { policies: [CR] } });
  await enrollHotp(w);
  const tid = (await check(w, { user: 'alice', pass: '1234' })).body.detail.transaction_id as string;
  const wrong = await check(w, { user: 'alice', transaction_id: tid, pass: '000000' });
  t.deepEqual(wrong.body.result, REJECT);
  t.is(wrong.body.detail.message, 'Response did not match the challenge.');
  t.is((await tokenOf(w, 'OATH0001')).failCount, 1);
  w.clock.advance(120_000);
  const late = await check(w, { user: 'alice', transaction_id: tid, pass: RFC[0] });
  t.deepEqual(late.body.result, REJECT, 'challenge.validity_seconds (120) passed');
  t.like(
    (await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body,
    { result: ACCEPT },
    'the OTP was not consumed by the late answer',
  );
});

test('challenge_response: challenge_text, preferred_client_mode, types not listed do not challenge', async (t) => {
  const w = await world(t, {
    config: {
      policies: [
        policy('cr', 'authentication', {
          challenge_response: 'hotp',
          challenge_text: 'Your code, please',
          preferred_client_mode: ['poll', 'interactive'],
        }),
      ],
    },
  });
  await enrollHotp(w);
  await enroll(w, { type: 'totp', genkey: 1, user: 'bob', pin: '1234', serial: 'TOTP0001' });
  const c = await check(w, { user: 'alice', pass: '1234' });
  t.is(c.body.detail.message, 'Your code, please');
  t.is(c.body.detail.multi_challenge[0].message, 'Your code, please');
  t.is(c.body.detail.preferred_client_mode, 'interactive', 'no poll challenge → the next listed mode');
  const totp = await check(w, { user: 'bob', pass: '1234' });
  t.like(totp.body, { result: REJECT, detail: { message: 'wrong otp pin' } }, 'totp is not listed: a PIN alone is just wrong');
  const w2 = await world(t);
  await enrollHotp(w2);
  t.like(
    (await check(w2, { user: 'alice', pass: '1234' })).body,
    { result: REJECT, detail: { message: 'wrong otp pin' } },
    'no policy, no challenge',
  );
});

test('challenge_text_header / _footer rewrite detail.message of a CHALLENGE (HTML list or one line), nothing else', async (t) => {
  const header = (h: string, extra: Record<string, unknown> = {}) =>
    world(t, {
      config: {
        policies: [
          policy('cr', 'authentication', { challenge_response: ['hotp', 'totp'], challenge_text: 'Your code, please' }),
          policy('texts', 'authentication', { challenge_text_header: h, ...extra }),
        ],
      },
    });
  const twoTokens = async (w: Awaited<ReturnType<typeof world>>) => {
    await enrollHotp(w);
    await enroll(w, { type: 'totp', genkey: 1, user: 'alice', pin: '1234', serial: 'TOTP0001' });
  };
  // HTML list: one <li> per distinct message, then the footer.
  const list = await header('Choose one:<UL>', { challenge_text_footer: '</ul>Thanks.' });
  await twoTokens(list);
  const c = await check(list, { user: 'alice', pass: '1234' });
  t.is(c.body.result.authentication, 'CHALLENGE');
  t.is(c.body.detail.message, 'Choose one:<UL><li>Your code, please</li>\n</ul>Thanks.');
  t.deepEqual(c.body.detail.messages, ['Your code, please', 'Your code, please'], 'messages stay as they are');
  t.is(c.body.detail.multi_challenge[0].message, 'Your code, please');
  // A REJECT keeps its message.
  t.like((await check(list, { user: 'alice', pass: '9999' })).body.detail, { message: 'wrong otp pin' });
  await list.close(); // one world after the other: a test holds at most two (tests/helpers/db_budget.ts)

  // Plain header: the sorted distinct messages on one line between newlines; no footer policy → nothing after.
  const line = await world(t, {
    config: {
      policies: [
        policy('cr', 'authentication', { challenge_response: ['hotp', 'totp'] }),
        policy('texts', 'authentication', { challenge_text_header: 'Options:' }),
      ],
    },
  });
  await enrollHotp(line);
  await enroll(line, { type: 'totp', genkey: 1, user: 'alice', pin: '1234', serial: 'TOTP0001' });
  const messages = (await check(line, { user: 'alice', pass: '1234' })).body.detail;
  t.is(messages.message, `Options:\n${[...new Set<string>(messages.messages)].sort().join(', ')}\n`);
  await line.close();

  // A footer without a header changes nothing.
  const footerOnly = await world(t, {
    config: {
      policies: [
        policy('cr', 'authentication', { challenge_response: ['hotp'], challenge_text: 'Your code, please', challenge_text_footer: 'Bye' }),
      ],
    },
  });
  await enrollHotp(footerOnly);
  t.is((await check(footerOnly, { user: 'alice', pass: '1234' })).body.detail.message, 'Your code, please');
});

test('challenge_response: another user cannot finalize the transaction, even with the right OTP', async (t) => {
  const w = await world(t, { config: { policies: [CR] } });
  await enrollHotp(w);
  await enrollHotp(w, { user: 'mallory', serial: 'OATH0666', pin: '6666' });
  const tid = (await check(w, { user: 'alice', pass: '1234' })).body.detail.transaction_id as string;
  const stolen = await check(w, { user: 'mallory', transaction_id: tid, pass: RFC[0] });
  t.deepEqual(stolen.body.result, REJECT);
  t.is((await w.deps.store.challenges.byTransaction(tid)).length, 1, 'the transaction is untouched');
  t.like((await check(w, { user: 'alice', transaction_id: tid, pass: RFC[0] })).body, {
    result: ACCEPT,
    detail: { message: 'Found matching challenge' },
  });
});

test('increase_failcounter_on_challenge: a triggered challenge counts, success resets', async (t) => {
  const w = await world(t, {
    config: { policies: [policy('cr', 'authentication', { challenge_response: ['hotp'], increase_failcounter_on_challenge: true })] },
  });
  await enrollHotp(w);
  const tid = (await check(w, { user: 'alice', pass: '1234' })).body.detail.transaction_id as string;
  t.is((await tokenOf(w, 'OATH0001')).failCount, 1);
  t.like((await check(w, { user: 'alice', transaction_id: tid, pass: RFC[0] })).body, { result: ACCEPT });
  t.is((await tokenOf(w, 'OATH0001')).failCount, 0);
});

// ---------------------------------------------------------------------------------------------------------------
// authorization policies

test('no_detail_on_success: a success has no detail key; a failure keeps it', async (t) => {
  const w = await world(t, { config: { policies: [policy('nds', 'authorization', { no_detail_on_success: true })] } });
  await enrollHotp(w);
  const ok = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.deepEqual(ok.body.result, ACCEPT);
  t.false('detail' in ok.body, JSON.stringify(ok.body));
  const bad = await check(w, { user: 'alice', pass: '1234000000' });
  t.deepEqual(bad.body.detail, { message: 'wrong otp value', serial: 'OATH0001', type: 'hotp', otplen: 6 });
});

test('no_detail_on_fail: a failure has no detail key; a success and a challenge keep it', async (t) => {
  const w = await world(t, { config: { policies: [CR, policy('ndf', 'authorization', { no_detail_on_fail: true })] } });
  await enrollHotp(w);
  const bad = await check(w, { user: 'alice', pass: '1234000000' });
  t.deepEqual(bad.body.result, REJECT);
  t.false('detail' in bad.body, JSON.stringify(bad.body));
  const chal = await check(w, { user: 'alice', pass: '1234' });
  t.truthy(chal.body.detail.transaction_id, 'a challenge needs its transaction id');
  const ok = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.is(ok.body.detail.message, 'matching 1 tokens');
});

test('last_auth: rejected once the last success is older than the limit', async (t) => {
  const w = await world(t, { config: { policies: [policy('la', 'authorization', { last_auth: '1h' })] } });
  await enrollHotp(w);
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: ACCEPT }, 'never used: no limit');
  w.clock.advance(30 * 60_000);
  const lastOk = w.clock.now();
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[1] })).body, { result: ACCEPT });
  w.clock.advance(60 * 60_000 + 1);
  const r = await check(w, { user: 'alice', pass: '1234' + RFC[2] });
  t.deepEqual(r.body.result, REJECT);
  t.is(r.body.detail.message, `The last successful authentication was ${new Date(lastOk).toISOString()}. It is to long ago.`);
  t.is((await tokenOf(w, 'OATH0001')).lastAuthAt, lastOk, 'a rejected login does not refresh last_auth');
  t.is((await tokenOf(w, 'OATH0001')).failCount, 0);
});

test('authorized deny_access → 400 ERR401; tokentype restriction → 403', async (t) => {
  const w = await world(t, {
    config: {
      policies: [
        policy('deny', 'authorization', { authorized: 'deny_access' }, { user: ['bob'] }),
        policy('types', 'authorization', { tokentype: ['totp'] }, { user: ['carol'] }),
      ],
    },
  });
  await enrollHotp(w, { user: 'bob' });
  await enrollHotp(w, { user: 'carol', serial: 'OATH0002' });
  const d = await check(w, { user: 'bob', pass: '1234' + RFC[0] });
  t.is(d.status, 400);
  t.deepEqual(d.body.result.error, { code: 401, message: 'ERR401: User is not authorized to authenticate under these conditions.' });
  const tt = await check(w, { user: 'carol', pass: '1234' + RFC[0] });
  t.is(tt.status, 403);
  t.deepEqual(tt.body.result.error, { code: 303, message: 'You are not authorized to use this type of token.' });
});

// ---------------------------------------------------------------------------------------------------------------
// Conflicts and priorities

test('conflicting values at the winning priority → 403 code 303 without ERR prefix; a lower number wins', async (t) => {
  const w = await world(t, {
    config: {
      policies: [
        policy('a', 'authentication', { otppin: 'tokenpin' }, { user: ['alice'] }),
        policy('b', 'authentication', { otppin: 'none' }, { user: ['alice'] }),
        policy('c', 'authentication', { otppin: 'tokenpin' }, { user: ['bob'], priority: 2 }),
        policy('d', 'authentication', { otppin: 'none' }, { user: ['bob'], priority: 1 }),
      ],
    },
  });
  await enrollHotp(w);
  await enrollHotp(w, { user: 'bob', serial: 'OATH0002' });
  const r = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.is(r.status, 403);
  t.is(r.body.result.error.code, 303);
  t.regex(r.body.result.error.message, /^There are policies with conflicting actions: \[a, b\]/);
  t.is((await tokenOf(w, 'OATH0001')).failCount, 0);
  t.like((await check(w, { user: 'bob', pass: RFC[0] })).body, { result: ACCEPT }, 'priority 1 (none) beats priority 2');
});

test('inactive policies and realm/user filters do not apply', async (t) => {
  const w = await world(t, {
    config: {
      realms: [{ name: 'default', default: true }, { name: 'other' }],
      policies: [
        policy('off', 'authentication', { passOnNoToken: true }, { active: false }),
        policy('otherrealm', 'authentication', { passOnNoToken: true }, { realm: ['other'] }),
        policy('notdave', 'authentication', { passOnNoToken: true }, { user: ['!dave', 'da.*'] }),
      ],
    },
  });
  t.like((await check(w, { user: 'dave', pass: 'x' })).body, { result: REJECT, detail: { message: 'The user has no tokens assigned' } });
  t.like((await check(w, { user: 'daniel', pass: 'x' })).body, {
    result: ACCEPT,
    detail: { message: "user has no token, accepted due to 'notdave'" },
  });
  t.like((await check(w, { user: 'dave', realm: 'other', pass: 'x' })).body, {
    result: ACCEPT,
    detail: { message: "user has no token, accepted due to 'otherrealm'" },
  });
  t.like((await check(w, { user: 'dave@other', pass: 'x' })).body, { result: ACCEPT });
});

// ---------------------------------------------------------------------------------------------------------------
// Client IP filter

test('client filter: 127.0.0.1 matches, a foreign CIDR and a negation do not', async (t) => {
  const w = await world(t, {
    config: {
      policies: [
        policy('local', 'authentication', { passOnNoToken: true }, { user: ['u1'], client: ['127.0.0.1'] }),
        policy('lan', 'authentication', { passOnNoToken: true }, { user: ['u2'], client: ['10.0.0.0/8'] }),
        policy('notlocal', 'authentication', { passOnNoToken: true }, { user: ['u3'], client: ['!127.0.0.1'] }),
        policy('loopnet', 'authentication', { passOnNoToken: true }, { user: ['u4'], client: ['127.0.0.0/8', '!127.0.0.2'] }),
      ],
    },
  });
  t.like((await check(w, { user: 'u1', pass: '' })).body, { result: ACCEPT });
  t.like((await check(w, { user: 'u2', pass: '' })).body, { result: REJECT });
  t.like((await check(w, { user: 'u3', pass: '' })).body, { result: REJECT });
  t.like((await check(w, { user: 'u4', pass: '' })).body, { result: ACCEPT });
  t.like(
    (await check(w, { user: 'u2', pass: '', client: '10.1.2.3' })).body,
    { result: REJECT },
    'the client parameter is ignored without a trusted proxy',
  );
  t.like(
    (await check(w, { user: 'u2', pass: '' }, { headers: { 'x-forwarded-for': '10.1.2.3' } })).body,
    { result: REJECT },
    'so is X-Forwarded-For',
  );
});

test('client filter behind a trusted proxy: the client parameter and X-Forwarded-For decide', async (t) => {
  const w = await world(t, {
    config: {
      server: { public_url: 'https://mfa.example.org', trusted_proxies: ['127.0.0.1'] },
      policies: [policy('lan', 'authentication', { passOnNoToken: true }, { client: ['10.0.0.0/8'] })],
    },
  });
  t.like((await check(w, { user: 'u', pass: '' })).body, { result: REJECT });
  t.like((await check(w, { user: 'u', pass: '', client: '10.1.2.3' })).body, { result: ACCEPT });
  t.like((await check(w, { user: 'u', pass: '' }, { headers: { 'x-forwarded-for': '10.9.9.9, 127.0.0.1' } })).body, { result: ACCEPT });
  t.like((await check(w, { user: 'u', pass: '' }, { headers: { 'x-forwarded-for': '192.168.1.1' } })).body, { result: REJECT });
});

test('admin guard: triggerchallenge needs the right once admin policies exist', async (t) => {
  const w = await world(t, { config: { policies: [policy('adm', 'admin', { enroll: true })] } });
  await enrollHotp(w);
  const h = await asAdmin(w);
  const r = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h });
  t.is(r.status, 403);
  t.deepEqual(r.body.result.error, { code: 303, message: 'Admin actions are defined, but the action triggerchallenge is not allowed!' });
});
