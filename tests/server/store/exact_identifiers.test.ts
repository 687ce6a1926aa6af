/**
 * One behaviour on every database (issue 9, item 6): user names, realms, serials and transaction ids compare
 * exactly — case, accents and trailing spaces — on MariaDB/MySQL as on SQLite and PostgreSQL (migration
 * 002_exact_identifiers: a binary NO PAD collation), and the schema's string widths are COLUMN_LIMITS.
 */
import test from 'ava';
import { RFC, auditRows, check, enrollHotp, tokenRow, world } from '../../helpers/kit.ts';
import { COLUMN_LIMITS } from '../../../server/store/limits.ts';
import { TEST_DB } from '../../helpers/databases.ts';

test("ÀLÍCE and Alice are not alice: no login with alice's PIN and OTP, the audit names what was sent", async (t) => {
  const w = await world(t); // the default realm accepts every user name (users: any)
  await enrollHotp(w, { user: 'alice' });
  for (const [i, name] of ['ÀLÍCE', 'Alice', 'alíce', 'ALICE'].entries()) {
    const r = await check(w, { user: name, pass: '1234' + RFC[i] });
    t.is(r.status, 200, r.text);
    t.like(r.body.result, { status: true, value: false, authentication: 'REJECT' }, name);
    t.is(r.body.detail.message, 'The user has no tokens assigned', name);
  }
  const rows = (await auditRows(w)).filter((x) => x.action === 'POST /validate/check');
  t.deepEqual(
    rows.map((x) => [x.username, x.outcome]),
    [
      ['ÀLÍCE', 'REJECT'],
      ['Alice', 'REJECT'],
      ['alíce', 'REJECT'],
      ['ALICE', 'REJECT'],
    ],
  );
  t.is((await w.deps.store.tokens.bySerial('OATH0001'))!.counter, 0, 'no OTP was used');
  const ok = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  t.is(ok.body.result.authentication, 'ACCEPT', 'alice herself still logs in');
});

test('serial hotp1 is not HOTP1 (check, token list and the store); a trailing space is not ignored', async (t) => {
  const w = await world(t);
  await enrollHotp(w, { serial: 'HOTP1' });
  const r = await check(w, { serial: 'hotp1', pass: '1234' + RFC[0] });
  t.is(r.status, 404, r.text);
  t.is(r.body.result.error.code, 601);
  t.is(await w.deps.store.tokens.bySerial('hotp1'), null);
  t.is(await w.deps.store.tokens.bySerial('HOTP1 '), null, 'no PAD SPACE: HOTP1 and "HOTP1 " differ');
  t.is(await w.deps.store.tokens.bySerial('HÖTP1'), null);
  t.deepEqual(await w.deps.store.tokens.list({ serial: 'hotp1' }), []);
  t.deepEqual(await w.deps.store.tokens.list({ username: 'ALICE' }), []);
  t.deepEqual(await w.deps.store.tokens.list({ username: 'alice', realm: 'DEFAULT' }), []);
  t.is(await w.deps.store.tokens.countByOwner('alice ', 'default'), 0);
  // Two serials that differ only in case are two tokens on every database (the unique index compares exactly too).
  await enrollHotp(w, { serial: 'hotp1' });
  t.is((await w.deps.store.tokens.list()).length, 2);
});

test('transaction ids and administrator names compare exactly', async (t) => {
  const w = await world(t);
  const now = w.clock.now();
  const token = await w.deps.store.tokens.insert(tokenRow({ serial: 'T1' }), now);
  await w.deps.store.challenges.insert({
    transactionId: 'abcDEF_1',
    serial: 'T1',
    tokenId: token.id,
    nonce: 'n',
    session: '',
    data: {},
    createdAt: now,
    expiresAt: now + 1000,
  });
  t.is((await w.deps.store.challenges.byTransaction('abcDEF_1')).length, 1);
  t.is((await w.deps.store.challenges.byTransaction('ABCdef_1')).length, 0);
  t.is((await w.deps.store.challenges.byTransaction('abcDEF_1 ')).length, 0);
  await w.deps.store.admins.insert('Admin', 'hash', now);
  t.is(await w.deps.store.admins.byName('admin'), null);
  t.is(await w.deps.store.admins.byName('ÄDMIN'), null);
  await w.deps.store.admins.insert('admin', 'hash', now); // a different name: no unique violation
  t.is((await w.deps.store.admins.list()).length, 2);
});

/** Declared width of every string column named in COLUMN_LIMITS (information_schema, PostgreSQL and MariaDB/MySQL). */
test('the schema after all migrations has the widths of COLUMN_LIMITS (and a binary NO PAD collation on MariaDB/MySQL)', async (t) => {
  if (TEST_DB === 'sqlite') {
    t.pass('SQLite enforces no widths');
    return;
  }
  const w = await world(t);
  const knex = w.deps.store.knex;
  const schema = TEST_DB === 'postgres' ? knex.raw('current_schema()') : knex.raw('database()');
  const rows = (await knex('information_schema.columns')
    .where('table_schema', schema)
    .whereIn('table_name', Object.keys(COLUMN_LIMITS))
    .select({
      table: 'table_name',
      column: 'column_name',
      width: 'character_maximum_length',
      collation: 'collation_name',
      type: 'data_type',
    })) as Array<Record<string, unknown>>;
  const norm = rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v])));
  for (const [table, columns] of Object.entries(COLUMN_LIMITS)) {
    for (const [column, width] of Object.entries(columns)) {
      const r = norm.find((x) => x.table === table && x.column === column);
      t.truthy(r, `${table}.${column} exists`);
      if (r!.type === 'text') continue; // audit.info: the limit keeps it below MariaDB's TEXT size
      t.is(Number(r!.width), width, `${table}.${column}`);
    }
  }
  if (TEST_DB === 'mysql') {
    const strings = norm.filter((x) => x.collation !== null);
    t.true(strings.length > 20);
    for (const x of strings) t.regex(String(x.collation), /^utf8mb4_(nopad_bin|0900_bin)$/, `${x.table}.${x.column}`);
  }
});
