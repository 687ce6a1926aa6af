/**
 * Nothing is lost from the audit trail (issue 9, item 4): every field is cut to its column (COLUMN_LIMITS, the
 * same numbers the migrations use) and a cut value is marked; a failed audit write is reported with its cause and
 * counted in /metrics; an ACCEPT whose audit row cannot be written is refused (fail closed, server/respond.ts),
 * every other answer stands. Runs on every database (PUSHGATE_TEST_DB).
 */
import test from 'ava';
import { RFC, asAdmin, auditRows, check, enrollHotp, policy, track, world } from '../helpers/kit.ts';
import { COLUMN_LIMITS, CUT_MARK, charLength } from '../../server/store/limits.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import { parked } from '../helpers/wait.ts';
import type { TestWorld } from '../helpers/test_app.ts';

const W = COLUMN_LIMITS.audit;
const dropAudit = (w: TestWorld) => w.deps.store.knex.schema.dropTable('audit');
const failures = (w: TestWorld) =>
  w.seen
    .filter((e) => e.name === 'audit.write_failed')
    .map((e) => e.payload as { action: string; outcome: string; error: string; code?: string });

test('overlong fields are cut to their columns, marked with … and named in info.cut (emoji count as one character)', async (t) => {
  const w = await world(t);
  const emoji = '😀'.repeat(W.username + 5); // 4 bytes each in UTF-8, 2 UTF-16 units each
  await w.deps.store.audit.insert({
    time: 1,
    action: 'A'.repeat(200),
    success: false,
    outcome: 'REJECT',
    username: emoji,
    realm: 'r'.repeat(500),
    serials: Array.from({ length: 300 }, (_, i) => `SERIAL${i}`),
    client: '1'.repeat(100),
    admin: 'ä'.repeat(300),
    transactionId: '9'.repeat(90),
    policies: Array.from({ length: 300 }, (_, i) => `policy${i}`),
    info: { message: 'x' },
  });
  const [row] = await auditRows(w);
  t.truthy(row, 'the row is written on every database');
  const checks: Array<[keyof typeof W, string]> = [
    ['action', row!.action],
    ['username', row!.username!],
    ['realm', row!.realm!],
    ['serials', row!.serials.join(',')],
    ['client', row!.client!],
    ['admin', row!.admin!],
    ['transaction_id', row!.transactionId!],
    ['policies', row!.policies.join(',')],
  ];
  for (const [column, value] of checks) {
    t.is(charLength(value), W[column], `${column} fills its column exactly`);
    t.true(value.endsWith(CUT_MARK), `${column} is marked as cut`);
  }
  t.is(row!.username, '😀'.repeat(W.username - 1) + CUT_MARK, 'never half an emoji');
  t.deepEqual(row!.info, {
    message: 'x',
    cut: ['action', 'username', 'realm', 'serials', 'client', 'admin', 'transaction_id', 'policies'],
  });
});

test('a value that fits is stored as it is, with no cut mark', async (t) => {
  const w = await world(t);
  const name = '😀'.repeat(W.username);
  await w.deps.store.audit.insert({
    time: 1,
    action: 'X',
    success: true,
    outcome: 'OK',
    username: name,
    transactionId: '7'.repeat(W.transaction_id),
    info: {},
  });
  const [row] = await auditRows(w);
  t.is(row!.username, name);
  t.is(row!.transactionId, '7'.repeat(W.transaction_id));
  t.deepEqual(row!.info, {});
});

test('an info that does not fit is kept as the start of its JSON, marked', async (t) => {
  const w = await world(t);
  await w.deps.store.audit.insert({ time: 1, action: 'X', success: false, outcome: 'ERROR', info: { error: '"\u0001'.repeat(W.info) } });
  const [row] = await auditRows(w);
  t.deepEqual(row!.info.cut, ['info']);
  t.true(
    typeof row!.info.text === 'string'
      && (row!.info.text as string).startsWith('{"error":"\\"\\u0001')
      && (row!.info.text as string).endsWith(CUT_MARK),
  );
});

