/**
 * Back-off (issue 9, item 2; server/auth/throttle.ts): failed PIN / password attempts per user and per end-user
 * address on /validate/check (and radiuscheck/samlcheck) and POST /auth, and challenge triggers per user.
 * The limiter windows run on the wall clock (rate-limiter-flexible), so these tests never wait for a window: they
 * spend a budget to its end and check the 429, its Retry-After range, the envelope and the audit row. On SQLite the
 * memory store answers, on PostgreSQL / MariaDB the database store (rate_limits table).
 */
import test from 'ava';
import crypto from 'node:crypto';
import { KEY_HEX, RFC, asAdmin, auditRows, check, enroll, enrollHotp, policy, world } from '../helpers/kit.ts';
import { TEST_DB } from '../helpers/databases.ts';
import type { TestWorld } from '../helpers/test_app.ts';

const REJECT = { status: true, value: false, authentication: 'REJECT' };
const FAILED = 'Too many failed authentication attempts. Try again later.';

/** Counts PIN/password hashes (every argon2 verify the request path makes). */
function countVerifies(w: TestWorld): () => number {
  let n = 0;
  const orig = w.deps.pins.verify.bind(w.deps.pins);
  (w.deps.pins as { verify: typeof orig }).verify = (stored, secret) => {
    n++;
    return orig(stored, secret);
  };
  return () => n;
}

function assert429(
  t: import('ava').ExecutionContext,
  r: { status: number; headers: Headers; body: any },
  maxSeconds: number,
  message = FAILED,
): void {
  t.is(r.status, 429, JSON.stringify(r.body));
  const retry = Number(r.headers.get('retry-after'));
  t.true(Number.isInteger(retry) && retry >= 1 && retry <= maxSeconds, `Retry-After ${r.headers.get('retry-after')} in 1..${maxSeconds}`);
  t.like(r.body, { result: { status: false, error: { code: 429, message } } });
}

test('the store: memory on SQLite, the database on PostgreSQL / MariaDB (rows in rate_limits, shared by two nodes)', async (t) => {
  const key = crypto.randomBytes(32);
  const w = await world(t, { key, config: { limits: { failed_per_user: 3 } } });
  t.is(w.deps.throttle.store, TEST_DB === 'sqlite' ? 'memory' : 'database');
  await enrollHotp(w);
  t.like((await check(w, { user: 'alice', pass: '0000000000' })).body, { result: REJECT });
  if (TEST_DB === 'sqlite') {
    t.false(await w.deps.store.knex.schema.hasTable('rate_limits'), 'SQLite is one node: no limiter table');
    return;
  }
  // The count is in the database (not in the memory insurance limiter), and a second node on it sees it.
  const rows = (await w.deps.store.knex('rate_limits').select('key', 'points')).map((r) => [
    String(r.key).replace(/^[^:]*:/, ''),
    Number(r.points),
  ]);
  t.deepEqual(
    rows.filter(([k]) => String(k).startsWith('failed_user:')),
    [['failed_user:user:default:alice', 1]],
  );
  t.deepEqual(
    rows.filter(([k]) => String(k).startsWith('failed_address:')),
    [['failed_address:127.0.0.1', 0]],
    'the admin login (POST /auth) gave its point back',
  );
  const dbUrl = w.deps.config.database.url;
  const node2 = await world(t, { databaseUrl: dbUrl, key, config: { limits: { failed_per_user: 3 } } });
  t.is(node2.deps.throttle.store, 'database');
  t.like((await check(node2, { user: 'alice', pass: '0000000000' })).body, { result: REJECT });
  t.like((await check(w, { user: 'alice', pass: '0000000000' })).body, { result: REJECT });
  t.is((await check(node2, { user: 'alice', pass: '0000000000' })).status, 429, 'the fourth attempt, over two nodes');
});

test('per user: after failed_per_user wrong PINs the next attempt is 429 + Retry-After + envelope, before any PIN hash, audited', async (t) => {
  const w = await world(t, { config: { limits: { failed_per_user: 3, failed_window_seconds: 600, failed_block_seconds: 120 } } });
  await enrollHotp(w);
  const verifies = countVerifies(w);
  for (let i = 0; i < 3; i++) t.like((await check(w, { user: 'alice', pass: '0000' + RFC[0] })).body, { result: REJECT });
  t.is(verifies(), 3);
  const refused = await check(w, { user: 'alice', pass: '1234' + RFC[0] }); // even the right PIN + OTP
  assert429(t, refused, 120);
  t.is(verifies(), 3, 'no PIN was hashed for the refused attempt');
  t.is((await w.deps.store.tokens.bySerial('OATH0001'))!.counter, 0, 'the OTP was not used up');
  const rows = (await auditRows(w)).filter((a) => a.action === 'POST /validate/check');
  t.like(rows.at(-1), { success: false, outcome: 'ERROR', username: 'alice', info: { error: FAILED } });
  t.true(w.seen.some((e) => e.name === 'throttle.refused' && (e.payload as { limit: string }).limit === 'user'));
  // Another user is not affected.
  await enrollHotp(w, { user: 'bob', serial: 'OATH0002' });
  t.like((await check(w, { user: 'bob', pass: '1234' + RFC[0] })).body, { result: { value: true } });
  // radiuscheck and samlcheck share the count and the 429 (radiuscheck too: its other errors are a bare 400).
  assert429(t, await w.call('POST', '/validate/radiuscheck', { user: 'alice', pass: '1234' + RFC[0] }), 120);
  assert429(t, await w.call('POST', '/validate/samlcheck', { user: 'alice', pass: '1234' + RFC[0] }), 120);
});

