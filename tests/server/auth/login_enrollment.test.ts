/**
 * Enrollment during login (enroll_via_multichallenge, docs/enroll_via_multichallenge.md) through the eduMFA wire:
 * /validate/check → CHALLENGE with the QR code as `image` → the phone registers (push) or the first OTP (totp) →
 * /validate/check with the transaction id → ACCEPT. And who may not start it.
 */
import test from 'ava';
import { PNG } from 'pngjs';
import jsqrImport from 'jsqr';
import { auditRows, barrier, check, cheapHasher, enrollHotp, policy, usersYaml } from '../../helpers/kit.ts';
import { phoneFor, pushWorld } from '../../helpers/push_world.ts';
import type { TestWorld } from '../../helpers/test_app.ts';
import { base32Decode } from '../../../tokens/base32.ts';
import { hotpValue } from '../../../tokens/otp.ts';
import { openApiDocument } from '../../../server/openapi.ts';
import { ENROLLMENT_SUPERSEDED } from '../../../server/auth/login_enrollment.ts';
import { openApiChecker } from '../../helpers/openapi_check.ts';

type JsQr = (data: Uint8ClampedArray, width: number, height: number) => { data: string } | null;
const jsQR = (typeof jsqrImport === 'function' ? jsqrImport : (jsqrImport as { default: JsQr }).default) as JsQr;
function decodeQr(uri: string): string | null {
  const png = PNG.sync.read(Buffer.from(uri.replace(/^data:image\/png;base64,/, ''), 'base64'));
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data ?? null;
}

const checker = openApiChecker(openApiDocument('https://mfa.example.org'));
const PASSWORD = 'Carol#Pw-42';
const HASH = await cheapHasher.hash(PASSWORD);
const PASSTHRU = policy('passthru', 'authentication', { passthru: true });
const enrollAs = (type: string, actions: Record<string, unknown> = {}, filters: Record<string, unknown> = {}) =>
  policy('enroll', 'authentication', { enroll_via_multichallenge: type, ...actions }, filters);

async function campus(
  t: Parameters<typeof pushWorld>[0],
  policies: Array<Record<string, unknown>>,
  config: Record<string, unknown> = {},
): Promise<TestWorld> {
  return pushWorld(t, {
    policies,
    config: {
      ...config,
      realms: [
        { name: 'campus', default: true, users: { type: 'file', path: 'users.yaml' } },
        { name: 'open', users: { type: 'any' } },
      ],
    },
    world: {
      files: {
        'users.yaml': usersYaml([
          { username: 'carol', password_hash: HASH },
          { username: 'dave', password_hash: HASH },
        ]),
      },
    },
  });
}

const tokensOf = (w: TestWorld, user = 'carol', realm = 'campus') => w.deps.store.tokens.list({ username: user, realm });

/** The current OTP of an otpauth:// URI (secret, digits, period, algorithm as the URI says). */
function otpOf(uri: string, now: number, offsetSteps = 0): string {
  const u = new URL(uri);
  const secret = base32Decode(u.searchParams.get('secret')!);
  const digits = Number(u.searchParams.get('digits') ?? '6') as 6 | 8;
  const period = Number(u.searchParams.get('period') ?? '30');
  const hash = (u.searchParams.get('algorithm') ?? 'SHA1').toLowerCase() as 'sha1';
  return hotpValue(secret, Math.floor(now / (period * 1000)) + offsetSteps, digits, hash);
}

