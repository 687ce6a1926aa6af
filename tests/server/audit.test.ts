/**
 * The audit trail (server/app.ts + server/store/audit_repo.ts): one row per /validate/* call and admin action with
 * user, realm, serials, outcome, client, matched policies and transaction id — and never a PIN, OTP or password.
 */
import test from 'ava';
import { RFC, asAdmin, auditRows, cheapHasher, check, enrollHotp, hotpAt, policy, usersYaml, world } from '../helpers/kit.ts';
import type { AuditRow } from '../../server/store/audit_repo.ts';

const PIN = 'Pin#7391';
const validateRows = (rows: readonly AuditRow[]) => rows.filter((r) => / \/validate\//.test(r.action));

test('accept, reject and challenge: one row each with every field', async (t) => {
  const w = await world(t, {
    config: {
      policies: [
        policy('cr', 'authentication', { challenge_response: ['hotp'] }),
        policy('nds', 'authorization', { no_detail_on_fail: true }),
      ],
    },
  });
  await enrollHotp(w, { pin: PIN });
  const before = (await auditRows(w)).length;

  const first = await check(w, { user: 'alice', pass: PIN + RFC[0] });
  await check(w, { user: 'alice', pass: PIN + '000000' });
  const tid = (await check(w, { user: 'alice', pass: PIN })).body.detail.transaction_id as string;
  await check(w, { user: 'alice', transaction_id: tid, pass: RFC[1] });

  const rows = (await auditRows(w)).slice(before);
  t.is(rows.length, 4);
  t.deepEqual(
    { ...rows[0], policies: [...rows[0]!.policies].sort() },
    {
      id: rows[0]!.id,
      time: w.clock.now(),
      action: 'POST /validate/check',
      success: true,
      outcome: 'ACCEPT',
      username: 'alice',
      realm: 'default',
      serials: ['OATH0001'],
      client: '127.0.0.1',
      admin: null,
      transactionId: null,
      policies: ['cr', 'nds'],
      info: { message: 'matching 1 tokens' },
      node: w.deps.config.server.nodeName,
      requestId: first.headers.get('x-request-id'),
      application: null, // an unsigned request (tests/server/apps.test.ts: a signed one names its application)
    },
  );
  t.regex(rows[0]!.requestId!, /^[0-9a-f-]{36}$/, 'a generated request id');
  t.like(rows[1], { success: false, outcome: 'REJECT', serials: ['OATH0001'], info: { message: 'wrong otp value' } });
  t.like(rows[2], {
    success: false,
    outcome: 'CHALLENGE',
    transactionId: tid,
    serials: ['OATH0001'],
    info: { message: 'challenge triggered' },
  });
  t.like(rows[3], { success: true, outcome: 'ACCEPT', transactionId: tid, info: { message: 'Found matching challenge' } });
});

test('the audit names the realm the user was resolved in (user@realm, default realm)', async (t) => {
  const w = await world(t, { config: { realms: [{ name: 'main', default: true }, { name: 'corp' }] } });
  await enrollHotp(w, { user: 'alice', realm: 'corp' });
  await check(w, { user: 'alice@corp', pass: '1234' + RFC[0] });
  await check(w, { user: 'bob', pass: 'x' });
  const rows = validateRows(await auditRows(w));
  t.like(rows[0], { username: 'alice', realm: 'corp', outcome: 'ACCEPT' });
  t.like(rows[1], { username: 'bob', realm: 'main', outcome: 'REJECT', info: { message: 'The user has no tokens assigned' } });
});

test('every /validate call leaves exactly one row, errors included, with the error message', async (t) => {
  const w = await world(t, { config: { server: { public_url: 'https://mfa.example.org', body_limit_bytes: 1024 } } });
  await enrollHotp(w);
  const admin = await asAdmin(w);
  const calls = [
    () => check(w, { user: 'alice', pass: '1234' + RFC[0] }),
    () => check(w, { user: 'alice', realm: 'nope', pass: 'x' }),
    () => check(w, { user: 'alice' }),
    () => check(w, { serial: 'OATH*', pass: 'x' }),
    () => check(w, {}, { rawBody: '{"user":', headers: { 'content-type': 'application/json' } }),
    () => check(w, { user: 'alice', pass: 'x'.repeat(3000) }),
    () => w.call('GET', '/validate/polltransaction'),
    () => w.call('GET', '/validate/polltransaction/12345678901234567890'),
    () => w.call('POST', '/validate/triggerchallenge', { user: 'alice' }),
    () => w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: admin }),
  ];
  const statuses: number[] = [];
  for (const call of calls) statuses.push((await call()).status);
  t.deepEqual(statuses, [200, 400, 400, 400, 400, 413, 400, 200, 401, 200]);
  const rows = validateRows(await auditRows(w));
  t.is(rows.length, calls.length, rows.map((r) => `${r.action} ${r.outcome}`).join('\n'));
  const errors = rows.filter((r) => r.outcome === 'ERROR');
  t.deepEqual(
    errors.map((r) => r.info.error),
    [
      'ERR904: User <alice@nope> does not exist.',
      "ERR905: Missing parameter: 'pass'",
      'ERR905: Invalid serial number.',
      'ERR905: Invalid JSON in the request body.',
      'ERR905: Request body exceeds 1024 bytes.',
      "ERR905: Missing parameter: 'transaction_id'",
      'Authentication failure. Missing Authorization header.',
    ],
  );
  for (const r of errors) {
    t.false(r.success);
    t.is(r.client, '127.0.0.1', `${r.action}: the client is known even when the body could not be read`);
  }
});

