/** `pushgate apikey create`: a JWT with role validate that the server accepts where api_key_required applies. */
import test from 'ava';
import { createCliWorld } from './cli_world.ts';
import { verifyJwt } from '../../server/auth/jwt.ts';

test('apikey create prints a validate-role JWT signed with the secrets key, valid for --days; the action is audited', async (t) => {
  const w = await createCliWorld();
  t.teardown(() => w.close());
  const r = await w.run(['apikey', 'create', '--days', '30', '--name', 'keycloak']);
  t.is(r.code, 0, r.stderr);
  const key = r.stdout.trim();
  t.regex(key, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const deps = await w.deps();
  const claims = await verifyJwt(key, deps.jwtKey, Date.now());
  t.like(claims, { sub: 'keycloak', role: 'validate' });
  t.is(claims.exp - claims.iat, 30 * 86_400);
  await t.throwsAsync(verifyJwt(key, deps.jwtKey, Date.now() + 31 * 86_400_000), { message: /expired/ });
  const audit = await deps.store.audit.tail(10);
  t.true(audit.some((a) => a.action === 'cli apikey create' && a.success && (a.info as { name?: string }).name === 'keycloak'));
  t.false(JSON.stringify(audit).includes(key), 'the key itself is not in the audit');

  const bad = await w.run(['apikey', 'create', '--days', '0']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--days must be a whole number from 1 to 3650/);
});
