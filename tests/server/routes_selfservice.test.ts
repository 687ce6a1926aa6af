/**
 * The self-service page (server/routes/selfservice.ts, server/auth/selfservice.ts) through HTTP: the two-step login
 * (password + TOTP, password + push approved by the fake phone, first enrollment by policy), sessions (idle and
 * absolute timeouts on the fake clock, logout, a new id after the second factor), CSRF, security headers, the
 * back-off (429), enrolling and confirming a TOTP token, renaming and removing own tokens, the recent logins, and
 * that another user's serial is never touched (IDOR).
 */
import test from 'ava';
import { enroll, policy, world } from '../helpers/kit.ts';
import { runCleanup } from '../../server/store/cleanup.ts';
import { hotpValue } from '../../tokens/otp.ts';
import { base32Decode } from '../../tokens/base32.ts';
import { SELFSERVICE_USERS, SelfserviceClient, USER_PASSWORD, selfserviceConfig } from '../helpers/selfservice_client.ts';
import { enrollPhone, phoneFor } from '../helpers/push_world.ts';
import type { TestWorld } from '../helpers/test_app.ts';

const TOTP_KEY = '3132333435363738393031323334353637383930';
const totpNow = (w: TestWorld, keyHex = TOTP_KEY) => hotpValue(Buffer.from(keyHex, 'hex'), Math.floor(w.clock.now() / 30_000), 6, 'sha1');

async function ssWorld(
  t: Parameters<typeof world>[0],
  over: Record<string, unknown> = {},
  policies: unknown[] = [],
  config: Record<string, unknown> = {},
) {
  return world(t, { config: { ...selfserviceConfig(over, policies), ...config }, files: { 'users.yaml': SELFSERVICE_USERS } });
}

/** alice (or `user`) with a TOTP token of the known key. */
const enrollTotp = (w: TestWorld, serial = 'TOTPALICE', user = 'alice') =>
  enroll(w, { type: 'totp', otpkey: TOTP_KEY, user, serial, description: `${user}'s phone` });

async function loggedIn(w: TestWorld, user = 'alice'): Promise<SelfserviceClient> {
  const c = new SelfserviceClient(w);
  const p = await c.login(user, USER_PASSWORD);
  if (!p.text.includes('Second step')) throw new Error(`no second step: ${p.status} ${p.text.slice(0, 500)}`);
  const done = await c.post('/login/otp', { otp: totpNow(w) });
  if (!done.text.includes('Your devices')) throw new Error(`not logged in: ${done.status} ${done.text.slice(0, 800)}`);
  return c;
}

test('off by default: no route; on: the login page with strict headers and cookies', async (t) => {
  const off = await world(t);
  t.false(off.deps.config.selfservice.enabled);
  t.is((await fetch(`${off.url}/selfservice`)).status, 404);

  const w = await ssWorld(t, { cookie_secure: true });
  const r = await fetch(`${w.url}/selfservice`);
  t.is(r.status, 200);
  t.is(r.headers.get('content-type'), 'text/html; charset=utf-8');
  const csp = r.headers.get('content-security-policy')!;
  t.regex(csp, /default-src 'none'/);
  t.regex(csp, /frame-ancestors 'none'/);
  t.notRegex(csp, /script-src|unsafe-inline/);
  t.is(r.headers.get('cache-control'), 'no-store');
  t.is(r.headers.get('x-frame-options'), 'DENY');
  t.is(r.headers.get('x-content-type-options'), 'nosniff');
  const [cookie] = r.headers.getSetCookie();
  t.regex(cookie!, /^__Host-pushgate_ss_login=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Strict; Secure; Max-Age=1800$/);
  const html = await r.text();
  t.regex(html, /<html lang="en">/);
  t.regex(html, /<label for="user">User name<\/label>/);
  t.regex(html, /<label for="password">Password<\/label>/);
  t.notRegex(html, /<script|\sstyle=|\son[a-z]+=/i, 'no script, no inline style or handler');
  const css = await fetch(`${w.url}/selfservice/style.css`);
  t.is(css.status, 200);
  t.is(css.headers.get('content-type'), 'text/css; charset=utf-8');
});

