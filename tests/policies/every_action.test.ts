/**
 * Issue 10, wire fix 3: no policy action is accepted and ignored. Every action the server declares (CORE_ACTIONS
 * and every token type's policyActions, as the running server registers them) has a scenario below: a request run
 * in two fresh worlds — without and with a policy that sets the action — and the observation each must give.
 * A new action without a scenario fails the coverage test; a scenario whose two observations are equal fails too.
 *
 * Adding an action: add a row to SCENARIOS keyed `<scope>:<name>` (admin rights: one `adminRight(...)` line).
 */
import crypto from 'node:crypto';
import test from 'ava';
import { signDeviceText, signedText, spkiBase64 } from '../../tokens/push/device.ts';
import type { ExecutionContext } from 'ava';
import { createWorld, type Reply, type TestWorld } from '../helpers/test_app.ts';
import { KEY_HEX, RFC, check, cheapHasher, enroll, enrollHotp, hotpAt, policy, totpAt, until, usersYaml } from '../helpers/kit.ts';
import { enrollPhone, phoneFor } from '../helpers/push_world.ts';
import { testKeySource } from '../helpers/push_ctx.ts';
import type { AppStyle, SmartphoneData } from '../helpers/fake_phone.ts';
import { SelfserviceClient } from '../helpers/selfservice_client.ts';

type Pol = Record<string, unknown>;

interface Scenario {
  /** The action's value in the "with" run: a policy of the action's scope that sets only this action. */
  readonly value: unknown;
  /** Policies present in both runs. */
  readonly base?: readonly Pol[];
  /** A world with the push types ready to enroll (server keys pre-made). */
  readonly push?: boolean;
  /** The request(s) and what the client sees of them. */
  run(w: TestWorld): Promise<unknown>;
  /** Observation [without the policy, with it]; they must differ. */
  readonly expect: readonly [unknown, unknown];
}

// ---------------------------------------------------------------------------------------------------------------
// Worlds

const PASSWORD_HASH = await cheapHasher.hash('user-pw');
const USERS = usersYaml([
  { username: 'alice', givenname: 'Alice', email: 'alice@example.org', password_hash: PASSWORD_HASH },
  { username: 'carol', password_hash: PASSWORD_HASH }, // no tokens
]);
const PUSH_ENROLL = policy('push-enroll', 'enrollment', {
  edupush_firebase_configuration: 'poll only',
  push_firebase_configuration: 'poll only',
});
const CR_HOTP = policy('cr', 'authentication', { challenge_response: ['hotp'] });
const keySource = await testKeySource();

/** At most this many worlds at once (each scenario needs two; PostgreSQL/MariaDB create a database per world). */
const slots = (() => {
  let free = 4;
  const queue: Array<() => void> = [];
  return {
    async take(): Promise<void> {
      if (free > 0) {
        free--;
        return;
      }
      await new Promise<void>((r) => queue.push(r));
    },
    give(): void {
      const next = queue.shift();
      if (next) next();
      else free++;
    },
  };
})();

