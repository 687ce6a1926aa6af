/**
 * Input is checked before the database (issue 9, item 5): every parameter that reaches a column is refused at the
 * edge when longer than that column (400 / 905 naming it; COLUMN_LIMITS via PARAM_LIMITS), JSON bodies have a depth
 * limit checked before anything recursive runs, a request has at most MAX_PARAMS parameters, and user / realm /
 * serial are trimmed like eduMFA's split_user (empty = absent; never the empty user). Runs on every database.
 */
import test from 'ava';
import { RFC, asAdmin, auditRows, check, enroll, enrollHotp, tokenOf, world } from '../helpers/kit.ts';
import { COLUMN_LIMITS, CUT_MARK, PARAM_LIMITS, charLength } from '../../server/store/limits.ts';
import { MAX_JSON_DEPTH, MAX_PARAMS, jsonDepth } from '../../server/params.ts';
import type { Reply } from '../helpers/test_app.ts';
import { parseConfig } from '../../server/config.ts';
import { ConfigError } from '../../core/errors.ts';

const is905 = (r: Reply, re: RegExp): boolean =>
  r.status === 400 && r.body?.result?.error?.code === 905 && re.test(r.body.result.error.message);

test('/token/init: a 300-character user, a 1,000-character description, a 41-character serial → 400 / 905 naming the parameter', async (t) => {
  const w = await world(t);
  const h = await asAdmin(w);
  const base = { type: 'hotp', genkey: 1 };
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ user: 'u'.repeat(300) }, 'user'],
    [{ user: 'alice', description: 'd'.repeat(1000) }, 'description'],
    [{ serial: 'S'.repeat(41) }, 'serial'],
    [{ user: 'alice', realm: 'r'.repeat(121) }, 'realm'],
    [{ user: 'alice', type: 't'.repeat(31) }, 'type'],
  ];
  for (const [params, name] of cases) {
    const r = await w.call('POST', '/token/init', { ...base, ...params }, { headers: h });
    t.true(
      is905(r, new RegExp(`Parameter '${name}' is too long \\(at most ${PARAM_LIMITS[name]} characters\\)`)),
      `${name}: ${r.status} ${r.text}`,
    );
  }
  t.deepEqual(await w.deps.store.tokens.list(), [], 'nothing was created');
  // At the limit (counted in characters, as the databases count): accepted on every database.
  const r = await w.call(
    'POST',
    '/token/init',
    {
      ...base,
      user: 'ü'.repeat(COLUMN_LIMITS.tokens.username),
      description: '😀'.repeat(COLUMN_LIMITS.tokens.description),
      serial: 'S'.repeat(40),
    },
    { headers: h },
  );
  t.is(r.status, 200, r.text);
  const tok = await tokenOf(w, 'S'.repeat(40));
  t.is(tok.username, 'ü'.repeat(COLUMN_LIMITS.tokens.username));
  t.is(tok.description, '😀'.repeat(COLUMN_LIMITS.tokens.description));
});

test('/validate/check: an overlong user is 400 / 905 naming it, and its audit row names the (cut, marked) value', async (t) => {
  const w = await world(t);
  const r = await check(w, { user: 'x'.repeat(400), pass: '1' });
  t.true(is905(r, /Parameter 'user' is too long/), r.text);
  // The end-user address an IdP passes (audit `client`) and the phone's nonce are bounded the same way.
  t.true(is905(await check(w, { user: 'alice', pass: '1', client: '1'.repeat(65) }), /Parameter 'client' is too long \(at most 64/));
  t.true(
    is905(await w.call('POST', '/ttype/edupush', { serial: 'X', nonce: 'n'.repeat(65), signature: 's' }), /Parameter 'nonce' is too long/),
  );
  const [row] = await auditRows(w);
  t.like(row, {
    action: 'POST /validate/check',
    outcome: 'ERROR',
    info: { error: "ERR905: Parameter 'user' is too long (at most 255 characters).", cut: ['username'] },
  });
  t.is(charLength(row!.username!), COLUMN_LIMITS.audit.username);
  t.true(row!.username!.endsWith(CUT_MARK));
});

test('transaction_id: one limit (64) for the check route and the columns; 65 is refused, 64 is answered and audited', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  const tid64 = '4'.repeat(64);
  const ok = await check(w, { user: 'alice', transaction_id: tid64, pass: RFC[0] });
  t.is(ok.status, 200, ok.text);
  t.true(is905(await check(w, { user: 'alice', transaction_id: '4'.repeat(65), pass: RFC[0] }), /Parameter 'transaction_id' is too long/));
  t.true(is905(await check(w, { user: 'alice', state: '4'.repeat(65), pass: RFC[0] }), /Parameter 'state' is too long/));
  t.true(is905(await w.call('GET', `/validate/polltransaction/${'4'.repeat(65)}`), /Parameter 'transaction_id' is too long/));
  t.is((await w.call('GET', `/validate/polltransaction/${tid64}`)).status, 200);
  const rows = (await auditRows(w)).filter((x) => x.transactionId === tid64);
  t.is(rows.length, 2, 'check and polltransaction with the 64-character id are both in the audit');
});

test('POST /auth: an overlong administrator name is 400 / 905 naming username', async (t) => {
  const w = await world(t);
  const r = await w.call('POST', '/auth', { username: 'a'.repeat(COLUMN_LIMITS.admins.username + 1), password: 'x' });
  t.true(is905(r, /Parameter 'username' is too long/), r.text);
});

test('/token/<serial> in the path: an overlong serial is 400 / 905', async (t) => {
  const w = await world(t);
  const r = await w.call('POST', `/token/disable/${'S'.repeat(41)}`, {}, { headers: await asAdmin(w) });
  t.true(is905(r, /Parameter 'serial' is too long/), r.text);
});

