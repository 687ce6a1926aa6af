/**
 * LDAP / Active Directory realms (server/auth/ldap_store.ts) against a REAL OpenLDAP: one private slapd for the whole
 * file (tests/helpers/slapd.ts: a generated slapd.conf, mdb, a generated LDIF, a free port), started in test.before.
 * Skipped, with the reason in the title, when slapd is not installed (Debian: slapd, ldap-utils; .ci/run installs
 * them). The tests run serially: one of them stops and restarts the shared server.
 *
 * Active Directory is simulated in OpenLDAP (AD's attribute names, OIDs and classes with OpenLDAP matching rules;
 * see the helper): what is checked is pushgate's side of the AD preset — the login attributes, the filter that drops
 * computers and disabled accounts (the bit-AND matching rule is real), objectGUID as the uid.
 *
 * Real time passes only where a real server has to answer; the failover pause runs on the fake clock.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import YAML from 'yaml';
import test, { type ExecutionContext } from 'ava';
import { Attribute, Change, Client } from 'ldapts';
import { RFC, asAdmin, auditRows, cheapHasher, check, enrollHotp, policy, world } from '../../helpers/kit.ts';
import {
  ADMIN_DN,
  ADMIN_PW,
  BASE,
  SERVICE_DN,
  SERVICE_PW,
  opensslMissing,
  privateSlapd,
  slapdMissing,
  type AdUser,
  type PrivateSlapd,
} from '../../helpers/slapd.ts';
import type { TestWorld } from '../../helpers/test_app.ts';
import { parseConfig } from '../../../server/config.ts';
import { guidString } from '../../../server/auth/ldap_store.ts';
import { createRealms } from '../../../server/auth/users.ts';
import { ConfigError } from '../../../core/errors.ts';

const missing = slapdMissing();
const ltest = missing ? test.serial.skip : test.serial;
const title = (s: string) => (missing ? `${s} (skipped: ${missing})` : s);

const CAROL_GUID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const AD_USERS: AdUser[] = [
  {
    sAMAccountName: 'carol',
    userPrincipalName: 'carol@corp.example',
    password: 'carol-pw',
    givenName: 'Carol',
    sn: 'Cole',
    mail: 'carol@corp.example',
    objectGUID: CAROL_GUID,
    userAccountControl: 512, // NORMAL_ACCOUNT
  },
  {
    sAMAccountName: 'dave',
    userPrincipalName: 'dave@corp.example',
    password: 'dave-pw',
    givenName: 'Dave',
    sn: 'Gone',
    objectGUID: crypto.randomBytes(16),
    userAccountControl: 514, // NORMAL_ACCOUNT | ACCOUNTDISABLE
  },
  {
    sAMAccountName: 'ws01$',
    userPrincipalName: 'ws01@corp.example',
    password: 'machine-pw',
    givenName: 'WS01',
    sn: 'Workstation',
    objectGUID: crypto.randomBytes(16),
    userAccountControl: 4096, // WORKSTATION_TRUST_ACCOUNT
    computer: true,
  },
];

let slapd: PrivateSlapd | null = null;
test.before(async () => {
  if (missing) return;
  slapd = await privateSlapd(
    [
      { uid: 'alice', password: 'alice-pw', givenName: 'Alice', sn: 'Adams', mail: 'alice@example.org', telephoneNumber: '+49 30 1234' },
      { uid: 'bob', password: 'bob-pw', sn: 'Brown' },
      { uid: 'mallory', password: 'mallory-pw', sn: 'Outside', ou: 'others' },
    ],
    AD_USERS,
  );
});
test.after.always(async () => {
  await slapd?.destroy();
});

/** An LDAP realm `corp` (default) on the private slapd; `users` overrides keys of the realm's users block. */
function ldapWorld(t: ExecutionContext, users: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<TestWorld> {
  return world(t, {
    config: {
      realms: [
        {
          name: 'corp',
          default: true,
          users: {
            type: 'ldap',
            urls: [slapd!.url],
            bind_dn: SERVICE_DN,
            bind_password_file: 'ldap.pw',
            base_dn: `ou=people,${BASE}`,
            ...users,
          },
        },
      ],
      ...extra,
    },
    files: { 'ldap.pw': `${SERVICE_PW}\n` },
  });
}

const userstore = policy('us', 'authentication', { otppin: 'userstore' });
const events = (w: TestWorld, name: string) => w.seen.filter((e) => e.name === name).map((e) => e.payload as Record<string, unknown>);

ltest(title('lookup: bind as the service account, search by uid; the directory spells the name; attributes are mapped'), async (t) => {
  const w = await ldapWorld(t, {}, { policies: [policy('resp', 'authorization', { add_user_in_response: true })] });
  await enrollHotp(w, { user: 'alice' });
  const ok = await check(w, { user: 'ALICE', pass: `1234${RFC[0]}` });
  t.like(ok.body, { result: { authentication: 'ACCEPT' } });
  t.like(ok.body.detail.user, {
    username: 'alice',
    givenname: 'Alice',
    surname: 'Adams',
    email: 'alice@example.org',
    phone: '+49 30 1234',
  });
  t.regex(ok.body.detail.user.userid, /^[0-9a-f-]{36}$/, 'the uid is the entryUUID');
  t.is((await auditRows(w)).at(-1)!.username, 'alice', 'the token owner is the name as the directory has it');

  // Unknown users: 904, as for every realm; a user outside the base DN is unknown too.
  for (const user of ['nobody', 'mallory']) {
    const r = await check(w, { user, pass: 'x' });
    t.is(r.status, 400);
    t.like(r.body, { result: { status: false, error: { code: 904 } } });
  }

  // The admin API sees the store: its users (entryUUID as userid) and the resolver (password censored).
  const h = await asAdmin(w);
  const users = (await w.call('GET', '/user/', { realm: 'corp' }, { headers: h })).body.result.value as Array<Record<string, unknown>>;
  t.deepEqual(users.map((u) => u.username).sort(), ['alice', 'bob']);
  t.like(
    users.find((u) => u.username === 'alice'),
    { givenname: 'Alice', email: 'alice@example.org', resolver: 'corp_ldap' },
  );
  const resolvers = (await w.call('GET', '/resolver/', {}, { headers: h })).body.result.value;
  t.like(resolvers.corp_ldap, {
    type: 'ldapresolver',
    censor_keys: ['BINDPW'],
    data: { BINDPW: '__CENSORED__', LDAPBASE: `ou=people,${BASE}` },
  });
  t.false(JSON.stringify(resolvers).includes(SERVICE_PW));

  // Lookups are kept cache_seconds (60) on the injected clock — one login resolves its user several times — and
  // then asked again: a change in the directory shows after the cache time, not before.
  const admin = new Client({ url: slapd!.url });
  await admin.bind(ADMIN_DN, ADMIN_PW);
  const dn = `uid=alice,ou=people,${BASE}`;
  await admin.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'mail', values: ['new@example.org'] }) }));
  try {
    t.is((await w.deps.realms.get('corp')!.lookup('alice'))!.email, 'alice@example.org', 'from the cache');
    w.clock.advance(60_000);
    t.is((await w.deps.realms.get('corp')!.lookup('alice'))!.email, 'new@example.org', 'asked again');
  } finally {
    await admin.modify(
      dn,
      new Change({ operation: 'replace', modification: new Attribute({ type: 'mail', values: ['alice@example.org'] }) }),
    );
    await admin.unbind();
  }
});

