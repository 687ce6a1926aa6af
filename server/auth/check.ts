/**
 * The token-list decision of /validate/check (eduMFA's check_token_list, reshaped):
 *   1. resolve the user (unknown realm/user → UserError before any token is touched),
 *   2. with a transaction id: answer the challenges of that transaction,
 *   3. otherwise classify every usable token: valid (PIN + OTP) / challenge request (pass = PIN) /
 *      PIN matched but OTP wrong / nothing matched,
 *   4. decide: ACCEPT > CHALLENGE > "wrong otp value" > "wrong otp pin".
 * Every state change is a conditional update; losing a race is simply "not valid".
 *
 * Locked tokens (fail counter at max_fail) are not classified: no PIN is hashed for them and their answer is the same
 * whatever the pass ("Failcounter exceeded"), so a locked token is no PIN oracle. eduMFA's failcounter_clear_timeout
 * (`tokens.failcounter_clear_timeout`, minutes): a token locked longer ago than that is classified again, and a
 * correct authentication (PIN + OTP, or the PIN of a challenge token) resets its fail counter and succeeds; a wrong
 * pass leaves it locked (and does not move its lock time, as in eduMFA) and gets the locked answer.
 */
import type { Deps } from '../deps.ts';
import { NotFoundError, ParameterError, PolicyError, UserError, ValidateError, tokenLocked } from '../../core/errors.ts';
import type { TokenRecord, TokenType, Verdict } from '../../tokens/types.ts';
import { requestPolicies, type RequestPolicies } from './context.ts';
import { APP_PUSH_MARK, createChallenges, newTransactionId, preferredClientMode, validityMs } from './challenges.ts';
import {
  backoffRefusal,
  claimPushLogin,
  fatigueSubject,
  gateCloses,
  LOCKED_MESSAGE,
  pushGate,
  recordPushLogin,
  releasePushLogin,
  rememberedBackoffRefusal,
  rememberedLogin,
  rememberedRefusal,
  rememberRefusal,
  repeatedLogin,
  type PushGate,
} from './push_fatigue.ts';
import { DECLINED_MESSAGE, type ChallengeOut, type Outcome } from './outcome.ts';
import { startWait, type WaitPlan } from './wait.ts';
import type { UserInfo } from './users.ts';
import type { PinJob } from './pin.ts';
import { OUTSIDE_VALIDITY, outsideValidity } from './validity.ts';
import { finishLoginEnrollment, isLoginEnrollmentLeftover, loginEnrollmentType, startLoginEnrollment } from './login_enrollment.ts';
import { ENROLLMENT_SESSION } from '../../tokens/push/challenge.ts';

export interface CheckRequest {
  readonly user?: string;
  readonly realm?: string;
  readonly serial?: string;
  readonly pass: string;
  readonly transactionId?: string;
  readonly type?: string;
  readonly client?: string;
  /**
   * The end-user address a trusted proxy named (server/auth/throttle.ts throttleAddress), null when none: the key of
   * the push-fatigue defences (server/auth/push_fatigue.ts).
   */
  readonly address?: string | null;
  /** eduMFA's `exception=1`: a failed push delivery answers 400 / code 401 instead of a CHALLENGE with a hint. */
  readonly exception?: boolean;
  /** Fires when the client went away: its queued PIN checks are dropped unhashed (ClientGoneError). */
  readonly signal?: AbortSignal;
  /** Called once before challenges are created (the per-user challenge limit); throws to refuse. */
  readonly beforeChallenge?: () => Promise<void>;
  /** Failed-attempt points this request holds in the back-off while it runs (the push risk decision skips them). */
  readonly heldAttempts?: number;
  /** Only tokens of these types take part (the self-service page: its OTP form, its push button). */
  readonly types?: readonly string[];
  /**
   * The caller has checked the user store password already (the self-service login): the pass is the second factor
   * alone — every token's PIN part must be empty whatever `otppin` says, and a user without tokens is never accepted
   * by `passthru` or `passOnNoToken`.
   */
  readonly secondFactorOnly?: boolean;
  /** Never wait for the phone in this request (wait-mode policies): a push is answered with a CHALLENGE. */
  readonly noWait?: boolean;
}

