/**
 * Push-fatigue defences (issue 11): open push logins per user and end-user address, exponential back-off after
 * unanswered or declined pushes, and the decline lock. On without any policy (the `push_*` authentication actions
 * of policies/actions.ts); policies loosen them per realm, user or client range. State lives in the database
 * (migration 007, server/store/push_fatigue_repo.ts) so that every node sees it, and time comes from deps.clock.
 *
 * The order on /validate/check and /validate/triggerchallenge (server/auth/check.ts, trigger.ts):
 *  1. `pushGate` — BEFORE any PIN is hashed: settle the user's open logins that expired unanswered (a strike each,
 *     exactly once: the conditional close decides), then read the back-off of the user and of the end-user address
 *     and the decline lock. A user whose only usable tokens are push tokens is refused here (429 + Retry-After, or
 *     REJECT when locked), so a backed-off flood never reaches the argon2 hasher. A plain login that repeats what the
 *     database showed a moment ago for its user and address — the pass of its open login, or the back-off refusal —
 *     is answered from this node's memory before even the token list is read (server/auth/push_memory.ts).
 *  2. `claimPushLogin` — after the PIN matched, before a push is sent: a trigger from an address whose login is
 *     still open gets that login's CHALLENGE again (no new push); otherwise it claims a free place (one conditional
 *     UPDATE); with none free it is refused (429, Retry-After = when the first open login expires).
 *  3. `settlePushAnswer` — the phone's answer closes the login: an accept resets the back-off of the user and of
 *     that address; a decline is a strike on both, a `push.declined` event, and after `push_decline_lock` declines
 *     in a row it locks the user's push logins (or the token).
 *
 * Why keyed by address: the attacker and the user come through the same IdP (a trusted proxy) and only the `client`
 * address it names tells them apart. Superseding the open login would let the attacker cancel the user's login for
 * good; handing the open login to any caller would let the attacker poll (and finalize) the user's approved login.
 * An address that no trusted proxy named ('' here) never gets an open login handed back: each trigger takes its own
 * place within the cap.
 */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import { TooManyRequestsError } from '../../core/errors.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import type { PushBackoffRecord, PushLoginRecord } from '../store/push_fatigue_repo.ts';
import { requestPolicies, type RequestPolicies } from './context.ts';
import type { ChallengeOut } from './outcome.ts';
import type { RememberedRefusal } from './push_memory.ts';
import { storeKey } from './throttle.ts';
import type { UserInfo } from './users.ts';

export interface FatigueLimits {
  readonly openLogins: number;
  readonly startMs: number;
  readonly factor: number;
  readonly maxMs: number;
  readonly userAfter: number;
  readonly declineLock: number;
  readonly lockTarget: 'user' | 'token';
}

export function fatigueLimits(rp: RequestPolicies): FatigueLimits {
  const a = <T extends number | string>(name: string): T | undefined => rp.action<T>(name, 'authentication');
  return {
    openLogins: a<number>('push_open_logins') ?? 2,
    startMs: (a<number>('push_backoff_start') ?? 30) * 1000,
    factor: a<number>('push_backoff_factor') ?? 2,
    maxMs: (a<number>('push_backoff_max') ?? 900) * 1000,
    userAfter: a<number>('push_backoff_user_after') ?? 3,
    declineLock: a<number>('push_decline_lock') ?? 5,
    lockTarget: a<'user' | 'token'>('push_decline_lock_target') ?? 'user',
  };
}

/** The key of a user's push state: the back-off's user key (realm and name as the realm reports them), or the serial. */
export function fatigueSubject(user: Pick<UserInfo, 'name' | 'realm'> | null, tokens: readonly Pick<TokenRecord, 'serial'>[]): string {
  return storeKey(user ? `user:${user.realm}:${user.name}` : `serial:${tokens[0]?.serial ?? ''}`);
}

/** The subject of a token's owner (the phone's answer, the admin commands). */
export function tokenSubject(token: Pick<TokenRecord, 'username' | 'realm' | 'serial'>): string {
  return token.username && token.realm
    ? fatigueSubject({ name: token.username, realm: token.realm }, [token])
    : fatigueSubject(null, [token]);
}