ltest(title('otppin userstore and passthru: the password is checked by an LDAP bind; wrong and empty passwords fail'), async (t) => {
  const w = await ldapWorld(t, {}, { policies: [userstore, policy('pt', 'authentication', { passthru: true })] });
  await enrollHotp(w, { user: 'alice' });
  t.like((await check(w, { user: 'alice', pass: `alice-pw${RFC[0]}` })).body, { result: { authentication: 'ACCEPT' } });
  t.like((await check(w, { user: 'alice', pass: `wrong-pw${RFC[1]}` })).body, {
    result: { authentication: 'REJECT' },
    detail: { message: 'wrong otp pin' },
  });
  t.like(
    (await check(w, { user: 'alice', pass: `1234${RFC[1]}` })).body,
    { result: { authentication: 'REJECT' } },
    'the token PIN does not count',
  );

  // The server accepts a DN with an empty password (an unauthenticated bind) — pushgate never sends one.
  const raw = new Client({ url: slapd!.url });
  await t.notThrowsAsync(raw.bind(`uid=alice,ou=people,${BASE}`, ''), 'this slapd would let an empty password "log in"');
  await raw.unbind();
  t.like((await check(w, { user: 'alice', pass: RFC[1]! })).body, { result: { authentication: 'REJECT' } }, 'empty password + OTP');
  const realm = w.deps.realms.get('corp')!;
  t.false(await realm.verifyPassword('alice', ''));
  t.false(await realm.verifyPassword('ALICE', 'wrong'));
  t.true(await realm.verifyPassword('ALICE', 'alice-pw'), 'the bind is as the entry the search found');

  // passthru: bob has no token; his directory password lets him in, a wrong or empty one does not.
  t.like((await check(w, { user: 'bob', pass: 'bob-pw' })).body, { result: { authentication: 'ACCEPT' } });
  t.like((await check(w, { user: 'bob', pass: 'nope' })).body, { result: { authentication: 'REJECT' } });
  t.like((await check(w, { user: 'bob', pass: '' })).body, { result: { authentication: 'REJECT' } });
});