test('per user: a success starts the count again', async (t) => {
  const w = await world(t, { config: { limits: { failed_per_user: 3 } } });
  await enrollHotp(w);
  for (let i = 0; i < 2; i++) t.like((await check(w, { user: 'alice', pass: '0000' + RFC[0] })).body, { result: REJECT });
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: { value: true } });
  for (let i = 0; i < 3; i++)
    t.like((await check(w, { user: 'alice', pass: '0000' + RFC[1] })).body, { result: REJECT }, `failure ${i + 1} after the success`);
  assert429(t, await check(w, { user: 'alice', pass: '0000' + RFC[1] }), 600);
});

test('one IdP address carrying many users: a flood for one user does not 429 the others; the IdP address itself is never counted', async (t) => {
  const w = await world(t, {
    config: {
      server: { public_url: 'https://mfa.example.org', trusted_proxies: ['127.0.0.1'] },
      limits: { failed_per_user: 3, failed_per_address: 5 },
    },
  });
  for (const [i, user] of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace'].entries())
    await enrollHotp(w, { user, serial: `OATH000${i}` });
  // The flood: 12 wrong PINs for bob, all through the IdP, each naming its own end-user address.
  const flood = [];
  for (let i = 0; i < 12; i++) flood.push(await check(w, { user: 'bob', pass: '0000000000', client: `198.51.100.${i + 1}` }));
  t.is(flood.filter((r) => r.status === 200).length, 3);
  t.is(flood.filter((r) => r.status === 429).length, 9);
  // Everybody else logs in through the same IdP, with or without an end-user address.
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0], client: '203.0.113.7' })).body, { result: { value: true } });
  t.like((await check(w, { user: 'carol', pass: '1234' + RFC[0] })).body, { result: { value: true } });
  // Wrong PINs of many users that name no address come from the IdP itself: never counted per address.
  for (const user of ['alice', 'carol', 'dave', 'erin', 'frank', 'grace']) {
    for (let i = 0; i < 2; i++) t.is((await check(w, { user, pass: '0000000000' })).status, 200, `${user} #${i + 1}`);
  }
  // One end-user address trying many users is counted per address (failed_per_address 5), also via X-Forwarded-For.
  const spray = [];
  for (const user of ['alice', 'carol', 'dave', 'erin', 'frank', 'grace'])
    spray.push(await check(w, { user, pass: '9999999999' }, { headers: { 'X-Forwarded-For': '192.0.2.99' } }));
  t.deepEqual(
    spray.map((r) => r.status),
    [200, 200, 200, 200, 200, 429],
  );
  assert429(t, spray[5]!, 600);
  t.true(w.seen.some((e) => e.name === 'throttle.refused' && (e.payload as { limit: string; key: string }).key === '192.0.2.99'));
});

test('trusted_proxies empty: /validate/* counts no address (the peer is the IdP), POST /auth counts the peer', async (t) => {
  const w = await world(t, { config: { limits: { failed_per_user: 100, failed_per_address: 2 } } });
  for (const [i, user] of ['alice', 'bob', 'carol', 'dave'].entries()) await enrollHotp(w, { user, serial: `OATH000${i}` });
  for (const user of ['alice', 'bob', 'carol', 'dave']) t.is((await check(w, { user, pass: '0000000000' })).status, 200);
  // Also a `client` parameter is not believed from an untrusted peer: still no per-address count on /validate.
  t.is((await check(w, { user: 'alice', pass: '0000000000', client: '192.0.2.1' })).status, 200);
  const auth = [];
  for (const username of ['admin1', 'admin2', 'admin3']) auth.push(await w.call('POST', '/auth', { username, password: 'wrong' }));
  t.deepEqual(
    auth.map((r) => r.status),
    [401, 401, 429],
  );
  assert429(t, auth[2]!, 600);
});