/** How long a back-off row still refuses (ms; 0 = free). The address row from the first strike, the user row after `userAfter`. */
export function backoffRemaining(row: PushBackoffRecord | undefined, limits: FatigueLimits, now: number): number {
  if (!row) return 0;
  const free = row.client === '' ? limits.userAfter : 0;
  const over = row.strikes - free;
  if (over < 1) return 0;
  const delay = Math.min(limits.maxMs, limits.startMs * limits.factor ** (over - 1));
  return Math.max(0, row.lastStrikeAt + delay - now);
}

export interface PushGate {
  readonly subject: string;
  /** The end-user address named by a trusted proxy, or '' (unknown: never handed an open login). */
  readonly client: string;
  readonly limits: FatigueLimits;
  readonly locked: boolean;
  /** ms until the back-off lets a push through (0: free), and which back-off it is. */
  readonly waitMs: number;
  readonly limit: 'push_user' | 'push_address' | null;
  /** The subject's open logins (unexpired) as read before any PIN work. */
  readonly open: readonly PushLoginRecord[];
  /** The clock when the gate was read (waitMs counts from here). */
  readonly readAt: number;
}

export const BACKOFF_MESSAGE = 'Too many push logins were not answered or were declined. Try again later.';
export const OPEN_MESSAGE = 'Too many push logins of this user are open. Answer one on the phone or try again later.';
export const LOCKED_MESSAGE = 'Push logins of this user are locked after repeated declines. Contact your administrator.';

/**
 * Step 1 (before any PIN work): settle the subject's logins that expired unanswered, then read its back-off and lock.
 * Cost: two indexed reads (and one conditional update per newly expired login).
 */
export async function pushGate(deps: Deps, subject: string, address: string | null, rp: RequestPolicies): Promise<PushGate> {
  const now = deps.clock.now();
  const limits = fatigueLimits(rp);
  const client = address ?? '';
  const open = await settleExpired(deps, subject, now);
  const rows = await deps.store.pushFatigue.backoff(subject, client ? ['', client] : ['']);
  const userRow = rows.find((r) => r.client === '');
  const addressRow = client ? rows.find((r) => r.client === client) : undefined;
  const userWait = backoffRemaining(userRow, limits, now);
  const addressWait = backoffRemaining(addressRow, limits, now);
  const waitMs = Math.max(userWait, addressWait);
  return {
    subject,
    client,
    limits,
    locked: userRow?.lockedAt != null,
    waitMs,
    limit: waitMs === 0 ? null : addressWait >= userWait ? 'push_address' : 'push_user',
    open,
    readAt: now,
  };
}

/** The MAC of the pass that opened a push login (key derived from the secrets key, salted with the transaction id). */
export function passMac(deps: Pick<Deps, 'box'>, transactionId: string, pass: string): string {
  return crypto.createHmac('sha256', deps.box.derive('push-login-pass')).update(`${transactionId}\u0000${pass}`).digest('hex');
}

/**
 * Before any PIN work: the open login of this address when the request repeats the very pass that opened it — the
 * flood of an attacker (or the reload of a user) who has the PIN is answered without hashing it again. A different
 * pass goes the normal way (PIN check, then claimPushLogin). Never for an unknown address.
 */
export function repeatedLogin(deps: Deps, gate: PushGate, pass: string): readonly ChallengeOut[] | null {
  if (!gate.client || gateCloses(gate)) return null;
  const mine = gate.open.find((l) => l.client === gate.client && l.challenges !== null && l.passMac !== null);
  if (!mine?.passMac || !mine.transactionId || mine.challenges === null) return null;
  if (!macMatches(deps, mine.transactionId, pass, mine.passMac)) return null;
  const challenges = JSON.parse(mine.challenges) as ChallengeOut[];
  deps.push.memory.remember(gate.subject, gate.client, {
    kind: 'login',
    transactionId: mine.transactionId,
    passMac: mine.passMac,
    challenges,
    expiresAt: mine.expiresAt,
    readAt: deps.clock.now(),
  });
  deps.events.emit('push.reused', { subject: gate.subject, client: gate.client, transactionId: mine.transactionId });
  return challenges;
}

/**
 * repeatedLogin from this node's memory (server/auth/push_memory.ts), before the token list and the push state are
 * read: the same answer while the database showed the login open less than PUSH_MEMORY_FRESH_MS ago. Null → the normal way.
 */