ltest(title('LDAP injection: filter characters in a login name are a literal value, never filter syntax'), async (t) => {
  const w = await ldapWorld(t, {}, { policies: [policy('pt', 'authentication', { passthru: true })] });
  const realm = w.deps.realms.get('corp')!;
  for (const name of ['*', 'a*', '*)(uid=*', 'alice)(|(uid=*', 'alice)(objectClass=*', '\\2a', 'alice\\', '(uid=alice)']) {
    t.is(await realm.lookup(name), null, `lookup ${JSON.stringify(name)}`);
    const r = await check(w, { user: name, pass: 'alice-pw' });
    t.like(r.body, { result: { status: false, error: { code: 904 } } }, `check ${JSON.stringify(name)}`);
  }
  t.false(await realm.verifyPassword('*', 'alice-pw'));
  t.truthy(await realm.lookup('alice'), 'the real name is found');
});

ltest(title('password binds are bounded: max_concurrent_binds at once, a per-user queue, refusals with 503'), async (t) => {
  const w = await ldapWorld(
    t,
    { max_concurrent_binds: 1 },
    { pin: { memory_kib: 1024, time_cost: 1, parallelism: 1, max_queue: 1000, max_queue_per_key: 1 } },
  );
  const realm = w.deps.realms.get('corp')!;
  const job = { key: 'user:corp:alice' };
  // Both users are looked up first (then cached), so the four checks reach the bind queue in the order they are made.
  t.truthy(await realm.lookup('alice'));
  t.truthy(await realm.lookup('bob'));
  // One bind runs, one waits (the per-user bound is 1), the third is refused at once; another user still gets a turn.
  const results = await Promise.allSettled([
    realm.verifyPassword('alice', 'alice-pw', job),
    realm.verifyPassword('alice', 'wrong', job),
    realm.verifyPassword('alice', 'alice-pw', job),
    realm.verifyPassword('bob', 'bob-pw', { key: 'user:corp:bob' }),
  ]);
  t.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    [true, false, 'Too many password checks of this user are waiting; try again later.', true],
  );
  t.like(events(w, 'pin.rejected')[0], { reason: 'key_full', key: 'user:corp:alice' });
});

