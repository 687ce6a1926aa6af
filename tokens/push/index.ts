/**
 * One factory makes both push token types: `edupush` (eduMFA Authenticator) and legacy `push` (privacyIDEA
 * Authenticator). They are out-of-band: the PIN (or an empty pass without PIN) triggers a challenge, the phone
 * answers at `/ttype/<type>`, and /validate/check with the transaction id finalizes an accepted challenge.
 */
import type { TokenType, Verdict } from '../types.ts';
import { loginCodeMatches, proofOf } from './proof.ts';
import { createPushChallenge, deliverPushChallenge } from './challenge.ts';
import { pushEnrollBegin } from './enrollment.ts';
import { EDUPUSH, LEGACY_PUSH, PUSH_VARIANTS, pushActions, type PushVariant } from './variants.ts';

/** Push types sort after every other type, so a blocking wait only starts when nothing else matched. */
export const PUSH_CHECK_ORDER = 100;

export function makePushType(v: PushVariant): TokenType {
  return {
    type: v.type,
    title: v.title,
    serialPrefix: v.serialPrefix,
    clientMode: 'poll',
    splitsPass: false,
    canChallenge: true,
    outOfBand: true,
    checkOrder: PUSH_CHECK_ORDER,
    policyActions: pushActions(v),
    // The privacyIDEA app's presence check exists only for the legacy type (the eduMFA apps do not know it).
    pushProofs: v.type === 'push' ? ['presence', 'login_code', 'match'] : ['login_code', 'match'],

    enrollBegin: (input, ctx) => pushEnrollBegin(v, input, ctx),

    /**
     * Out of band: only an answered challenge counts; the pass itself is never an OTP — except for a login code
     * (`push_code_to_login`), which is the answer: the typed code, compared in constant time, while the phone has
     * not declined (its "approve" changes nothing). A wrong code is `invalid` (a failed attempt).
     */
    async check(_token, { otp, challenge }): Promise<Verdict> {
      if (!challenge) return { kind: 'invalid' };
      if (challenge.status === 'declined') return { kind: 'declined' };
      const proof = proofOf(challenge);
      if (proof?.kind === 'login_code') return loginCodeMatches(proof.code, otp) ? { kind: 'valid' } : { kind: 'invalid' };
      if (challenge.status === 'accepted') return { kind: 'valid' };
      return { kind: 'pending' };
    },

    createChallenge: (token, ctx, proof) => createPushChallenge(v, token, ctx, proof),
    deliverChallenge: (token, challenge, ctx) => deliverPushChallenge(v, token, challenge, ctx),
  };
}

export const edupush: TokenType = makePushType(EDUPUSH);
export const push: TokenType = makePushType(LEGACY_PUSH);
export const PUSH_TOKEN_TYPES: readonly TokenType[] = [edupush, push];

/** The variant served at `/ttype/<type>`, or undefined for any other type. */
export function pushVariantOf(type: string): PushVariant | undefined {
  return PUSH_VARIANTS.find((v) => v.type === type.toLowerCase());
}

export { EDUPUSH, LEGACY_PUSH, PUSH_VARIANTS };