test('password + TOTP: a new session id after the second factor, the audit rows, logout ends the session', async (t) => {
  const w = await ssWorld(t);
  await enrollTotp(w);
  const c = new SelfserviceClient(w);
  await c.get();
  // Login CSRF: the form's token must match the cookie's.
  const forged = await c.post('/login', { user: 'alice', password: USER_PASSWORD, login_csrf: 'x'.repeat(32) });
  t.is(forged.status, 403);
  await c.get();
  const wrong = await c.post('/login', { user: 'alice', password: 'nope' });
  t.is(wrong.status, 401);
  t.regex(wrong.text, /role="alert"><strong>Error:<\/strong> The user name or the password is wrong\./);
  const unknown = await c.post('/login', { user: 'mallory', password: 'nope' });
  t.is(unknown.status, 401);
  t.regex(unknown.text, /The user name or the password is wrong\./, 'the same answer for an unknown user');

  const second = await c.login('alice', USER_PASSWORD);
  t.is(second.status, 200);
  t.regex(second.text, /Second step/);
  const halfSession = c.jar.get('pushgate_ss')!;
  t.truthy(halfSession);
  // The half session cannot act on tokens (it is redirected to the second step).
  const early = await c.post('/tokens/rename', { serial: 'TOTPALICE', description: 'x' }, { follow: false });
  t.is(early.status, 303);
  t.is((await w.deps.store.tokens.bySerial('TOTPALICE'))!.description, "alice's phone");

  const bad = await c.post('/login/otp', { otp: '000000' });
  t.is(bad.status, 401);
  t.regex(bad.text, /The second step failed/);
  const ok = await c.post('/login/otp', { otp: totpNow(w) }, { follow: false });
  t.is(ok.status, 303);
  t.is(ok.headers.get('location'), '/selfservice?done=login');
  const fullSession = c.jar.get('pushgate_ss')!;
  t.not(fullSession, halfSession, 'a new session id after the second factor');
  const page = await c.get('?done=login');
  t.regex(page.text, /<h1>Your devices<\/h1>/);
  t.regex(page.text, /You are logged in\./);
  t.regex(page.text, /TOTPALICE/);

  // The old (half) session id is dead.
  const old = new SelfserviceClient(w);
  old.jar.set('pushgate_ss', halfSession);
  t.regex((await old.get()).text, /<h1>Log in<\/h1>/);

  const rows = (await w.deps.store.audit.tail(100)).filter((r) => r.action.startsWith('selfservice'));
  t.deepEqual(
    rows.map((r) => [r.action, r.outcome, r.username]),
    [
      ['selfservice login', 'REJECT', 'alice'],
      ['selfservice login', 'REJECT', 'mallory'],
      ['selfservice login', 'OK', 'alice'],
      ['selfservice login', 'REJECT', 'alice'],
      ['selfservice login', 'ACCEPT', 'alice'],
    ],
  );
  t.deepEqual(rows.at(-1)!.serials, ['TOTPALICE']);

  // Recent logins: the page's own login rows, with the declines and rejections.
  t.regex(page.text, /Recent logins and declines/);
  t.is((page.text.match(/<td><strong>Rejected<\/strong><\/td>/g) ?? []).length, 2);
  t.is((page.text.match(/<td><strong>Accepted<\/strong><\/td>/g) ?? []).length, 1);

  // Logout needs the CSRF token, then ends the session server-side.
  t.is((await c.post('/logout', { csrf: 'forged' })).status, 403);
  const out = await c.post('/logout', {});
  t.regex(out.text, /You are logged out\./);
  const replay = new SelfserviceClient(w);
  replay.jar.set('pushgate_ss', fullSession);
  t.regex((await replay.get()).text, /<h1>Log in<\/h1>/);
});