interface Classified {
  valid: Array<{ token: TokenRecord; counter: number | null }>;
  challenge: TokenRecord[];
  pinMatched: TokenRecord[];
  invalid: TokenRecord[];
}

/** The REJECT message of a check whose transaction id has no open challenge of the user's tokens (any more). */
export const TRANSACTION_FINISHED = 'transaction already finished or unknown';

const isLocked = (t: TokenRecord): boolean => t.failCount >= t.maxFail;
const single = (tokens: readonly TokenRecord[]) => (tokens.length === 1 ? tokens[0] : undefined);

/** The answer to a repeat of an open push login (push_fatigue.ts repeatedLogin / rememberedLogin): that login again. */
const repeatedChallenge = (rp: RequestPolicies, again: readonly ChallengeOut[]) => ({
  kind: 'challenge' as const,
  challenges: again,
  preferredClientMode: preferredClientMode(rp, again),
  serials: [...new Set(again.map((x) => x.serial))],
  repeated: true as const,
});
/**
 * Decides a check. A WaitPlan (wait mode: the push went out, a capacity slot is held) is finished by the caller
 * with finishWait — after this frame has ended, so nothing of the token-list decision (token records with their
 * decrypted keys, the pass) stays reachable while the login waits for the phone.
 */
export async function decideCheck(deps: Deps, req: CheckRequest): Promise<Outcome | WaitPlan> {
  if (!req.user && !req.serial) throw new ParameterError('You need to specify a serial or a user.');

  /** A login that does not narrow the tokens: the one push_memory.ts may answer (see below). */
  const plain = !req.serial && !req.type && !req.types && !req.secondFactorOnly && !req.transactionId;
  // 1. Who
  let user: UserInfo | null = null;
  let tokens: TokenRecord[];
  /** Every token the user owns, before the `serial`/`type` filters. */
  let owned: TokenRecord[] = [];
  if (req.user) {
    try {
      user = await deps.realms.resolveUser(req.user, req.realm);
    } catch (err) {
      if (!(err instanceof UserError)) throw err; // a user store that is down decides nothing (no passOnNoUser)
      const rp = requestPolicies(deps, {
        user: { name: req.user, realm: req.realm ?? deps.realms.defaultRealm, resolver: '' },
        client: req.client,
      });
      if (rp.action<boolean>('passOnNoUser')) {
        const pol = rp.sources('passOnNoUser')[0] ?? '';
        return { kind: 'accept', message: `user does not exist, accepted due to '${pol}'`, serials: [], policies: rp.matched() };
      }
      throw err;
    }
    // What this node saw of this user and address a moment ago (server/auth/push_memory.ts), before any query — what
    // keeps a push flood cheap: the same address repeating the pass of its open push login gets that login again; a
    // backed-off user whose only tokens are push tokens is refused again. Only for a plain login: a request that
    // narrows the tokens (serial, type, the self-service page's types) goes the normal way.
    if (plain) {
      const subject = fatigueSubject(user, []);
      const again = rememberedLogin(deps, subject, req.address ?? null, req.pass);
      const refused = again ? null : rememberedRefusal(deps, subject, req.address ?? null);
      if (again || refused) {
        const rp = requestPolicies(deps, { user: { name: user.name, realm: user.realm, resolver: user.resolver }, client: req.client });
        // deny_access answers before the push state on the normal way: such a request goes the normal way.
        if (rp.action<string>('authorized') !== 'deny_access') {
          if (refused) throw rememberedBackoffRefusal(deps, subject, refused);
          if (again) return { ...repeatedChallenge(rp, again), policies: rp.matched() };
        }
      }
    }
    tokens = await deps.store.tokens.list({ username: user.name, realm: user.realm });
    owned = tokens;
    if (req.serial) {
      const own = tokens.filter((t) => t.serial === req.serial);
      if (!own.length) throw new ParameterError('Given serial does not belong to given user!');
      tokens = own;
    } else if (req.type) {
      tokens = tokens.filter((t) => t.type === req.type);
    }
    const types = req.types;
    if (types) tokens = tokens.filter((t) => types.includes(t.type));
  } else {
    const t = await deps.store.tokens.bySerial(req.serial!);
    if (!t) throw new NotFoundError('The requested token could not be found.');
    tokens = [t];
    if (t.username && t.realm)
      user = (await deps.realms.get(t.realm)?.lookup(t.username)) ?? { name: t.username, realm: t.realm, resolver: '' };
  }
  // Revoked tokens never take part (eduMFA: 400 / 1007 when nothing else is left).
  if (tokens.length && tokens.every((t) => t.revoked)) throw tokenLocked();
  tokens = tokens.filter((t) => !t.revoked);
  const rp = requestPolicies(deps, {
    user: user ? { name: user.name, realm: user.realm, resolver: user.resolver } : undefined,
    client: req.client,
  });
  const base = () => ({ policies: rp.matched() });
  const pinJob = pinJobOf(user, tokens, req.address, req.signal);

  if (rp.action<string>('authorized') === 'deny_access')
    throw new ValidateError('User is not authorized to authenticate under these conditions.');

  // No tokens at all. An unfinished enrollment during login is no token the user owns (server/auth/login_enrollment.ts).
  const onlyLeftovers = !req.transactionId && !req.serial && tokens.length > 0 && tokens.every(isLoginEnrollmentLeftover);
  if (!tokens.length || onlyLeftovers) {
    if (!user) throw new NotFoundError('The requested token could not be found.');
    if (req.secondFactorOnly) return { kind: 'reject', message: 'The user has no tokens assigned', serials: [], ...base() };
    // passthru and passOnNoToken are for users who own no token at all (eduMFA counts all of the user's tokens): a
    // `type` that filters every token away is no way around the user's tokens.
    if (owned.some((t) => !isLoginEnrollmentLeftover(t)))
      return { kind: 'reject', message: 'No suitable token found for authentication.', serials: [], ...base() };
    // A transaction id answers a challenge: it is no password login. (The back-off does not count requests with a
    // transaction id, so a made-up one must not open a way to guess the user store password uncounted.)
    if (req.transactionId) return { kind: 'reject', message: TRANSACTION_FINISHED, serials: [], ...base() };
    if (rp.action<boolean>('passthru')) {
      const realm = deps.realms.get(user.realm);
      if (realm && (await realm.verifyPassword(user.name, req.pass, pinJob))) {
        // Enrollment during login: only after this verified password — never after passOnNoToken / passOnNoUser.
        const enrollType = loginEnrollmentType(rp);
        if (enrollType) return startLoginEnrollment(deps, user, rp, enrollType, req.beforeChallenge);
        return { kind: 'accept', message: `against userstore due to '${rp.sources('passthru')[0] ?? ''}'`, serials: [], ...base() };
      }
    }
    if (rp.action<boolean>('passOnNoToken')) {
      return {
        kind: 'accept',
        message: `user has no token, accepted due to '${rp.sources('passOnNoToken')[0] ?? ''}'`,
        serials: [],
        ...base(),
      };
    }
    return { kind: 'reject', message: 'The user has no tokens assigned', serials: [], ...base() };
  }

  // 2. Answer to a challenge. A transaction id never starts a new login: an unknown, finished or purged
  //    transaction is a wrong answer (as eduMFA), so a repeated finalize can not send a new push. eduMFA's message
  //    there is "wrong otp pin"; detail.message is free text the plugins show, so it says what happened.
  if (req.transactionId) {
    const answered = await answerTransaction(deps, req, tokens, rp);
    if (answered) return answered;
    const active = tokens.filter((t) => t.active && t.rolloutState !== 'clientwait');
    await bumpFailCounters(
      deps,
      active.filter((t) => !deps.registry.require(t.type).outOfBand),
    );
    return { kind: 'reject', message: TRANSACTION_FINISHED, serials: active.map((t) => t.serial), ...base() };
  }

  // 3. Classify usable tokens
  const usable = tokens
    .filter((t) => t.active && t.rolloutState !== 'clientwait')
    .sort((a, b) => deps.registry.require(a.type).checkOrder - deps.registry.require(b.type).checkOrder);
  const serialsOf = (ts: readonly TokenRecord[]) => ts.map((t) => t.serial);
  if (!usable.length) {
    const enrolling = tokens.find((t) => t.active && t.rolloutState === 'clientwait');
    if (enrolling)
      return {
        kind: 'reject',
        message: 'Token is not yet enrolled',
        serial: enrolling.serial,
        type: enrolling.type,
        serials: [enrolling.serial],
        ...base(),
      };
    return { kind: 'reject', message: 'No suitable token found for authentication.', serials: serialsOf(tokens), ...base() };
  }
  // Locked tokens are not looked at (no PIN hash, an answer independent of the pass) unless their lock is older than
  // failcounter_clear_timeout.
  const now = deps.clock.now();
  const clearMinutes = deps.config.tokens.failcounterClearTimeoutMinutes;
  const clearBefore = clearMinutes > 0 ? now - clearMinutes * 60_000 : null;
  const stale = (t: TokenRecord) => clearBefore !== null && t.lockedAt !== null && t.lockedAt < clearBefore;
  const lockedAnswer = (): Outcome => {
    const locked = usable.filter(isLocked);
    const t = single(locked);
    return { kind: 'reject', message: 'Failcounter exceeded', serial: t?.serial, type: t?.type, serials: serialsOf(locked), ...base() };
  };
  let candidates = usable.filter((t) => !isLocked(t) || stale(t));
  if (!candidates.length) return lockedAnswer();
  // Push fatigue, before any PIN work: a backed-off or locked user's push tokens take no part; when they are all the
  // user has, the request is refused here (429 + Retry-After; REJECT when locked) without hashing anything.
  const outOfBand = (t: TokenRecord) => deps.registry.require(t.type).outOfBand;
  let gate: PushGate | null = null;
  if (candidates.some(outOfBand)) {
    gate = await pushGate(deps, fatigueSubject(user, tokens), req.address ?? null, rp);
    if (gateCloses(gate)) {
      const others = candidates.filter((t) => !outOfBand(t));
      if (!others.length) {
        if (!gate.locked) {
          if (plain && user) rememberRefusal(deps, gate);
          throw backoffRefusal(deps, gate);
        }
        deps.events.emit('throttle.refused', { limit: 'push_locked', key: gate.subject, retryAfterSeconds: 0 });
        return { kind: 'reject', message: LOCKED_MESSAGE, serials: serialsOf(candidates), ...base() };
      }
      candidates = others;
      gate = null;
    } else {
      // The same address repeating the pass that opened its open login: that login again, without hashing the PIN.
      const again = repeatedLogin(deps, gate, req.pass);
      if (again) return { ...repeatedChallenge(rp, again), ...base() };
    }
  }
  const c = await classify(deps, candidates, req.pass, rp, user, pinJob, req.secondFactorOnly === true);
  // A stale-locked token whose pass was wrong stays locked: it answers like any locked token.
  c.pinMatched = c.pinMatched.filter((t) => !isLocked(t));
  c.invalid = c.invalid.filter((t) => !isLocked(t));

  // 4. Decide
  const accepted: TokenRecord[] = [];
  const unfitValid: TokenRecord[] = [];
  const lastAuthMs = rp.action<number>('last_auth');
  for (const { token, counter } of c.valid) {
    if (outsideValidity(token, now)) {
      unfitValid.push(token);
      continue;
    }
    if (lastAuthMs !== undefined && token.lastAuthAt !== null && now - token.lastAuthAt > lastAuthMs) {
      return {
        kind: 'reject',
        message: `The last successful authentication was ${new Date(token.lastAuthAt).toISOString()}. It is to long ago.`,
        serial: token.serial,
        type: token.type,
        serials: [token.serial],
        ...base(),
      };
    }
    if (await deps.store.tokens.recordSuccess(token.id, counter, now, isLocked(token) ? clearBefore : null)) accepted.push(token);
    else if (!isLocked(token)) c.pinMatched.push(token); // the OTP was used by a concurrent request (or the token locked meanwhile)
  }
  if (accepted.length) {
    const allowedTypes = rp.action<readonly string[]>('tokentype');
    if (allowedTypes && accepted.some((t) => !allowedTypes.includes(t.type))) {
      throw new PolicyError('You are not authorized to use this type of token.');
    }
    const t = single(accepted);
    return {
      kind: 'accept',
      message: `matching ${accepted.length} tokens`,
      serial: t?.serial,
      type: t?.type,
      otpLen: t ? t.otpLen : undefined,
      serials: serialsOf(accepted),
      ...base(),
    };
  }
  if (unfitValid.length) {
    const t = single(unfitValid);
    return {
      kind: 'reject',
      message: `matching ${unfitValid.length} tokens, ${OUTSIDE_VALIDITY}`,
      serial: t?.serial,
      type: t?.type,
      otpLen: t?.otpLen,
      serials: serialsOf(unfitValid),
      ...base(),
    };
  }
  if (c.challenge.length) {
    // failcounter_clear_timeout: the PIN of a stale-locked challenge token clears its lock (eduMFA: also on a trigger).
    // A token outside its validity period sends no challenge.
    const challengeable: TokenRecord[] = [];
    for (const t of c.challenge) {
      if (outsideValidity(t, now)) continue;
      if (!isLocked(t)) challengeable.push(t);
      else if (clearBefore !== null && (await deps.store.tokens.clearStaleLock(t.id, clearBefore, now)))
        challengeable.push({ ...t, failCount: 0, lockedAt: null });
    }
    if (!challengeable.length && !c.pinMatched.length && c.challenge.every((t) => outsideValidity(t, now))) {
      const t = single(c.challenge);
      return { kind: 'reject', message: OUTSIDE_VALIDITY, serial: t?.serial, type: t?.type, serials: serialsOf(c.challenge), ...base() };
    }
    // Push fatigue, step 2: the same address gets its open push login again; another takes a free place or is refused.
    let claim: { slot: number; transactionId: string; expiresAt: number } | null = null;
    const pushing = challengeable.filter(outOfBand);
    if (pushing.length && gate) {
      const expiresAt = now + Math.max(...pushing.map((t) => validityMs(deps, t.type)));
      const got = await claimPushLogin(deps, gate, newTransactionId(), expiresAt);
      if (got.kind === 'reuse') {
        return {
          kind: 'challenge',
          challenges: got.challenges,
          preferredClientMode: preferredClientMode(rp, got.challenges),
          serials: [...new Set(got.challenges.map((x) => x.serial))],
          ...base(),
        };
      }
      if (got.kind === 'none') {
        const rest = challengeable.filter((t) => !outOfBand(t));
        if (!rest.length) throw got.error;
        challengeable.splice(0, challengeable.length, ...rest);
      } else claim = got;
    }
    const pushGateOf = gate;
    const record =
      claim && pushGateOf ? (cs: readonly ChallengeOut[]) => recordPushLogin(deps, pushGateOf, claim, cs, req.pass) : undefined;
    try {
      if (challengeable.length) await req.beforeChallenge?.();
      const offline = challengeable.filter((t) => !outOfBand(t));
      const waiting = challengeable.filter(outOfBand);
      // Wait mode only when no other token type answers with a challenge: those are never delayed.
      if (waiting.length && !offline.length && !req.noWait) {
        const plan = await startWait(deps, waiting, rp, user, { transactionId: claim?.transactionId, onCreated: record });
        if (plan) return plan;
      }
      if (challengeable.length) {
        const challenges = await createChallenges(deps, challengeable, rp, {
          exception: req.exception,
          heldAttempts: req.heldAttempts,
          transactionId: claim?.transactionId,
        });
        await record?.(challenges);
        if (rp.action<boolean>('increase_failcounter_on_challenge')) await bumpFailCounters(deps, challengeable);
        return {
          kind: 'challenge',
          challenges,
          preferredClientMode: preferredClientMode(rp, challenges),
          serials: serialsOf(challengeable),
          ...base(),
        };
      }
    } catch (err) {
      if (claim && pushGateOf) await releasePushLogin(deps, pushGateOf, claim).catch(() => {});
      throw err;
    }
  }
  if (c.pinMatched.length) {
    await bumpFailCounters(deps, c.pinMatched);
    const t = single(c.pinMatched);
    return {
      kind: 'reject',
      message: 'wrong otp value',
      serial: t?.serial,
      type: t?.type,
      otpLen: t?.otpLen,
      serials: serialsOf(c.pinMatched),
      ...base(),
    };
  }
  if (usable.every(isLocked)) return lockedAnswer(); // only (stale-)locked tokens, none answered: as if not looked at
  await bumpFailCounters(deps, c.invalid.length ? c.invalid : usable);
  return { kind: 'reject', message: 'wrong otp pin', serials: serialsOf(usable), ...base() };
}

