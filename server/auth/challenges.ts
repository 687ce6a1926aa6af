/** Creating challenges (one transaction id per request) and reading a transaction's state. */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import { ValidateError } from '../../core/errors.ts';
import type { ChallengeOut } from './outcome.ts';
import type { RequestPolicies } from './context.ts';
import type { ChallengeRecord, PushProof, TokenRecord } from '../../tokens/types.ts';
import { loginCode, matchingCode, presenceChoice, type MatchingFormat, type PresenceOptionSet } from '../../tokens/push/proof.ts';
import { PRESENCE_ACTIONS } from '../../tokens/push/variants.ts';
import { DEVICE_CHALLENGE_DATA, isDeviceV2 } from '../../tokens/push/device.ts';
import { assessPushRisk, type PushRiskReason } from './push_risk.ts';
import { resolvedUserKey } from './throttle.ts';

export const DEFAULT_OTP_CHALLENGE_TEXT = 'please enter otp: ';

/** 20 random decimal digits (eduMFA's transaction id format). */
export function newTransactionId(): string {
  let s = '';
  while (s.length < 20) {
    const b = crypto.randomBytes(24);
    for (const x of b) if (x < 250 && s.length < 20) s += String(x % 10);
  }
  return s;
}

export function validityMs(deps: Deps, type: string): number {
  const c = deps.config.challenge;
  return (c.typeValiditySeconds[type] ?? c.validitySeconds) * 1000;
}

export interface CreateChallengesOptions {
  readonly session?: string;
  readonly exception?: boolean;
  /** The transaction id to use (push fatigue hands a repeated trigger its open login's id). */
  readonly transactionId?: string;
  /**
   * No push proofs (wait mode: the login shows no message before the phone answers, so there is nothing to match
   * and nowhere to type a code — as privacyIDEA turns presence and code-to-phone off under push_wait).
   */
  readonly noProofs?: boolean;
  /** Failed-attempt points the calling request holds itself (the push risk decision does not count them). */
  readonly heldAttempts?: number;
  /** How long the challenges are valid, instead of the configured validity of their type (an application's timeout). */
  readonly validityMs?: number;
  /** Marks the challenges as an application's push (server/auth/app_push.ts): never the answer of a login. */
  readonly appPush?: boolean;
}

/** The key in a challenge's data that marks an application's push (a login's /validate/check never finishes with it). */
export const APP_PUSH_MARK = 'app_push';

/**
 * Creates one challenge per token, all sharing one transaction id; each row is stored before anything is sent.
 * Out-of-band types deliver through their channel afterwards (a failed delivery never fails the request).
 * Push tokens get their proof (planPushProofs) — one code / one set of options per transaction.
 */
export async function createChallenges(
  deps: Deps,
  tokens: readonly TokenRecord[],
  rp: RequestPolicies,
  opts: CreateChallengesOptions = {},
): Promise<ChallengeOut[]> {
  const session = opts.session ?? '';
  const transactionId = opts.transactionId ?? newTransactionId();
  const now = deps.clock.now();
  const ctx = rp.tokenContext();
  const out: ChallengeOut[] = [];
  const proofs = opts.noProofs || session !== '' ? null : await planPushProofs(deps, tokens, rp, opts.heldAttempts ?? 0);
  for (const token of tokens) {
    const type = deps.registry.require(token.type);
    const proof = proofs?.proofFor(token);
    if (proof)
      deps.events.emit('challenge.proof', {
        serial: token.serial,
        transactionId,
        proof: proof.kind,
        reasons: proof.kind === 'match' ? [...proofs!.reasons] : [],
      });
    const spec = (await type.createChallenge?.(token, ctx, proof)) ?? {
      nonce: crypto.randomBytes(16).toString('hex'),
      message: rp.action<string>('challenge_text') ?? DEFAULT_OTP_CHALLENGE_TEXT,
    };
    const record = await deps.store.challenges.insert({
      transactionId,
      serial: token.serial,
      tokenId: token.id,
      nonce: spec.nonce,
      session,
      data: {
        ...(spec.data ?? {}),
        ...(opts.appPush ? { [APP_PUSH_MARK]: '1' } : {}),
        ...(isDeviceV2(token.info) ? deviceContext(rp) : {}),
      },
      createdAt: now,
      expiresAt: now + (opts.validityMs ?? validityMs(deps, token.type)),
    });
    deps.events.emit('challenge.created', { serial: token.serial, transactionId, type: token.type });
    let message = spec.message;
    if (type.deliverChallenge) {
      const delivered = await type.deliverChallenge(token, record, ctx);
      // eduMFA's `exception=1`: a failed delivery is an error for the client (the challenge stays stored if polling is allowed).
      if (!delivered.delivered && opts.exception) throw new ValidateError('Failed to submit message to Firebase service.');
      if (delivered.messageSuffix) message = `${message} ${delivered.messageSuffix}`;
    }
    out.push({
      transactionId,
      serial: token.serial,
      type: token.type,
      clientMode: spec.clientMode ?? type.clientMode,
      message,
      ...(spec.attributes ? { attributes: spec.attributes } : {}),
      ...(spec.presenceAnswer !== undefined ? { presenceAnswer: spec.presenceAnswer } : {}),
    });
  }
  return out;
}