test('totp: the password opens a CHALLENGE with the QR code; the first OTP of the scanned secret finishes the login and the token', async (t) => {
  const w = await campus(t, [PASSTHRU, enrollAs('totp')]);
  const r = await check(w, { user: 'carol', pass: PASSWORD });
  t.is(r.status, 200);
  t.deepEqual(checker.check('POST', '/validate/check', r), [], 'the enrollment challenge is described by the OpenAPI document');
  t.like(r.body.result, { status: true, value: false, authentication: 'CHALLENGE' });
  const d = r.body.detail;
  t.like(d, { enroll_via_multichallenge: true, enroll_via_multichallenge_optional: false, type: 'totp', client_mode: 'interactive' });
  t.is(d.multi_challenge.length, 1);
  const c = d.multi_challenge[0];
  t.like(c, { type: 'totp', client_mode: 'interactive', message: 'Please scan the QR code and enter the OTP value!' });
  t.is(c.transaction_id, d.transaction_id);
  t.deepEqual(d.transaction_ids, [c.transaction_id]);
  t.regex(c.image, /^data:image\/png;base64,/);
  const uri = decodeQr(c.image);
  t.is(uri, c.link, 'the QR code shows the enrollment link');
  t.regex(uri!, /^otpauth:\/\/totp\//);
  t.is(d.image, c.image);

  // Until the first OTP the token is half-enrolled: no normal login uses it.
  const [first] = await tokensOf(w);
  t.like(first, { serial: c.serial, type: 'totp', rolloutState: 'clientwait', active: true });
  t.is(first!.info.enrolled_via, 'multichallenge');
  const bare = await check(w, { user: 'carol', pass: otpOf(uri!, w.clock.now()) });
  t.is(bare.body.result.authentication, 'REJECT', 'an OTP without the transaction id is no login');

  // A second login replaces the unfinished enrollment: the first QR code is dead.
  const r2 = await check(w, { user: 'carol', pass: PASSWORD });
  const c2 = r2.body.detail.multi_challenge[0];
  t.not(c2.serial, c.serial);
  t.deepEqual(
    (await tokensOf(w)).map((x) => x.serial),
    [c2.serial],
  );
  const dead = await check(w, { user: 'carol', pass: otpOf(uri!, w.clock.now()), transaction_id: c.transaction_id });
  t.is(dead.body.result.authentication, 'REJECT');
  const row = (await auditRows(w)).find((a) => a.transactionId === c2.transaction_id)!;
  t.like(row, { outcome: 'CHALLENGE', success: false, username: 'carol', realm: 'campus' });
  t.is(row.info.message, 'enrollment via multichallenge: totp');
  t.deepEqual(row.serials, [c2.serial]);

  // Wrong first OTP: REJECT, still half-enrolled. Right one: ACCEPT, enrolled. Once only.
  const wrong = await check(w, { user: 'carol', pass: '000000', transaction_id: c2.transaction_id });
  t.is(wrong.body.result.authentication, 'REJECT');
  t.is((await tokensOf(w))[0]!.rolloutState, 'clientwait');
  const uri2 = decodeQr(c2.image)!;
  const otp = otpOf(uri2, w.clock.now());
  const ok = await check(w, { user: 'carol', pass: otp, transaction_id: c2.transaction_id });
  t.like(ok.body, {
    result: { value: true, authentication: 'ACCEPT' },
    detail: { message: 'Found matching challenge', serial: c2.serial },
  });
  t.like(await w.deps.store.tokens.bySerial(c2.serial), { rolloutState: 'enrolled', active: true });
  t.is((await check(w, { user: 'carol', pass: otp, transaction_id: c2.transaction_id })).body.result.authentication, 'REJECT');

  // Now carol owns a token: her password alone is no login and starts no enrollment; the token's next OTP is.
  t.is((await check(w, { user: 'carol', pass: PASSWORD })).body.result.authentication, 'REJECT');
  t.is((await tokensOf(w)).length, 1);
  w.clock.advance(30_000);
  t.is((await check(w, { user: 'carol', pass: otpOf(uri2, w.clock.now()) })).body.result.authentication, 'ACCEPT');
});

test('totp: the enrollment challenge expires with the challenge validity; the late OTP is refused and the next login starts over', async (t) => {
  const w = await campus(t, [
    PASSTHRU,
    enrollAs('totp', { enroll_via_multichallenge_text: 'Scan this with your authenticator app, then type its code.' }),
  ]);
  const r = await check(w, { user: 'carol', pass: PASSWORD });
  const c = r.body.detail.multi_challenge[0];
  t.is(c.message, 'Scan this with your authenticator app, then type its code.');
  w.clock.advance(121_000); // challenge.validity_seconds defaults to 120
  const late = await check(w, { user: 'carol', pass: otpOf(c.link, w.clock.now()), transaction_id: c.transaction_id });
  t.is(late.body.result.authentication, 'REJECT');
  t.is((await w.deps.store.tokens.bySerial(c.serial))?.rolloutState, 'clientwait');
  const next = await check(w, { user: 'carol', pass: PASSWORD });
  t.is(next.body.result.authentication, 'CHALLENGE');
  t.deepEqual(
    (await tokensOf(w)).map((x) => x.serial),
    [next.body.detail.serial],
    'the expired half-enrolled token was replaced',
  );
});

for (const [type, style, scheme] of [
  ['edupush', 'edumfa-next', 'edumfa-push://'],
  ['push', 'privacyidea', 'otpauth://pipush/'],
] as const) {
  test(`${type}: the QR code enrolls the phone; polltransaction turns true and the check with the transaction id is ACCEPT`, async (t) => {
    const w = await campus(t, [PASSTHRU, enrollAs(type)]);
    const r = await check(w, { user: 'carol', pass: PASSWORD });
    t.like(r.body, {
      result: { value: false, authentication: 'CHALLENGE' },
      detail: { preferred_client_mode: 'poll', client_mode: 'poll', type, enroll_via_multichallenge: true },
    });
    const c = r.body.detail.multi_challenge[0];
    t.like(c, { type, client_mode: 'poll', message: 'Please scan the QR code!' });
    const link = decodeQr(c.image)!;
    t.true(link.startsWith(scheme));
    t.is(link, c.link);
    const poll = async () => (await w.call('GET', '/validate/polltransaction', { transaction_id: c.transaction_id })).body.result.value;
    t.false(await poll());
    // Before the phone registered, finishing is refused (and the token stays half-enrolled).
    t.is((await check(w, { user: 'carol', pass: '', transaction_id: c.transaction_id })).body.result.authentication, 'REJECT');

    const phone = phoneFor(w, style);
    t.is(phone.scan(link).serial, c.serial);
    const enrolled = await phone.enroll();
    t.is(enrolled.status, 200, enrolled.text);
    t.true(await poll());
    const done = await check(w, { user: 'carol', pass: '', transaction_id: c.transaction_id });
    t.like(done.body, { result: { value: true, authentication: 'ACCEPT' }, detail: { serial: c.serial } });
    t.like(await w.deps.store.tokens.bySerial(c.serial), { rolloutState: 'enrolled', active: true });
    t.is(
      (await check(w, { user: 'carol', pass: '', transaction_id: c.transaction_id })).body.result.authentication,
      'REJECT',
      'single use',
    );
    // The next login is an ordinary push login of the new token.
    const next = await check(w, { user: 'carol', pass: '' });
    t.like(next.body.detail.multi_challenge[0], { serial: c.serial, type, client_mode: 'poll' });
    t.is(next.body.detail.enroll_via_multichallenge, undefined);
  });
}

test('refused: policy off, a user store without passwords, wrong password, a user who owns a token', async (t) => {
  const w = await campus(t, [PASSTHRU, enrollAs('edupush', {}, { user: ['carol', 'mallory'] })]);
  // Policy off (dave is not in the enrollment policy): plain passthru ACCEPT, no token.
  t.is((await check(w, { user: 'dave', pass: PASSWORD })).body.result.authentication, 'ACCEPT');
  t.deepEqual(await tokensOf(w, 'dave'), []);
  // A user store without passwords (`any`: the IdP vouches for the name) can never start an enrollment.
  const any = await check(w, { user: 'mallory', realm: 'open', pass: 'whatever' });
  t.is(any.body.result.authentication, 'REJECT');
  t.deepEqual(await tokensOf(w, 'mallory', 'open'), []);
  // A made-up transaction id (such requests are not counted by the back-off) is no password login either.
  const bogus = await check(w, { user: 'carol', pass: PASSWORD, transaction_id: '12345678901234567890' });
  t.like(bogus.body, {
    result: { value: false, authentication: 'REJECT' },
    detail: { message: 'transaction already finished or unknown' },
  });
  t.is((await check(w, { user: 'dave', pass: PASSWORD, transaction_id: '12345678901234567890' })).body.result.authentication, 'REJECT');
  t.deepEqual(await tokensOf(w), []);
  // Wrong first factor: REJECT, no token — an attacker who knows the user name gets no QR code.
  const wrong = await check(w, { user: 'carol', pass: 'guess' });
  t.like(wrong.body, { result: { value: false, authentication: 'REJECT' } });
  t.is(wrong.body.detail.image, undefined);
  t.deepEqual(await tokensOf(w), []);
  // A user who owns a token: the password is no login, and naming another type does not hide the token.
  await enrollHotp(w, { user: 'carol', realm: 'campus', pin: '', serial: 'HOTPCAROL' });
  for (const extra of [{}, { type: 'edupush' }, { type: 'totp' }]) {
    const r = await check(w, { user: 'carol', pass: PASSWORD, ...extra });
    t.is(r.body.result.authentication, 'REJECT', JSON.stringify(extra));
    t.is(r.body.detail.image, undefined);
  }
  t.deepEqual(
    (await tokensOf(w)).map((x) => x.serial),
    ['HOTPCAROL'],
  );
  const audit = await auditRows(w);
  t.false(audit.some((a) => a.outcome === 'CHALLENGE'));
});

test('refused: passOnNoToken (nothing verified) never enrolls, whatever the pass', async (t) => {
  const w = await campus(t, [policy('pont', 'authentication', { passOnNoToken: true }), enrollAs('totp')]);
  const r = await check(w, { user: 'carol', pass: 'anything' });
  t.like(r.body, { result: { authentication: 'ACCEPT' }, detail: { message: "user has no token, accepted due to 'pont'" } });
  t.deepEqual(await tokensOf(w), []);
});

for (const forced of [false, true]) {
  test(`parallel logins of one user leave one half-enrolled token; only the newest enrollment can finish${forced ? ' (all inserted before any read)' : ''}`, async (t) => {
    const w = await campus(t, [PASSTHRU, enrollAs('totp')]);
    // Forced: every login has inserted its token before any reads the user's tokens — the older ones give up while
    // the newest deletes them, so its deletes find them gone (and it must not give up for that).
    if (forced) barrier(w.deps.store.tokens, 'insert', 3);
    const replies = await Promise.all([1, 2, 3].map(() => check(w, { user: 'carol', pass: PASSWORD })));
    for (const r of replies) t.is(r.status, 200);
    const tokens = await tokensOf(w);
    t.is(tokens.length, 1, 'one token, not three');
    const winners = replies.filter((r) => r.body.detail.serial === tokens[0]!.serial && r.body.result.authentication === 'CHALLENGE');
    t.is(winners.length, 1);
    for (const r of replies.filter((x) => x !== winners[0])) {
      // A loser either gave up (REJECT) or was replaced: its OTP does not finish a login.
      if (r.body.result.authentication !== 'CHALLENGE') continue;
      const c = r.body.detail.multi_challenge[0];
      t.is(
        (await check(w, { user: 'carol', pass: otpOf(c.link, w.clock.now()), transaction_id: c.transaction_id })).body.result
          .authentication,
        'REJECT',
      );
    }
    const c = winners[0]!.body.detail.multi_challenge[0];
    t.is(
      (await check(w, { user: 'carol', pass: otpOf(c.link, w.clock.now()), transaction_id: c.transaction_id })).body.result.authentication,
      'ACCEPT',
    );
    t.like((await tokensOf(w))[0], { serial: c.serial, rolloutState: 'enrolled' });
  });
}

test('a password flood cannot churn tokens: starting an enrollment takes a place of the per-user challenge limit', async (t) => {
  const w = await campus(t, [PASSTHRU, enrollAs('totp')], { limits: { challenges_per_user: 2 } });
  for (let i = 0; i < 2; i++) t.is((await check(w, { user: 'carol', pass: PASSWORD })).body.result.authentication, 'CHALLENGE');
  const refused = await check(w, { user: 'carol', pass: PASSWORD });
  t.is(refused.status, 429);
  t.regex(refused.headers.get('retry-after') ?? '', /^\d+$/);
  t.is((await tokensOf(w)).length, 1);
});

test('a login whose token a newer login deleted before its challenge was stored answers REJECT, not a database error', async (t) => {
  const w = await campus(t, [PASSTHRU, enrollAs('totp')]);
  const challenges = w.deps.store.challenges;
  const insert = challenges.insert.bind(challenges);
  // The newer login's delete lands between this login's token insert and its challenge insert.
  challenges.insert = async (c) => {
    await w.deps.store.tokens.deleteIfClientwait(c.tokenId);
    return insert(c);
  };
  const r = await check(w, { user: 'carol', pass: PASSWORD });
  t.is(r.status, 200, r.text);
  t.like(r.body, { result: { value: false, authentication: 'REJECT' }, detail: { message: ENROLLMENT_SUPERSEDED } });
  t.deepEqual(await tokensOf(w), []);
});
