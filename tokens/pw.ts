/**
 * Password token (eduMFA's `pw`): the pass is `<PIN><password>`; the password is the token's secret and its
 * length is the token's OTP length. `POST /token/lost/<serial>` issues one as the temporary replacement of a lost
 * token (old PIN + a generated password, valid for a few days); `POST /token/init type=pw otpkey=<password>`
 * enrolls one directly. The policy actions here shape the generated password and the replacement's validity.
 */
import { randomInt } from 'node:crypto';
import type { ActionDef } from '../policies/types.ts';
import { ConfigAdminError, missingParameter, ParameterError } from '../core/errors.ts';
import { otpEquals } from './otp.ts';
import type { TokenType, Verdict } from './types.ts';

export const LOST_PW_LENGTH = 16;
export const LOST_PW_CONTENTS = '8';
export const LOST_VALID_DAYS = 10;
/** The longest password a pw token takes (it is compared as the OTP part of the pass). */
export const PW_MAX_LENGTH = 64;

const PW_ACTIONS: readonly ActionDef[] = [
  {
    name: 'losttoken_PW_length',
    scope: 'enrollment',
    type: 'int',
    min: 1,
    max: 31,
    default: LOST_PW_LENGTH,
    description: 'Length of the password of the temporary replacement for a lost token (POST /token/lost).',
  },
  {
    name: 'losttoken_PW_contents',
    scope: 'enrollment',
    type: 'string',
    default: LOST_PW_CONTENTS,
    description: 'Characters of that password: c lower-case, C upper-case, n digits, s specials, 8 base58 (several letters combine).',
  },
  {
    name: 'losttoken_valid',
    scope: 'enrollment',
    type: 'int',
    min: 1,
    max: 60,
    default: LOST_VALID_DAYS,
    description: 'Days the temporary replacement for a lost token is valid.',
  },
];

const ALPHABETS: Readonly<Record<string, string>> = {
  c: 'abcdefghijklmnopqrstuvwxyz',
  C: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
  n: '0123456789',
  s: '!#$%&()*+,-./:;<=>?@[]^_',
  8: '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz',
};

/** The alphabet of a `losttoken_PW_contents` value; ParameterError for an unknown letter or an empty value. */
export function passwordAlphabet(contents: string): string {
  const chars = new Set<string>();
  for (const letter of contents) {
    const a = ALPHABETS[letter];
    if (a === undefined) throw new ConfigAdminError(`Invalid losttoken_PW_contents '${contents}': use the letters c, C, n, s, 8.`);
    for (const ch of a) chars.add(ch);
  }
  if (!chars.size) throw new ConfigAdminError('Invalid losttoken_PW_contents: empty.');
  return [...chars].join('');
}

/** A random password of `length` characters from the `contents` letters (uniform, crypto.randomInt). */
export function generatePassword(length: number, contents: string): string {
  const alphabet = passwordAlphabet(contents);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

export const pw: TokenType = {
  type: 'pw',
  title: 'Password Token',
  serialPrefix: 'PW',
  clientMode: 'interactive',
  splitsPass: true,
  canChallenge: false,
  outOfBand: false,
  checkOrder: 5,
  policyActions: PW_ACTIONS,

  async enrollBegin(input) {
    const password = input.params['otpkey'];
    if (password === undefined || password === '') throw missingParameter('otpkey');
    if (password.length > PW_MAX_LENGTH) throw new ParameterError(`Invalid otpkey: longer than ${PW_MAX_LENGTH} characters.`);
    return {
      fields: { otpLen: password.length, counter: 0, rolloutState: '', active: true, info: {}, secrets: { password } },
      details: {},
    };
  },

  async check(token, { otp }): Promise<Verdict> {
    const password = token.secrets['password'];
    return password !== undefined && password !== '' && otpEquals(password, otp) ? { kind: 'valid' } : { kind: 'invalid' };
  },
};
