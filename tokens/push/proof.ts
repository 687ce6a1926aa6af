/**
 * What a push login may ask the user to prove besides tapping "approve" (issue 11). Decided once per transaction by
 * server/auth/challenges.ts and handed to createPushChallenge:
 * - `match` (policy `push_matching`, both push types, no app change): a short code or a word pair shown in the
 *   login's challenge message AND in the question on the phone; the user approves only when they are the same.
 * - `login_code` (policy `push_code_to_login`, both types, no app change; PushAuth's "secure push code"): a one-time
 *   code travels only to the phone (in the question); the login becomes interactive and the user types it there.
 *   The phone's "approve" changes nothing; its "decline" declines.
 * - `presence` (policy `push_require_presence`, legacy `push` only: the privacyIDEA Authenticator ≥ 4.4): the push
 *   carries several choices (`require_presence`, signed, `version: "2"`); the login names the right one; the app
 *   signs the chosen one (`presence_answer`). A wrong choice declines the login. Wire facts: docs/push_presence.md.
 */
import crypto from 'node:crypto';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import type { ChallengeRecord, PushProof } from '../types.ts';

/** Keys of a challenge row's `data` that hold its proof. */
export const PROOF_KEYS = {
  kind: 'proof',
  code: 'proof_code',
  presenceOptions: 'presence_options',
  presenceAnswer: 'presence_answer',
} as const;

export type MatchingFormat = 'words' | 'digits';
export type PresenceOptionSet = 'ALPHABETIC' | 'NUMERIC' | 'CUSTOM';

export const LOGIN_CODE_DIGITS = 6;
const MATCH_DIGITS = 4;

/**
 * A matching code: two different words of the BIP-39 English list (2,048 words chosen to be told apart by their first
 * four letters: 22 bits — Owlauth's pass phrase), or four digits.
 */
export function matchingCode(format: MatchingFormat): string {
  if (format === 'digits') return randomDigits(MATCH_DIGITS);
  const first = crypto.randomInt(wordlist.length);
  let second = crypto.randomInt(wordlist.length - 1);
  if (second >= first) second++;
  return `${wordlist[first]} ${wordlist[second]}`;
}

/** A one-time login code: LOGIN_CODE_DIGITS decimal digits. */
export function loginCode(): string {
  return randomDigits(LOGIN_CODE_DIGITS);
}

function randomDigits(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String(crypto.randomInt(10));
  return s;
}

/** privacyIDEA's option sets: A–Z, 00–99, or the custom `:`-separated list. */
function optionPool(set: PresenceOptionSet, custom: string | undefined): string[] {
  if (set === 'NUMERIC') return Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
  if (set === 'CUSTOM') {
    // The push data joins the options with ',' and the app splits them there: an option holding ',' cannot travel.
    const own = [...new Set((custom ?? '').split(':').map((o) => o.trim()))].filter((o) => o !== '' && !o.includes(','));
    if (own.length >= 2) return own;
  }
  return Array.from({ length: 26 }, (_, i) => String.fromCharCode(65 + i));
}

/** `count` different options of the set (fewer when the set is smaller), and the right one among them. */
export function presenceChoice(set: PresenceOptionSet, custom: string | undefined, count: number): { options: string[]; answer: string } {
  const pool = optionPool(set, custom);
  const options: string[] = [];
  const n = Math.min(count, pool.length);
  while (options.length < n) options.push(...pool.splice(crypto.randomInt(pool.length), 1));
  return { options, answer: options[crypto.randomInt(options.length)]! };
}

/** The proof stored with a challenge, as challenge data. */
export function proofData(proof: PushProof): Record<string, string> {
  switch (proof.kind) {
    case 'match':
    case 'login_code':
      return { [PROOF_KEYS.kind]: proof.kind, [PROOF_KEYS.code]: proof.code };
    case 'presence':
      return {
        [PROOF_KEYS.kind]: proof.kind,
        [PROOF_KEYS.presenceOptions]: proof.options.join(','),
        [PROOF_KEYS.presenceAnswer]: proof.answer,
      };
  }
}

/** The proof of a stored challenge (none for a plain push). */
export function proofOf(challenge: Pick<ChallengeRecord, 'data'>): PushProof | null {
  const d = challenge.data;
  const kind = d[PROOF_KEYS.kind];
  if ((kind === 'match' || kind === 'login_code') && d[PROOF_KEYS.code]) return { kind, code: d[PROOF_KEYS.code] };
  if (kind === 'presence' && d[PROOF_KEYS.presenceOptions] && d[PROOF_KEYS.presenceAnswer])
    return { kind, options: d[PROOF_KEYS.presenceOptions].split(','), answer: d[PROOF_KEYS.presenceAnswer] };
  return null;
}

/** A typed login code against the stored one, in constant time (digests of equal length). */
export function loginCodeMatches(expected: string, typed: string): boolean {
  const a = crypto.createHash('sha256').update(expected, 'utf8').digest();
  const b = crypto.createHash('sha256').update(typed.trim(), 'utf8').digest();
  return crypto.timingSafeEqual(a, b);
}

/** The texts each proof adds: to the login's challenge message and to the question on the phone. */
export const PROOF_TEXTS = {
  matchLogin: (code: string) => `Check that the push on your phone shows: ${code}`,
  matchPhone: (code: string) => `Approve only if your login page shows: ${code}`,
  loginCodeMessage: 'Please enter the code shown on your mobile device.',
  loginCodePhone: (code: string) => `Your login code: ${code}. Enter it on the login page.`,
  presenceLogin: (answer: string) => `Choose ${answer} on your phone.`,
} as const;