test('triggerchallenge and polltransaction rows: admin, serials, transaction id, status', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const h = await asAdmin(w);
  const tid = (await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h })).body.detail.transaction_id as string;
  await w.call('GET', `/validate/polltransaction/${tid}`);
  const rows = validateRows(await auditRows(w));
  t.like(rows[0], {
    action: 'POST /validate/triggerchallenge',
    admin: 'admin',
    outcome: 'CHALLENGE',
    success: true,
    serials: ['OATH0001'],
    transactionId: tid,
    username: 'alice',
    info: { challenges: 1 },
  });
  t.like(rows[1], {
    action: 'GET /validate/polltransaction',
    outcome: 'REJECT',
    success: false,
    serials: ['OATH0001'],
    transactionId: tid,
    info: { status: 'pending' },
  });
});

test('admin actions are audited: login, init, disable, setpin, delete', async (t) => {
  const w = await world(t);
  const h = await asAdmin(w);
  await enrollHotp(w);
  await w.call('POST', '/token/disable/OATH0001', {}, { headers: h });
  await w.call('POST', '/token/setpin/OATH0001', { otppin: 'NewPin#55' }, { headers: h });
  await w.call('DELETE', '/token/OATH0001', {}, { headers: h });
  await w.call('POST', '/auth', { username: 'admin', password: 'wrong-admin-pw' });
  const rows = await auditRows(w);
  t.deepEqual(
    rows.map((r) => [r.action, r.outcome, r.admin]),
    [
      ['POST /auth', 'OK', 'admin'],
      ['POST /token/init', 'OK', 'admin'],
      ['token disable', 'OK', 'admin'],
      ['token setpin', 'OK', 'admin'],
      ['token delete', 'OK', 'admin'],
      ['POST /auth', 'REJECT', 'admin'],
    ],
  );
  t.deepEqual(rows[5]!.info, { error: 'Authentication failure. Wrong credentials' });
  t.false(rows[5]!.success);
  t.like(rows[1], { serials: ['OATH0001'], username: 'alice', info: { type: 'hotp' } });
  t.deepEqual(rows[2]!.serials, ['OATH0001']);
});

test('no row ever contains a PIN, an OTP, a password or a seed', async (t) => {
  const w = await world(t, {
    config: {
      realms: [{ name: 'corp', default: true, users: { type: 'file', path: 'users.yaml' } }],
      policies: [policy('cr', 'authentication', { challenge_response: ['hotp'] }), policy('pt', 'authentication', { passthru: true })],
    },
    files: { 'users.yaml': usersYaml([{ username: 'alice' }, { username: 'bob', password_hash: await cheapHasher.hash('BobPass#42') }]) },
  });
  await enrollHotp(w, { pin: PIN });
  const h = await asAdmin(w);
  const secrets = [PIN, 'BobPass#42', 'admin-pw', 'NewPin#55', 'wrong-admin-pw', '3132333435363738393031323334353637383930'];
  const otps: string[] = [];
  const pass = (otp: string) => {
    otps.push(otp);
    return otp;
  };

  await check(w, { user: 'alice', pass: PIN + pass(RFC[0]!) });
  await check(w, { user: 'alice', pass: PIN + pass(RFC[0]!) });
  await check(w, { user: 'alice', pass: 'WrongPin' + pass(RFC[1]!) });
  await check(w, { user: 'alice', pass: PIN + pass('987654') });
  const tid = (await check(w, { user: 'alice', pass: PIN })).body.detail.transaction_id as string;
  await check(w, { user: 'alice', transaction_id: tid, pass: pass('111111') });
  await check(w, { user: 'alice', transaction_id: tid, pass: pass(RFC[1]!) });
  await check(w, { user: 'alice', pass: PIN + pass(hotpAt(3)), serial: 'OATH*' });
  await check(w, { user: 'alice', realm: 'nope', pass: PIN + pass(hotpAt(4)) });
  await check(w, { user: 'bob', pass: 'BobPass#42' });
  await check(w, { user: 'bob', pass: 'BobPass#42' }, { as: 'json' });
  await check(w, {}, { rawBody: `{"user":"alice","pass":"${PIN}${pass(hotpAt(5))}"`, headers: { 'content-type': 'application/json' } });
  await w.call('POST', '/token/setpin/OATH0001', { otppin: 'NewPin#55' }, { headers: h });
  await w.call('POST', '/auth', { username: 'admin', password: 'wrong-admin-pw' });

  const rows = await auditRows(w);
  t.true(rows.length >= 14);
  const dump = JSON.stringify(rows);
  for (const s of secrets) t.false(dump.includes(s), `audit contains ${s}`);
  // OTPs are 6 digits: look for them outside the numeric id/time and the 20-digit transaction ids.
  const scrubbed = JSON.stringify(rows.map(({ id: _id, time: _time, transactionId: _tid, ...rest }) => rest));
  for (const otp of otps) t.false(scrubbed.includes(otp), `audit contains the OTP ${otp}`);
  // The structured log (events) must not carry them either.
  const log = JSON.stringify(w.seen);
  for (const s of secrets) t.false(log.includes(s), `events contain ${s}`);
  for (const otp of otps) t.false(log.replace(/\d{20}/g, '').includes(otp), `events contain the OTP ${otp}`);
});
