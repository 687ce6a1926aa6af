/**
 * The self-service page's algorithms (issue 12, item 3): sessions, the two-step login, and a user's actions on
 * their own tokens. The HTML and the cookie are server/routes/selfservice.ts; this module knows neither.
 *
 * Sessions are server-side rows (server/store/selfservice_sessions_repo.ts): the cookie holds 32 random bytes, the
 * database their SHA-256. Chosen over a signed and encrypted cookie because a logout, an idle timeout and a
 * promotion after the second factor must end the old cookie for good (a self-contained cookie stays valid until
 * it expires unless the server keeps a deny list — state again), and because the idle timeout moves on every
 * request. One conditional UPDATE per request extends a session that is still within its limits; times are on the
 * injected clock.
 *
 * Login: step 1 checks the realm's password (the user store: `otppin: userstore` semantics, through the Realm
 * interface, so any user store that implements verifyPassword works) under the back-off of server/auth/throttle.ts;
 * step 2 is a normal token check (server/auth/check.ts decideCheck, `secondFactorOnly`: the PIN part is empty) —
 * an OTP, or a push the phone approves. A user without any finished token may log in with the password alone when
 * the policy action `selfservice_first_enrollment` says so; that session may enroll while the user still has no
 * usable token. A session changes its id whenever it changes its stage (no session fixation).
 *
 * Every token action goes through an owner-conditioned statement (tokens_repo updateOwned / deleteOwned /
 * completeOwnedRollout): a serial of another user is "not found", whatever the page was sent.
 */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import { InternalError, NotFoundError, ParameterError, PolicyError, UserError } from '../../core/errors.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import { sessionLimitsAt, type SessionLimits, type SessionRow, type SessionStage } from '../store/selfservice_sessions_repo.ts';
import type { AuditRow } from '../store/audit_repo.ts';
import { checkLength } from '../store/limits.ts';
import { decideCheck } from './check.ts';
import { requestPolicies } from './context.ts';
import { transactionStatus } from './challenges.ts';
import { AUTHENTICATION, type Outcome } from './outcome.ts';
import { rememberLogin } from './push_risk.ts';
import { userKeyOf } from './throttle.ts';
import { enrollToken } from './tokens_admin.ts';
import type { UserInfo } from './users.ts';

/** A live session, its user looked up again in the user store. */
export interface SelfserviceSession {
  readonly idHash: string;
  readonly user: UserInfo;
  readonly stage: SessionStage;
  readonly csrf: string;
  readonly transactionId: string | null;
  /** The serials this session enrolled. */
  readonly enrolled: readonly string[];
}

/** Where a request comes from: the policies' client and the back-off's end-user address (null: none counted). */
export interface Origin {
  readonly client: string;
  readonly address: string | null;
  readonly signal?: AbortSignal;
}

/** What a step did, for the audit row and the page. */
export interface StepResult {
  readonly outcome: string;
  readonly message: string;
  readonly serials: readonly string[];
  readonly policies: readonly string[];
}

/** A new session's cookie value and its row's key. */
export interface NewSession {
  readonly id: string;
  readonly session: SelfserviceSession;
}

const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
/** How long a TOTP token enrolled on the page waits for its first OTP before the cleanup takes it. */
export const TOTP_VERIFY_MS = 10 * 60_000;
/** The message of every failed password step: it does not tell whether the user exists. */
export const LOGIN_FAILED = 'The user name or the password is wrong.';

const random = (): string => crypto.randomBytes(32).toString('base64url');
export const hashSessionId = (id: string): string => crypto.createHash('sha256').update(id).digest('hex');

export const sessionLimits = (config: Deps['config'], now: number): SessionLimits => sessionLimitsAt(config.selfservice, now);

/** Push types answer on the phone; every other type takes an OTP on the page. */
const isPush = (deps: Deps, t: TokenRecord): boolean => deps.registry.require(t.type).outOfBand;
const usable = (t: TokenRecord): boolean => !t.revoked && t.active && t.rolloutState !== 'clientwait';
/**
 * The tokens a session may change: the user's — and in a password-only (`first`) session only those it enrolled
 * itself, so a password alone never removes or renames a token someone else (an administrator) gave the user.
 */
const ownerOf = (s: SelfserviceSession) => ({
  username: s.user.name,
  realm: s.user.realm,
  ...(s.stage === 'first' ? { onlySerials: s.enrolled } : {}),
});