test('idle and absolute timeouts on the injected clock', async (t) => {
  const w = await ssWorld(t, { idle_timeout_minutes: 10, absolute_timeout_minutes: 30 });
  await enrollTotp(w);
  const c = await loggedIn(w);
  w.clock.advance(9 * 60_000);
  t.regex((await c.get()).text, /Your devices/, 'within the idle timeout');
  w.clock.advance(9 * 60_000);
  t.regex((await c.get()).text, /Your devices/, 'each request extends it');
  w.clock.advance(10 * 60_000 + 1);
  t.regex((await c.get()).text, /<h1>Log in<\/h1>/, 'idle too long');

  const d = await loggedIn(w);
  for (let i = 0; i < 3; i++) {
    w.clock.advance(9 * 60_000);
    t.regex((await d.get()).text, /Your devices/);
  }
  w.clock.advance(4 * 60_000);
  t.regex((await d.get()).text, /<h1>Log in<\/h1>/, 'the absolute timeout ends even an active session');
  // The cleanup deletes both expired sessions; a live one stays.
  const e = await loggedIn(w);
  t.is((await runCleanup(w.deps)).selfserviceSessions, 2);
  t.is((await w.deps.store.knex('selfservice_sessions').select('id_hash')).length, 1);
  t.regex((await e.get()).text, /Your devices/);
});

test('CSRF: every POST of a session needs its synchronizer token; without a session 403', async (t) => {
  const w = await ssWorld(t);
  await enrollTotp(w);
  const c = await loggedIn(w);
  for (const path of ['/tokens/rename', '/tokens/remove', '/tokens/enroll', '/logout']) {
    const r = await c.post(path, { csrf: '', serial: 'TOTPALICE', description: 'hijacked', confirm: 'yes', type: 'totp' });
    t.is(r.status, 403, path);
    t.regex(r.text, /security token/);
  }
  t.is((await w.deps.store.tokens.bySerial('TOTPALICE'))!.description, "alice's phone");
  t.is((await w.deps.store.tokens.list({ username: 'alice', realm: 'default' })).length, 1);
  const anon = new SelfserviceClient(w);
  const r = await anon.post('/tokens/remove', { csrf: c.csrf, serial: 'TOTPALICE', confirm: 'yes' });
  t.is(r.status, 403);
  t.truthy(await w.deps.store.tokens.bySerial('TOTPALICE'));
});

test("IDOR: alice can neither rename, remove nor confirm bob's token", async (t) => {
  const w = await ssWorld(t);
  await enrollTotp(w);
  await enrollTotp(w, 'TOTPBOB', 'bob');
  const c = await loggedIn(w);
  const page = await c.get();
  t.notRegex(page.text, /TOTPBOB/);
  const rename = await c.post('/tokens/rename', { serial: 'TOTPBOB', description: 'mine now' });
  t.is(rename.status, 404);
  const remove = await c.post('/tokens/remove', { serial: 'TOTPBOB', confirm: 'yes' });
  t.is(remove.status, 404);
  const verify = await c.post('/tokens/verify', { serial: 'TOTPBOB', otp: totpNow(w) });
  t.is(verify.status, 404);
  const bob = (await w.deps.store.tokens.bySerial('TOTPBOB'))!;
  t.is(bob.description, "bob's phone");
  const errors = (await w.deps.store.audit.tail(100)).filter((r) => r.action.startsWith('selfservice') && r.outcome === 'ERROR');
  t.deepEqual(
    errors.map((r) => [r.action, r.username]),
    [
      ['selfservice rename', 'alice'],
      ['selfservice remove', 'alice'],
      ['selfservice verify', 'alice'],
    ],
  );
});

