/** HOTP (RFC 4226): counter-based OTP. The record's `counter` is the next counter that may be accepted. */
import type { ActionDef } from '../policies/types.ts';
import {
  findHotp,
  hotpValue,
  intAction,
  isOtpFormat,
  otpEnrollResult,
  otpEquals,
  otpParamsOf,
  resolveDigits,
  resolveEnrollKey,
  resolveHash,
  resolveLabel,
} from './otp.ts';
import type { TokenType, Verdict } from './types.ts';

export const HOTP_DEFAULT_WINDOW = 10;

const HOTP_ACTIONS: readonly ActionDef[] = [
  {
    name: 'hotp_hashlib',
    scope: 'enrollment',
    type: 'enum',
    values: ['sha1', 'sha256', 'sha512'],
    default: 'sha1',
    description: 'Hash algorithm of new HOTP tokens when the request does not give hashlib.',
  },
  {
    name: 'hotp_otplen',
    scope: 'enrollment',
    type: 'enum',
    values: ['6', '8'],
    default: '6',
    description: 'OTP length (6 or 8) of new HOTP tokens when the request does not give otplen.',
  },
  {
    name: 'hotp_window',
    scope: 'authentication',
    type: 'int',
    min: 1,
    max: 1000,
    default: HOTP_DEFAULT_WINDOW,
    description: 'Look-ahead window: how many counter values from the next expected one an HOTP value may match.',
  },
];

export const hotp: TokenType = {
  type: 'hotp',
  title: 'HOTP Token',
  serialPrefix: 'OATH',
  clientMode: 'interactive',
  splitsPass: true,
  canChallenge: true,
  outOfBand: false,
  checkOrder: 10,
  policyActions: HOTP_ACTIONS,

  async enrollBegin(input, ctx) {
    const hash = resolveHash(input, ctx, 'hotp');
    const digits = resolveDigits(input, ctx, 'hotp');
    const key = resolveEnrollKey(input, hash);
    return otpEnrollResult({ kind: 'hotp', key, hash, digits, ...resolveLabel(input, ctx) });
  },

  async check(token, { otp }, ctx): Promise<Verdict> {
    const p = otpParamsOf(token);
    if (p === null) return { kind: 'invalid' };
    // The token's own count_window (POST /token/set) wins over the policy, as eduMFA's token column does.
    const window = token.countWindow ?? intAction(ctx, 'hotp_window', HOTP_DEFAULT_WINDOW, 1);
    const counter = findHotp(p.key, otp, token.counter, window, p.digits, p.hash);
    return counter === null ? { kind: 'invalid' } : { kind: 'valid', counter };
  },

  /** otp1 at some counter in `[counter, counter + syncWindow)`, otp2 at the one after it → the counter after otp2. */
  resync(token, otp1, otp2, syncWindow) {
    const p = otpParamsOf(token);
    if (p === null || !isOtpFormat(otp1, p.digits) || !isOtpFormat(otp2, p.digits)) return null;
    const from = Math.max(0, token.counter);
    for (let c = from; c < from + syncWindow; c++) {
      if (otpEquals(hotpValue(p.key, c, p.digits, p.hash), otp1) && otpEquals(hotpValue(p.key, c + 1, p.digits, p.hash), otp2)) {
        return { counter: c + 2 };
      }
    }
    return null;
  },
};
