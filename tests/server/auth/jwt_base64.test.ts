/**
 * Issue 10, wire fix 4: every JWT we issue has a payload segment that the privacyIDEA Java client can decode. It
 * decodes `parts[1]` with java.util.Base64.getDecoder() — the RFC 4648 §4 alphabet (no '-' or '_'), padding
 * optional — and reads `exp` as an int; the /auth answer's top-level `time` too. A payload it cannot decode leaves it
 * without a token: it sends no Authorization header and the server answers 401 "Missing Authorization header".
 */
import test from 'ava';
import fc from 'fast-check';
import { signJwt, standardBase64Json, verifyJwt, type JwtClaims } from '../../../server/auth/jwt.ts';
import { enrollHotp, world } from '../../helpers/kit.ts';

/**
 * java.util.Base64.getDecoder().decode(String) as the Java client uses it: only `A–Z a–z 0–9 + /`, optional `=`
 * padding that must then be complete, and a length that is not 1 mod 4. Throws as Java's IllegalArgumentException.
 */
function javaBasicDecode(s: string): Buffer {
  const body = s.replace(/={1,2}$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(body)) throw new Error(`Illegal base64 character in ${s}`);
  if (body.length % 4 === 1) throw new Error('Last unit does not have enough valid bits');
  if (body.length !== s.length && s.length % 4 !== 0) throw new Error('Input byte array has incorrect ending byte');
  return Buffer.from(body, 'base64');
}

/** What the Java client does with a token: split at '.', decode parts[1], parse it, read `exp` (getAsInt). */
function javaReadExp(jwt: string): number {
  const claims = JSON.parse(javaBasicDecode(jwt.split('.')[1]!).toString('utf8')) as { exp?: unknown };
  if (typeof claims.exp !== 'number' || !Number.isInteger(claims.exp) || claims.exp >= 2 ** 31)
    throw new Error(`exp ${String(claims.exp)}`);
  return claims.exp;
}

const KEY = Buffer.alloc(32, 9);

test('the admin name svc~1: the plain JSON payload would carry "_" in base64url; ours is standard Base64', async (t) => {
  const claims: JwtClaims = { sub: 'svc~1', role: 'admin', iat: 1_700_000_000, exp: 1_700_003_600 };
  t.regex(Buffer.from(JSON.stringify(claims)).toString('base64url'), /[-_]/, 'the problem exists without the fix');
  const jwt = await signJwt(claims, KEY);
  t.is(javaReadExp(jwt), claims.exp);
  t.deepEqual(await verifyJwt(jwt, KEY, 1_700_000_000_000), claims);
  t.is(jwt.split('.')[0], 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9', 'the header is a constant that standard Base64 decodes as well');
});

test('property: any claims — the payload segment has no "-"/"_", the Java decoder reads exp, jose verifies the same claims', async (t) => {
  const name = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary' }),
    fc.string({ unit: 'grapheme' }),
    fc.stringMatching(/^[~?>a-z0-9\x7f-]{1,12}$/),
    fc.constantFrom('svc~1', '???', '~~~', '>>>', 'ä~ö?ü>', '\u007f'),
  );
  const claims = fc
    .record({
      sub: name,
      role: fc.constantFrom('admin' as const, 'validate' as const),
      iat: fc.integer({ min: 0, max: 2 ** 31 - 2 }),
      ttl: fc.integer({ min: 1, max: 10 ** 6 }),
      extra: fc.option(fc.jsonValue(), { nil: undefined }),
    })
    .map(
      ({ ttl, extra, ...c }): JwtClaims => ({ ...c, exp: Math.min(c.iat + ttl, 2 ** 31 - 1), ...(extra === undefined ? {} : { extra }) }),
    );
  await fc.assert(
    fc.asyncProperty(claims, async (c) => {
      const jwt = await signJwt(c, KEY);
      const [header, payload] = jwt.split('.') as [string, string];
      t.regex(header, /^[A-Za-z0-9]+$/);
      t.regex(payload, /^[A-Za-z0-9]+$/); // base64url without padding that is also standard Base64
      t.is(javaReadExp(jwt), c.exp);
      t.deepEqual(JSON.parse(javaBasicDecode(payload).toString('utf8')), JSON.parse(JSON.stringify(c)));
      t.deepEqual(await verifyJwt(jwt, KEY, c.iat * 1000), JSON.parse(JSON.stringify(c)));
    }),
    { numRuns: 300 },
  );
});

test('property: standardBase64Json is JSON of the same value whose base64url is standard Base64', (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.string({ unit: 'binary' }), (value, s) => {
      for (const v of [value, s, { s, value }]) {
        const json = standardBase64Json(v);
        t.deepEqual(JSON.parse(json), JSON.parse(JSON.stringify(v)));
        t.notRegex(Buffer.from(json).toString('base64url'), /[-_]/);
      }
    }),
    { numRuns: 500 },
  );
});

test("POST /auth as svc~1 (the Java client's request): exp and time readable, and the token opens /validate/triggerchallenge", async (t) => {
  const w = await world(t);
  await w.deps.store.admins.insert('svc~1', await w.deps.pins.hash('s3cret?>~'), w.clock.now());
  await enrollHotp(w);
  // PrivacyIDEA.retrieveJWT: POST /auth, form username + password.
  const r = await w.call('POST', '/auth', { username: 'svc~1', password: 's3cret?>~' });
  t.is(r.status, 200);
  const jwt = r.body.result.value.token as string;
  const exp = javaReadExp(jwt);
  t.true(Number.isInteger(Math.trunc(r.body.time)), 'the /auth answer carries a numeric time');
  t.true(exp > Math.trunc(r.body.time), 'a token the client will not re-fetch at once (exp − 60 s)');
  // Endpoint: Authorization: <jwt> on triggerchallenge.
  const trig = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: { Authorization: jwt } });
  t.is(trig.status, 200, trig.text);
  t.like(trig.body, { result: { status: true, value: 1 } });
});
