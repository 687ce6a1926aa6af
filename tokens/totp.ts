/**
 * TOTP (RFC 6238): time-based OTP. Time comes from ctx.clock; the record's `counter` is the next time step that may
 * be accepted, so a value is never accepted twice (nor an older one after a newer one).
 */
import type { ActionDef } from '../policies/types.ts';
import {
  findTotp, intAction, otpEnrollResult, otpParamsOf, resolveDigits, resolveEnrollKey, resolveHash, resolveLabel,
  resolveTimeStep,
} from './otp.ts';
import type { TokenType, Verdict } from './types.ts';

/** Default drift tolerance as eduMFA's `timeWindow`: 180 seconds each side (6 steps of 30 s, 3 of 60 s). */
export const TOTP_DEFAULT_WINDOW_SECONDS = 180;

const TOTP_ACTIONS: readonly ActionDef[] = [
  {
    name: 'totp_hashlib', scope: 'enrollment', type: 'enum', values: ['sha1', 'sha256', 'sha512'], default: 'sha1',
    description: 'Hash algorithm of new TOTP tokens when the request does not give hashlib.',
  },
  {
    name: 'totp_otplen', scope: 'enrollment', type: 'enum', values: ['6', '8'], default: '6',
    description: 'OTP length (6 or 8) of new TOTP tokens when the request does not give otplen.',
  },
  {
    name: 'totp_timestep', scope: 'enrollment', type: 'enum', values: ['30', '60'], default: '30',
    description: 'Time step in seconds (30 or 60) of new TOTP tokens when the request does not give timeStep.',
  },
  {
    name: 'totp_window', scope: 'authentication', type: 'int', min: 0, max: 60,
    description: 'Clock drift tolerance: how many time steps before and after now a TOTP value may match (default: 180 s worth, as eduMFA).',
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
    const window = intAction(ctx, 'totp_window', Math.ceil(TOTP_DEFAULT_WINDOW_SECONDS / stepSeconds), 0);
    const step = findTotp(p.key, otp, ctx.clock.now(), stepSeconds, window, p.digits, p.hash, token.counter);
    return step === null ? { kind: 'invalid' } : { kind: 'valid', counter: step };
  },
};
