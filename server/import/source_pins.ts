/**
 * What a source token's `pin_hash` column holds, and whether pushgate can check it (its PIN hasher verifies any
 * argon2 PHC string). eduMFA and privacyIDEA write, depending on version and configuration:
 *
 * - `''` (or NULL): no PIN — the empty PIN matches;
 * - an argon2 PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$hash` (passlib's `argon2`, the default since
 *   privacyIDEA 3.4.1/3.5 and in every eduMFA, `rounds` i.e. t=9): compatible, imported as it is;
 * - `$pbkdf2-sha512$rounds$salt$checksum` (passlib's `pbkdf2_sha512`, the second scheme of the default
 *   `PI_HASH_ALGO_LIST` / `EDUMFA_HASH_ALGO_LIST` (configurable since privacyIDEA 3.7), or the first when an
 *   installation put it first): not checkable by pushgate, not imported;
 * - `@@` + `ivhex:ciphertexthex`: the PIN encrypted with the token key (`encryptpin`): decrypted and hashed anew;
 * - 64 hex digits: the SHA-256 of PIN and `pin_seed` (privacyIDEA before 3.4.1, LinOTP): not imported;
 * - anything else (another passlib scheme named in `*_HASH_ALGO_LIST`): not imported.
 */
import { decryptColonValue, type SourceKeys } from './edumfa_crypto.ts';

export type SourcePin =
  | { readonly kind: 'none' }
  | { readonly kind: 'hash'; readonly hash: string }
  | { readonly kind: 'plain'; readonly pin: string }
  | { readonly kind: 'unsupported'; readonly reason: string };

/** Bounds on imported argon2 parameters: a hostile or odd row must not make every PIN check cost a gigabyte. */
export const ARGON2_IMPORT_LIMITS = { memoryKib: 262_144, timeCost: 32, parallelism: 16 } as const;

/** `$argon2<type>$[v=19$]<params>$<salt>$<hash>`; the params m, t, p in any order (passlib: m,t,p; node-argon2: m,p,t). */
const ARGON2 = /^\$argon2(?:id|i|d)\$(?:v=\d+\$)?([a-z]=\d+(?:,[a-z]=\d+)*)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;

export function classifyPin(pinHash: string | null, keys: SourceKeys, maxLength: number): SourcePin {
  const v = (pinHash ?? '').trim();
  if (v === '') return { kind: 'none' };
  if (v.startsWith('@@')) {
    try {
      // Strict UTF-8 without control characters: a wrong key file almost never yields that by chance.
      const pin = new TextDecoder('utf-8', { fatal: true }).decode(decryptColonValue(keys.token, v.slice(2)));
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused here
      if (/[\u0000-\u001f\u007f]/.test(pin)) throw new Error('the decrypted PIN holds control characters');
      return { kind: 'plain', pin };
    } catch (err) {
      return { kind: 'unsupported', reason: `the encrypted PIN does not decrypt with the token key (${(err as Error).message})` };
    }
  }
  const a = ARGON2.exec(v);
  if (a) {
    const params = new Map(a[1]!.split(',').map((kv) => [kv[0]!, Number(kv.slice(2))] as const));
    const [m, t, p] = [params.get('m') ?? NaN, params.get('t') ?? NaN, params.get('p') ?? NaN];
    const l = ARGON2_IMPORT_LIMITS;
    if (!(m >= 8 && m <= l.memoryKib && t >= 1 && t <= l.timeCost && p >= 1 && p <= l.parallelism))
      return { kind: 'unsupported', reason: `argon2 PIN hash with parameters m=${m},t=${t},p=${p} outside the accepted bounds` };
    if (v.length > maxLength) return { kind: 'unsupported', reason: `argon2 PIN hash longer than ${maxLength} characters` };
    return { kind: 'hash', hash: v };
  }
  if (v.startsWith('$pbkdf2-sha512$'))
    return { kind: 'unsupported', reason: 'PIN hash is pbkdf2_sha512 (passlib), which pushgate cannot check' };
  if (/^[0-9a-fA-F]{64}$/.test(v))
    return { kind: 'unsupported', reason: 'PIN hash is the old seeded SHA-256 (pin_seed), which pushgate cannot check' };
  const scheme = /^\$([a-z0-9-]+)\$/.exec(v)?.[1];
  return { kind: 'unsupported', reason: `PIN hash of an unknown scheme${scheme ? ` (${scheme})` : ''}` };
}