test('POST /auth: wrong admin passwords back off per admin (429 before hashing, audited); a success resets', async (t) => {
  const w = await world(t, { config: { limits: { failed_per_user: 2, failed_block_seconds: 60 } } });
  await w.adminToken(); // creates admin/admin-pw and logs in once
  const verifies = countVerifies(w);
  for (let i = 0; i < 2; i++) t.is((await w.call('POST', '/auth', { username: 'admin', password: 'nope' })).status, 401);
  const refused = await w.call('POST', '/auth', { username: 'admin', password: 'admin-pw' });
  assert429(t, refused, 60);
  t.is(verifies(), 2, 'the refused attempt hashed nothing');
  const rows = (await auditRows(w)).filter((a) => a.action === 'POST /auth');
  t.like(rows.at(-1), { success: false, outcome: 'ERROR', admin: 'admin', info: { error: FAILED } });

  const w2 = await world(t, { config: { limits: { failed_per_user: 2 } } });
  await w2.adminToken();
  t.is((await w2.call('POST', '/auth', { username: 'admin', password: 'nope' })).status, 401);
  t.is((await w2.call('POST', '/auth', { username: 'admin', password: 'admin-pw' })).status, 200);
  for (let i = 0; i < 2; i++)
    t.is((await w2.call('POST', '/auth', { username: 'admin', password: 'nope' })).status, 401, `failure ${i + 1} after the success`);
  t.is((await w2.call('POST', '/auth', { username: 'admin', password: 'admin-pw' })).status, 429);
});

test('challenges per user: PIN-only checks and /validate/triggerchallenge share limits.challenges_per_user; other users are not affected', async (t) => {
  const w = await world(t, {
    config: {
      limits: { challenges_per_user: 3, challenges_window_seconds: 60 },
      policies: [policy('cr', 'authentication', { challenge_response: ['hotp'] })],
    },
  });
  await enrollHotp(w);
  await enroll(w, { type: 'hotp', otpkey: KEY_HEX, user: 'bob', pin: '1234', serial: 'OATH0002' });
  const h = await asAdmin(w);
  for (let i = 0; i < 2; i++) t.like((await check(w, { user: 'alice', pass: '1234' })).body, { result: { authentication: 'CHALLENGE' } });
  const trig = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h });
  t.like(trig.body, { result: { authentication: 'CHALLENGE' } });
  const before = (await w.deps.store.challenges.byTransaction(trig.body.detail.transaction_id)).length;
  t.is(before, 1);
  const refused = await check(w, { user: 'alice', pass: '1234' });
  assert429(t, refused, 60, 'Too many challenges were triggered for this user. Try again later.');
  assert429(
    t,
    await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h }),
    60,
    'Too many challenges were triggered for this user. Try again later.',
  );
  t.is(w.seen.filter((e) => e.name === 'challenge.created').length, 3, 'no challenge beyond the limit was created');
  // The refused trigger had the right PIN: it is no failed attempt — a PIN+OTP login still works.
  t.like((await check(w, { user: 'alice', pass: '1234' + RFC[0] })).body, { result: { value: true } });
  t.like((await check(w, { user: 'bob', pass: '1234' })).body, { result: { authentication: 'CHALLENGE' } });
});

test('a challenge (right PIN) is no failed attempt; answering it by transaction_id is not counted', async (t) => {
  const w = await world(t, {
    config: {
      limits: { failed_per_user: 2, challenges_per_user: 100 },
      policies: [policy('cr', 'authentication', { challenge_response: ['hotp'] })],
    },
  });
  await enrollHotp(w);
  for (let i = 0; i < 5; i++) t.like((await check(w, { user: 'alice', pass: '1234' })).body, { result: { authentication: 'CHALLENGE' } });
  const tid = (await check(w, { user: 'alice', pass: '1234' })).body.detail.transaction_id as string;
  for (let i = 0; i < 3; i++) t.like((await check(w, { user: 'alice', transaction_id: tid, pass: '000000' })).body, { result: REJECT });
  t.like((await check(w, { user: 'alice', transaction_id: tid, pass: RFC[0] })).body, { result: { value: true } });
});

const sharedDb = TEST_DB === 'sqlite' ? test.skip : test;
sharedDb(
  `a failing database store: the back-off goes on in this node's memory, and the log says so${TEST_DB === 'sqlite' ? ' [skipped: SQLite uses the memory store]' : ''}`,
  async (t) => {
    const w = await world(t, { config: { limits: { failed_per_user: 2 } } });
    await enrollHotp(w);
    await w.deps.store.knex.schema.dropTable('rate_limits'); // every store query fails from now on
    for (let i = 0; i < 2; i++) t.like((await check(w, { user: 'alice', pass: '0000000000' })).body, { result: REJECT });
    assert429(t, await check(w, { user: 'alice', pass: '1234' + RFC[0] }), 600);
    const warnings = w.seen.filter(
      (e) => e.name === 'log' && String((e.payload as { msg: string }).msg).startsWith('rate limit store (database) failed'),
    );
    t.is(warnings.length, 1, 'the first fallback is logged (then every 100th)');
  },
);
