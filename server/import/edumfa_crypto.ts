/**
 * Reading what eduMFA and privacyIDEA (the same scheme in both, inherited from LinOTP) encrypt at rest, with the
 * key file named by `EDUMFA_ENCFILE` / `PI_ENCFILE`:
 *
 * - The key file holds three AES-256 keys of 32 bytes each, in this order: token (OTP seeds in `token.key_enc`,
 *   encrypted PINs `@@…` in `token.pin_hash`), config (tokeninfo values of Type `password`, e.g. a push token's
 *   `private_key_server`), value. A file longer than 100 bytes is itself encrypted with a password
 *   (`ivhex:ciphertexthex`, AES-256-CBC with the SHA-256 of the password, the plain text being the hex of the
 *   96 bytes followed by 0x01 0x02 and zero padding).
 * - Values are AES-256-CBC with a random 16-byte IV and PKCS#7 padding; older rows (LinOTP) instead hold the hex of
 *   the value followed by 0x01 0x02 and zero padding — tried when PKCS#7 does not fit.
 * - `token.key_enc` is the hex of the cipher text, its IV the hex in `token.key_iv`, and the plain text is the seed
 *   as hex digits. PINs and tokeninfo passwords are `ivhex:ciphertexthex` in one column.
 */
import crypto from 'node:crypto';

export interface SourceKeys {
  readonly token: Buffer;
  readonly config: Buffer;
  readonly value: Buffer | null;
}

export class SourceKeyError extends Error {}

const HEX = /^[0-9a-fA-F]*$/;

function aesCbcDecryptRaw(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  if (iv.length !== 16) throw new Error(`IV must be 16 bytes, got ${iv.length}`);
  if (data.length === 0 || data.length % 16 !== 0) throw new Error('cipher text is not a whole number of AES blocks');
  const d = crypto.createDecipheriv(key.length === 32 ? 'aes-256-cbc' : 'aes-128-cbc', key, iv);
  d.setAutoPadding(false);
  return Buffer.concat([d.update(data), d.final()]);
}

/** The older padding: hex of the value, 0x01 0x02, zeros. Null when the block does not look like that. */
function legacyUnpad(plain: Buffer): Buffer | null {
  const end = plain.lastIndexOf(Buffer.from([0x01, 0x02]));
  const hex = (end >= 0 ? plain.subarray(0, end) : plain).toString('latin1');
  if (hex.length % 2 !== 0 || !HEX.test(hex)) return null;
  return Buffer.from(hex, 'hex');
}

function pkcs7Unpad(plain: Buffer): Buffer | null {
  const n = plain[plain.length - 1] ?? 0;
  if (n < 1 || n > 16 || n > plain.length) return null;
  for (let i = plain.length - n; i < plain.length; i++) if (plain[i] !== n) return null;
  return plain.subarray(0, plain.length - n);
}

function hexBytes(what: string, hex: string): Buffer {
  const s = hex.trim();
  if (s.length % 2 !== 0 || !HEX.test(s)) throw new Error(`${what} is not hex`);
  return Buffer.from(s, 'hex');
}

/** Decrypts one value: PKCS#7 first, then the older hex padding (as the source does). */
export function decryptValue(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const plain = aesCbcDecryptRaw(key, iv, data);
  const unpadded = pkcs7Unpad(plain) ?? legacyUnpad(plain);
  if (unpadded === null) throw new Error('the value does not decrypt with this key (bad padding)');
  return unpadded;
}

/** A `ivhex:ciphertexthex` column (encrypted PIN without its `@@`, tokeninfo password). */
export function decryptColonValue(key: Buffer, sealed: string): Buffer {
  const i = sealed.indexOf(':');
  if (i < 0) throw new Error('not an encrypted value (no ":" between IV and cipher text)');
  return decryptValue(key, hexBytes('IV', sealed.slice(0, i)), hexBytes('cipher text', sealed.slice(i + 1)));
}

/**
 * The OTP seed of a token row (`key_enc`, `key_iv`), as bytes. The decrypted text is the seed in hex; a value that
 * is not hex (a `pw` token's password, a non-OATH type) is returned as the raw decrypted bytes with `hex: false`.
 */
export function decryptTokenKey(keys: SourceKeys, keyEnc: string, keyIv: string): { bytes: Buffer; hex: boolean } {
  const plain = decryptValue(keys.token, hexBytes('key_iv', keyIv), hexBytes('key_enc', keyEnc));
  const text = plain.toString('latin1');
  if (text.length > 0 && text.length % 2 === 0 && HEX.test(text)) return { bytes: Buffer.from(text, 'hex'), hex: true };
  return { bytes: plain, hex: false };
}

/**
 * Reads the key file. `password` is needed for an encrypted file (longer than 100 bytes). Only the token and config
 * keys are required (the config key encrypts the push tokens' server keys); a file shorter than 64 bytes is refused.
 */
export function parseEncKey(file: Buffer, password?: string): SourceKeys {
  let raw = file;
  if (file.length > 100) {
    if (password === undefined || password === '')
      throw new SourceKeyError('the key file is encrypted (longer than 100 bytes): give its password (--enckey-password-file)');
    const text = file.toString('latin1').trim();
    const [ivHex, ctHex] = text.split(':');
    if (ivHex === undefined || ctHex === undefined || !HEX.test(ivHex) || !HEX.test(ctHex))
      throw new SourceKeyError('the encrypted key file is not "ivhex:ciphertexthex"');
    const key = crypto.createHash('sha256').update(password, 'utf8').digest();
    let plain: Buffer;
    try {
      plain = aesCbcDecryptRaw(key, Buffer.from(ivHex, 'hex'), Buffer.from(ctHex, 'hex'));
    } catch (err) {
      throw new SourceKeyError(`cannot decrypt the key file: ${(err as Error).message}`);
    }
    const keys = legacyUnpad(plain);
    if (keys === null) throw new SourceKeyError('cannot decrypt the key file: wrong password?');
    raw = keys;
  }
  if (raw.length < 64) throw new SourceKeyError(`the key file holds ${raw.length} bytes; expected 96 (three 32-byte keys)`);
  return {
    token: Buffer.from(raw.subarray(0, 32)),
    config: Buffer.from(raw.subarray(32, 64)),
    value: raw.length >= 96 ? Buffer.from(raw.subarray(64, 96)) : null,
  };
}