export function rememberedLogin(deps: Deps, subject: string, address: string | null, pass: string): readonly ChallengeOut[] | null {
  if (!address) return null;
  const login = deps.push.memory.get(subject, address, deps.clock.now());
  if (login?.kind !== 'login' || !macMatches(deps, login.transactionId, pass, login.passMac)) return null;
  deps.events.emit('push.reused', { subject, client: address, transactionId: login.transactionId });
  return login.challenges;
}

const macMatches = (deps: Pick<Deps, 'box'>, transactionId: string, pass: string, mac: string): boolean =>
  crypto.timingSafeEqual(Buffer.from(passMac(deps, transactionId, pass), 'hex'), Buffer.from(mac, 'hex'));

/** The refusal of a backed-off gate (429 + Retry-After), with its event. */
export function backoffRefusal(deps: Deps, gate: PushGate): TooManyRequestsError {
  return refusal(deps, gate.subject, gate.limit ?? 'push_user', gate.waitMs);
}

function refusal(deps: Deps, subject: string, limit: 'push_user' | 'push_address', waitMs: number): TooManyRequestsError {
  const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
  deps.events.emit('throttle.refused', { limit, key: subject, retryAfterSeconds });
  return new TooManyRequestsError(BACKOFF_MESSAGE, retryAfterSeconds);
}

/**
 * A plain login (no serial, type, types, secondFactorOnly, transaction id) of a user whose only candidate tokens are
 * push tokens was refused by this back-off (not locked): this node remembers the refusal for its (user, address)
 * until PUSH_MEMORY_FRESH_MS after the read, never past the back-off's end (server/auth/push_memory.ts).
 */
export function rememberRefusal(deps: Deps, gate: PushGate): void {
  if (gate.locked || gate.waitMs <= 0) return;
  deps.push.memory.remember(gate.subject, gate.client, {
    kind: 'refusal',
    limit: gate.limit ?? 'push_user',
    expiresAt: gate.readAt + gate.waitMs,
    readAt: gate.readAt,
  });
}

/**
 * The back-off refusal of a plain login from this node's memory, before the token list and the push state are read:
 * while the database showed it less than PUSH_MEMORY_FRESH_MS ago, the same refusal (same limit, Retry-After from the
 * time left until the back-off's end). Null → the normal way.
 */
export function rememberedRefusal(deps: Deps, subject: string, address: string | null): RememberedRefusal | null {
  const now = deps.clock.now();
  const seen = deps.push.memory.get(subject, address ?? '', now);
  return seen?.kind === 'refusal' ? seen : null;
}

/** The refusal of a remembered back-off (429 + Retry-After of the time left), with its event. */
export function rememberedBackoffRefusal(deps: Deps, subject: string, seen: RememberedRefusal): TooManyRequestsError {
  return refusal(deps, subject, seen.limit, seen.expiresAt - deps.clock.now());
}

/** Whether a gate keeps push tokens out of this request (back-off or lock). */
export const gateCloses = (gate: PushGate | null): boolean => gate !== null && (gate.locked || gate.waitMs > 0);

/** Open logins that expired without an answer: closed once each (the winner records the strike on the user and the address). */
async function settleExpired(deps: Deps, subject: string, now: number): Promise<PushLoginRecord[]> {
  const logins = (await deps.store.pushFatigue.logins(subject)).filter((l) => l.state === 'open');
  for (const l of logins.filter((x) => x.expiresAt <= now)) {
    if (!(await deps.store.pushFatigue.close(subject, l.slot, l.transactionId ?? '', 'expired'))) continue;
    await strike(deps, subject, l.client, l.expiresAt, false);
    deps.events.emit('push.unanswered', { subject, client: l.client || undefined, transactionId: l.transactionId ?? '' });
  }
  return logins.filter((x) => x.expiresAt > now);
}

/** One strike on the address row (when known) and on the user row; returns the user row after it. */
async function strike(deps: Deps, subject: string, client: string, at: number, declined: boolean) {
  if (client) await deps.store.pushFatigue.strike(subject, client, at, declined);
  return deps.store.pushFatigue.strike(subject, '', at, declined);
}

export type PushClaim =
  /** Same address, login still open: answer with its challenges, send nothing. */
  | { readonly kind: 'reuse'; readonly challenges: readonly ChallengeOut[] }
  /** A place was claimed for a new login with this transaction id: create it, then `recordPushLogin` (or `releasePushLogin`). */
  | { readonly kind: 'new'; readonly slot: number; readonly transactionId: string; readonly expiresAt: number }
  /** No place (or backed off / locked): no push for this request. */
  | { readonly kind: 'none'; readonly error: Error };

