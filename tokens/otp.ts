/**
 * OTP core (RFC 4226 HOTP, RFC 6238 TOTP) and the enrollment logic HOTP and TOTP share: key parsing, hash/length
 * options, label/issuer expansion and the otpauth / seed / oathtoken details with their QR images.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ActionValue } from '../policies/types.ts';
import { ConfigAdminError, ParameterError, missingParameter } from '../core/errors.ts';
import { base32Decode, base32Encode } from './base32.ts';
import { qrDataUri } from './qr.ts';
import type { EnrollBeginResult, EnrollInput, TokenContext, TokenRecord } from './types.ts';

export type OtpHash = 'sha1' | 'sha256' | 'sha512';
export type OtpDigits = 6 | 8;

export const OTP_HASHES: readonly OtpHash[] = ['sha1', 'sha256', 'sha512'];
export const OTP_DIGITS: readonly OtpDigits[] = [6, 8];

// ---------------------------------------------------------------------------------------------------------------
// Algorithms

/** RFC 4226 HOTP value for `counter`: HMAC, dynamic truncation, modulo 10^digits, zero-padded. */
export function hotpValue(keyBytes: Buffer, counter: number, digits: OtpDigits, hash: OtpHash): string {
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`Invalid HOTP counter: ${counter}`);
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(hash, keyBytes).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** True when `otp` is exactly `digits` ASCII digits. */
export function isOtpFormat(otp: string, digits: number): boolean {
  return otp.length === digits && /^[0-9]+$/.test(otp);
}