async function observe(s: Scenario, extra: Pol | null): Promise<unknown> {
  const w = await createWorld({
    files: { 'users.yaml': USERS },
    config: {
      realms: [{ name: 'staff', default: true, users: { type: 'file', path: './users.yaml' } }],
      policies: [...(s.base ?? []), ...(extra ? [extra] : [])],
      limits: { challenges_per_user: 0, failed_per_user: 0, failed_per_address: 0 },
      selfservice: { enabled: true, cookie_secure: false },
    },
    ...(s.push ? { push: { keys: { generate: keySource, size: 1 } } } : {}),
  });
  try {
    return await s.run(w);
  } finally {
    await w.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

const status = (r: Reply) => r.status;
const auth = (r: Reply) => r.body?.result?.authentication ?? `HTTP ${r.status}`;
const admin = async (w: TestWorld) => ({ Authorization: await w.adminToken() });
const aliceOtp = (w: TestWorld, pass: string) => check(w, { user: 'alice', pass });

/** The params of the enrollment URL (otpauth://, edumfa-push://, otpauth://pipush/) of a /token/init answer. */
function urlParams(body: any, key: 'googleurl' | 'pushurl'): URLSearchParams & { label: string } {
  const url = body.detail[key].value as string;
  const q = url.indexOf('?');
  const params = new URLSearchParams(url.slice(q + 1)) as URLSearchParams & { label: string };
  params.label = decodeURIComponent(url.slice(0, q).replace(/^[a-z-]+:\/\/[a-z]+\//, ''));
  return params;
}

const enrollGenkey = async (w: TestWorld, type: string) => enroll(w, { type, genkey: 1, user: 'alice', pin: '1234' });

/** An enrolled phone of alice (PIN 1234) and a push login: the smartphone data the phone polls. */
async function pushLogin(
  w: TestWorld,
  type: 'edupush' | 'push',
): Promise<{ phone: ReturnType<typeof phoneFor>; tid: string; data: SmartphoneData }> {
  const phone = phoneFor(w, type === 'push' ? 'privacyidea' : 'edumfa-next');
  await enrollPhone(w, phone, type);
  const c = await check(w, { user: 'alice', pass: '1234' });
  const polled = await phone.poll();
  return { phone, tid: c.body.detail.transaction_id as string, data: polled.body.result.value[0] as SmartphoneData };
}

/** A v2 device of alice (EC P-256 key) and a push login: the first entry of the device's long-poll list. */
async function deviceLogin(w: TestWorld): Promise<Record<string, unknown>> {
  const url = urlParams(await enrollGenkey(w, 'edupush'), 'pushurl');
  const serial = url.get('serial')!;
  const credential = url.get('enrollment_credential')!;
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pubkey = spkiBase64(key.publicKey);
  const signature = signDeviceText(key.privateKey, signedText.enroll(serial, credential, pubkey, 'lax', '', ''));
  const e = await w.call('POST', '/device/v2/enroll', { serial, enrollment_credential: credential, pubkey, auth_mode: 'lax', signature });
  if (e.status !== 200) throw new Error(`device enrollment failed: ${e.text}`);
  await check(w, { user: 'alice', pass: '1234' });
  const ts = String(w.clock.now());
  const sig = signDeviceText(key.privateKey, signedText.request('GET', '/device/v2/challenges', serial, ts));
  const r = await w.call(
    'GET',
    '/device/v2/challenges',
    {},
    {
      headers: { authorization: `PushGate-Device serial="${serial}", timestamp="${ts}", signature="${sig}"` },
    },
  );
  return r.body.result.value[0];
}
const DEVICE_OFFER = policy('device-offer', 'enrollment', { edupush_device_protocol: true });

/**
 * Push logins for alice that expire unanswered, `times` times (each after the back-off of the one before), then
 * one more trigger: its Retry-After (null when it was not refused).
 */
async function unansweredThenRetryAfter(w: TestWorld, times: number): Promise<string | null> {
  await pushLogin(w, 'edupush');
  for (let i = 1; i <= times; i++) {
    w.clock.advance(120_000);
    if (i < times) {
      w.clock.advance(3_600_000);
      await check(w, { user: 'alice', pass: '1234' });
    }
  }
  return (await check(w, { user: 'alice', pass: '1234' })).headers.get('retry-after');
}

/**
 * An admin right: an admin policy exists in both runs (granting `other`), so without the action the endpoint is 403,
 * with it 200. Alice's HOTP token OATH0001 is enrolled first, while no policy applies.
 */
function adminRight(request: (w: TestWorld, h: Record<string, string>) => Promise<Reply>, other = 'enroll'): Scenario {
  return {
    value: true,
    base: [policy('admin-base', 'admin', { [other]: true })],
    async run(w) {
      const policies = w.deps.config.policies;
      w.deps.reloadPolicies({ ...w.deps.config, policies: [] }); // alice's token, enrolled before the admin policies apply
      await enrollHotp(w);
      w.deps.reloadPolicies({ ...w.deps.config, policies });
      return status(await request(w, await admin(w)));
    },
    expect: [403, 200],
  };
}

/** The ten actions of a push variant (`edupush_…` or `push_…`). */
function pushScenarios(type: 'edupush' | 'push'): Record<string, Scenario> {
  const p = type;
  const enrollUrl = async (w: TestWorld) => urlParams(await enrollGenkey(w, type), 'pushurl');
  return {
    [`enrollment:${p}_firebase_configuration`]: {
      value: 'poll only',
      push: true,
      run: async (w) => status(await w.call('POST', '/token/init', { type, genkey: 1, user: 'alice' }, { headers: await admin(w) })),
      expect: [403, 200],
    },
    [`enrollment:${p}_registration_url`]: {
      value: 'https://push.example.org/ttype/x',
      push: true,
      base: [PUSH_ENROLL],
      run: async (w) => (await enrollUrl(w)).get('url'),
      expect: [`https://mfa.example.org/ttype/${type}`, 'https://push.example.org/ttype/x'],
    },
    [`enrollment:${p}_ttl`]: {
      value: 3,
      push: true,
      base: [PUSH_ENROLL],
      run: async (w) => (await enrollUrl(w)).get('ttl'),
      expect: ['10', '3'],
    },
    [`enrollment:${p}_ssl_verify`]: {
      value: '0',
      push: true,
      base: [PUSH_ENROLL],
      run: async (w) => (await enrollUrl(w)).get('sslverify'),
      expect: ['1', '0'],
    },
    [`enrollment:${p}_force_app_pin`]: {
      value: true,
      push: true,
      base: [PUSH_ENROLL],
      run: async (w) => (await enrollUrl(w)).get('pin'),
      expect: [null, 'True'],
    },
    [`authentication:${p}_ssl_verify`]: {
      value: '0',
      push: true,
      base: [PUSH_ENROLL],
      run: async (w) => (await pushLogin(w, type)).data.sslverify,
      expect: ['1', '0'],
    },
    [`authentication:${p}_text_on_mobile`]: {
      value: 'Really you?',
      push: true,
      base: [PUSH_ENROLL],
      run: async (w) => (await pushLogin(w, type)).data.question,
      expect: ['Do you want to confirm the login?', 'Really you?'],
    },
    [`authentication:${p}_title_on_mobile`]: {
      value: 'Uni login',
      push: true,
      base: [PUSH_ENROLL],
      run: async (w) => (await pushLogin(w, type)).data.title,
      expect: ['eduMFA', 'Uni login'],
    },
    [`authentication:${p}_allow_polling`]: {
      value: 'deny',
      push: true,
      base: [PUSH_ENROLL],
      async run(w) {
        const phone = phoneFor(w, (type === 'push' ? 'privacyidea' : 'edumfa-next') as AppStyle);
        await enrollPhone(w, phone, type);
        return status(await phone.poll());
      },
      expect: [200, 403],
    },
    [`authentication:${p}_wait`]: {
      value: 5,
      push: true,
      base: [PUSH_ENROLL],
      async run(w) {
        const phone = phoneFor(w, type === 'push' ? 'privacyidea' : 'edumfa-next');
        await enrollPhone(w, phone, type);
        let done = false;
        const r = check(w, { user: 'alice', pass: '1234' }).finally(() => {
          done = true;
        });
        await until(() => done || (w.deps.waits.active === 1 && w.deps.answers.waiting === 1)); // parked on the answer bus
        if (!done) w.clock.advance(6000); // no answer within the wait
        return auth(await r);
      },
      expect: ['CHALLENGE', 'REJECT'],
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The table

const SCENARIOS: Record<string, Scenario> = {
  // authentication
  'authentication:otppin': {
    value: 'none',
    async run(w) {
      await enrollHotp(w);
      return auth(await aliceOtp(w, RFC[0]!));
    },
    expect: ['REJECT', 'ACCEPT'],
  },
  'authentication:passthru': {
    value: true,
    run: async (w) => auth(await check(w, { user: 'carol', pass: 'user-pw' })),
    expect: ['REJECT', 'ACCEPT'],
  },
  'authentication:enroll_via_multichallenge': {
    value: 'totp',
    base: [policy('pt', 'authentication', { passthru: true })],
    run: async (w) => auth(await check(w, { user: 'carol', pass: 'user-pw' })),
    expect: ['ACCEPT', 'CHALLENGE'],
  },
  'authentication:enroll_via_multichallenge_text': {
    value: 'Scan this code with your authenticator app.',
    base: [policy('pt', 'authentication', { passthru: true }), policy('evm', 'authentication', { enroll_via_multichallenge: 'totp' })],
    run: async (w) => (await check(w, { user: 'carol', pass: 'user-pw' })).body.detail.message,
    expect: ['Please scan the QR code and enter the OTP value!', 'Scan this code with your authenticator app.'],
  },
  'authentication:passOnNoToken': {
    value: true,
    run: async (w) => auth(await check(w, { user: 'carol', pass: 'anything' })),
    expect: ['REJECT', 'ACCEPT'],
  },
  'authentication:selfservice_first_enrollment': {
    value: true,
    // carol has no token: the self-service page lets her in with her password only by this policy.
    run: async (w) => {
      const c = new SelfserviceClient(w);
      const r = await c.login('carol', 'user-pw', { follow: false });
      return r.status === 303 ? `303 ${r.headers.get('location')}` : `HTTP ${r.status}`;
    },
    expect: ['HTTP 401', '303 /selfservice'],
  },
  'authentication:passOnNoUser': {
    value: true,
    run: async (w) => auth(await check(w, { user: 'mallory', pass: 'x' })),
    expect: ['HTTP 400', 'ACCEPT'],
  },
  'authentication:challenge_response': {
    value: ['hotp'],
    async run(w) {
      await enrollHotp(w);
      return auth(await aliceOtp(w, '1234'));
    },
    expect: ['REJECT', 'CHALLENGE'],
  },
  'authentication:challenge_text': {
    value: 'Your code, please',
    base: [CR_HOTP],
    async run(w) {
      await enrollHotp(w);
      return (await aliceOtp(w, '1234')).body.detail.message;
    },
    expect: ['please enter otp: ', 'Your code, please'],
  },
  'authentication:challenge_text_header': {
    value: 'Choose:<ul>',
    base: [CR_HOTP],
    async run(w) {
      await enrollHotp(w);
      return (await aliceOtp(w, '1234')).body.detail.message;
    },
    expect: ['please enter otp: ', 'Choose:<ul><li>please enter otp: </li>\n'],
  },
  'authentication:challenge_text_footer': {
    value: '</ul>',
    base: [CR_HOTP, policy('header', 'authentication', { challenge_text_header: 'Choose:<ul>' })],
    async run(w) {
      await enrollHotp(w);
      return (await aliceOtp(w, '1234')).body.detail.message;
    },
    expect: ['Choose:<ul><li>please enter otp: </li>\n', 'Choose:<ul><li>please enter otp: </li>\n</ul>'],
  },
  'authentication:preferred_client_mode': {
    value: ['poll', 'interactive'],
    push: true,
    base: [PUSH_ENROLL, CR_HOTP],
    async run(w) {
      await enrollPhone(w, phoneFor(w));
      await enrollHotp(w);
      return (await aliceOtp(w, '1234')).body.detail.preferred_client_mode;
    },
    expect: ['interactive', 'poll'],
  },
  'authentication:increase_failcounter_on_challenge': {
    value: true,
    base: [CR_HOTP],
    async run(w) {
      await enrollHotp(w);
      await aliceOtp(w, '1234');
      return (await w.deps.store.tokens.bySerial('OATH0001'))!.failCount;
    },
    expect: [0, 1],
  },
  'authentication:hotp_window': {
    value: 20,
    async run(w) {
      await enrollHotp(w);
      return auth(await aliceOtp(w, '1234' + hotpAt(15)));
    },
    expect: ['REJECT', 'ACCEPT'],
  },
  'authentication:totp_window': {
    value: 0,
    async run(w) {
      await enroll(w, { type: 'totp', otpkey: KEY_HEX, user: 'alice', pin: '1234', serial: 'TOTP0001' });
      return auth(await aliceOtp(w, '1234' + totpAt(w.clock.now() - 30_000))); // one step behind
    },
    expect: ['ACCEPT', 'REJECT'],
  },

  // authorization
  'authorization:last_auth': {
    value: '1h',
    async run(w) {
      await enrollHotp(w);
      await aliceOtp(w, '1234' + hotpAt(0));
      w.clock.advance(2 * 3_600_000);
      return auth(await aliceOtp(w, '1234' + hotpAt(1)));
    },
    expect: ['ACCEPT', 'REJECT'],
  },
  'authorization:no_detail_on_success': {
    value: true,
    async run(w) {
      await enrollHotp(w);
      return 'detail' in (await aliceOtp(w, '1234' + hotpAt(0))).body;
    },
    expect: [true, false],
  },
  'authorization:no_detail_on_fail': {
    value: true,
    async run(w) {
      await enrollHotp(w);
      return 'detail' in (await aliceOtp(w, '1234000000')).body;
    },
    expect: [true, false],
  },
  'authorization:api_key_required': {
    value: true,
    async run(w) {
      await enrollHotp(w);
      return status(await aliceOtp(w, '1234' + hotpAt(0)));
    },
    expect: [200, 403],
  },
  'authorization:application_required': {
    value: true,
    async run(w) {
      await enrollHotp(w);
      return status(await aliceOtp(w, '1234' + hotpAt(0)));
    },
    expect: [200, 401],
  },
  'authorization:authorized': {
    value: 'deny_access',
    async run(w) {
      await enrollHotp(w);
      return status(await aliceOtp(w, '1234' + hotpAt(0)));
    },
    expect: [200, 400],
  },
  'authorization:tokentype': {
    value: ['totp'],
    async run(w) {
      await enrollHotp(w);
      return status(await aliceOtp(w, '1234' + hotpAt(0)));
    },
    expect: [200, 403],
  },
  'authorization:add_user_in_response': {
    value: true,
    async run(w) {
      await enrollHotp(w);
      return (await aliceOtp(w, '1234' + hotpAt(0))).body.detail.user ?? null;
    },
    expect: [null, { username: 'alice', email: 'alice@example.org', givenname: 'Alice', password: '' }],
  },
  'authorization:add_resolver_in_response': {
    value: true,
    async run(w) {
      await enrollHotp(w);
      const d = (await aliceOtp(w, '1234' + hotpAt(0))).body.detail;
      return [d['user-realm'] ?? null, d['user-resolver'] ?? null];
    },
    expect: [
      [null, null],
      ['staff', 'staff_file'],
    ],
  },
  'authorization:declined_authentication': {
    value: 'declined',
    push: true,
    base: [PUSH_ENROLL],
    async run(w) {
      const { phone, tid, data } = await pushLogin(w, 'edupush');
      await phone.answer(data, { decline: true });
      return auth(await check(w, { user: 'alice', pass: '', transaction_id: tid }));
    },
    expect: ['REJECT', 'DECLINED'],
  },

  // push fatigue (no trusted proxy in these worlds: every trigger's address is unknown, so only the user counts)
  'authentication:push_open_logins': {
    value: 1,
    push: true,
    base: [PUSH_ENROLL],
    async run(w) {
      await pushLogin(w, 'edupush');
      return auth(await check(w, { user: 'alice', pass: '1234' }));
    },
    expect: ['CHALLENGE', 'HTTP 429'],
  },
  'authentication:push_backoff_start': {
    value: 5,
    push: true,
    base: [PUSH_ENROLL, policy('user-now', 'authentication', { push_backoff_user_after: 0 })],
    run: (w) => unansweredThenRetryAfter(w, 1),
    expect: ['30', '5'],
  },
  'authentication:push_backoff_factor': {
    value: 3,
    push: true,
    base: [PUSH_ENROLL, policy('user-now', 'authentication', { push_backoff_user_after: 0 })],
    run: (w) => unansweredThenRetryAfter(w, 2),
    expect: ['60', '90'],
  },
  'authentication:push_backoff_max': {
    value: 40,
    push: true,
    base: [PUSH_ENROLL, policy('user-now', 'authentication', { push_backoff_user_after: 0 })],
    run: (w) => unansweredThenRetryAfter(w, 2),
    expect: ['60', '40'],
  },
  'authentication:push_backoff_user_after': {
    value: 0,
    push: true,
    base: [PUSH_ENROLL],
    run: (w) => unansweredThenRetryAfter(w, 1),
    expect: [null, '30'],
  },
  'authentication:push_decline_lock': {
    value: 1,
    push: true,
    base: [PUSH_ENROLL],
    async run(w) {
      const { phone, data } = await pushLogin(w, 'edupush');
      await phone.answer(data, { decline: true });
      w.clock.advance(3_600_000);
      return auth(await check(w, { user: 'alice', pass: '1234' }));
    },
    expect: ['CHALLENGE', 'REJECT'],
  },
  'authentication:push_decline_lock_target': {
    value: 'token',
    push: true,
    base: [PUSH_ENROLL, policy('lock-1', 'authentication', { push_decline_lock: 1 })],
    async run(w) {
      const { phone, data } = await pushLogin(w, 'edupush');
      await phone.answer(data, { decline: true });
      const t = await w.deps.store.tokens.bySerial(data.serial);
      return t!.failCount >= t!.maxFail;
    },
    expect: [false, true],
  },

  // enrollment
  'enrollment:max_token_per_user': {
    value: 1,
    async run(w) {
      await enrollHotp(w);
      return status(await w.call('POST', '/token/init', { type: 'hotp', genkey: 1, user: 'alice' }, { headers: await admin(w) }));
    },
    expect: [200, 403],
  },
  'enrollment:tokenlabel': {
    value: '<u>@<r>',
    run: async (w) => urlParams(await enrollGenkey(w, 'hotp'), 'googleurl').label.replace(/^pushgate:OATH[0-9A-F]+$/, 'pushgate:<serial>'),
    expect: ['pushgate:<serial>', 'pushgate:alice@staff'],
  },
  'enrollment:tokenissuer': {
    value: 'University',
    run: async (w) => urlParams(await enrollGenkey(w, 'hotp'), 'googleurl').get('issuer'),
    expect: ['pushgate', 'University'],
  },
  'enrollment:appimageurl': {
    value: 'https://idp.example.org/logo.png',
    push: true,
    base: [PUSH_ENROLL],
    run: async (w) => urlParams(await enrollGenkey(w, 'edupush'), 'pushurl').get('image'),
    expect: [null, 'https://idp.example.org/logo.png'],
  },
  'enrollment:hotp_hashlib': {
    value: 'sha256',
    run: async (w) => urlParams(await enrollGenkey(w, 'hotp'), 'googleurl').get('algorithm'),
    expect: ['SHA1', 'SHA256'],
  },
  'enrollment:hotp_otplen': {
    value: '8',
    run: async (w) => urlParams(await enrollGenkey(w, 'hotp'), 'googleurl').get('digits'),
    expect: ['6', '8'],
  },
  'enrollment:totp_hashlib': {
    value: 'sha512',
    run: async (w) => urlParams(await enrollGenkey(w, 'totp'), 'googleurl').get('algorithm'),
    expect: ['SHA1', 'SHA512'],
  },
  'enrollment:totp_otplen': {
    value: '8',
    run: async (w) => urlParams(await enrollGenkey(w, 'totp'), 'googleurl').get('digits'),
    expect: ['6', '8'],
  },
  'enrollment:totp_timestep': {
    value: '60',
    run: async (w) => urlParams(await enrollGenkey(w, 'totp'), 'googleurl').get('period'),
    expect: ['30', '60'],
  },

  // push types
  ...pushScenarios('edupush'),
  'enrollment:edupush_device_protocol': {
    value: true,
    push: true,
    base: [PUSH_ENROLL],
    run: async (w) => urlParams(await enrollGenkey(w, 'edupush'), 'pushurl').get('pushgate'),
    expect: [null, '2'],
  },
  'enrollment:edupush_device_auth_mode': {
    value: 'strict',
    run: async (w) => (await w.call('GET', '/.well-known/pushgate')).body.result.value.authentication_mode,
    expect: ['lax', 'strict'],
  },
  'authentication:edupush_device_payload': {
    value: 'encrypted',
    push: true,
    base: [PUSH_ENROLL, DEVICE_OFFER],
    run: async (w) => Object.keys(await deviceLogin(w)).includes('sealed'),
    expect: [false, true],
  },
  ...pushScenarios('push'),
  // issue 11: push proofs
  'authentication:push_matching': {
    value: 'always',
    push: true,
    base: [PUSH_ENROLL],
    run: async (w) => /Approve only if your login page shows: \S+ \S+$/.test((await pushLogin(w, 'edupush')).data.question),
    expect: [false, true],
  },
  'authentication:push_matching_format': {
    value: 'digits',
    push: true,
    base: [PUSH_ENROLL, policy('always-match', 'authentication', { push_matching: 'always' })],
    run: async (w) => /shows: \d{4}$/.test((await pushLogin(w, 'edupush')).data.question),
    expect: [false, true],
  },
  'authentication:push_code_to_login': {
    value: true,
    push: true,
    base: [PUSH_ENROLL],
    async run(w) {
      const phone = phoneFor(w, 'edumfa-next');
      await enrollPhone(w, phone, 'edupush');
      return (await check(w, { user: 'alice', pass: '1234' })).body.detail.multi_challenge[0].client_mode;
    },
    expect: ['poll', 'interactive'],
  },
  'authentication:push_require_presence': {
    value: true,
    push: true,
    base: [PUSH_ENROLL],
    run: async (w) => (await pushLogin(w, 'push')).data.require_presence?.split(',').length ?? 0,
    expect: [0, 3],
  },
  'authentication:push_presence_options': {
    value: 'NUMERIC',
    push: true,
    base: [PUSH_ENROLL, policy('presence', 'authentication', { push_require_presence: true })],
    run: async (w) => /^\d\d(,\d\d)+$/.test((await pushLogin(w, 'push')).data.require_presence ?? ''),
    expect: [false, true],
  },
  'authentication:push_presence_custom_options': {
    value: 'yes:no',
    push: true,
    base: [PUSH_ENROLL, policy('presence', 'authentication', { push_require_presence: true, push_presence_options: 'CUSTOM' })],
    run: async (w) => ((await pushLogin(w, 'push')).data.require_presence ?? '').split(',').sort().join(',') === 'no,yes',
    expect: [false, true],
  },
  'authentication:push_presence_num_options': {
    value: 6,
    push: true,
    base: [PUSH_ENROLL, policy('presence', 'authentication', { push_require_presence: true })],
    run: async (w) => (await pushLogin(w, 'push')).data.require_presence?.split(',').length ?? 0,
    expect: [3, 6],
  },

  // admin rights
  'admin:triggerchallenge': adminRight((w, h) => w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: h })),
  'admin:enroll': adminRight(
    (w, h) => w.call('POST', '/token/init', { type: 'hotp', genkey: 1, user: 'alice' }, { headers: h }),
    'triggerchallenge',
  ),
  'admin:delete': adminRight((w, h) => w.call('DELETE', '/token/OATH0001', {}, { headers: h })),
  'admin:enable': adminRight((w, h) => w.call('POST', '/token/enable/OATH0001', {}, { headers: h })),
  'admin:disable': adminRight((w, h) => w.call('POST', '/token/disable/OATH0001', {}, { headers: h })),
  'admin:reset': adminRight((w, h) => w.call('POST', '/token/reset/OATH0001', {}, { headers: h })),
  'admin:setpin': adminRight((w, h) => w.call('POST', '/token/setpin/OATH0001', { otppin: '5678' }, { headers: h })),
  // the eduMFA admin API (server/routes/admin.ts)
  'admin:assign': adminRight(async (w, h) => {
    await w.call('POST', '/token/init', { type: 'spass', serial: 'FREE0001' }, { headers: h }); // enroll: granted by the base
    return w.call('POST', '/token/assign', { serial: 'FREE0001', user: 'alice' }, { headers: h });
  }),
  'admin:unassign': adminRight((w, h) => w.call('POST', '/token/unassign', { serial: 'OATH0001' }, { headers: h })),
  'admin:set': adminRight((w, h) => w.call('POST', '/token/set', { serial: 'OATH0001', description: 'desk' }, { headers: h })),
  'admin:resync': adminRight((w, h) =>
    w.call('POST', '/token/resync', { serial: 'OATH0001', otp1: hotpAt(3), otp2: hotpAt(4) }, { headers: h }),
  ),
  'admin:revoke': adminRight((w, h) => w.call('POST', '/token/revoke', { serial: 'OATH0001' }, { headers: h })),
  'admin:losttoken': adminRight((w, h) => w.call('POST', '/token/lost/OATH0001', {}, { headers: h })),
  'admin:userlist': adminRight((w, h) => w.call('GET', '/user/', {}, { headers: h })),
  'admin:resolverread': adminRight((w, h) => w.call('GET', '/resolver/', {}, { headers: h })),
  'admin:auditlog': adminRight((w, h) => w.call('GET', '/audit/', {}, { headers: h })),
  // Without tokenlist an admin under admin policies sees an empty list (eduMFA), not a 403.
  'admin:tokenlist': {
    ...adminRight((w, h) => w.call('GET', '/token/', {}, { headers: h })),
    async run(w) {
      const policies = w.deps.config.policies;
      w.deps.reloadPolicies({ ...w.deps.config, policies: [] });
      await enrollHotp(w);
      w.deps.reloadPolicies({ ...w.deps.config, policies });
      const r = await w.call('GET', '/token/', {}, { headers: await admin(w) });
      return [r.status, r.body.result.value.count];
    },
    expect: [
      [200, 0],
      [200, 1],
    ],
  },
  // the lost-token policies (tokens/pw.ts): the temporary password of POST /token/lost
  'enrollment:losttoken_PW_length': { value: 8, run: async (w) => (await lost(w)).password.length, expect: [16, 8] },
  'enrollment:losttoken_PW_contents': { value: 'n', run: async (w) => /^[0-9]+$/.test((await lost(w)).password), expect: [false, true] },
  'enrollment:losttoken_valid': {
    value: 3,
    run: async (w) => Math.round((Date.parse((await lost(w)).end_date.replace(/\+0000$/, 'Z')) - w.clock.now()) / 86_400_000),
    expect: [10, 3],
  },
};

/** POST /token/lost for alice's HOTP token: the temporary password's details. */
async function lost(w: TestWorld): Promise<{ password: string; end_date: string }> {
  await enrollHotp(w);
  const r = await w.call('POST', '/token/lost/OATH0001', {}, { headers: await admin(w) });
  if (r.status !== 200) throw new Error(`lost: ${r.text}`);
  return r.body.result.value;
}

// ---------------------------------------------------------------------------------------------------------------
// The tests

test('every declared policy action has a scenario, and every scenario names a declared action', async (t) => {
  const w = await createWorld({ noHttp: true });
  try {
    const declared = [...w.deps.policies.actions.values()].map((a) => `${a.scope}:${a.name}`).sort();
    const missing = declared.filter((k) => !(k in SCENARIOS));
    t.deepEqual(missing, [], 'declared but without a scenario proving it changes something (add one to SCENARIOS)');
    t.deepEqual(
      Object.keys(SCENARIOS).filter((k) => !declared.includes(k)),
      [],
      'scenario for an action the server does not declare',
    );
  } finally {
    await w.close();
  }
});

for (const [key, s] of Object.entries(SCENARIOS)) {
  test(`${key} changes behaviour`, async (t: ExecutionContext) => {
    const [scope, name] = key.split(':') as [string, string];
    await slots.take();
    let without: unknown;
    let withIt: unknown;
    try {
      without = await observe(s, null);
      withIt = await observe(s, policy(`under-test-${name}`, scope, { [name]: s.value }));
    } finally {
      slots.give();
    }
    t.notDeepEqual(without, withIt, `${key}: the policy made no difference`);
    t.deepEqual([without, withIt], [...s.expect]);
  });
}
