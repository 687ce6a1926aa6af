/**
 * The read-only admin API (facts §1.9, §2) — GET /token/ filters and paging with the realm's resolver (wire fix 6),
 * GET /realm/, /resolver/, /user/, /audit/ — and the routing: an unknown path or method is a 404/405 envelope, never
 * another route's answer.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { KEY_HEX, RFC, asAdmin, check, enroll, enrollHotp, policy, usersYaml, world } from '../helpers/kit.ts';
import type { TestWorld } from '../helpers/test_app.ts';

function corp(t: ExecutionContext, policies: unknown[] = []): Promise<TestWorld> {
  return world(t, {
    config: {
      realms: [
        { name: 'corp', default: true, users: { type: 'file', path: 'users.yaml' } },
        { name: 'ext', users: { type: 'any' } },
      ],
      policies,
    },
    files: {
      'users.yaml': usersYaml([
        { username: 'alice', givenname: 'Alice', surname: 'Liddell', email: 'alice@example.org', phone: '+41 1' },
        { username: 'bob', email: 'bob@example.net' },
        { username: 'albert' },
      ]),
    },
  });
}

async function get(w: TestWorld, path: string, params: Record<string, unknown> = {}) {
  return w.call('GET', path, params, { headers: await asAdmin(w) });
}

function err(t: ExecutionContext, r: { status: number; body: any }, status: number, code: number, message: string) {
  t.is(r.status, status, message);
  t.deepEqual(r.body?.result?.error, { code, message }, message);
}

// ---------------------------------------------------------------------------------------------------------------
// routing

test('routing: the new POSTs no longer fall into DELETE /token/:serial; unknown paths 404 and methods 405 with the envelope', async (t) => {
  const w = await corp(t);
  const h = await asAdmin(w);
  for (const path of ['/token/assign', '/token/unassign', '/token/set']) {
    const r = await w.call('POST', path, {}, { headers: h });
    t.is(r.status, 400, path);
    t.is(r.body.result.error.code, 905, `${path} is its own route`);
  }
  const nonsense = await w.call('POST', '/token/nonsense', {}, { headers: h });
  err(t, nonsense, 405, 405, 'The method is not allowed for the requested URL.');
  err(t, await w.call('GET', '/realm/x', {}, { headers: h }), 404, 404, 'The requested URL was not found on the server.');
  err(t, await w.call('GET', '/nonsense/', {}, { headers: h }), 404, 404, 'The requested URL was not found on the server.');
  err(t, await w.call('DELETE', '/realm/', {}, { headers: h }), 405, 405, 'The method is not allowed for the requested URL.');
  err(t, await w.call('POST', '/audit/', {}, { headers: h }), 405, 405, 'The method is not allowed for the requested URL.');
  for (const path of ['/realm', '/resolver', '/user', '/audit'])
    t.is((await w.call('GET', path, {}, { headers: h })).status, 200, `${path} without the trailing slash too`);
});

// ---------------------------------------------------------------------------------------------------------------
// GET /token/

test("GET /token/ (privacyideaadm token list): the owner's resolver is the realm's resolver; the table fields", async (t) => {
  const w = await corp(t);
  await enrollHotp(w, { description: 'phone' });
  await enroll(w, { type: 'spass', user: 'carol@ext', pin: 'x', serial: 'PISP0001' });
  await enroll(w, { type: 'totp', genkey: 1, serial: 'TOTP0001' });
  const r = await get(w, '/token/', {});
  t.is(r.status, 200);
  const v = r.body.result.value;
  t.like(v, { count: 3, current: 1, next: null, prev: null });
  const by = Object.fromEntries(v.tokens.map((x: any) => [x.serial, x]));
  // the columns privacyideaadm prints: Id, Desc, S/N, User, Resolver, MaxFail, Active, FailCount, Window
  t.like(by.OATH0001, {
    description: 'phone',
    username: 'alice',
    resolver: 'corp_file',
    maxfail: 10,
    active: true,
    failcount: 0,
    sync_window: 1000,
    user_realm: 'corp',
    user_id: 'alice',
  });
  t.is(typeof by.OATH0001.id, 'number');
  t.like(by.PISP0001, { username: 'carol', resolver: 'ext_any', user_realm: 'ext' });
  t.like(by.TOTP0001, { username: '', resolver: '', user_realm: '', realms: [] });
  t.false('user_editable' in by.TOTP0001, 'user_editable only for owned tokens');
  for (const tok of v.tokens)
    for (const value of Object.values(tok.info)) t.is(typeof value, 'string', 'info values are strings (Java client)');
});

test('GET /token/: eduMFA filters (wildcards, case), sortby/sortdir, pagesize default 15', async (t) => {
  const w = await corp(t);
  await enrollHotp(w, { description: 'Work Phone' });
  await enroll(w, { type: 'hotp', otpkey: KEY_HEX, user: 'bob', serial: 'OATH0002' });
  await enroll(w, { type: 'spass', user: 'carol@ext', pin: 'x', serial: 'PISP0001' });
  for (let i = 0; i < 14; i++) await enroll(w, { type: 'totp', genkey: 1, serial: `TOTP${String(i).padStart(4, '0')}` });
  await w.call('POST', '/token/disable/TOTP0000', {}, { headers: await asAdmin(w) });
  const serials = async (params: Record<string, unknown>) =>
    (await get(w, '/token/', params)).body.result.value.tokens.map((x: any) => x.serial);
  const all = (await get(w, '/token/', {})).body.result.value;
  t.like(all, { count: 17, current: 1, next: 2, prev: null });
  t.is(all.tokens.length, 15, 'pagesize 15 by default');
  t.is(all.tokens[0].serial, 'OATH0001', 'sorted by serial');
  t.deepEqual(await serials({ serial: 'OATH*' }), ['OATH0001', 'OATH0002']);
  t.deepEqual(await serials({ serial: 'oath*' }), [], 'serial compares with case');
  t.deepEqual(await serials({ serial: '*', type: 'HOTP' }), ['OATH0001', 'OATH0002'], 'type without case; a lone * filters nothing');
  t.deepEqual(await serials({ tokenrealm: 'EXT' }), ['PISP0001']);
  t.deepEqual(await serials({ resolver: 'corp_file' }), ['OATH0001', 'OATH0002']);
  t.deepEqual(await serials({ userid: 'b*' }), ['OATH0002']);
  t.deepEqual(await serials({ description: '*phone' }), ['OATH0001'], 'description without case, wildcard');
  t.deepEqual(await serials({ assigned: 'True', sortby: 'serial', sortdir: 'desc' }), ['PISP0001', 'OATH0002', 'OATH0001']);
  t.deepEqual(await serials({ active: 'false' }), ['TOTP0000']);
  t.deepEqual(await serials({ infokey: 'hashlib', infovalue: 'sha1', type: 'hotp' }), ['OATH0001', 'OATH0002']);
  t.deepEqual(await serials({ infokey: 'hashlib', infovalue: 'sha25' }), [], 'info values match exactly');
  t.deepEqual(await serials({ user: 'bob' }), ['OATH0002']);
  t.deepEqual(await serials({ sortby: 'failcount', pagesize: 2, page: 9 }), ['TOTP0013'], 'page 9 of 2');
  err(t, await get(w, '/token/', { user: 'ghost' }), 400, 904, 'ERR904: The user can not be found in any resolver in this realm!');
  err(t, await get(w, '/token/', { pagesize: 'x' }), 400, 905, "ERR905: Invalid pagesize 'x': an integer from 1 to 1000.");
});

test('GET /token/: admin policies without tokenlist list nothing; with it, everything', async (t) => {
  const w = await corp(t, [policy('enroller', 'admin', { enroll: true })]);
  await enrollHotp(w);
  t.like((await get(w, '/token/')).body.result.value, { count: 0, tokens: [] });
  const w2 = await corp(t, [policy('lister', 'admin', { enroll: true, tokenlist: true })]);
  await enrollHotp(w2);
  t.like((await get(w2, '/token/')).body.result.value, { count: 1 });
});

// ---------------------------------------------------------------------------------------------------------------
// realm, resolver, user

test('GET /realm/ (privacyideaadm realm list): realms with default flag and their resolver', async (t) => {
  const w = await corp(t);
  const r = await get(w, '/realm/');
  t.is(r.status, 200);
  t.deepEqual(r.body.result.value, {
    corp: { id: 1, option: '', default: true, resolver: [{ name: 'corp_file', type: 'fileresolver', priority: null }] },
    ext: { id: 2, option: '', default: false, resolver: [{ name: 'ext_any', type: 'anyresolver', priority: null }] },
  });
});

test('GET /resolver/ (privacyideaadm resolver list): the user stores; by name, by type; right resolverread', async (t) => {
  const w = await corp(t);
  const all = (await get(w, '/resolver/')).body.result.value;
  t.deepEqual(Object.keys(all), ['corp_file', 'ext_any']);
  t.like(all.corp_file, { type: 'fileresolver', resolvername: 'corp_file', censor_keys: [] });
  t.regex(all.corp_file.data.fileName, /users\.yaml$/);
  t.deepEqual(all.ext_any.data, {});
  t.deepEqual(Object.keys((await get(w, '/resolver/CORP_FILE')).body.result.value), ['corp_file'], 'name without case');
  t.deepEqual((await get(w, '/resolver/nope')).body.result.value, {}, 'unknown name: {}');
  t.deepEqual(Object.keys((await get(w, '/resolver/', { type: 'anyresolver' })).body.result.value), ['ext_any']);
  t.deepEqual((await get(w, '/resolver/', { editable: '1' })).body.result.value, {}, 'no store is editable');
  const w2 = await corp(t, [policy('x', 'admin', { userlist: true })]);
  err(t, await get(w2, '/resolver/'), 403, 303, 'Admin actions are defined, but the action resolverread is not allowed!');
});

test('GET /user/ (privacyideaadm user list: username=*): users of the file store; patterns; any stores list nobody; right userlist', async (t) => {
  const w = await corp(t);
  const r = await get(w, '/user/', { username: '*' });
  t.is(r.status, 200);
  t.deepEqual(r.body.result.value[0], {
    username: 'alice',
    userid: 'alice',
    givenname: 'Alice',
    surname: 'Liddell',
    email: 'alice@example.org',
    phone: '+41 1',
    resolver: 'corp_file',
    editable: false,
  });
  t.deepEqual(
    r.body.result.value.map((u: any) => u.username),
    ['alice', 'bob', 'albert'],
    'the ext (any) realm lists nobody',
  );
  const names = async (params: Record<string, unknown>) => (await get(w, '/user/', params)).body.result.value.map((u: any) => u.username);
  t.deepEqual(await names({ username: 'AL*' }), ['alice', 'albert'], 'without case, * at the end');
  t.deepEqual(await names({ user: '*ert' }), ['albert']);
  t.deepEqual(await names({ email: '*@example.org' }), ['alice']);
  t.deepEqual(await names({ realm: 'ext' }), []);
  t.deepEqual(await names({ realm: 'corp', username: 'bob' }), ['bob']);
  t.deepEqual(await names({ resolver: 'corp_file', surname: 'Liddell' }), ['alice']);
  t.deepEqual(await names({ shoesize: '42' }), [], 'an attribute the store does not have matches nobody');
  const w2 = await corp(t, [policy('x', 'admin', { resolverread: true })]);
  err(t, await get(w2, '/user/'), 403, 303, 'Admin actions are defined, but the action userlist is not allowed!');
});

// ---------------------------------------------------------------------------------------------------------------
// audit

test('GET /audit/ (privacyideaadm audit list: page, rp, sortname, sortorder, query, qtype): entries with eduMFA names, newest first', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  const accepted = await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  await check(w, { user: 'alice', pass: 'wrong' });
  const r = await get(w, '/audit/', { page: 1, rp: 2, sortname: 'number', sortorder: 'desc', query: 'x', qtype: 'serial' });
  t.is(r.status, 200);
  const v = r.body.result.value;
  t.like(v, { count: 4, current: 1, next: null, prev: null }, 'rp/query/qtype are not eduMFA parameters: ignored as eduMFA does');
  t.deepEqual(
    v.auditdata.map((e: any) => e.action),
    ['POST /validate/check', 'POST /validate/check', 'POST /token/init', 'POST /auth'],
  );
  t.deepEqual(v.auditdata[1], {
    number: v.auditdata[1].number,
    date: '2026-11-25T12:00:00.000Z',
    action: 'POST /validate/check',
    success: 1,
    serial: 'OATH0001',
    user: 'alice',
    realm: 'corp',
    resolver: 'corp_file',
    administrator: '',
    info: v.auditdata[1].info,
    policies: '',
    client: '127.0.0.1',
    outcome: 'ACCEPT',
    transaction_id: '',
    request_id: accepted.headers.get('x-request-id'),
    application: '',
    edumfa_server: w.deps.config.server.nodeName,
  });
  t.is(v.auditdata[0].success, 0);
  t.deepEqual(v.auditcolumns, Object.keys(v.auditdata[0]));
  t.true(v.auditdata[0].number > v.auditdata[1].number);
});

test('GET /audit/: page_size, sortorder, column filters (*, success, serial, date prefix), timelimit; right auditlog', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  await check(w, { user: 'alice', pass: '1234' + RFC[0] });
  w.clock.advance(40 * 60_000);
  await check(w, { user: 'bob', pass: 'x' });
  await w.call('POST', '/token/assign', { user: 'bob', serial: 'OATH0001' }, { headers: await asAdmin(w) });
  // Each GET /audit/ is audited too: the queries look at the POSTs only (a filter on action).
  const value = async (params: Record<string, unknown>) => (await get(w, '/audit/', { action: 'POST*', ...params })).body.result.value;
  const actions = async (params: Record<string, unknown>) => (await value(params)).auditdata.map((e: any) => `${e.action} ${e.user}`);
  const p = await value({ page_size: 2, page: 2, sortorder: 'asc' });
  t.like(p, { count: 5, current: 2, next: 3, prev: 1 });
  t.deepEqual(
    p.auditdata.map((e: any) => `${e.action} ${e.user}`),
    ['POST /validate/check alice', 'POST /validate/check bob'],
  );
  t.deepEqual(await actions({ user: 'alice' }), ['POST /validate/check alice', 'POST /token/init alice']);
  t.deepEqual(await actions({ action: '*/token/*' }), ['POST /token/assign bob', 'POST /token/init alice']);
  t.deepEqual(await actions({ success: '0' }), ['POST /token/assign bob', 'POST /validate/check bob']);
  t.deepEqual(await actions({ serial: 'OATH0001', action: 'POST /validate/check' }), ['POST /validate/check alice']);
  t.deepEqual(await actions({ date: '2026-11-25T12:00*' }), ['POST /validate/check alice', 'POST /token/init alice', 'POST /auth ']);
  t.deepEqual(await actions({ date: '2026-11-25T12:40*', administrator: 'admin' }), ['POST /token/assign bob']);
  t.deepEqual(await actions({ timelimit: '30m' }), ['POST /token/assign bob', 'POST /validate/check bob']);
  // the realm of a row is the realm the request resolved to (init and the refused assign named none)
  t.deepEqual(await actions({ resolver: 'corp_file', sortorder: 'asc' }), ['POST /validate/check alice', 'POST /validate/check bob']);
  err(
    t,
    await get(w, '/audit/', { timelimit: 'soon' }),
    400,
    905,
    "ERR905: Invalid timelimit 'soon': a number with s, m, h, d or y (e.g. 1d).",
  );
  err(
    t,
    await get(w, '/audit/', { date: '25.11.2026' }),
    400,
    905,
    "ERR905: Invalid date filter '25.11.2026': use a prefix like 2026-08-21*.",
  );
  const w2 = await corp(t, [policy('x', 'admin', { tokenlist: true })]);
  err(t, await get(w2, '/audit/'), 403, 303, 'Admin actions are defined, but the action auditlog is not allowed!');
});

test('every admin read and change is audited with the route, the admin and the outcome', async (t) => {
  const w = await corp(t);
  await enrollHotp(w);
  for (const path of ['/token/', '/realm/', '/resolver/', '/user/', '/audit/']) t.is((await get(w, path)).status, 200, path);
  await get(w, '/user/', { realm: 'nope' });
  const rows = (await w.deps.store.audit.tail(100)).filter((a) => a.action.startsWith('GET '));
  t.deepEqual(
    rows.map((a) => [a.action, a.outcome, a.admin]),
    [
      ['GET /token/', 'OK', 'admin'],
      ['GET /realm/', 'OK', 'admin'],
      ['GET /resolver/', 'OK', 'admin'],
      ['GET /user/', 'OK', 'admin'],
      ['GET /audit/', 'OK', 'admin'],
      ['GET /user/', 'OK', 'admin'],
    ],
  );
  const denied = await w.call('GET', '/audit/', {}, { headers: { Authorization: 'nope' } });
  t.is(denied.status, 401);
  t.like((await w.deps.store.audit.tail(1))[0], { action: 'GET /audit/', success: false, outcome: 'ERROR' });
});