/** Constant-time comparison of two OTP strings (false for different lengths). */
export function otpEquals(expected: string, given: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(given, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The counter in `[fromCounter, fromCounter + window)` whose HOTP value is `otp`, or null. */
export function findHotp(key: Buffer, otp: string, fromCounter: number, window: number, digits: OtpDigits, hash: OtpHash): number | null {
  if (!isOtpFormat(otp, digits)) return null;
  const from = Math.max(0, Math.floor(fromCounter));
  for (let counter = from; counter < from + window; counter++) {
    if (otpEquals(hotpValue(key, counter, digits, hash), otp)) return counter;
  }
  return null;
}

/** The RFC 6238 time step of `nowMs` (epoch ms) for a step length in seconds. */
export function totpStep(nowMs: number, stepSeconds: number): number {
  return Math.floor(nowMs / (stepSeconds * 1000));
}

/**
 * The time step within `window` steps either side of now whose value is `otp`, or null. Steps below `minStep`
 * (the token's replay floor: the next step that may be accepted) are never tried. The lowest matching step wins.
 */
export function findTotp(
  key: Buffer,
  otp: string,
  nowMs: number,
  stepSeconds: number,
  window: number,
  digits: OtpDigits,
  hash: OtpHash,
  minStep: number,
): number | null {
  if (!isOtpFormat(otp, digits)) return null;
  const current = totpStep(nowMs, stepSeconds);
  const from = Math.max(0, current - window, Math.ceil(minStep));
  for (let step = from; step <= current + window; step++) {
    if (otpEquals(hotpValue(key, step, digits, hash), otp)) return step;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Token records

/** Parses a stored hex key; null when absent or malformed. */
export function keyFromHex(hex: string | undefined): Buffer | null {
  if (hex === undefined || hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) return null;
  return Buffer.from(hex, 'hex');
}

/** The token's key, hash and digits, or null when the record is unusable (then the check is simply invalid). */
export function otpParamsOf(token: TokenRecord): { key: Buffer; hash: OtpHash; digits: OtpDigits } | null {
  const key = keyFromHex(token.secrets['otpKey']);
  const hash = (token.info['hashlib'] ?? 'sha1').toLowerCase();
  const digits = token.otpLen;
  if (key === null || !isHash(hash) || !isDigits(digits)) return null;
  return { key, hash, digits };
}

/** An integer policy value (number or numeric string) at least `min`, else `fallback`. */
export function intAction(ctx: TokenContext, name: string, fallback: number, min: number): number {
  const raw = ctx.action<ActionValue>(name);
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  return Number.isSafeInteger(value) && value >= min ? value : fallback;
}

// ---------------------------------------------------------------------------------------------------------------
// Enrollment

const isHash = (s: string): s is OtpHash => (OTP_HASHES as readonly string[]).includes(s);
const isDigits = (n: number): n is OtpDigits => (OTP_DIGITS as readonly number[]).includes(n);

/** eduMFA's is_true for request parameters. */
export function isTrueParam(value: string | undefined): boolean {
  return value !== undefined && ['1', 'true'].includes(value.trim().toLowerCase());
}

/** Reads a policy value as a string (numbers and strings accepted); undefined when unset. */
function policyString(ctx: TokenContext, name: string): string | undefined {
  const raw = ctx.action<ActionValue>(name);
  if (raw === undefined) return undefined;
  if (typeof raw === 'string' || typeof raw === 'number') return String(raw).trim();
  throw new ConfigAdminError(`Invalid value for policy action ${name}.`);
}

/** Request parameter, else policy `<type>_hashlib`, else sha1. */
export function resolveHash(input: EnrollInput, ctx: TokenContext, type: string): OtpHash {
  const param = input.params['hashlib'];
  if (param !== undefined && param !== '') {
    const value = param.trim().toLowerCase();
    if (!isHash(value)) throw new ParameterError(`Invalid hashlib '${param}'. Allowed values: ${OTP_HASHES.join(', ')}.`);
    return value;
  }
  const policy = policyString(ctx, `${type}_hashlib`)?.toLowerCase();
  if (policy === undefined || policy === '') return 'sha1';
  if (!isHash(policy)) throw new ConfigAdminError(`Invalid value for policy action ${type}_hashlib: '${policy}'.`);
  return policy;
}

/** Request parameter `otplen`, else policy `<type>_otplen`, else 6. */
export function resolveDigits(input: EnrollInput, ctx: TokenContext, type: string): OtpDigits {
  const param = input.params['otplen'];
  if (param !== undefined && param !== '') {
    const value = /^\d+$/.test(param.trim()) ? Number(param) : NaN;
    if (!isDigits(value)) throw new ParameterError(`Invalid otplen '${param}'. Allowed values: 6, 8.`);
    return value;
  }
  const policy = policyString(ctx, `${type}_otplen`);
  if (policy === undefined || policy === '') return 6;
  const value = Number(policy);
  if (!isDigits(value)) throw new ConfigAdminError(`Invalid value for policy action ${type}_otplen: '${policy}'.`);
  return value;
}

/** Request parameter `timeStep`, else policy `totp_timestep`, else 30. */
export function resolveTimeStep(input: EnrollInput, ctx: TokenContext): 30 | 60 {
  const param = input.params['timeStep'];
  const check = (v: string): 30 | 60 | null => (v === '30' ? 30 : v === '60' ? 60 : null);
  if (param !== undefined && param !== '') {
    const value = check(param.trim());
    if (value === null) throw new ParameterError(`Invalid timeStep '${param}'. Allowed values: 30, 60.`);
    return value;
  }
  const policy = policyString(ctx, 'totp_timestep');
  if (policy === undefined || policy === '') return 30;
  const value = check(policy);
  if (value === null) throw new ConfigAdminError(`Invalid value for policy action totp_timestep: '${policy}'.`);
  return value;
}

/** Key sizes for generated keys: the hash's output length. */
export const KEY_SIZE: Readonly<Record<OtpHash, number>> = { sha1: 20, sha256: 32, sha512: 64 };
const MAX_KEY_BYTES = 256;

/** `genkey=1` → random key of the hash's size; else `otpkey` (hex, or base32 with `otpkey_format=base32`). */
export function resolveEnrollKey(input: EnrollInput, hash: OtpHash): Buffer {
  const genkey = isTrueParam(input.params['genkey']);
  const otpkey = input.params['otpkey'];
  const hasKey = otpkey !== undefined && otpkey !== '';
  if (genkey && hasKey) throw new ParameterError('You may either specify genkey or otpkey, but not both!');
  if (genkey) return randomBytes(KEY_SIZE[hash]);
  if (!hasKey) throw missingParameter('otpkey');
  const format = (input.params['otpkey_format'] ?? 'hex').trim().toLowerCase() || 'hex';
  let key: Buffer;
  if (format === 'hex') {
    const hex = otpkey.replace(/\s+/g, '');
    const parsed = keyFromHex(hex);
    if (parsed === null) throw new ParameterError('Invalid otpkey: expected an even number of hexadecimal characters.');
    key = parsed;
  } else if (format === 'base32') {
    key = base32Decode(otpkey);
  } else {
    throw new ParameterError(`Invalid otpkey_format '${input.params['otpkey_format']}'. Allowed values: hex, base32.`);
  }
  if (key.length === 0) throw new ParameterError('Invalid otpkey: the key is empty.');
  if (key.length > MAX_KEY_BYTES) throw new ParameterError(`Invalid otpkey: longer than ${MAX_KEY_BYTES} bytes.`);
  return key;
}

/**
 * Replaces label tags: `<s>`/`{serial}`, `<u>`/`{user}`, `<r>`/`{realm}`; `{givenname}`/`{surname}` become empty
 * (no resolver attributes here). Without a user, user and realm are empty.
 */
export function fillLabelTags(template: string, input: Pick<EnrollInput, 'serial' | 'user'>): string {
  const user = input.user?.name ?? '';
  const realm = input.user?.realm ?? '';
  return template
    .replaceAll('<s>', input.serial)
    .replaceAll('{serial}', input.serial)
    .replaceAll('<u>', user)
    .replaceAll('{user}', user)
    .replaceAll('<r>', realm)
    .replaceAll('{realm}', realm)
    .replaceAll('{givenname}', '')
    .replaceAll('{surname}', '');
}

export const DEFAULT_TOKEN_LABEL = '<s>';
export const DEFAULT_TOKEN_ISSUER = 'pushgate';

/** Label and issuer from the `tokenlabel` / `tokenissuer` policies (defaults `<s>` and `pushgate`), tags filled. */
export function resolveLabel(input: EnrollInput, ctx: TokenContext): { label: string; issuer: string } {
  const labelTemplate = ctx.action<string>('tokenlabel');
  const issuerTemplate = ctx.action<string>('tokenissuer');
  return {
    label: fillLabelTags(typeof labelTemplate === 'string' && labelTemplate !== '' ? labelTemplate : DEFAULT_TOKEN_LABEL, input),
    issuer: fillLabelTags(typeof issuerTemplate === 'string' ? issuerTemplate : DEFAULT_TOKEN_ISSUER, input),
  };
}

export interface OtpEnrollOptions {
  readonly kind: 'hotp' | 'totp';
  readonly key: Buffer;
  readonly hash: OtpHash;
  readonly digits: OtpDigits;
  /** TOTP only. */
  readonly timeStep?: number;
  readonly label: string;
  readonly issuer: string;
}

/** The otpauth:// URL (Key URI format): `<issuer>:<label>` path, secret without padding, then the options. */
export function otpauthUrl(o: OtpEnrollOptions): string {
  const path = encodeURIComponent(o.issuer === '' ? o.label : `${o.issuer}:${o.label}`);
  const query = [`secret=${base32Encode(o.key, { padding: false })}`];
  if (o.kind === 'hotp') query.push('counter=0');
  else query.push(`period=${o.timeStep ?? 30}`);
  query.push(`digits=${o.digits}`, `algorithm=${o.hash.toUpperCase()}`);
  if (o.issuer !== '') query.push(`issuer=${encodeURIComponent(o.issuer)}`);
  return `otpauth://${o.kind}/${path}?${query.join('&')}`;
}

/** The `oathtoken:///addToken` URL (HOTP only). */
export function oathtokenUrl(label: string, key: Buffer): string {
  return `oathtoken:///addToken?name=${encodeURIComponent(label)}&lockdown=true&key=${key.toString('hex')}`;
}

/** The full enrollBegin result for HOTP/TOTP. */
export async function otpEnrollResult(o: OtpEnrollOptions): Promise<EnrollBeginResult> {
  const hex = o.key.toString('hex');
  const googleUrl = otpauthUrl(o);
  const seed = `seed://${hex}`;
  const oathUrl = o.kind === 'hotp' ? oathtokenUrl(o.label, o.key) : undefined;
  const [googleImg, seedImg, oathImg] = await Promise.all([
    qrDataUri(googleUrl),
    qrDataUri(seed),
    oathUrl === undefined ? undefined : qrDataUri(oathUrl),
  ]);
  const details: Record<string, unknown> = {
    googleurl: { description: 'URL for google Authenticator', value: googleUrl, img: googleImg },
  };
  if (oathUrl !== undefined) details['oathurl'] = { description: 'URL for OATH token', value: oathUrl, img: oathImg };
  details['otpkey'] = { description: 'OTP seed', value: seed, value_b32: base32Encode(o.key), img: seedImg };
  const info: Record<string, string> = { hashlib: o.hash };
  if (o.kind === 'totp') info['timeStep'] = String(o.timeStep ?? 30);
  info['tokenkind'] = 'software';
  return {
    fields: { otpLen: o.digits, counter: 0, rolloutState: '', active: true, info, secrets: { otpKey: hex } },
    details,
    qrUrl: googleUrl,
  };
}