/** +1 on each token's fail counter, with the events. */
export async function bumpFailCounters(deps: Deps, tokens: readonly TokenRecord[]): Promise<void> {
  const counts = await deps.store.tokens.incrementFailCount(
    tokens.map((t) => t.id),
    deps.clock.now(),
  );
  for (const t of tokens) {
    const n = counts.get(t.id);
    if (n === undefined) continue;
    deps.events.emit('token.fail_counter', { serial: t.serial, failCount: n, maxFail: t.maxFail });
    if (n >= t.maxFail && t.failCount < t.maxFail) deps.events.emit('token.locked', { serial: t.serial });
  }
}

/**
 * The PIN queue's job of a check: its fairness key is the resolved user (realm/name — every spelling of one user is
 * one key; realm names hold no '/'), the owner of a serial-only token, else the serial (`serial:` — realm names hold
 * no ':') — and, when a trusted proxy named it, the end-user address (after a NUL, which no parameter holds). So an
 * attacker who floods a user from one address fills the queue of that (user, address) only, and the real user from
 * their own address takes turns with it instead of waiting behind it. Never the peer address alone: every login of
 * an institution may come from one IdP address.
 */
function pinJobOf(
  user: UserInfo | null,
  tokens: readonly TokenRecord[],
  address: string | null | undefined,
  signal: AbortSignal | undefined,
): PinJob {
  const who = user ? `${user.realm}/${user.name}` : `serial:${tokens[0]?.serial ?? ''}`;
  return { key: address ? `${who}\u0000${address}` : who, signal };
}