ltest(title('failover: the first URL is dead, the second answers; the dead one is skipped, then tried again'), async (t) => {
  const dead = `ldap://127.0.0.1:${await (await import('../../helpers/wait.ts')).freePort()}`;
  const w = await ldapWorld(t, { urls: [dead, slapd!.url], cache_seconds: 0, retry_seconds: 30 }, { policies: [userstore] });
  await enrollHotp(w, { user: 'alice' });
  t.like((await check(w, { user: 'alice', pass: `alice-pw${RFC[0]}` })).body, { result: { authentication: 'ACCEPT' } });
  const down = events(w, 'ldap.server_down');
  t.is(down.length, 1, 'the dead server is tried once, then skipped');
  t.like(down[0], { realm: 'corp', url: dead, retrySeconds: 30 });
  t.like((await check(w, { user: 'alice', pass: `alice-pw${RFC[1]}` })).body, { result: { authentication: 'ACCEPT' } });
  t.is(events(w, 'ldap.server_down').length, 1, 'skipped during the pause');
  w.clock.advance(30_000);
  t.like((await check(w, { user: 'alice', pass: `alice-pw${RFC[2]}` })).body, { result: { authentication: 'ACCEPT' } });
  t.is(events(w, 'ldap.server_down').length, 2, 'after the pause the first server is tried again');
  t.like((await w.call('GET', '/readyz')).body.result.value, { ready: true, checks: { realm_corp: { ok: true } } });
});

ltest(title('server down: a clear 503/903 at once (audited, no passOnNoUser), not ready; recovers when it is back'), async (t) => {
  const w = await ldapWorld(t, { retry_seconds: 10 }, { policies: [userstore, policy('pnu', 'authentication', { passOnNoUser: true })] });
  await enrollHotp(w, { user: 'alice' });
  t.like((await check(w, { user: 'alice', pass: `alice-pw${RFC[0]}` })).body, { result: { authentication: 'ACCEPT' } });
  await slapd!.stop();
  try {
    w.clock.advance(61_000); // past cache_seconds: the next login must ask the directory
    const r = await check(w, { user: 'alice', pass: `alice-pw${RFC[1]}` });
    t.is(r.status, 503);
    t.is(r.headers.get('retry-after'), '10');
    t.like(r.body, {
      result: { status: false, error: { code: 903, message: 'ERR903: The user store of realm corp is not available; try again later.' } },
    });
    t.false(JSON.stringify(r.body).includes('127.0.0.1'), 'no directory host in the reply');
    const row = (await auditRows(w)).at(-1)!;
    t.like(row, { action: 'POST /validate/check', success: false, outcome: 'ERROR' });
    t.is(events(w, 'ldap.server_down').length, 1);
    t.true(
      events(w, 'request.failed').some((e) => e.status === 503 && String(e.error).includes('ECONNREFUSED')),
      'the log has the reason',
    );

    // Within the pause: refused without touching the network (no new server_down), the same clear answer.
    const again = await check(w, { user: 'alice', pass: `alice-pw${RFC[1]}` });
    t.is(again.status, 503);
    t.like(again.body, { result: { error: { code: 903 } } });
    t.is(events(w, 'ldap.server_down').length, 1);
    const ready = await w.call('GET', '/readyz');
    t.is(ready.status, 503);
    t.like(ready.body.result.value, { ready: false, checks: { realm_corp: { ok: false }, database: { ok: true } } });
  } finally {
    await slapd!.start();
  }
  // Back: readiness asks the server at once; logins resume after the pause.
  t.like((await w.call('GET', '/readyz')).body.result.value, { ready: true, checks: { realm_corp: { ok: true } } });
  t.is(events(w, 'ldap.server_up').length, 1);
  w.clock.advance(10_000);
  t.like((await check(w, { user: 'alice', pass: `alice-pw${RFC[1]}` })).body, { result: { authentication: 'ACCEPT' } });
});