test('enroll a TOTP token (QR code, confirm with its first code), rename it, remove it', async (t) => {
  const w = await ssWorld(t);
  await enrollTotp(w);
  const c = await loggedIn(w);
  const e = await c.post('/tokens/enroll', { type: 'totp', description: 'new <b>phone</b>' });
  t.is(e.status, 200);
  t.regex(e.text, /<img class="qr" src="data:image\/png;base64,[A-Za-z0-9+/=]+"/);
  const secret = /<code class="secret">([A-Z2-7]+)<\/code>/.exec(e.text)![1]!;
  const serial = /name="serial" value="(TOTP[0-9A-F]+)"/.exec(e.text)![1]!;
  let token = (await w.deps.store.tokens.bySerial(serial))!;
  t.false(token.active, 'half-enrolled until the first code');
  t.is(token.rolloutState, 'clientwait');
  t.is(token.description, 'new <b>phone</b>');
  const keyHex = base32Decode(secret).toString('hex');
  t.is((await c.post('/tokens/verify', { serial, otp: '123456' === totpNow(w, keyHex) ? '654321' : '123456' })).status, 400);
  const ok = await c.post('/tokens/verify', { serial, otp: totpNow(w, keyHex) });
  t.regex(ok.text, /The token is ready to use\./);
  token = (await w.deps.store.tokens.bySerial(serial))!;
  t.true(token.active);
  t.is(token.rolloutState, 'enrolled');
  t.regex(ok.text, /new &lt;b&gt;phone&lt;\/b&gt;/, 'escaped');
  // The code just used cannot confirm again (replay guard).
  t.is((await c.post('/tokens/verify', { serial, otp: totpNow(w, keyHex) })).status, 404);

  const renamed = await c.post('/tokens/rename', { serial, description: 'Work phone' });
  t.regex(renamed.text, /The description was saved\./);
  t.is((await w.deps.store.tokens.bySerial(serial))!.description, 'Work phone');
  const unconfirmed = await c.post('/tokens/remove', { serial });
  t.is(unconfirmed.status, 400);
  t.truthy(await w.deps.store.tokens.bySerial(serial));
  const removed = await c.post('/tokens/remove', { serial, confirm: 'yes' });
  t.regex(removed.text, /The token was removed\./);
  t.is(await w.deps.store.tokens.bySerial(serial), null);
  const actions = (await w.deps.store.audit.tail(100)).filter(
    (r) => r.action.startsWith('selfservice') && r.action !== 'selfservice login',
  );
  t.deepEqual(
    actions.map((r) => [r.action, r.outcome, r.serials.join()]),
    [
      ['selfservice enroll', 'OK', serial],
      ['selfservice verify', 'REJECT', serial],
      ['selfservice verify', 'OK', serial],
      ['selfservice verify', 'ERROR', ''],
      ['selfservice rename', 'OK', serial],
      ['selfservice remove', 'OK', serial],
    ],
  );
  // A type the configuration does not offer is refused.
  t.is((await c.post('/tokens/enroll', { type: 'hotp' })).status, 403);
});

test('password + push: the phone approves (or declines) the login; the page shows the declines', async (t) => {
  const w = await ssWorld(t);
  const phone = phoneFor(w);
  await enrollPhone(w, phone);
  const c = new SelfserviceClient(w);
  const second = await c.login('alice', USER_PASSWORD);
  t.regex(second.text, /Send a push to my phone/);
  t.notRegex(second.text, /One-time code/, 'no OTP token: no OTP field');
  // Another browser's login is declined on the phone.
  const other = new SelfserviceClient(w);
  await other.login('alice', USER_PASSWORD);
  t.regex((await other.post('/login/push', {})).text, /Approve the login on your phone/);
  const [d1] = (await phone.poll()).body.result.value;
  t.is((await phone.answer(d1, { decline: true })).status, 200);
  const declined = await other.post('/login/push/finish', {});
  t.is(declined.status, 401);
  t.regex(declined.text, /declined on the phone/);

  w.clock.advance(20 * 60_000); // past the decline back-off (and the first browser's login timeout)
  t.regex((await c.get()).text, /<h1>Log in<\/h1>/, 'a half-done login times out (selfservice.login_timeout_minutes)');
  await c.login('alice', USER_PASSWORD);
  const sent = await c.post('/login/push', {});
  t.is(sent.status, 200);
  t.regex(sent.text, /Approve the login on your phone/);
  const pending = await c.post('/login/push/finish', {});
  t.regex(pending.text, /has not answered yet/);
  const [d2] = (await phone.poll()).body.result.value;
  t.is((await phone.answer(d2)).status, 200);
  const inside = await c.post('/login/push/finish', {});
  t.regex(inside.text, /<h1>Your devices<\/h1>/);
  t.regex(inside.text, /Declined on the phone/);
});

