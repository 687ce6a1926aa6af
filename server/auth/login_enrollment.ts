/**
 * Enrollment during login (eduMFA's / privacyIDEA's `enroll_via_multichallenge`; docs/enroll_via_multichallenge.md).
 *
 * A user who owns no token and passed the user store password (`passthru`) gets, instead of the ACCEPT, a CHALLENGE
 * whose `image` is the QR code of a new token of the policy's type. The token is stored half-enrolled (`clientwait`,
 * marked `enrolled_via: multichallenge`) together with one challenge of session `enrollment` that expires with the
 * token's enrollment window. The login finishes with /validate/check and that transaction id once
 *   - push types: the phone's enrollment step 2 completed the token and answered the challenge
 *     (server/auth/smartphone.ts), then any pass;
 *   - totp: the first OTP of the new token — that check moves the token to `enrolled` (finishLoginEnrollment).
 *
 * Who may start it: only a password verified against the user store. Never passOnNoToken, passOnNoUser, an `any`
 * store (it has no passwords) or a user who owns any token — else knowing a user name would be enough to put one's
 * own phone on a victim's account.
 *
 * Races: at most one unfinished enrollment per user, the newest. Every login inserts its token and challenge, then reads the
 * user's tokens: one that is not an unfinished login enrollment (an admin's, or one a phone completed meanwhile)
 * or a newer unfinished one makes this login give up and delete its own; otherwise it deletes the older unfinished
 * ones (each a conditional DELETE while `clientwait`). Of any two parallel logins the later reader sees both tokens,
 * so the older token is always deleted: two parallel logins leave one token, not two.
 */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import { ENROLLMENT_SESSION } from '../../tokens/push/challenge.ts';
import { generateSerial } from '../../tokens/serial.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import type { RequestPolicies } from './context.ts';
import { newTransactionId, preferredClientMode, validityMs } from './challenges.ts';
import type { ChallengeOut, Outcome } from './outcome.ts';
import type { UserInfo } from './users.ts';

/** The tokeninfo key (and value) that marks a token enrolled during login. */
export const ENROLLED_VIA_INFO = 'enrolled_via';
export const ENROLLED_VIA_MULTICHALLENGE = 'multichallenge';

/** Default challenge messages (as the upstream servers word them; `enroll_via_multichallenge_text` replaces them). */
export const LOGIN_ENROLLMENT_MESSAGES: Readonly<Record<string, string>> = {
  edupush: 'Please scan the QR code!',
  push: 'Please scan the QR code!',
  totp: 'Please scan the QR code and enter the OTP value!',
};

/** Wire message of a login that lost the race to a newer login (or to a token completed meanwhile). */
export const ENROLLMENT_SUPERSEDED = 'Another login of this user enrolled or is enrolling a token. Please log in again.';

/** An unfinished enrollment during login: not a token the user owns yet (it never blocks passthru). */
export function isLoginEnrollmentLeftover(t: TokenRecord): boolean {
  return t.rolloutState === 'clientwait' && t.info[ENROLLED_VIA_INFO] === ENROLLED_VIA_MULTICHALLENGE;
}

/** The type that `enroll_via_multichallenge` asks for this request, if any. */
export function loginEnrollmentType(rp: RequestPolicies): string | undefined {
  return rp.action<string>('enroll_via_multichallenge');
}

/**
 * Starts an enrollment during login for a user whose user store password was just verified and who owns no token
 * (the caller makes sure of both). Returns the CHALLENGE, or a REJECT when a parallel login won.
 */