ltest(
  title(
    'AD preset (simulated AD schema): sAMAccountName or userPrincipalName, objectGUID as uid; disabled and computer accounts are no users',
  ),
  async (t) => {
    const w = await ldapWorld(
      t,
      { preset: 'ad', base_dn: `ou=ad,${BASE}` },
      { policies: [userstore, policy('resp', 'authorization', { add_user_in_response: true })] },
    );
    await enrollHotp(w, { user: 'carol' });
    const byUpn = await check(w, { user: 'carol@corp.example', pass: `carol-pw${RFC[0]}` });
    t.like(byUpn.body, { result: { authentication: 'ACCEPT' } });
    t.like(byUpn.body.detail.user, { username: 'carol', givenname: 'Carol', email: 'carol@corp.example', userid: guidString(CAROL_GUID) });
    t.is(guidString(CAROL_GUID), '33221100-5544-7766-8899-aabbccddeeff', 'the GUID as AD and eduMFA write it');
    t.like((await check(w, { user: 'CAROL', pass: `carol-pw${RFC[1]}` })).body, { result: { authentication: 'ACCEPT' } });
    for (const user of ['dave', 'dave@corp.example', 'ws01$']) {
      t.like((await check(w, { user, pass: 'x' })).body, { result: { error: { code: 904 } } }, user);
    }
  },
);

ltest(title('the service password from the environment; a wrong one is a clear 503 and a failed readiness check'), async (t) => {
  process.env.PUSHGATE_TEST_LDAP_PW = SERVICE_PW;
  try {
    const w = await ldapWorld(t, { bind_password_file: undefined, bind_password_env: 'PUSHGATE_TEST_LDAP_PW' });
    await enrollHotp(w, { user: 'alice' });
    t.like((await check(w, { user: 'alice', pass: `1234${RFC[0]}` })).body, { result: { authentication: 'ACCEPT' } });
    await w.close(); // a test holds at most two worlds
  } finally {
    delete process.env.PUSHGATE_TEST_LDAP_PW;
  }
  const bad = await ldapWorld(t, { bind_password_file: undefined, bind_password: 'not the password' });
  const r = await check(bad, { user: 'alice', pass: 'x' });
  t.is(r.status, 503);
  t.like(r.body, { result: { error: { code: 903 } } });
  t.like(events(bad, 'ldap.refused')[0], { realm: 'corp', operation: 'service_bind' });
  t.is(events(bad, 'ldap.server_down').length, 0, 'the server answered: no failover pause');
  t.like((await bad.call('GET', '/readyz')).body.result.value, { ready: false, checks: { realm_corp: { ok: false } } });

  await bad.close();
  // A search the directory refuses (here: a base DN that does not exist) is no "unknown user" either.
  const nowhere = await ldapWorld(t, { base_dn: `ou=nowhere,${BASE}` });
  const n = await check(nowhere, { user: 'alice', pass: 'x' });
  t.is(n.status, 503);
  t.like(n.body, { result: { error: { code: 903 } } });
  t.like(events(nowhere, 'ldap.refused')[0], { realm: 'corp', operation: 'search' });
});

const tlsTest = missing || opensslMissing() ? test.serial.skip : test.serial;
tlsTest(
  missing
    ? title('StartTLS with a CA file')
    : opensslMissing()
      ? 'StartTLS with a CA file (skipped: no openssl CLI)'
      : 'StartTLS with a CA file; a server certificate from another CA is refused',
  async (t) => {
    const w = await ldapWorld(t, { start_tls: true, tls_ca_file: slapd!.caFile }, { policies: [userstore] });
    await enrollHotp(w, { user: 'alice' });
    t.like((await check(w, { user: 'alice', pass: `alice-pw${RFC[0]}` })).body, { result: { authentication: 'ACCEPT' } });
    const wrong = await ldapWorld(t, { start_tls: true, tls_ca_file: slapd!.otherCaFile });
    const r = await check(wrong, { user: 'alice', pass: 'x' });
    t.is(r.status, 503);
    t.true(events(wrong, 'ldap.server_down').some((e) => /certificate/i.test(String(e.error))));
  },
);

