/**
 * server/routes/auth.ts and server/auth/jwt.ts: POST /auth (admin login → JWT with integer exp), the raw-JWT
 * Authorization header and its failures.
 */
import test from 'ava';
import { signJwt, verifyJwt } from '../../server/auth/jwt.ts';
import { AuthError } from '../../server/errors.ts';
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
  for (const params of [{ username: 'admin', password: 'nope' }, { username: 'ghost', password: 'admin-pw' }, { username: 'admin', password: '' }]) {
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
    signJwt({ sub: 'admin', role: 'admin', iat: 0, exp: 9_999_999_999 }, Buffer.alloc(32, 7)),
    `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${body}.`,
    'a.b',
    '',
  ];
  for (const bad of cases) {
    const r = await w.call('GET', '/token/', {}, { headers: { Authorization: bad } });
    t.is(r.status, 401, bad);
  }
  t.is((await w.call('GET', '/token/', {}, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
  await w.deps.store.admins.delete('admin');
  const gone = await w.call('GET', '/token/', {}, { headers: { Authorization: token } });
  t.is(gone.status, 401);
  t.is(gone.body.result.error.code, 4031);
});

test('verifyJwt: expiry boundary and signature checks (unit)', (t) => {
  const key = Buffer.alloc(32, 1);
  const tok = signJwt({ sub: 'a', role: 'admin', iat: 100, exp: 200 }, key);
  t.is(verifyJwt(tok, key, 199_999).sub, 'a');
  const exp = t.throws(() => verifyJwt(tok, key, 200_000), { instanceOf: AuthError });
  t.is(exp!.code, 4305);
  const wrong = t.throws(() => verifyJwt(tok, Buffer.alloc(32, 2), 0), { instanceOf: AuthError });
  t.is(wrong!.code, 4304);
  const noExp = signJwt({ sub: 'a', role: 'admin', iat: 1 } as never, key);
  t.throws(() => verifyJwt(noExp, key, 0), { instanceOf: AuthError });
});

test('the JWT key is derived from the secrets key: another world does not accept it', async (t) => {
  const a = await world(t);
  const b = await world(t);
  await b.adminToken();
  const token = await a.adminToken();
  t.is((await b.call('GET', '/token/', {}, { headers: { Authorization: token } })).status, 401);
});