test('first enrollment: password only by policy for a user without any token; otherwise refused', async (t) => {
  const plain = await ssWorld(t);
  const c0 = new SelfserviceClient(plain);
  const refused = await c0.login('carol', USER_PASSWORD);
  t.is(refused.status, 401);
  t.regex(refused.text, /You have no token yet/);

  const w = await ssWorld(t, {}, [policy('first', 'authentication', { selfservice_first_enrollment: true })]);
  const c = new SelfserviceClient(w);
  const inside = await c.login('carol', USER_PASSWORD);
  t.regex(inside.text, /<h1>Your devices<\/h1>/);
  t.regex(inside.text, /You have no device yet/);
  const e = await c.post('/tokens/enroll', { type: 'totp', description: 'first' });
  const secret = /<code class="secret">([A-Z2-7]+)<\/code>/.exec(e.text)![1]!;
  const serial = /name="serial" value="(TOTP[0-9A-F]+)"/.exec(e.text)![1]!;
  await c.post('/tokens/verify', { serial, otp: totpNow(w, base32Decode(secret).toString('hex')) });
  const again = await c.post('/tokens/enroll', { type: 'totp' });
  t.is(again.status, 403, 'a password-only session enrolls no second token');
  t.regex(again.text, /You already have a token/);
  // It may rename its own new token, but not one an administrator gives carol meanwhile.
  t.regex((await c.post('/tokens/rename', { serial, description: 'mine' })).text, /The description was saved\./);
  await enroll(w, { type: 'totp', otpkey: TOTP_KEY, user: 'carol', serial: 'TOTPADMIN', description: 'from the admin' });
  const page = await c.get();
  t.regex(page.text, /Log in with one of your devices to change this one\./);
  t.is((await c.post('/tokens/remove', { serial: 'TOTPADMIN', confirm: 'yes' })).status, 404);
  t.is((await c.post('/tokens/rename', { serial: 'TOTPADMIN', description: 'x' })).status, 404);
  t.is((await w.deps.store.tokens.bySerial('TOTPADMIN'))!.description, 'from the admin');
  // With a token now, a new login needs it.
  const d = new SelfserviceClient(w);
  t.regex((await d.login('carol', USER_PASSWORD)).text, /Second step/);
  const row = (await w.deps.store.audit.tail(100)).find((r) => r.action === 'selfservice login' && r.outcome === 'ACCEPT')!;
  t.deepEqual(row.policies, ['first']);
});

test('back-off: wrong passwords and wrong codes are failed attempts (429 with Retry-After)', async (t) => {
  const w = await ssWorld(t, {}, [], { limits: { failed_per_user: 3, failed_per_address: 0 } });
  await enrollTotp(w);
  const c = new SelfserviceClient(w);
  await c.get();
  for (let i = 0; i < 3; i++) t.is((await c.post('/login', { user: 'alice', password: `wrong${i}` })).status, 401);
  const refused = await c.post('/login', { user: 'alice', password: USER_PASSWORD });
  t.is(refused.status, 429);
  t.regex(refused.headers.get('retry-after') ?? '', /^[0-9]+$/);
  t.regex(refused.text, /Too many failed authentication attempts/);

  const v = await ssWorld(t, {}, [], { limits: { failed_per_user: 3, failed_per_address: 0 } });
  await enrollTotp(v);
  const d = new SelfserviceClient(v);
  await d.login('alice', USER_PASSWORD);
  for (let i = 0; i < 3; i++) t.is((await d.post('/login/otp', { otp: '000000' })).status, 401);
  t.is((await d.post('/login/otp', { otp: totpNow(v) })).status, 429);
});