/** What a v2 device shows of the login besides its texts: the end-user address and the realm (when known). */
function deviceContext(rp: RequestPolicies): Record<string, string> {
  return {
    ...(rp.who.client ? { [DEVICE_CHALLENGE_DATA.client]: rp.who.client } : {}),
    ...(rp.who.user?.realm ? { [DEVICE_CHALLENGE_DATA.realm]: rp.who.user.realm } : {}),
  };
}

interface ProofPlan {
  proofFor(token: TokenRecord): PushProof | undefined;
  /** Why `push_matching: on_risk` applied (empty otherwise). */
  readonly reasons: readonly PushRiskReason[];
}

/**
 * The proof of each push token of a login, by precedence: the privacyIDEA presence check (legacy push with
 * `push_require_presence`), else a login code (`push_code_to_login`), else number matching (`push_matching`:
 * always, or on_risk when assessPushRisk finds a reason). One code, and one set of presence options, per
 * transaction: a user with two phones sees the same on both.
 */
async function planPushProofs(
  deps: Deps,
  tokens: readonly TokenRecord[],
  rp: RequestPolicies,
  heldAttempts: number,
): Promise<ProofPlan | null> {
  const kindsOf = (t: TokenRecord) => deps.registry.require(t.type).pushProofs ?? [];
  const push = tokens.filter((t) => kindsOf(t).length > 0);
  if (!push.length) return null;
  const presence =
    push.some((t) => kindsOf(t).includes('presence')) && rp.action<boolean>(PRESENCE_ACTIONS.requirePresence, 'authentication')
      ? presenceChoice(
          rp.action<PresenceOptionSet>(PRESENCE_ACTIONS.presenceOptions, 'authentication') ?? 'ALPHABETIC',
          rp.action<string>(PRESENCE_ACTIONS.presenceCustomOptions, 'authentication'),
          rp.action<number>(PRESENCE_ACTIONS.presenceNumOptions, 'authentication') ?? 3,
        )
      : null;
  const code = rp.action<boolean>('push_code_to_login') ? loginCode() : null;
  let match: string | null = null;
  let reasons: readonly PushRiskReason[] = [];
  const mode = rp.action<string>('push_matching') ?? 'on_risk';
  // Matching is asked for only where no stronger proof applies to every push token of the login.
  const needsMatch = !code && push.some((t) => !(presence && kindsOf(t).includes('presence')));
  if (needsMatch && mode === 'always') match = matchingCode(rp.action<MatchingFormat>('push_matching_format') ?? 'words');
  else if (needsMatch && mode === 'on_risk') {
    const user = rp.who.user;
    const risk = await assessPushRisk(deps, {
      user: user ? { name: user.name, realm: user.realm } : null,
      userKey: user ? resolvedUserKey(user) : `serial:${push[0]!.serial}`,
      heldAttempts,
      address: rp.who.client,
      serials: push.map((t) => t.serial),
    });
    if (risk.risky) {
      match = matchingCode(rp.action<MatchingFormat>('push_matching_format') ?? 'words');
      reasons = risk.reasons;
    }
  }
  return {
    reasons,
    proofFor(token) {
      const kinds = kindsOf(token);
      if (presence && kinds.includes('presence')) return { kind: 'presence', options: presence.options, answer: presence.answer };
      if (code && kinds.includes('login_code')) return { kind: 'login_code', code };
      if (match && kinds.includes('match')) return { kind: 'match', code: match };
      return undefined;
    },
  };
}

/** eduMFA's preferred_client_mode: the first policy entry among the challenges' modes, else `interactive`. */
export function preferredClientMode(rp: RequestPolicies, challenges: readonly ChallengeOut[]): string {
  const wanted = rp.action<readonly string[]>('preferred_client_mode') ?? ['interactive', 'webauthn', 'poll', 'u2f'];
  const modes = new Set(challenges.map((c) => c.clientMode));
  return wanted.find((m) => modes.has(m as ChallengeOut['clientMode'])) ?? 'interactive';
}

export type TransactionStatus = 'accept' | 'declined' | 'pending';

/** State of a transaction from its unexpired rows: any accepted → accept; else any declined → declined; else pending. */
export function transactionStatus(rows: readonly ChallengeRecord[], now: number): TransactionStatus {
  const live = rows.filter((r) => r.expiresAt > now);
  if (live.some((r) => r.status === 'accepted')) return 'accept';
  if (live.some((r) => r.status === 'declined')) return 'declined';
  return 'pending';
}
