/**
 * Simple pass token: the whole pass is the PIN, which server/auth checks. The token itself has no secret, so its
 * check only accepts an empty OTP part.
 */
import type { TokenType, Verdict } from './types.ts';

export const spass: TokenType = {
  type: 'spass',
  title: 'Simple Pass Token',
  serialPrefix: 'PISP',
  clientMode: 'interactive',
  splitsPass: false,
  canChallenge: false,
  outOfBand: false,
  checkOrder: 0,
  policyActions: [],

  async enrollBegin() {
    return {
      fields: { otpLen: 0, counter: 0, rolloutState: '', active: true, info: {}, secrets: {} },
      details: {},
    };
  },

  async check(_token, { otp }): Promise<Verdict> {
    return otp === '' ? { kind: 'valid' } : { kind: 'invalid' };
  },
};