test('JSON nested 10,000 deep → 400 / 905 (not a RangeError); the server stays up', async (t) => {
  const w = await world(t, { config: { server: { public_url: 'https://mfa.example.org', body_limit_bytes: 1024 * 1024 } } });
  await enrollHotp(w);
  const deep = `{"user":"alice","pass":"1","x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
  const r = await check(w, {}, { rawBody: deep, headers: { 'content-type': 'application/json' } });
  t.true(is905(r, new RegExp(`nests deeper than ${MAX_JSON_DEPTH} levels`)), `${r.status} ${r.text}`);
  const deepObjects = `{"user":"alice","pass":"1","x":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`;
  t.true(is905(await check(w, {}, { rawBody: deepObjects, headers: { 'content-type': 'application/json' } }), /nests deeper/));
  // Exactly at the limit it is an ordinary request.
  const atLimit = `{"user":"alice","pass":"1234${RFC[0]}","x":${'['.repeat(MAX_JSON_DEPTH - 1)}${']'.repeat(MAX_JSON_DEPTH - 1)}}`;
  const ok = await check(w, {}, { rawBody: atLimit, headers: { 'content-type': 'application/json' } });
  t.is(ok.status, 200, ok.text);
  t.is(ok.body.result.authentication, 'ACCEPT');
});

test('jsonDepth counts brackets outside strings only, without recursion', (t) => {
  t.is(jsonDepth('{"a":"[[[{{{","b":[1,[2]]}'), 3);
  t.is(jsonDepth('{"a":"\\"[[["}'), 1);
  t.is(jsonDepth('{}'), 1);
  t.is(jsonDepth('['.repeat(1_000_000)), 1_000_000);
  t.is(jsonDepth('['.repeat(1_000_000), 5), 6, 'stops counting past the limit');
});

test(`more than ${MAX_PARAMS} parameters (query, form, JSON, multipart) → 400 / 905`, async (t) => {
  const w = await world(t);
  const many = Object.fromEntries(Array.from({ length: MAX_PARAMS + 1 }, (_, i) => [`p${i}`, 'v']));
  for (const as of ['form', 'json', 'multipart', 'query'] as const) {
    const r = await check(w, { user: 'alice', pass: '1', ...many }, { as });
    t.true(is905(r, /Too many parameters/), `${as}: ${r.status} ${r.text}`);
  }
  const huge = { user: 'alice', pass: '1', list: Array.from({ length: 5000 }, (_, i) => i) };
  const r = await check(w, {}, { rawBody: JSON.stringify(huge), headers: { 'content-type': 'application/json' } });
  t.is(r.status, 200, 'a large array is one parameter');
});

test('user=%20: a blank user is a missing user, never the empty user', async (t) => {
  const w = await world(t);
  const r = await check(w, { user: ' ', pass: '1' });
  t.true(is905(r, /You need to specify a serial or a user/), r.text);
  t.true(is905(await check(w, { user: ' \t', serial: ' ', pass: '1' }), /You need to specify a serial or a user/));
  t.true(is905(await check(w, { user: '@default', pass: '1' }), /Missing parameter: 'user'/), 'the realm alone is no user');
  t.true(
    is905(
      await w.call('POST', '/validate/triggerchallenge', { user: '  ' }, { headers: await asAdmin(w) }),
      /You need to specify a serial or a user/,
    ),
  );
});

test('/token/init never creates a token owned by the empty user; surrounding whitespace of user, realm and serial is removed', async (t) => {
  const w = await world(t);
  const h = await asAdmin(w);
  await enroll(w, { type: 'hotp', genkey: 1, user: '   ', serial: 'BLANK001' });
  const blank = await tokenOf(w, 'BLANK001');
  t.is(blank.username, null, 'no owner, as eduMFA (an empty user object)');
  t.is(blank.realm, null);
  const r = await w.call('POST', '/token/init', { type: 'hotp', genkey: 1, user: '@default', serial: 'BLANK002' }, { headers: h });
  t.true(is905(r, /Missing parameter: 'user'/), r.text);

  await enroll(w, {
    type: 'hotp',
    otpkey: '3132333435363738393031323334353637383930',
    pin: '1234',
    user: '  alice\t',
    realm: ' default ',
    serial: ' OATH0001 ',
  });
  const tok = await tokenOf(w, 'OATH0001');
  t.like(tok, { username: 'alice', realm: 'default' });
  const ok = await check(w, { user: ' alice ', realm: ' default', pass: '1234' + RFC[0] });
  t.is(ok.body.result.authentication, 'ACCEPT', ok.text);
  const bySerial = await check(w, { serial: ' OATH0001 ', pass: '1234' + RFC[1] });
  t.is(bySerial.body.result.authentication, 'ACCEPT', bySerial.text);
  const listed = await w.call('GET', '/token/', { user: ' alice ' }, { headers: h });
  t.is(listed.body.result.value.count, 1);
  const rows = (await auditRows(w)).filter((x) => x.action === 'POST /validate/check');
  t.like(rows[0], { username: 'alice', realm: 'default' });
});

test('config: a realm name longer than the realm column is a configuration error naming its path', (t) => {
  const doc = (name: string) => ({ database: { url: 'sqlite::memory:' }, realms: [{ name }] });
  const err = t.throws(() => parseConfig(doc('r'.repeat(COLUMN_LIMITS.tokens.realm + 1)), '/tmp'), { instanceOf: ConfigError });
  t.deepEqual(err!.problems, ['realms[0].name must be at most 120 characters (the realm column)']);
  t.notThrows(() => parseConfig(doc('r'.repeat(COLUMN_LIMITS.tokens.realm)), '/tmp'));
});
