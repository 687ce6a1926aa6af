/** Creating challenges (one transaction id per request) and reading a transaction's state. */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import { ValidateError } from '../../core/errors.ts';
import type { ChallengeOut } from './outcome.ts';
import type { RequestPolicies } from './context.ts';
import type { ChallengeRecord, TokenRecord } from '../../tokens/types.ts';

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

/**
 * Creates one challenge per token, all sharing one transaction id; each row is stored before anything is sent.
 * Out-of-band types deliver through their channel afterwards (a failed delivery never fails the request).
 */
export async function createChallenges(
  deps: Deps,
  tokens: readonly TokenRecord[],
  rp: RequestPolicies,
  opts: { session?: string; exception?: boolean; transactionId?: string } = {},
): Promise<ChallengeOut[]> {
  const session = opts.session ?? '';
  const transactionId = opts.transactionId ?? newTransactionId();
  const now = deps.clock.now();
  const ctx = rp.tokenContext();
  const out: ChallengeOut[] = [];
  for (const token of tokens) {
    const type = deps.registry.require(token.type);
    const spec = (await type.createChallenge?.(token, ctx)) ?? {
      nonce: crypto.randomBytes(16).toString('hex'),
      message: rp.action<string>('challenge_text') ?? DEFAULT_OTP_CHALLENGE_TEXT,
    };
    const record = await deps.store.challenges.insert({
      transactionId,
      serial: token.serial,
      tokenId: token.id,
      nonce: spec.nonce,
      session,
      data: { ...(spec.data ?? {}) },
      createdAt: now,
      expiresAt: now + validityMs(deps, token.type),
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
      clientMode: type.clientMode,
      message,
      ...(spec.attributes ? { attributes: spec.attributes } : {}),
    });
  }
  return out;
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
