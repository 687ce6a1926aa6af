/**
 * RFC 4648 base32 (the standard alphabet `A–Z2–7`). Used for TOTP/HOTP secrets in otpauth URLs, push nonces and
 * push signatures.
 */
import { ParameterError } from '../core/errors.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const LOOKUP: ReadonlyMap<string, number> = new Map([...ALPHABET].map((c, i) => [c, i]));

export interface Base32EncodeOptions {
  /** Append `=` padding to a multiple of 8 characters (RFC 4648 §6). Default true. */
  readonly padding?: boolean;
}

/** Encodes bytes as upper-case base32, `=`-padded unless `padding: false`. */
export function base32Encode(data: Uint8Array, opts: Base32EncodeOptions = {}): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of data) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >>> bits) & 31];
    }
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  if (opts.padding ?? true) {
    while (out.length % 8 !== 0) out += '=';
  }
  return out;
}

/**
 * Decodes base32: case-insensitive, spaces ignored, trailing `=` padding optional.
 * Throws a ParameterError on characters outside the alphabet, `=` before the end, or an impossible length.
 */
export function base32Decode(text: string): Buffer {
  const compact = text.replace(/\s+/g, '').toUpperCase();
  const body = compact.replace(/=+$/, '');
  // Possible numbers of leftover characters in the last 8-character group: 0, 2, 4, 5, 7.
  const rest = body.length % 8;
  if (rest === 1 || rest === 3 || rest === 6) {
    throw new ParameterError('Invalid base32 value: wrong length.');
  }
  const out = Buffer.alloc(Math.floor((body.length * 5) / 8));
  let buffer = 0;
  let bits = 0;
  let index = 0;
  for (const char of body) {
    const value = LOOKUP.get(char);
    if (value === undefined) {
      throw new ParameterError(`Invalid base32 value: unexpected character '${char}'.`);
    }
    buffer = ((buffer << 5) | value) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[index++] = (buffer >>> bits) & 0xff;
    }
  }
  return out;
}
