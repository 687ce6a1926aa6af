/**
 * server/routes/auth.ts and server/auth/jwt.ts: POST /auth (admin login → JWT with integer exp), the raw-JWT
 * Authorization header and its failures.
 */
import crypto from 'node:crypto';
import test from 'ava';
import { signJwt, verifyJwt } from '../../server/auth/jwt.ts';
import { AuthError } from '../../core/errors.ts';
import { world } from '../helpers/kit.ts';
import type { TestWorld } from '../helpers/test_app.ts';

async function withAdmin(w: TestWorld, name = 'admin', pw = 'admin-pw'): Promise<void> {
  await w.deps.store.admins.insert(name, await w.deps.pins.hash(pw), w.clock.now());
}

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

test('POST /auth: JWT with integer exp, result.value.token and role admin', async (t) => {
  const w = await world(t, { config: { admin: { jwt_ttl_seconds: 600 } } });
  await withAdmin(w);
  const r = await w.call('POST', '/auth', { username: 'admin', password: 'admin-pw' });
  t.is(r.status, 200);
  t.like(r.body, { jsonrpc: '2.0', id: 1, result: { status: true, value: { role: 'admin', username: 'admin', realm: '' } } });
  const token = r.body.result.value.token as string;
  t.regex(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const head = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'));
  t.deepEqual(head, { alg: 'HS256', typ: 'JWT' });
  const c = claimsOf(token);
  t.true(Number.isInteger(c.exp), `exp ${String(c.exp)}`);
  t.true(Number.isInteger(c.iat));
  t.is(c.iat, Math.floor(w.clock.now() / 1000));
  t.is(c.exp, (c.iat as number) + 600);
  t.is(c.sub, 'admin');
  t.is(c.role, 'admin');
  t.true(Array.isArray(r.body.result.value.rights));
  t.true(r.body.result.value.rights.includes('enroll'));
  // JSON works as well
  const j = await w.call('POST', '/auth', { username: 'admin', password: 'admin-pw' }, { as: 'json' });
  t.is(j.status, 200);
});

test('POST /auth: wrong password and unknown admin are the same 401 code 4031', async (t) => {
  const w = await world(t);
  await withAdmin(w);
  for (const params of [
    { username: 'admin', password: 'nope' },
    { username: 'ghost', password: 'admin-pw' },
    { username: 'admin', password: '' },
  ]) {
    const r = await w.call('POST', '/auth', params);
    t.is(r.status, 401);
    t.deepEqual(r.body.result, { status: false, error: { code: 4031, message: 'Authentication failure. Wrong credentials' } });
    t.is(r.body.detail, null);
    t.false(r.text.includes('admin-pw'));
  }
  const missing = await w.call('POST', '/auth', { password: 'x' });
  t.is(missing.status, 400);
  t.is(missing.body.result.error.message, "ERR905: Missing parameter: 'username'");
  const noPw = await w.call('POST', '/auth', { username: 'admin' });
  t.is(noPw.body.result.error.message, "ERR905: Missing parameter: 'password'");
});

test('JWT expiry: after admin.jwt_ttl_seconds the token is refused with 401', async (t) => {
  const w = await world(t, { config: { admin: { jwt_ttl_seconds: 300 } } });
  const token = await w.adminToken();
  const h = { Authorization: token };
  t.is((await w.call('GET', '/token/', {}, { headers: h })).status, 200);
  w.clock.advance(299_000);
  t.is((await w.call('GET', '/token/', {}, { headers: h })).status, 200, 'still valid one second before exp');
  w.clock.advance(1_000);
  const r = await w.call('GET', '/token/', {}, { headers: h });
  t.is(r.status, 401);
  t.deepEqual(r.body.result.error, { code: 4305, message: 'Authentication failure. Your token has expired.' });
  const trig = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h });
  t.is(trig.status, 401);
});