test('a 40-digit transaction id on /validate/check: answered and in the audit row (no row lost)', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const tid = '1'.repeat(40);
  const r = await check(w, { user: 'alice', transaction_id: tid, pass: RFC[0] });
  t.is(r.status, 200, r.text);
  const rows = (await auditRows(w)).filter((x) => x.action === 'POST /validate/check');
  t.is(rows.length, 1);
  t.like(rows[0], { transactionId: tid, outcome: 'REJECT' });
  t.deepEqual(failures(w), []);
});

test('a long path under /validate/ is audited with its action cut and marked', async (t) => {
  const w = await world(t);
  const r = await w.call('GET', `/validate/${'x'.repeat(300)}`);
  t.is(r.status, 404);
  const [row] = await auditRows(w);
  t.is(charLength(row!.action), W.action);
  t.true(row!.action.startsWith('GET /validate/xxx') && row!.action.endsWith(CUT_MARK));
  t.deepEqual(row!.info.cut, ['action']);
});

test('audit store broken: an ACCEPT is refused (500 / -600), a REJECT is answered; each failure is reported with its cause and counted', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  await dropAudit(w);

  const accept = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.is(accept.status, 500, accept.text);
  t.deepEqual(accept.body.result, { status: false, error: { code: -600, message: 'A database error occurred.' } });
  t.is(accept.body.detail, null);
  t.is((await w.deps.store.tokens.bySerial('OATH0001'))!.counter, 1, 'the OTP is spent: the user logs in again with the next one');

  const reject = await check(w, { user: 'alice', pass: '1234' + '000000' });
  t.is(reject.status, 200);
  t.like(reject.body.result, { status: true, value: false, authentication: 'REJECT' });

  const error = await check(w, { user: 'alice' }); // an error is answered as itself too
  t.is(error.status, 400);
  t.is(error.body.result.error.code, 905);

  const f = failures(w);
  t.is(f.length, 3);
  t.like(f[0], { action: 'POST /validate/check', outcome: 'ACCEPT' });
  t.like(f[1], { action: 'POST /validate/check', outcome: 'REJECT' });
  t.like(f[2], { action: 'POST /validate/check', outcome: 'ERROR' });
  for (const x of f) {
    t.regex(x.error, /audit/i, 'the cause names the failing table');
    t.false(x.error.includes('alice'), 'no values in the logged SQL');
    t.truthy(x.code, 'the driver error code is kept');
  }
  const metrics = await w.call('GET', '/metrics');
  t.regex(metrics.text, /^pushgate_audit_write_failures_total 3$/m);
});

test('audit store broken: admin actions that happened are answered (OK), the failure reported', async (t) => {
  const w = await world(t);
  const h = await asAdmin(w);
  await dropAudit(w);
  const r = await w.call('POST', '/token/init', { type: 'hotp', genkey: 1, user: 'alice', serial: 'OATH0009' }, { headers: h });
  t.is(r.status, 200, r.text);
  t.truthy(await w.deps.store.tokens.bySerial('OATH0009'));
  t.like(failures(w)[0], { action: 'POST /token/init', outcome: 'OK' });
});

test('audit store broken during a push wait: the woken ACCEPT is refused (500 / -600)', async (t) => {
  const w = await pushWorld(t, { policies: [policy('wait', 'authentication', { edupush_wait: 20 })] });
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const pending = track(check(w, { user: 'alice', pass: '1234' }));
  await parked(w);
  const data = (await phone.poll()).body.result.value[0];
  await dropAudit(w);
  t.is((await phone.answer(data)).status, 200, 'the phone is answered: its answer was stored');
  const r = await pending.promise;
  t.is(r.status, 500, r.text);
  t.deepEqual(r.body.result, { status: false, error: { code: -600, message: 'A database error occurred.' } });
  t.deepEqual(
    failures(w)
      .map((f) => f.outcome)
      .sort(),
    ['ACCEPT', 'OK'],
    "the phone's request and the woken login (in either order)",
  );
});
