/**
 * TOTP (RFC 6238): time-based OTP. Time comes from ctx.clock; the record's `counter` is the next time step that may
 * be accepted, so a value is never accepted twice (nor an older one after a newer one).
 */
import type { ActionDef } from '../policies/types.ts';
import {
  findTotp,
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
  resolveTimeStep,
  totpStep,
} from './otp.ts';
import type { TokenRecord, TokenType, Verdict } from './types.ts';

/**
 * The token's clock offset in seconds (tokeninfo `timeShift`, eduMFA's name), set by a resync: the token's time
 * is server time + shift. 0 when absent or malformed.
 */
export function timeShiftSeconds(token: TokenRecord): number {
  const v = Number(token.info['timeShift'] ?? 0);
  return Number.isSafeInteger(v) ? v : 0;
}

/** Default drift tolerance as eduMFA's `timeWindow`: 180 seconds each side (6 steps of 30 s, 3 of 60 s). */
export const TOTP_DEFAULT_WINDOW_SECONDS = 180;

const TOTP_ACTIONS: readonly ActionDef[] = [
  {
    name: 'totp_hashlib',
    scope: 'enrollment',
    type: 'enum',
    values: ['sha1', 'sha256', 'sha512'],
    default: 'sha1',
    description: 'Hash algorithm of new TOTP tokens when the request does not give hashlib.',
  },
  {
    name: 'totp_otplen',
    scope: 'enrollment',
    type: 'enum',
    values: ['6', '8'],
    default: '6',
    description: 'OTP length (6 or 8) of new TOTP tokens when the request does not give otplen.',
  },
  {
    name: 'totp_timestep',
    scope: 'enrollment',
    type: 'enum',
    values: ['30', '60'],
    default: '30',
    description: 'Time step in seconds (30 or 60) of new TOTP tokens when the request does not give timeStep.',
  },
  {
    name: 'totp_window',
    scope: 'authentication',
    type: 'int',
    min: 0,
    max: 60,
    description:
      'Clock drift tolerance: how many time steps before and after now a TOTP value may match (default: 180 s worth, as eduMFA).',
  },
];

export const totp: TokenType = {
  type: 'totp',
  title: 'TOTP Token',
  serialPrefix: 'TOTP',
  clientMode: 'interactive',
  splitsPass: true,
  canChallenge: true,
  outOfBand: false,
  checkOrder: 20,
  policyActions: TOTP_ACTIONS,

  async enrollBegin(input, ctx) {
    const hash = resolveHash(input, ctx, 'totp');
    const digits = resolveDigits(input, ctx, 'totp');
    const timeStep = resolveTimeStep(input, ctx);
    const key = resolveEnrollKey(input, hash);
    return otpEnrollResult({ kind: 'totp', key, hash, digits, timeStep, ...resolveLabel(input, ctx) });
  },

  async check(token, { otp }, ctx): Promise<Verdict> {
    const p = otpParamsOf(token);
    const stepSeconds = Number(token.info['timeStep'] ?? '30');
    if (p === null || !Number.isSafeInteger(stepSeconds) || stepSeconds <= 0) return { kind: 'invalid' };
    // count_window (POST /token/set) is the number of steps either side of now; it wins over the policy.
    const window = token.countWindow ?? intAction(ctx, 'totp_window', Math.ceil(TOTP_DEFAULT_WINDOW_SECONDS / stepSeconds), 0);
    const now = ctx.clock.now() + timeShiftSeconds(token) * 1000;
    const step = findTotp(p.key, otp, now, stepSeconds, window, p.digits, p.hash, token.counter);
    return step === null ? { kind: 'invalid' } : { kind: 'valid', counter: step };
  },

  /**
   * otp1 at a step within `syncWindow` steps either side of the token's time (never below its replay floor), otp2
   * at the next step. The token's clock offset becomes (otp2's step − the current step) × step length: from now
   * on checks look around the token's own time.
   */
  resync(token, otp1, otp2, syncWindow, ctx) {
    const p = otpParamsOf(token);
    const stepSeconds = Number(token.info['timeStep'] ?? '30');
    if (p === null || !Number.isSafeInteger(stepSeconds) || stepSeconds <= 0) return null;
    if (!isOtpFormat(otp1, p.digits) || !isOtpFormat(otp2, p.digits)) return null;
    const realStep = totpStep(ctx.clock.now(), stepSeconds);
    const centre = totpStep(ctx.clock.now() + timeShiftSeconds(token) * 1000, stepSeconds);
    const from = Math.max(0, centre - syncWindow, token.counter);
    for (let s = from; s <= centre + syncWindow; s++) {
      if (otpEquals(hotpValue(p.key, s, p.digits, p.hash), otp1) && otpEquals(hotpValue(p.key, s + 1, p.digits, p.hash), otp2)) {
        return { counter: s + 2, info: { timeShift: String((s + 1 - realStep) * stepSeconds) } };
      }
    }
    return null;
  },
};