/**
 * Step 2 (after the PIN matched, before a push is sent). `transactionId` is the id the new login will have;
 * `expiresAt` when its push challenges expire.
 */
export async function claimPushLogin(deps: Deps, gate: PushGate, transactionId: string, expiresAt: number): Promise<PushClaim> {
  const now = deps.clock.now();
  if (gate.locked) {
    deps.events.emit('throttle.refused', { limit: 'push_locked', key: gate.subject, retryAfterSeconds: 0 });
    return { kind: 'none', error: new TooManyRequestsError(LOCKED_MESSAGE, 3600) };
  }
  if (gate.waitMs > 0) return { kind: 'none', error: backoffRefusal(deps, gate) };
  const repo = deps.store.pushFatigue;
  let logins = await repo.logins(gate.subject);
  const live = (l: PushLoginRecord) => l.state === 'open' && l.expiresAt > now;
  if (gate.client) {
    const mine = logins.find((l) => live(l) && l.client === gate.client);
    if (mine) {
      if (mine.challenges === null) {
        // Being created by a parallel request from the same address: it will answer with it.
        deps.events.emit('throttle.refused', { limit: 'push_open', key: gate.subject, retryAfterSeconds: 1 });
        return { kind: 'none', error: new TooManyRequestsError(OPEN_MESSAGE, 1) };
      }
      deps.events.emit('push.reused', { subject: gate.subject, client: gate.client, transactionId: mine.transactionId ?? '' });
      return { kind: 'reuse', challenges: JSON.parse(mine.challenges) as ChallengeOut[] };
    }
  }
  const cap = gate.limits.openLogins;
  if (logins.filter((l) => l.slot < cap).length < cap) {
    await repo.ensureSlots(gate.subject, cap);
    logins = await repo.logins(gate.subject);
  }
  for (const l of logins) {
    if (l.slot >= cap || live(l)) continue;
    // An open row here expired after step 1 read it: settling it first keeps its strike.
    if (l.state === 'open') await settleExpired(deps, gate.subject, now);
    if (await repo.claim(gate.subject, l.slot, gate.client, transactionId, now, expiresAt)) {
      return { kind: 'new', slot: l.slot, transactionId, expiresAt };
    }
  }
  const ends = logins.filter((l) => l.slot < cap && live(l)).map((l) => l.expiresAt);
  const firstEnd = ends.length ? Math.min(...ends) : now + 1000;
  const retryAfterSeconds = Math.max(1, Math.ceil((firstEnd - now) / 1000));
  deps.events.emit('throttle.refused', { limit: 'push_open', key: gate.subject, retryAfterSeconds });
  return { kind: 'none', error: new TooManyRequestsError(OPEN_MESSAGE, retryAfterSeconds) };
}

/** Stores the new login's CHALLENGE answer and the MAC of the pass that opened it (none for triggerchallenge). */
export async function recordPushLogin(
  deps: Deps,
  gate: PushGate,
  claim: { slot: number; transactionId: string; expiresAt: number },
  challenges: readonly ChallengeOut[],
  pass: string | null,
): Promise<void> {
  const mac = pass === null ? null : passMac(deps, claim.transactionId, pass);
  const now = deps.clock.now();
  const stored = await deps.store.pushFatigue.record(gate.subject, claim.slot, claim.transactionId, JSON.stringify(challenges), mac);
  if (stored && mac !== null && gate.client)
    deps.push.memory.remember(gate.subject, gate.client, {
      kind: 'login',
      transactionId: claim.transactionId,
      passMac: mac,
      challenges,
      expiresAt: claim.expiresAt,
      readAt: now,
    });
}

/** The login could not be created (an error before or while its challenges were stored): its place is free again. */
export async function releasePushLogin(deps: Deps, gate: PushGate, claim: { slot: number; transactionId: string }): Promise<void> {
  deps.push.memory.forget(gate.subject, gate.client);
  await deps.store.pushFatigue.close(gate.subject, claim.slot, claim.transactionId, 'free');
}

/**
 * A push withdrawn before it was answered (the other pushes of a parallel approval once one approver said No): its
 * open login is closed without a strike — the user did nothing wrong — and its place is free again.
 */
export async function withdrawPushLogin(deps: Deps, transactionId: string): Promise<void> {
  const login = await deps.store.pushFatigue.loginByTransaction(transactionId);
  if (login && login.state === 'open') await deps.store.pushFatigue.close(login.subject, login.slot, transactionId, 'free');
}