export async function startLoginEnrollment(
  deps: Deps,
  user: UserInfo,
  rp: RequestPolicies,
  typeName: string,
  beforeChallenge?: () => Promise<void>,
): Promise<Outcome> {
  const type = deps.registry.require(typeName);
  await beforeChallenge?.(); // the per-user challenge limit: a password flood cannot churn tokens without bound
  let serial: string;
  do serial = generateSerial(type.serialPrefix);
  while (await deps.store.tokens.bySerial(serial));
  // The enrollment policies of the user apply (firebase configuration, registration URL, TTL, label, issuer, hashlib,
  // digits, time step) — the same as /token/init for this user.
  const begun = await type.enrollBegin(
    { serial, params: { genkey: '1' }, user: { name: user.name, realm: user.realm }, publicUrl: deps.config.server.publicUrl },
    rp.tokenContext(),
  );
  const qr = enrollmentQr(begun.details);
  if (!qr) throw new Error(`token type ${type.type} gives no enrollment QR code`);
  const now = deps.clock.now();
  // The enrollment window: a push type's TTL (the QR tells the app the same), else the type's challenge validity.
  const expiresAt = now + (begun.fields.rolloutTtlMs ?? validityMs(deps, type.type));
  const token = await deps.store.tokens.insert(
    {
      serial,
      type: type.type,
      username: user.name,
      realm: user.realm,
      // A totp token must be active to answer its challenge; it is still `clientwait`, so no normal login takes it.
      active: type.outOfBand ? begun.fields.active : true,
      rolloutState: 'clientwait',
      pinHash: null,
      otpLen: begun.fields.otpLen,
      counter: begun.fields.counter,
      maxFail: deps.config.tokens.maxFail,
      description: '',
      info: { ...begun.fields.info, [ENROLLED_VIA_INFO]: ENROLLED_VIA_MULTICHALLENGE },
      secrets: { ...begun.fields.secrets },
      rolloutExpiresAt: expiresAt,
    },
    now,
  );
  deps.events.emit('token.enrolled', { serial, type: type.type, user: user.name, realm: user.realm });

  // The challenge right away, before the race below: a newer login may delete this token at any moment, and then its
  // challenge goes with it (ON DELETE CASCADE) instead of an insert that would refer to a token no longer there.
  const transactionId = newTransactionId();
  try {
    await deps.store.challenges.insert({
      transactionId,
      serial,
      tokenId: token.id,
      nonce: crypto.randomBytes(16).toString('hex'),
      session: ENROLLMENT_SESSION,
      data: {},
      createdAt: now,
      expiresAt,
    });
  } catch (err) {
    // Refused because a newer login deleted the token between its insert and this one (the foreign key): superseded.
    if (await deps.store.tokens.bySerial(serial)) throw err;
    return { kind: 'reject', message: ENROLLMENT_SUPERSEDED, serials: [], policies: rp.matched() };
  }

  // At most one unfinished enrollment per user: the newest (see the file comment).
  const owned = await deps.store.tokens.list({ username: user.name, realm: user.realm });
  const others = owned.filter((t) => t.id !== token.id);
  if (others.some((t) => !isLoginEnrollmentLeftover(t) || t.id > token.id)) {
    await deps.store.tokens.deleteIfClientwait(token.id);
    return { kind: 'reject', message: ENROLLMENT_SUPERSEDED, serials: [], policies: rp.matched() };
  }
  const replaced: string[] = [];
  for (const old of others) {
    if (await deps.store.tokens.deleteIfClientwait(old.id)) {
      replaced.push(old.serial);
      continue;
    }
    // Not deleted: gone already (its own login gave up, or another login removed it) — or completed by its phone
    // between our read and the delete, and then the user owns a token now.
    const current = await deps.store.tokens.bySerial(old.serial);
    if (current && current.id === old.id && !isLoginEnrollmentLeftover(current)) {
      await deps.store.tokens.deleteIfClientwait(token.id);
      return { kind: 'reject', message: ENROLLMENT_SUPERSEDED, serials: [], policies: rp.matched() };
    }
  }

  deps.events.emit('challenge.created', { serial, transactionId, type: type.type });
  deps.events.emit('enrollment.login_started', { serial, type: type.type, user: user.name, realm: user.realm, transactionId, replaced });
  const challenge: ChallengeOut = {
    transactionId,
    serial,
    type: type.type,
    clientMode: type.outOfBand ? 'poll' : 'interactive',
    message: rp.action<string>('enroll_via_multichallenge_text') ?? LOGIN_ENROLLMENT_MESSAGES[type.type] ?? 'Please scan the QR code!',
    image: qr.img,
    link: qr.value,
  };
  return {
    kind: 'challenge',
    challenges: [challenge],
    preferredClientMode: preferredClientMode(rp, [challenge]),
    serials: [serial],
    policies: rp.matched(),
    enrollment: type.type,
  };
}

/**
 * The first OTP of a totp token enrolled during login was right and its challenge consumed: the token leaves
 * `clientwait` — one conditional update, refused when the enrollment window has passed or a newer login replaced it.
 */
export async function finishLoginEnrollment(deps: Deps, token: TokenRecord, now: number): Promise<boolean> {
  return deps.store.tokens.updateIfRollout(token.serial, 'clientwait', { rolloutState: 'enrolled', rolloutExpiresAt: null }, now);
}

/** The enrollment URI and its QR code from /token/init's details: `pushurl` (push types) or `googleurl` (OTP types). */
function enrollmentQr(details: Readonly<Record<string, unknown>>): { value: string; img: string } | null {
  for (const key of ['pushurl', 'googleurl']) {
    const d = details[key] as { value?: unknown; img?: unknown } | undefined;
    if (d && typeof d.value === 'string' && typeof d.img === 'string') return { value: d.value, img: d.img };
  }
  return null;
}
