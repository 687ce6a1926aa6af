/**
 * server/params.ts: query, urlencoded form, multipart, JSON and raw JSON bodies; the `state` alias; eduMFA's
 * second-unquote rule (protocol.md §6.1); body limits and broken bodies. Unit parts use an echo server around
 * parseRequestParams; the integration parts go through the real app.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { decodesTwice, lenientUnquote, makeParams, parseRequestParams } from '../../server/params.ts';
import { MfaError } from '../../core/errors.ts';
import { RFC, check, enrollHotp, rawRequest, world, type Teardown } from '../helpers/kit.ts';

// ---------------------------------------------------------------------------------------------------------------
// Echo server: parseRequestParams in isolation, over real HTTP

interface Echo {
  url: string;
}

async function echo(t: Teardown, limit = 1024): Promise<Echo> {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    parseRequestParams(req, u.searchParams, limit).then(
      (p) => {
        const raw: Record<string, unknown> = {};
        for (const k of Object.keys(p.all())) raw[k] = p.raw(k);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true, all: p.all(), raw, transaction_id: p.get('transaction_id') ?? null }));
      },
      (err: unknown) => {
        res.statusCode = err instanceof MfaError ? err.status : 599;
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            ok: false,
            code: err instanceof MfaError ? err.code : null,
            message: err instanceof MfaError ? err.wireMessage : String(err),
          }),
        );
      },
    );
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function post(e: Echo, init: { body?: string | FormData; headers?: Record<string, string>; query?: string; method?: string }) {
  const res = await fetch(`${e.url}/p${init.query ? `?${init.query}` : ''}`, {
    method: init.method ?? 'POST',
    body: init.body,
    headers: init.headers,
  });
  return { status: res.status, body: (await res.json()) as any };
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

// ---------------------------------------------------------------------------------------------------------------
// Pure functions

test('lenientUnquote: decodes valid %XX runs once, keeps everything else like Python unquote', (t) => {
  t.is(lenientUnquote('%41'), 'A');
  t.is(lenientUnquote('%2541'), '%41', 'one pass only');
  t.is(lenientUnquote('100%'), '100%');
  t.is(lenientUnquote('%zz%4'), '%zz%4');
  t.is(lenientUnquote('a+b'), 'a+b', '+ is not a space in unquote');
  t.is(lenientUnquote('%C3%A9t%C3%A9'), 'été');
  t.is(lenientUnquote('%C3'), '\uFFFD', 'broken UTF-8 becomes U+FFFD, no exception');
  t.is(lenientUnquote('%41%C3x'), 'A\uFFFDx');
  t.is(lenientUnquote('plain'), 'plain');
});

test('decodesTwice: only the listed product tokens decode once; no User-Agent decodes twice', (t) => {
  t.true(decodesTwice(undefined));
  t.true(decodesTwice(''));
  t.false(decodesTwice('simpleSAMLphp/1.0'));
  t.false(decodesTwice('simpleSAMLphp'));
  t.false(decodesTwice('eduMFA-LDAP-Proxy/1.2'));
  t.false(decodesTwice('eduMFA-cp/1.0 (Windows NT)'));
  t.true(decodesTwice('simpleSAMLphpX/1.0'), 'the whole product token must match');
  t.true(decodesTwice('FreeRADIUS/3.0'));
  t.true(decodesTwice('curl/8.5.0'));
  t.true(decodesTwice('Mozilla/5.0 simpleSAMLphp'), 'only the leading product token counts');
});

test('makeParams: state is an alias of transaction_id, transaction_id wins, require vs requireNonEmpty', (t) => {
  const p = makeParams({ state: '123', pass: '' });
  t.is(p.get('transaction_id'), '123');
  t.true(p.has('transaction_id'));
  t.is(p.get('state'), '123');
  t.is(p.require('pass'), '', 'pass may be empty');
  const e1 = t.throws(() => p.requireNonEmpty('pass'));
  t.is((e1 as MfaError).wireMessage, "ERR905: Missing parameter: 'pass'");
  t.is((e1 as MfaError).status, 400);
  const e2 = t.throws(() => p.require('user'));
  t.is((e2 as MfaError).wireMessage, "ERR905: Missing parameter: 'user'");
  t.false(p.has('user'));
  const both = makeParams({ state: '1', transaction_id: '2' });
  t.is(both.get('transaction_id'), '2');
  t.true(Object.isFrozen(p.all()));
  const j = makeParams({ n: '5' }, { n: 5 });
  t.is(j.raw('n'), 5);
  t.is(j.get('n'), '5');
});

// ---------------------------------------------------------------------------------------------------------------
// Sources and the second unquote, via the echo server

test('query: decoded twice by default, once for simpleSAMLphp', async (t) => {
  const e = await echo(t);
  const twice = await post(e, { method: 'GET', query: 'user=alice&pass=%2541%2542' });
  t.deepEqual(twice.body.all, { user: 'alice', pass: 'AB' });
  const once = await post(e, { method: 'GET', query: 'pass=%2541', headers: { 'user-agent': 'simpleSAMLphp/1.0' } });
  t.deepEqual(once.body.all, { pass: '%41' });
});

test('form: %2541 becomes A (twice), %41 for simpleSAMLphp and the other single-decode clients', async (t) => {
  const e = await echo(t);
  const twice = await post(e, { body: 'pass=1234%2535&user=a%2540b', headers: FORM });
  t.deepEqual(twice.body.all, { pass: '12345', user: 'a@b' });
  for (const ua of ['simpleSAMLphp/1.0', 'eduMFA-LDAP-Proxy/1', 'eduMFA-cp/2.0']) {
    const once = await post(e, { body: 'pass=1234%2535', headers: { ...FORM, 'user-agent': ua } });
    t.is(once.body.all.pass, '1234%35', ua);
  }
  const plus = await post(e, { body: 'pass=a+b%2Bc', headers: FORM });
  t.is(plus.body.all.pass, 'a b+c', 'form + is a space in the first decode, the second keeps +');
});

test('form: no User-Agent at all decodes twice (node:http sends none)', async (t) => {
  const e = await echo(t);
  const r = await rawRequest(e.url, { path: '/p', headers: FORM, body: 'pass=%2541' });
  t.is(r.body.all.pass, 'A');
});

test('multipart: fields are read, [] suffix dropped, values (not transport-encoded) unquoted once unless single-decode client', async (t) => {
  const e = await echo(t);
  const fd = new FormData();
  fd.append('user', 'alice');
  fd.append('pass', '12%2534');
  fd.append('serial[]', 'OATH0001');
  const r = await post(e, { body: fd });
  t.deepEqual(r.body.all, { user: 'alice', pass: '12%34', serial: 'OATH0001' });
  const fd2 = new FormData();
  fd2.append('pass', '12%2534');
  const once = await post(e, { body: fd2, headers: { 'user-agent': 'simpleSAMLphp/1.0' } });
  t.is(once.body.all.pass, '12%2534');
});

test('JSON: values never decoded a second time, numbers and booleans keep their type in raw()', async (t) => {
  const e = await echo(t);
  const r = await post(e, {
    body: JSON.stringify({ pass: '%41', n: 6, b: true, nothing: null, obj: { a: 1 } }),
    headers: { 'content-type': 'application/json' },
  });
  t.deepEqual(r.body.all, { pass: '%41', n: '6', b: 'true', nothing: '', obj: '{"a":1}' });
  t.is(r.body.raw.n, 6);
  t.is(r.body.raw.b, true);
  t.is(r.body.raw.pass, '%41');
});

test('raw JSON body without a content type is parsed as JSON', async (t) => {
  const e = await echo(t);
  const r = await rawRequest(e.url, { path: '/p', body: '  {"user":"alice","pass":"%41"}' });
  t.is(r.status, 200);
  t.deepEqual(r.body.all, { user: 'alice', pass: '%41' });
});

test("a JSON body under a non-form content type (text/plain, as fetch sends by default) is JSON, like eduMFA's request.data", async (t) => {
  const e = await echo(t);
  const plain = await post(e, {
    body: JSON.stringify({ user: 'alice', pass: '%41' }),
    headers: { 'content-type': 'text/plain;charset=UTF-8' },
  });
  t.is(plain.status, 200);
  t.deepEqual(plain.body.all, { user: 'alice', pass: '%41' });
  const form = await post(e, { body: '{"user":"alice"}', headers: FORM });
  t.deepEqual(form.body.all, { '{"user":"alice"}': '' }, 'a urlencoded form is never read as JSON');
});

test('query and form merge; the query wins for the same name (eduMFA request.values), JSON overrides both', async (t) => {
  const e = await echo(t);
  const r = await post(e, { query: 'user=q&realm=r1', body: 'user=b&pass=p', headers: FORM });
  t.deepEqual(r.body.all, { user: 'q', realm: 'r1', pass: 'p' });
  const j = await post(e, {
    query: 'user=q&realm=r1',
    body: JSON.stringify({ user: 'j' }),
    headers: { 'content-type': 'application/json' },
  });
  t.deepEqual(j.body.all, { user: 'j', realm: 'r1' });
  const text = await post(e, { query: 'realm=r1', body: 'user=b', headers: { 'content-type': 'text/plain' } });
  t.deepEqual(text.body.all, { realm: 'r1' }, 'a body that is neither form nor JSON is ignored');
});

test('state alias arrives from every source', async (t) => {
  const e = await echo(t);
  t.is((await post(e, { method: 'GET', query: 'state=111' })).body.transaction_id, '111');
  t.is((await post(e, { body: 'state=222', headers: FORM })).body.transaction_id, '222');
  t.is(
    (await post(e, { body: JSON.stringify({ state: '333' }), headers: { 'content-type': 'application/json' } })).body.transaction_id,
    '333',
  );
  const fd = new FormData();
  fd.append('state', '444');
  t.is((await post(e, { body: fd })).body.transaction_id, '444');
});

test('broken bodies: invalid JSON, non-object JSON, NUL bytes → 400 code 905', async (t) => {
  const e = await echo(t);
  const bad = await post(e, { body: '{"user": ', headers: { 'content-type': 'application/json' } });
  t.is(bad.status, 400);
  t.deepEqual(bad.body, { ok: false, code: 905, message: 'ERR905: Invalid JSON in the request body.' });
  const raw = await rawRequest(e.url, { path: '/p', body: '{"user": ' });
  t.is(raw.status, 400, 'raw JSON without content type is judged as JSON too');
  t.is(raw.body.message, 'ERR905: Invalid JSON in the request body.');
  const arr = await post(e, { body: '[1,2]', headers: { 'content-type': 'application/json' } });
  t.is(arr.body.message, 'ERR905: The JSON body must be an object.');
  const nul = await post(e, { body: 'user=a%00b', headers: FORM });
  t.is(nul.status, 400);
  t.is(nul.body.message, "ERR905: Invalid parameter 'user'.");
});

test('body limit: declared length, chunked stream and multipart field over the limit → 413; file upload → 400', async (t) => {
  const e = await echo(t, 1024);
  const big = 'pass=' + 'x'.repeat(2000);
  const declared = await post(e, { body: big, headers: FORM });
  t.is(declared.status, 413);
  t.deepEqual(declared.body, { ok: false, code: 905, message: 'ERR905: Request body exceeds 1024 bytes.' });
  const chunked = await rawRequest(e.url, { path: '/p', headers: FORM, chunks: ['pass=', 'y'.repeat(600), 'y'.repeat(600)] });
  t.is(chunked.status, 413);
  const fd = new FormData();
  fd.append('pass', 'z'.repeat(3000));
  const multi = await post(e, { body: fd });
  t.is(multi.status, 413);
  t.is(multi.body.code, 905);
  const file = new FormData();
  file.append('upload', new Blob(['hello']), 'a.txt');
  const up = await post(e, { body: file });
  t.is(up.status, 400);
  t.is(up.body.message, 'ERR905: File uploads are not accepted.');
  const exact = await post(e, { body: 'p=' + 'x'.repeat(1022), headers: FORM });
  t.is(exact.status, 200, 'a body of exactly the limit is accepted');
});

// ---------------------------------------------------------------------------------------------------------------
// Through the real app

test('app: a RADIUS-style double-encoded pass authenticates; the same bytes from simpleSAMLphp do not', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  // RAD URI-encodes the pass itself, then the form encoding adds a second layer.
  const encoded = '1234' + [...RFC[0]!].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('');
  const saml = await check(w, { user: 'alice', pass: encoded }, { headers: { 'user-agent': 'simpleSAMLphp/1.0' } });
  t.like(saml.body, { result: { value: false, authentication: 'REJECT' }, detail: { message: 'wrong otp pin' } });
  const rad = await check(w, { user: 'alice', pass: encoded }, { headers: { 'user-agent': 'FreeRADIUS 3.0' } });
  t.like(rad.body, { result: { value: true, authentication: 'ACCEPT' } });
});

test('app: GET query, form, multipart, JSON and raw JSON all reach /validate/check', async (t) => {
  const w = await world(t);
  await enrollHotp(w);
  let c = 0;
  const next = () => '1234' + RFC[c++]!;
  t.is((await w.call('GET', '/validate/check', { user: 'alice', pass: next() })).body.result.value, true);
  t.is((await check(w, { user: 'alice', pass: next() })).body.result.value, true);
  t.is((await check(w, { user: 'alice', pass: next() }, { as: 'multipart' })).body.result.value, true);
  t.is((await check(w, { user: 'alice', pass: next() }, { as: 'json' })).body.result.value, true);
  t.is((await w.call('POST', '/validate/check', { user: 'alice' }, { as: 'query' })).status, 400, 'pass is required');
  const raw = await rawRequest(w.url, { path: '/validate/check', body: JSON.stringify({ user: 'alice', pass: next() }) });
  t.is(raw.status, 200);
  t.is(raw.body.result.value, true);
});

test('app: body over server.body_limit_bytes → 413 with the error envelope', async (t) => {
  const w = await world(t, { config: { server: { public_url: 'https://mfa.example.org', body_limit_bytes: 1024 } } });
  const r = await check(w, { user: 'alice', pass: 'x'.repeat(4000) });
  t.is(r.status, 413);
  t.deepEqual(r.body, {
    jsonrpc: '2.0',
    id: 1,
    time: w.clock.now() / 1000,
    version: r.body.version,
    detail: null,
    result: { status: false, error: { code: 905, message: 'ERR905: Request body exceeds 1024 bytes.' } },
  });
  t.is(r.headers.get('cache-control'), 'no-cache');
});

test('app: invalid JSON → 400 code 905 with the error envelope', async (t) => {
  const w = await world(t);
  const r = await check(w, {}, { rawBody: '{"user": "alice", ', headers: { 'content-type': 'application/json' } });
  t.is(r.status, 400);
  t.deepEqual(r.body.result, { status: false, error: { code: 905, message: 'ERR905: Invalid JSON in the request body.' } });
  t.is(r.body.detail, null);
  t.is(r.body.id, 1);
});