/** PIN part check according to `otppin`. */
async function pinMatches(
  deps: Deps,
  token: TokenRecord,
  pin: string,
  rp: RequestPolicies,
  user: UserInfo | null,
  job: PinJob,
  secondFactorOnly: boolean,
): Promise<boolean> {
  const mode = secondFactorOnly ? 'none' : (rp.action<string>('otppin') ?? 'tokenpin');
  if (mode === 'none') return pin === '';
  if (mode === 'userstore') {
    if (!user) return false;
    const realm = deps.realms.get(user.realm);
    return realm ? realm.verifyPassword(user.name, pin, job) : false;
  }
  return deps.pins.verify(token.pinHash, pin, job);
}

function challengeEnabled(type: TokenType, rp: RequestPolicies): boolean {
  if (!type.canChallenge) return false;
  if (type.outOfBand) return true;
  const list = rp.action<readonly string[]>('challenge_response') ?? [];
  return list.includes(type.type);
}

async function classify(
  deps: Deps,
  tokens: readonly TokenRecord[],
  pass: string,
  rp: RequestPolicies,
  user: UserInfo | null,
  job: PinJob,
  secondFactorOnly: boolean,
): Promise<Classified> {
  const out: Classified = { valid: [], challenge: [], pinMatched: [], invalid: [] };
  const ctx = rp.tokenContext();
  for (const token of tokens) {
    const type = deps.registry.require(token.type);
    if (challengeEnabled(type, rp) && (await pinMatches(deps, token, pass, rp, user, job, secondFactorOnly))) {
      out.challenge.push(token);
      continue;
    }
    if (type.outOfBand) {
      out.invalid.push(token);
      continue;
    }
    const cut = type.splitsPass ? Math.max(0, pass.length - token.otpLen) : pass.length;
    const pin = pass.slice(0, cut);
    const otp = pass.slice(cut);
    if (!(await pinMatches(deps, token, pin, rp, user, job, secondFactorOnly))) {
      out.invalid.push(token);
      continue;
    }
    const verdict = await type.check(token, { otp }, ctx);
    if (verdict.kind === 'valid') out.valid.push({ token, counter: verdict.counter ?? null });
    else out.pinMatched.push(token);
  }
  return out;
}