/** Whether this session may change the token (see ownerOf). */
export const mayChange = (s: SelfserviceSession, t: TokenRecord): boolean =>
  s.stage === 'full' || (s.stage === 'first' && s.enrolled.includes(t.serial));

/** The session of a cookie value, extended by this request; null when there is none (any more) or its user is gone. */
export async function openSession(deps: Deps, cookie: string | undefined): Promise<SelfserviceSession | null> {
  if (!cookie || !SESSION_ID.test(cookie)) return null;
  const now = deps.clock.now();
  const row = await deps.store.selfserviceSessions.touch(hashSessionId(cookie), now, sessionLimits(deps.config, now));
  if (!row) return null;
  const user = (await deps.realms.get(row.realm)?.lookup(row.username)) ?? null;
  if (!user) {
    await deps.store.selfserviceSessions.delete(row.idHash);
    return null;
  }
  return sessionOf(row, user);
}

const sessionOf = (row: SessionRow, user: UserInfo): SelfserviceSession => ({
  idHash: row.idHash,
  user,
  stage: row.stage,
  csrf: row.csrf,
  transactionId: row.transactionId,
  enrolled: row.enrolled,
});

/** The synchronizer token check of a POST (constant time). */
export function csrfMatches(session: SelfserviceSession, given: string | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(given);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

async function createSession(deps: Deps, user: UserInfo, stage: SessionStage): Promise<NewSession> {
  const id = random();
  const now = deps.clock.now();
  const row: SessionRow = {
    idHash: hashSessionId(id),
    realm: user.realm,
    username: user.name,
    stage,
    csrf: random(),
    transactionId: null,
    enrolled: [],
    createdAt: now,
    lastSeenAt: now,
  };
  await deps.store.selfserviceSessions.create(row);
  return { id, session: sessionOf(row, user) };
}

/** Moves a session to `stage` under a new id (the old cookie is dead); null when another request moved it first. */
async function promote(deps: Deps, s: SelfserviceSession, stage: SessionStage): Promise<NewSession | null> {
  const id = random();
  const next = { idHash: hashSessionId(id), stage, csrf: random() };
  if (!(await deps.store.selfserviceSessions.promote(s.idHash, s.stage, next, deps.clock.now()))) return null;
  return { id, session: { ...s, ...next, transactionId: null } };
}

export async function endSession(deps: Deps, s: SelfserviceSession): Promise<void> {
  await deps.store.selfserviceSessions.delete(s.idHash);
  deps.events.emit('selfservice.login', { user: s.user.name, realm: s.user.realm, step: 'logout', outcome: 'OK' });
}

export type PasswordStep =
  | { readonly kind: 'rejected'; readonly result: StepResult; readonly user: UserInfo | null }
  | { readonly kind: 'session'; readonly result: StepResult; readonly created: NewSession };

/**
 * Step 1: the realm password. A failure (unknown user, wrong password, a store without passwords) keeps its point
 * in the back-off and answers the same message; 429 (TooManyRequestsError) when over budget. A right password gives
 * the point back and opens a `password` session — or, for a user without any finished token, a `first` session
 * when the first-enrollment policy allows it.
 */
export async function passwordLogin(
  deps: Deps,
  req: { user: string; realm?: string; password: string },
  origin: Origin,
): Promise<PasswordStep> {
  const attempt = await deps.throttle.begin({
    user: await userKeyOf(deps.realms, { user: req.user, realm: req.realm }),
    address: origin.address,
  });
  const reject = (message: string, user: UserInfo | null, policies: readonly string[] = []): PasswordStep => {
    deps.events.emit('selfservice.login', {
      user: user?.name ?? req.user,
      realm: user?.realm ?? req.realm ?? '',
      step: 'password',
      outcome: 'REJECT',
    });
    return { kind: 'rejected', result: { outcome: 'REJECT', message, serials: [], policies }, user };
  };
  let user: UserInfo;
  try {
    user = await deps.realms.resolveUser(req.user, req.realm);
  } catch (err) {
    if (err instanceof UserError) return reject(LOGIN_FAILED, null);
    await deps.throttle.release(attempt);
    throw err;
  }
  try {
    const realm = deps.realms.get(user.realm);
    const ok = realm
      ? await realm.verifyPassword(user.name, req.password, { key: `${user.realm}/${user.name}`, signal: origin.signal })
      : false;
    if (!ok) return reject(LOGIN_FAILED, user);
    const tokens = await deps.store.tokens.list({ username: user.name, realm: user.realm });
    const rp = requestPolicies(deps, { user: { name: user.name, realm: user.realm, resolver: user.resolver }, client: origin.client });
    // "Without any token": none but half-enrolled ones. A disabled or locked token is a token (an administrator's call).
    if (tokens.every((t) => t.rolloutState === 'clientwait')) {
      if (!rp.action<boolean>('selfservice_first_enrollment')) {
        await deps.throttle.release(attempt);
        return reject('You have no token yet. Ask your administrator to enroll one.', user, rp.matched());
      }
      await deps.throttle.succeeded(attempt);
      const created = await createSession(deps, user, 'first');
      deps.events.emit('selfservice.login', { user: user.name, realm: user.realm, step: 'first_enrollment', outcome: 'ACCEPT' });
      const pol = rp.sources('selfservice_first_enrollment')[0] ?? '';
      return {
        kind: 'session',
        result: {
          outcome: 'ACCEPT',
          message: `password only, to enroll a first token, due to '${pol}'`,
          serials: [],
          policies: rp.matched(),
        },
        created,
      };
    }
    await deps.throttle.release(attempt); // a right password; the second factor settles the login
    const created = await createSession(deps, user, 'password');
    deps.events.emit('selfservice.login', { user: user.name, realm: user.realm, step: 'password', outcome: 'OK' });
    return { kind: 'session', result: { outcome: 'OK', message: 'password accepted', serials: [], policies: rp.matched() }, created };
  } catch (err) {
    await deps.throttle.release(attempt);
    throw err;
  }
}

/** What the second-factor page offers: an OTP field (OTP tokens), a push button (push tokens). */
export async function secondFactorOptions(deps: Deps, s: SelfserviceSession): Promise<{ otp: boolean; push: boolean }> {
  const tokens = (await deps.store.tokens.list({ username: s.user.name, realm: s.user.realm })).filter(usable);
  return { otp: tokens.some((t) => !isPush(deps, t)), push: tokens.some((t) => isPush(deps, t)) };
}

export type SecondStep =
  | { readonly kind: 'in'; readonly result: StepResult; readonly created: NewSession }
  | { readonly kind: 'challenge'; readonly result: StepResult; readonly messages: readonly string[] }
  | { readonly kind: 'pending'; readonly result: StepResult }
  | { readonly kind: 'failed'; readonly result: StepResult };

const typesOf = (deps: Deps, push: boolean): string[] =>
  deps.registry
    .list()
    .filter((t) => t.outOfBand === push)
    .map((t) => t.type);

const resultOf = (o: Outcome): StepResult => ({
  outcome: AUTHENTICATION[o.kind],
  message: o.kind === 'challenge' ? 'challenge triggered' : o.message,
  serials: o.serials,
  policies: o.policies,
});

async function settleSecond(deps: Deps, s: SelfserviceSession, o: Outcome | { kind: 'wait' }, origin: Origin): Promise<SecondStep> {
  if (o.kind === 'wait') throw new InternalError(new Error('a self-service check must not wait'));
  const result = resultOf(o);
  deps.events.emit('selfservice.login', { user: s.user.name, realm: s.user.realm, step: 'second_factor', outcome: result.outcome });
  if (o.kind === 'accept') {
    const created = await promote(deps, s, 'full');
    if (!created)
      return { kind: 'failed', result: { ...result, outcome: 'REJECT', message: 'The login was finished by another request.' } };
    if (origin.address) await rememberLogin(deps, s.user, origin.address);
    return { kind: 'in', result, created };
  }
  if (o.kind === 'challenge') {
    const transactionId = o.challenges[0]?.transactionId ?? null;
    await deps.store.selfserviceSessions.setTransaction(s.idHash, transactionId);
    return { kind: 'challenge', result, messages: [...new Set(o.challenges.map((c) => c.message))] };
  }
  if (o.kind === 'declined') await deps.store.selfserviceSessions.setTransaction(s.idHash, null);
  return { kind: 'failed', result };
}

const requireStage = (s: SelfserviceSession, stage: SessionStage): void => {
  if (s.stage !== stage) throw new ParameterError('This step does not belong to the current state of your login.');
};

/** Step 2 with an OTP: a failed attempt in the back-off like a wrong PIN at /validate/check. */
export async function otpLogin(deps: Deps, s: SelfserviceSession, otp: string, origin: Origin): Promise<SecondStep> {
  requireStage(s, 'password');
  if (!/^[0-9]{1,10}$/.test(otp)) throw new ParameterError('The one-time password is a number.');
  const attempt = await deps.throttle.begin({
    user: await userKeyOf(deps.realms, { user: s.user.name, realm: s.user.realm }),
    address: origin.address,
  });
  try {
    const o = await decideCheck(deps, {
      user: s.user.name,
      realm: s.user.realm,
      pass: otp,
      types: typesOf(deps, false),
      secondFactorOnly: true,
      noWait: true,
      client: origin.client,
      address: origin.address,
      signal: origin.signal,
    });
    if (o.kind === 'accept') await deps.throttle.succeeded(attempt);
    else if (o.kind !== 'reject') await deps.throttle.release(attempt);
    return await settleSecond(deps, s, o, origin);
  } catch (err) {
    await deps.throttle.release(attempt);
    throw err;
  }
}

/** Step 2 with a push: sends it (the per-user challenge limit applies) and remembers the transaction in the session. */
export async function pushLogin(deps: Deps, s: SelfserviceSession, origin: Origin): Promise<SecondStep> {
  requireStage(s, 'password');
  const userKey = await userKeyOf(deps.realms, { user: s.user.name, realm: s.user.realm });
  const o = await decideCheck(deps, {
    user: s.user.name,
    realm: s.user.realm,
    pass: '',
    types: typesOf(deps, true),
    secondFactorOnly: true,
    noWait: true,
    client: origin.client,
    address: origin.address,
    signal: origin.signal,
    beforeChallenge: () => deps.throttle.challenge(userKey),
  });
  return settleSecond(deps, s, o, origin);
}

/**
 * Step 2 after the push went out: `pending` while the phone has not answered (nothing is counted), else the
 * transaction is finished like a poll-mode login at /validate/check (the typed login code, when the policy asks
 * for one, is the pass).
 */
export async function finishPushLogin(deps: Deps, s: SelfserviceSession, code: string, origin: Origin): Promise<SecondStep> {
  requireStage(s, 'password');
  if (!s.transactionId) throw new ParameterError('No push was sent for this login.');
  if (code === '') {
    const rows = await deps.store.challenges.byTransaction(s.transactionId);
    if (rows.length && transactionStatus(rows, deps.clock.now()) === 'pending' && rows.some((r) => r.expiresAt > deps.clock.now()))
      return { kind: 'pending', result: { outcome: 'CHALLENGE', message: 'not answered yet', serials: [], policies: [] } };
  }
  const o = await decideCheck(deps, {
    user: s.user.name,
    realm: s.user.realm,
    pass: code,
    transactionId: s.transactionId,
    secondFactorOnly: true,
    noWait: true,
    client: origin.client,
    address: origin.address,
    signal: origin.signal,
  });
  return settleSecond(deps, s, o, origin);
}

/** The user's tokens, oldest first. */
export async function ownTokens(deps: Deps, s: SelfserviceSession): Promise<TokenRecord[]> {
  return deps.store.tokens.list({ username: s.user.name, realm: s.user.realm });
}

export interface Enrolled {
  readonly token: TokenRecord;
  /** The PNG data URL of the QR code. */
  readonly qr: string;
  /** What the QR code says (TOTP: the otpauth URL; push: the enrollment URL). */
  readonly url: string;
  /** TOTP: the secret in Base32, for typing it in instead of scanning. */
  readonly secret?: string;
  readonly policies: readonly string[];
}

/**
 * Enrolls a token of a type `selfservice.enroll_types` allows, owned by the session's user, under the enrollment
 * policies (max_token_per_user, the push channel, …). A TOTP token waits half-enrolled for its first OTP
 * (verifyTotp); a push token for the phone's registration. A `first` session enrolls only while the user has no
 * usable token.
 */
export async function enrollOwn(deps: Deps, s: SelfserviceSession, type: string, description: string, client: string): Promise<Enrolled> {
  if (!(deps.config.selfservice.enrollTypes as readonly string[]).includes(type))
    throw new PolicyError('This token type cannot be enrolled on the self-service page.');
  if (s.stage === 'password') throw new ParameterError('Log in first.');
  if (s.stage === 'first' && (await ownTokens(deps, s)).some(usable))
    throw new PolicyError('You already have a token: log in with it to enroll another one.');
  checkLength('description', description);
  const r = await enrollToken(deps, {
    type,
    user: s.user.name,
    realm: s.user.realm,
    description,
    client,
    params: { genkey: '1' },
    ...(type === 'totp' ? { verifyWithinMs: TOTP_VERIFY_MS } : {}),
  });
  // A password-only session remembers what it enrolled: the only tokens it may change (ownerOf). If that cannot be
  // recorded (another request of the session changed the list), the new token is taken back.
  if (s.stage === 'first' && !(await deps.store.selfserviceSessions.addEnrolled(s.idHash, s.enrolled, r.token.serial))) {
    await deps.store.tokens.deleteOwned(r.token.serial, { username: s.user.name, realm: s.user.realm });
    throw new ParameterError('Another request of this session enrolled a token at the same time. Reload the page.');
  }
  const detail = (name: string) => r.details[name] as { value?: unknown; img?: unknown; value_b32?: unknown } | undefined;
  const shown = type === 'totp' ? detail('googleurl') : detail('pushurl');
  if (typeof shown?.img !== 'string' || typeof shown.value !== 'string') throw new InternalError(new Error(`no QR code for ${type}`));
  const secret = type === 'totp' ? detail('otpkey')?.value_b32 : undefined;
  deps.events.emit('selfservice.action', { user: s.user.name, realm: s.user.realm, action: 'enroll', serial: r.token.serial });
  return {
    token: r.token,
    qr: shown.img,
    url: shown.value,
    ...(typeof secret === 'string' ? { secret } : {}),
    policies: r.policies,
  };
}

/**
 * The first OTP of a TOTP token enrolled on the page: right → the token is active (one conditional update that
 * also guards against a replay); wrong → a failed attempt in the back-off.
 */
export async function verifyTotp(deps: Deps, s: SelfserviceSession, serial: string, otp: string, origin: Origin): Promise<boolean> {
  if (s.stage === 'password') throw new ParameterError('Log in first.');
  const token = await deps.store.tokens.bySerial(serial);
  if (
    !token
    || token.username !== s.user.name
    || token.realm !== s.user.realm
    || token.type !== 'totp'
    || token.rolloutState !== 'clientwait'
  )
    throw new NotFoundError('The requested token could not be found.');
  if (!/^[0-9]{6,8}$/.test(otp)) return false;
  const attempt = await deps.throttle.begin({
    user: await userKeyOf(deps.realms, { user: s.user.name, realm: s.user.realm }),
    address: origin.address,
  });
  try {
    const rp = requestPolicies(deps, {
      user: { name: s.user.name, realm: s.user.realm, resolver: s.user.resolver },
      client: origin.client,
    });
    const verdict = await deps.registry.require('totp').check(token, { otp }, rp.tokenContext());
    const done =
      verdict.kind === 'valid'
      && (await deps.store.tokens.completeOwnedRollout(serial, ownerOf(s), verdict.counter ?? token.counter, deps.clock.now()));
    if (done) {
      await deps.throttle.succeeded(attempt);
      deps.events.emit('selfservice.action', { user: s.user.name, realm: s.user.realm, action: 'verify', serial });
    }
    return done;
  } catch (err) {
    await deps.throttle.release(attempt);
    throw err;
  }
}

export async function renameOwn(deps: Deps, s: SelfserviceSession, serial: string, description: string): Promise<void> {
  if (s.stage === 'password') throw new ParameterError('Log in first.');
  checkLength('description', description);
  if (!(await deps.store.tokens.updateOwned(serial, ownerOf(s), { description }, deps.clock.now())))
    throw new NotFoundError('The requested token could not be found.');
  deps.events.emit('selfservice.action', { user: s.user.name, realm: s.user.realm, action: 'rename', serial });
}

export async function removeOwn(deps: Deps, s: SelfserviceSession, serial: string): Promise<void> {
  if (s.stage === 'password') throw new ParameterError('Log in first.');
  if (!(await deps.store.tokens.deleteOwned(serial, ownerOf(s)))) throw new NotFoundError('The requested token could not be found.');
  deps.events.emit('selfservice.action', { user: s.user.name, realm: s.user.realm, action: 'remove', serial });
}

/** Logins (accepted, rejected, declined) of the user from the audit, newest first: /validate/* and this page's. */
export async function recentLogins(deps: Deps, s: SelfserviceSession): Promise<AuditRow[]> {
  const limit = deps.config.selfservice.recentLogins;
  const { rows } = await deps.store.auditSearch.search({
    conditions: [
      { column: 'username', exact: s.user.name },
      { column: 'realm', exact: s.user.realm },
    ],
    page: 1,
    pageSize: Math.min(1000, limit * 5),
    desc: true,
  });
  const login = (r: AuditRow) =>
    (r.action.includes('/validate/') || r.action === 'selfservice login') && ['ACCEPT', 'REJECT', 'DECLINED'].includes(r.outcome);
  return rows.filter(login).slice(0, limit);
}