test('config: an ldap realm is validated at start-up with clear errors', (t) => {
  const problems = (users: Record<string, unknown>) => {
    try {
      parseConfig({ realms: [{ name: 'corp', users: { type: 'ldap', ...users } }] }, '/tmp');
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems;
    }
  };
  t.deepEqual(problems({ urls: ['ldap://dc1.example.org'], base_dn: 'dc=example,dc=org' }), []);
  t.deepEqual(problems({}), [
    'realms[0].users.urls is required: a list of ldap:// or ldaps:// URLs, tried in order',
    'realms[0].users.base_dn is required (where users are searched, like ou=people,dc=example,dc=org)',
  ]);
  t.deepEqual(problems({ urls: ['http://x'], base_dn: 'o=x' }), [
    'realms[0].users.urls[0] must be ldap://host[:port] or ldaps://host[:port]',
  ]);
  t.deepEqual(problems({ urls: ['ldaps://x'], base_dn: 'o=x', start_tls: true }), [
    'realms[0].users.start_tls is for ldap:// URLs; an ldaps:// URL is TLS from the start',
  ]);
  t.deepEqual(problems({ urls: ['ldap://x'], base_dn: 'o=x', bind_dn: 'cn=a' }), [
    'realms[0].users.bind_dn needs bind_password_file, bind_password_env or bind_password',
  ]);
  t.deepEqual(problems({ urls: ['ldap://x'], base_dn: 'o=x', bind_dn: 'cn=a', bind_password: 'p', bind_password_file: 'f' }), [
    'realms[0].users: give only one of bind_password_file, bind_password',
  ]);
  t.deepEqual(problems({ urls: ['ldap://x'], base_dn: 'o=x', search_filter: 'objectClass=person' }), [
    'realms[0].users.search_filter must be an LDAP filter in parentheses, like (objectClass=person)',
  ]);
  t.deepEqual(problems({ urls: ['ldap://x'], base_dn: 'o=x', login_attribute: 'uid)(x', preset: 'novell', bindpw: 'x' }), [
    'realms[0].users.bindpw is not a known setting',
    'realms[0].users.preset must be openldap or ad',
    'realms[0].users.login_attribute must be an LDAP attribute name',
  ]);
  // The service password is read when the realm is built: a missing variable or file stops the start, naming the realm.
  const realmsOf = (users: Record<string, unknown>) =>
    parseConfig(
      { realms: [{ name: 'corp', users: { type: 'ldap', urls: ['ldap://x'], base_dn: 'o=x', bind_dn: 'cn=a', ...users } }] },
      '/tmp',
    ).realms;
  t.throws(() => createRealms(realmsOf({ bind_password_env: 'NO_SUCH_VARIABLE' }), cheapHasher, { env: {} }), {
    instanceOf: ConfigError,
    message: /realms corp: the environment variable NO_SUCH_VARIABLE \(bind_password_env\) is not set/,
  });
  t.throws(() => createRealms(realmsOf({ bind_password_file: '/nonexistent/ldap.pw' }), cheapHasher), {
    instanceOf: ConfigError,
    message: /realms corp: cannot read bind_password_file \/nonexistent\/ldap.pw/,
  });

  // The commented LDAP realm of config.example.yaml is a valid one.
  const example = fs.readFileSync(new URL('../../../config.example.yaml', import.meta.url), 'utf8').split('\n');
  const from = example.findIndex((l) => l.startsWith('  # - name: campus'));
  const block: string[] = [];
  for (const l of example.slice(from)) {
    if (!l.startsWith('  # ')) break;
    block.push(l.replace(/^ {2}# /, '  '));
  }
  t.true(block.length > 10);
  const parsed = parseConfig(YAML.parse(`realms:\n${block.join('\n')}\n`), '/etc/pushgate');
  t.like(parsed.realms[0]!.users, { type: 'ldap', bindPassword: { file: '/etc/pushgate/ldap.pw' }, baseDn: 'ou=people,dc=example,dc=org' });

  const ad = parseConfig(
    { realms: [{ name: 'corp', users: { type: 'ldap', preset: 'ad', urls: 'ldaps://dc1', base_dn: 'dc=corp' } }] },
    '/tmp',
  ).realms[0]!.users;
  t.like(ad, {
    type: 'ldap',
    loginAttributes: ['sAMAccountName', 'userPrincipalName'],
    attributes: { uid: 'objectGUID' },
    urls: ['ldaps://dc1'],
  });
});