/**
 * A pass with a transaction id: the tokens that have a live challenge in this transaction answer it. Returns null
 * when no token of the request has a challenge there (then the pass is checked as a normal pass, as eduMFA does).
 */
async function answerTransaction(
  deps: Deps,
  req: CheckRequest,
  tokens: readonly TokenRecord[],
  rp: RequestPolicies,
): Promise<Outcome | null> {
  const rows = await deps.store.challenges.byTransaction(req.transactionId!);
  const byId = new Map(tokens.map((t) => [t.serial, t]));
  // An application's push (server/auth/app_push.ts) approves what the application asked, never a login.
  const mine = rows.filter((r) => byId.has(r.serial) && r.data[APP_PUSH_MARK] === undefined);
  if (!mine.length) return null;
  const now = deps.clock.now();
  const ctx = rp.tokenContext();
  const wrongOtp: TokenRecord[] = [];
  let declined: TokenRecord | undefined;
  const pending: TokenRecord[] = [];
  for (const row of mine) {
    const token = byId.get(row.serial)!;
    const type = deps.registry.require(token.type);
    if (!token.active || isLocked(token) || outsideValidity(token, now)) {
      pending.push(token);
      continue;
    }
    if (row.expiresAt <= now) {
      (type.outOfBand ? pending : wrongOtp).push(token);
      continue;
    }
    const verdict: Verdict = await type.check(token, { otp: req.pass, challenge: row }, ctx);
    if (verdict.kind === 'valid') {
      // Consume the challenge in the state it was found valid in (a push: accepted by the phone; an OTP or a push
      // login code: still pending) — of many parallel finalizes exactly one wins.
      const from = row.status === 'declined' ? 'pending' : row.status;
      if (!(await deps.store.challenges.consume(row.id, from, now))) {
        pending.push(token);
        continue;
      }
      const enrolling = row.session === ENROLLMENT_SESSION;
      // Enrollment during login (totp): the first OTP completes the token (a push token was completed by its phone).
      if (enrolling && token.rolloutState === 'clientwait' && !(await finishLoginEnrollment(deps, token, now))) {
        pending.push(token);
        continue;
      }
      if (!(await deps.store.tokens.recordSuccess(token.id, verdict.counter ?? null, now))) {
        wrongOtp.push(token);
        continue;
      }
      if (enrolling)
        deps.events.emit('enrollment.login_completed', { serial: token.serial, type: token.type, transactionId: row.transactionId });
      if (rows.length > 1) await deps.store.challenges.deleteTransaction(row.transactionId); // the other tokens' challenges
      return { kind: 'accept', message: 'Found matching challenge', serial: token.serial, serials: [token.serial], policies: rp.matched() };
    }
    // `invalid` is a wrong answer (an OTP, a push login code): a failed attempt. An unanswered push is `pending`.
    if (verdict.kind === 'declined') declined ??= token;
    else if (verdict.kind === 'invalid') wrongOtp.push(token);
    else pending.push(token);
  }
  if (declined) {
    return {
      kind: 'declined',
      message: DECLINED_MESSAGE,
      serial: declined.serial,
      type: declined.type,
      serials: [declined.serial],
      policies: rp.matched(),
    };
  }
  await bumpFailCounters(deps, wrongOtp);
  const all = [...wrongOtp, ...pending];
  const t = single(all);
  return {
    kind: 'reject',
    message: all.length > 1 ? `Response did not match for ${all.length} tokens.` : 'Response did not match the challenge.',
    serial: t?.serial,
    type: t?.type,
    serials: all.map((x) => x.serial),
    policies: rp.matched(),
  };
}
