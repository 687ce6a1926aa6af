/**
 * The push risk decision (issue 11): is this push login risky enough for number matching (`push_matching: on_risk`)?
 * Risky when any of these holds (each a reason):
 * - `backed_off`: the user has failed attempts counted by the back-off (server/auth/throttle.ts) besides the one
 *   this request holds itself, or the push-fatigue back-off (server/auth/push_fatigue.ts) holds a strike — an
 *   unanswered or declined push — for the user or for this end-user address (a trigger that gets this far is no longer
 *   refused, but the strikes say someone was pushing).
 * - `new_address`: the user has logged in successfully before (some address on record) but never from this end-user
 *   address (table login_addresses, migration 008; forgotten after LOGIN_ADDRESS_RETENTION_DAYS). A user without
 *   any record is not "new" anywhere: the first login teaches the first address (trust on first use), so an
 *   upgrade does not turn every user's next login into a risky one.
 * - `recent_decline`: one of the user's push tokens declined a login within DECLINE_MEMORY_MS (the cleanup keeps
 *   declined challenges that long).
 * Four bounded reads, made only when `on_risk` applies to a push login.
 */
import type { Deps } from '../deps.ts';
import { DECLINE_MEMORY_MS, LOGIN_ADDRESS_RETENTION_DAYS } from '../store/cleanup.ts';
import { fatigueSubject } from './push_fatigue.ts';

/** At most this many login addresses are kept per user (the most recently used). */
export const LOGIN_ADDRESSES_PER_USER = 20;

export type PushRiskReason = 'backed_off' | 'new_address' | 'recent_decline';

export interface PushRiskSubject {
  /** The resolved user (null for a serial-only login: no address history, no back-off by user). */
  readonly user: { readonly name: string; readonly realm: string } | null;
  /** The back-off key of the login (server/auth/throttle.ts userKeyOf). */
  readonly userKey: string;
  /** Failed-attempt points this request holds itself (a PIN check holds one while it runs; a trigger none). */
  readonly heldAttempts: number;
  /** The end-user address of the login (the client, as the audit and the policies see it). */
  readonly address: string | undefined;
  /** The serials of the user's push tokens in this login. */
  readonly serials: readonly string[];
}

export interface PushRisk {
  readonly risky: boolean;
  readonly reasons: readonly PushRiskReason[];
}

export async function assessPushRisk(deps: Pick<Deps, 'clock' | 'store' | 'throttle'>, who: PushRiskSubject): Promise<PushRisk> {
  const now = deps.clock.now();
  const [failed, strikes, history, declined] = await Promise.all([
    deps.throttle.failedAttempts(who.userKey),
    deps.store.pushFatigue.backoff(
      fatigueSubject(
        who.user,
        who.serials.map((serial) => ({ serial })),
      ),
      who.address ? ['', who.address] : [''],
    ),
    who.user && who.address
      ? deps.store.loginAddresses.history(who.user.realm, who.user.name, who.address, now - LOGIN_ADDRESS_RETENTION_DAYS * 86_400_000)
      : null,
    deps.store.challenges.declinedSince(who.serials, now - DECLINE_MEMORY_MS),
  ]);
  const reasons: PushRiskReason[] = [];
  if (failed > who.heldAttempts || strikes.some((r) => r.strikes > 0)) reasons.push('backed_off');
  if (history && history.addresses > 0 && !history.known) reasons.push('new_address');
  if (declined) reasons.push('recent_decline');
  return { risky: reasons.length > 0, reasons };
}

/**
 * A successful login of `user` from `address`: recorded (one UPDATE from a known address); a new address is inserted
 * and then the user's oldest addresses beyond LOGIN_ADDRESSES_PER_USER are dropped. Best effort: a failure is logged, the login stands.
 */
export async function rememberLogin(
  deps: Pick<Deps, 'clock' | 'store' | 'events'>,
  user: { readonly name: string; readonly realm: string },
  address: string | undefined,
): Promise<void> {
  if (!address) return;
  try {
    if (await deps.store.loginAddresses.touch(user.realm, user.name, address, deps.clock.now()))
      await deps.store.loginAddresses.prune(user.realm, user.name, LOGIN_ADDRESSES_PER_USER);
  } catch (err) {
    deps.events.emit('log', { level: 'warn', msg: 'recording the login address failed', error: String(err) });
  }
}