test("the browser's address: X-Forwarded-For from a trusted proxy, never a `client` form field", async (t) => {
  const w = await ssWorld(t, {}, [], {
    server: { public_url: 'https://mfa.example.org', trusted_proxies: ['127.0.0.1', '::1'] },
    limits: { failed_per_user: 100, failed_per_address: 2 },
  });
  const c = new SelfserviceClient(w);
  c.headers = { 'x-forwarded-for': '203.0.113.9, 10.0.0.1' };
  await c.get();
  t.is((await c.post('/login', { user: 'alice', password: 'wrong', client: '198.51.100.1' })).status, 401);
  t.is((await c.post('/login', { user: 'bob', password: 'wrong', client: '198.51.100.2' })).status, 401);
  t.is(
    (await c.post('/login', { user: 'carol', password: 'wrong', client: '198.51.100.3' })).status,
    429,
    'the address counts, whatever `client` says',
  );
  const [row] = (await w.deps.store.audit.tail(10)).filter((r) => r.action === 'selfservice login');
  t.is(row!.client, '203.0.113.9');
  c.headers = { 'x-forwarded-for': '203.0.113.10' };
  t.is((await c.post('/login', { user: 'carol', password: 'wrong' })).status, 401, 'another browser address has its own budget');
});

test('fail closed: a login whose ACCEPT cannot be audited is refused and its session deleted', async (t) => {
  const w = await ssWorld(t);
  await enrollTotp(w);
  const c = new SelfserviceClient(w);
  await c.login('alice', USER_PASSWORD);
  const insert = w.deps.store.audit.insert;
  w.deps.store.audit.insert = async () => {
    throw new Error('audit table is gone');
  };
  const r = await c.post('/login/otp', { otp: totpNow(w) }, { follow: false });
  w.deps.store.audit.insert = insert;
  t.is(r.status, 500);
  t.notRegex(r.text, /audit table/, 'no detail for the browser');
  t.false(
    r.headers.getSetCookie().some((x) => x.startsWith('pushgate_ss=') && !x.includes('Max-Age=0')),
    'no session cookie',
  );
  t.is((await w.deps.store.knex('selfservice_sessions').select('id_hash')).length, 0);
  t.regex((await c.get()).text, /<h1>Log in<\/h1>/);
  t.true(w.seen.some((e) => e.name === 'audit.write_failed'));
});

test('the second factor is the token alone: the password stands for the PIN (tokenpin or userstore); passOnNoToken lets nobody in', async (t) => {
  const w = await ssWorld(t, {}, [policy('lenient', 'authentication', { passOnNoToken: true })]);
  await enroll(w, { type: 'totp', otpkey: TOTP_KEY, user: 'bob', serial: 'TOTPBOB', pin: '1234' });
  const c = new SelfserviceClient(w);
  await c.login('bob', USER_PASSWORD);
  t.is((await c.post('/login/otp', { otp: `1234${totpNow(w)}` })).status, 401, 'no PIN in the code field');
  t.regex((await c.post('/login/otp', { otp: totpNow(w) })).text, /<h1>Your devices<\/h1>/);
  // /validate/check still needs the token PIN.
  w.clock.advance(30_000);
  t.is((await w.call('POST', '/validate/check', { user: 'bob', pass: totpNow(w) })).body.result.authentication, 'REJECT');
  // carol has no token: passOnNoToken accepts her at /validate/check, never on this page.
  t.is((await w.call('POST', '/validate/check', { user: 'carol', pass: '' })).body.result.authentication, 'ACCEPT');
  const d = new SelfserviceClient(w);
  t.is((await d.login('carol', USER_PASSWORD)).status, 401);
});