test('Authorization: tampered, foreign-key, wrong alg, deleted admin → 401', async (t) => {
  const w = await world(t);
  const token = await w.adminToken();
  const [head, body, sig] = token.split('.') as [string, string, string];
  const forged = Buffer.from(JSON.stringify({ ...claimsOf(token), sub: 'root' })).toString('base64url');
  const cases: string[] = [
    `${head}.${forged}.${sig}`,
    `${head}.${body}.${sig.slice(0, -2)}AA`,
    await signJwt({ sub: 'admin', role: 'admin', iat: 0, exp: 9_999_999_999 }, Buffer.alloc(32, 7)),
    `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${body}.`,
    'a.b',
    '',
  ];
  for (const bad of cases) {
    const r = await w.call('GET', '/token/', {}, { headers: { Authorization: bad } });
    t.is(r.status, 401, bad);
  }
  for (const [label, bad] of hostileTokens(token, w.deps.jwtKey)) {
    const r = await w.call('GET', '/token/', {}, { headers: { Authorization: bad } });
    t.is(r.status, 401, label);
    t.deepEqual(r.body.result?.error, { code: 4304, message: 'Authentication failure. Error during decoding your token.' }, label);
  }
  t.is((await w.call('GET', '/token/', {}, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
  await w.deps.store.admins.delete('admin');
  const gone = await w.call('GET', '/token/', {}, { headers: { Authorization: token } });
  t.is(gone.status, 401);
  t.is(gone.body.result.error.code, 4031);
});

test('verifyJwt: expiry boundary and signature checks (unit)', async (t) => {
  const key = Buffer.alloc(32, 1);
  const tok = await signJwt({ sub: 'a', role: 'admin', iat: 100, exp: 200 }, key);
  t.is((await verifyJwt(tok, key, 199_999)).sub, 'a');
  t.is((await verifyJwt(`Bearer ${tok}`, key, 199_999)).sub, 'a');
  const exp = await t.throwsAsync(verifyJwt(tok, key, 200_000), { instanceOf: AuthError });
  t.is(exp.code, 4305);
  t.is(exp.message, 'Authentication failure. Your token has expired.');
  const wrong = await t.throwsAsync(verifyJwt(tok, Buffer.alloc(32, 2), 0), { instanceOf: AuthError });
  t.is(wrong.code, 4304);
  t.is(wrong.message, 'Authentication failure. Error during decoding your token.');
  const noExp = await signJwt({ sub: 'a', role: 'admin', iat: 1 } as never, key);
  t.is((await t.throwsAsync(verifyJwt(noExp, key, 0), { instanceOf: AuthError })).code, 4304);
  const fracExp = await signJwt({ sub: 'a', role: 'admin', iat: 1, exp: 'soon' } as never, key);
  t.is((await t.throwsAsync(verifyJwt(fracExp, key, 0), { instanceOf: AuthError })).code, 4304);
});

/**
 * Tokens an attacker builds from a genuine one (`good`, signed with `key`): each must be refused. Signatures made
 * with `key` itself stand for "the attacker got the check wrong", not "knows the key": they show which check stops
 * the token (the alg check, the canonical-signature check), since the HMAC alone would pass them.
 */
function hostileTokens(good: string, key: Buffer): Array<[string, string]> {
  const [head, body, sig] = good.split('.') as [string, string, string];
  const enc = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
  const hmac = (hash: string, h: string, b: string) => crypto.createHmac(hash, key).update(`${h}.${b}`).digest('base64url');
  const withAlg = (alg: string, hash = 'sha256') => {
    const h = enc({ alg, typ: 'JWT' });
    return `${h}.${body}.${hmac(hash, h, body)}`;
  };
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<string, unknown>;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(sig.at(-1)!);
  const spaced = enc(JSON.stringify(claims, null, 1));
  return [
    ['alg none, HS256 signature', withAlg('none')],
    ['alg none, no signature', `${enc({ alg: 'none', typ: 'JWT' })}.${body}.`],
    ['alg HS512 header, HS256 signature', withAlg('HS512')],
    ['alg HS512, HS512 signature', withAlg('HS512', 'sha512')],
    ['alg HS384, HS384 signature', withAlg('HS384', 'sha384')],
    ['alg RS256 header, HS256 signature', withAlg('RS256')],
    ['alg hs256 (case)', withAlg('hs256')],
    ['signature + !!', `${good}!!`],
    ['signature + ==', `${good}==`],
    ['signature + =', `${good}=`],
    ['signature + +/', `${good}+/`],
    ['signature + A', `${good}A`],
    ['signature with inner space', `${head}.${body}.${sig.slice(0, 20)} ${sig.slice(20)}`],
    ['signature with inner tab', `${head}.${body}.${sig.slice(0, 20)}\t${sig.slice(20)}`],
    ['signature, last character differs in unused bits', `${head}.${body}.${sig.slice(0, -1)}${alphabet[last ^ 1]!}`],
    ['signature re-encoded as standard base64', `${head}.${body}.${Buffer.from(sig, 'base64url').toString('base64')}`],
    [
      'signature re-encoded as standard base64 (no padding)',
      `${head}.${body}.${Buffer.from(sig, 'base64url').toString('base64').replace(/=+$/, '')}`,
    ],
    ['payload re-encoded with whitespace, old signature', `${head}.${spaced}.${sig}`],
    ['payload segment with inner space', `${head}.${body.slice(0, 10)} ${body.slice(10)}.${sig}`],
    ['header re-encoded with whitespace, old signature', `${enc('{ "alg": "HS256", "typ": "JWT" }')}.${body}.${sig}`],
    ['four segments', `${good}.${sig}`],
  ].filter(([, bad]) => bad !== good) as Array<[string, string]>; // a signature without '-' or '_' re-encodes to itself
}

/** A genuine token whose signature holds a '-' or '_', so its standard-base64 form differs in more than padding. */
async function goodToken(key: Buffer, sub = 'a', exp = 9_999_999_999): Promise<string> {
  for (let iat = 1; ; iat++) {
    const tok = await signJwt({ sub, role: 'admin', iat, exp }, key);
    if (/[-_]/.test(tok.split('.')[2]!)) return tok;
  }
}

test('verifyJwt: only HS256 and only the canonical base64url signature are accepted (unit)', async (t) => {
  const key = Buffer.alloc(32, 1);
  const good = await goodToken(key);
  t.is((await verifyJwt(good, key, 0)).sub, 'a');
  for (const [label, bad] of hostileTokens(good, key)) {
    const err = await t.throwsAsync(verifyJwt(bad, key, 0), { instanceOf: AuthError }, label);
    t.is(err?.code, 4304, label);
  }
});

test('the JWT key is derived from the secrets key: another world does not accept it', async (t) => {
  const a = await world(t);
  const b = await world(t);
  await b.adminToken();
  const token = await a.adminToken();
  t.is((await b.call('GET', '/token/', {}, { headers: { Authorization: token } })).status, 401);
});