/**
 * Step 3: the phone answered (a winning conditional answer) a challenge of `token` in `transactionId`.
 * An accept resets the back-off of the user and the login's address; a decline strikes both, is reported
 * (`push.declined` with the address and time, and the app's reason) and may lock.
 */
export async function settlePushAnswer(
  deps: Deps,
  token: TokenRecord,
  transactionId: string,
  decision: 'accept' | 'decline',
  reason: string | undefined,
): Promise<void> {
  const now = deps.clock.now();
  const repo = deps.store.pushFatigue;
  const subject = tokenSubject(token);
  const login = await repo.loginByTransaction(transactionId);
  const mine = login && login.subject === subject ? login : null;
  // An accept resets the back-off, a decline may lock: nothing this node remembers of the subject still holds.
  deps.push.memory.forget(subject);
  if (mine && mine.state === 'open') await repo.close(subject, mine.slot, transactionId, 'answered');
  const client = mine?.client ?? '';
  if (decision === 'accept') {
    await repo.reset(subject, client);
    return;
  }
  // The phone's decline is recorded even when the user store cannot answer now (only the resolver name is read).
  const user =
    token.username && token.realm
      ? ((await deps.realms
          .get(token.realm)
          ?.lookup(token.username)
          .catch(() => null)) ?? null)
      : null;
  const rp = requestPolicies(deps, {
    user: token.username && token.realm ? { name: token.username, realm: token.realm, resolver: user?.resolver ?? '' } : undefined,
    client: client || undefined,
  });
  const limits = fatigueLimits(rp);
  const userRow = await strike(deps, subject, client, now, true);
  deps.events.emit('push.declined', {
    serial: token.serial,
    transactionId,
    user: token.username || undefined,
    realm: token.realm || undefined,
    client: client || undefined,
    at: now,
    ...(reason ? { reason } : {}),
    declinesInRow: userRow.declines,
  });
  if (limits.declineLock <= 0 || userRow.declines < limits.declineLock) return;
  if (limits.lockTarget === 'token') {
    if (await deps.store.tokens.lockNow(token.id, now)) deps.events.emit('token.locked', { serial: token.serial });
  } else if (await repo.lock(subject, now)) {
    deps.events.emit('push.locked', { subject, serial: token.serial, declines: userRow.declines });
  }
}

/** What `pushgate token show` and the admin API report for a subject. */
export interface PushFatigueView {
  readonly subject: string;
  readonly openLogins: ReadonlyArray<{ transactionId: string; client: string; openedAt: number; expiresAt: number }>;
  readonly backoff: ReadonlyArray<{
    client: string;
    strikes: number;
    declines: number;
    lastStrikeAt: number;
    blockedForSeconds: number;
    lockedAt: number | null;
  }>;
}

export async function pushFatigueView(
  deps: Deps,
  subject: string,
  user: Pick<UserInfo, 'name' | 'realm'> | null,
): Promise<PushFatigueView> {
  const now = deps.clock.now();
  const rp = requestPolicies(deps, { user: user ? { name: user.name, realm: user.realm, resolver: '' } : undefined });
  const limits = fatigueLimits(rp);
  const logins = (await deps.store.pushFatigue.logins(subject)).filter((l) => l.state === 'open' && l.expiresAt > now);
  const rows = await deps.store.pushFatigue.backoff(subject);
  return {
    subject,
    openLogins: logins.map((l) => ({
      transactionId: l.transactionId ?? '',
      client: l.client,
      openedAt: l.openedAt,
      expiresAt: l.expiresAt,
    })),
    backoff: rows.map((r) => ({
      client: r.client,
      strikes: r.strikes,
      declines: r.declines,
      lastStrikeAt: r.lastStrikeAt,
      blockedForSeconds: Math.ceil(backoffRemaining(r, limits, now) / 1000),
      lockedAt: r.lockedAt,
    })),
  };
}

/** Admin unblock: the subject's back-off and lock are gone, its open places are free. */
export async function unblockPush(deps: Deps, subject: string): Promise<{ backoff: number; logins: number }> {
  deps.push.memory.forget(subject);
  const done = await deps.store.pushFatigue.clear(subject);
  deps.events.emit('push.unblocked', { subject, ...done });
  return done;
}
