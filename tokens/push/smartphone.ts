/**
 * The phone's requests at `/ttype/<type>` (protocol.md §2, §4, §5), classified once into a tagged union, plus the
 * database-free parts of each handler (signed strings, timestamps, signature checks). server/auth/smartphone.ts
 * loads the records and stores the results.
 *
 * Wire formats (form, multipart, query or JSON bodies):
 * - completeEnrollment  POST serial, enrollment_credential, fbtoken (may be ""), pubkey (SPKI base64, maybe URL-safe)
 * - answerChallenge     POST serial, nonce, signature[, decline[, decline_reason]][, presence_answer]; signed
 *                       `nonce|serial` or `nonce|serial|decline`, then `|<decline_reason>` when a newer privacyIDEA app
 *                       sends a reason, then `|<presence_answer>` when sent (privacyIDEA's presence check; its order)
 * - updateFirebaseToken POST serial, new_fb_token, timestamp, signature; signed `new_fb_token|serial|timestamp`, ±5 min
 * - poll                GET  serial, timestamp, signature; signed `serial|timestamp`, ±1 min
 */
import { missingParameter, ParameterError, SignatureError } from '../../core/errors.ts';
import type { TokenRecord } from '../types.ts';
import { decodeSignature, parsePhoneKey, verifyPhoneSignature, type PhoneKey } from './signatures.ts';
import { infoKeys, type PushVariant } from './variants.ts';
import { createParseCache } from '../../core/parse_cache.ts';

export type SmartphoneRequest =
  | {
      readonly kind: 'completeEnrollment';
      readonly serial: string;
      readonly enrollmentCredential: string;
      readonly fbToken: string;
      readonly pubkey: string;
    }
  | {
      readonly kind: 'answerChallenge';
      readonly serial: string;
      readonly nonce: string;
      readonly signature: string;
      readonly decline: boolean;
      /** privacyIDEA's presence check: the option the user chose (signed, appended to the signed text). */
      readonly presenceAnswer?: string;
      /** privacyIDEA's newer apps: why the user declined (signed after `|decline`). */
      readonly declineReason?: string;
    }
  | { readonly kind: 'poll'; readonly serial: string; readonly timestamp: string; readonly signature: string }
  | {
      readonly kind: 'updateFirebaseToken';
      readonly serial: string;
      readonly newFbToken: string;
      readonly timestamp: string;
      readonly signature: string;
    };

/** The parameter view the classifier needs (server/params.ts Params satisfies it). */
export interface SmartphoneParams {
  get(name: string): string | undefined;
  /** The JSON value when the body was JSON (numbers and booleans keep their type). */
  raw(name: string): unknown;
}

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);

/** `decline` as 1 / "1" / true / "true" (any case) / a non-zero JSON number. Absent, 0, "0", false → accept. */
export function isDecline(raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'number') return raw !== 0;
  if (typeof raw === 'string') return TRUE_WORDS.has(raw.trim().toLowerCase());
  return false;
}

/** Sorts a request into one of the four kinds. Missing parameters are a 400 `ERR905`. */
export function classifySmartphoneRequest(method: string, p: SmartphoneParams): SmartphoneRequest {
  const need = (name: string): string => {
    const value = p.get(name);
    if (value === undefined) throw missingParameter(name);
    return value;
  };
  const has = (name: string) => p.get(name) !== undefined;
  if (method === 'GET' || method === 'HEAD') {
    return { kind: 'poll', serial: need('serial'), timestamp: need('timestamp'), signature: need('signature') };
  }
  const serial = need('serial');
  if (has('fbtoken') && has('pubkey')) {
    return {
      kind: 'completeEnrollment',
      serial,
      enrollmentCredential: need('enrollment_credential'),
      fbToken: p.get('fbtoken')!,
      pubkey: p.get('pubkey')!,
    };
  }
  if (has('nonce') && has('signature')) {
    const presenceAnswer = p.get('presence_answer');
    const decline = isDecline(p.raw('decline'));
    const reason = decline ? p.get('decline_reason') : undefined;
    return {
      kind: 'answerChallenge',
      serial,
      nonce: p.get('nonce')!,
      signature: p.get('signature')!,
      decline,
      ...(presenceAnswer ? { presenceAnswer } : {}),
      ...(reason ? { declineReason: reason } : {}),
    };
  }
  if (has('new_fb_token') && has('timestamp') && has('signature')) {
    return {
      kind: 'updateFirebaseToken',
      serial,
      newFbToken: p.get('new_fb_token')!,
      timestamp: p.get('timestamp')!,
      signature: p.get('signature')!,
    };
  }
  throw new ParameterError('Missing parameters!');
}

// ---------------------------------------------------------------------------------------------------------------
// Signed strings

/**
 * `nonce|serial`, `|decline` when declining, `|<reason>` when a newer privacyIDEA app sends a decline reason,
 * `|<presence answer>` when the privacyIDEA app sends one (its order).
 */
export const answerSignedText = (
  nonce: string,
  serial: string,
  decline: boolean,
  extra: { readonly presenceAnswer?: string; readonly declineReason?: string } = {},
): string =>
  (decline ? `${nonce}|${serial}|decline${extra.declineReason ? `|${extra.declineReason}` : ''}` : `${nonce}|${serial}`)
  + (extra.presenceAnswer ? `|${extra.presenceAnswer}` : '');
export const pollSignedText = (serial: string, timestamp: string): string => `${serial}|${timestamp}`;
export const firebaseUpdateSignedText = (newFbToken: string, serial: string, timestamp: string): string =>
  `${newFbToken}|${serial}|${timestamp}`;

// ---------------------------------------------------------------------------------------------------------------
// Timestamps

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/** ISO 8601 → epoch ms; any number of fractional digits (apps send 3 or 6); no offset = UTC. Null when invalid. */
export function parseIsoTimestamp(text: string): number | null {
  const m = ISO_RE.exec(text.trim());
  if (!m) return null;
  const [year, month, day, hour = 0, minute = 0, second = 0] = m
    .slice(1, 7)
    .map((x) => (x === undefined ? undefined : Number(x))) as number[];
  if (month! < 1 || month! > 12 || day! < 1 || day! > 31 || hour! > 23 || minute! > 59 || second! > 59) return null;
  const fraction = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  let ms = Date.UTC(year!, month! - 1, day!, hour, minute, second) + Math.floor(fraction);
  if (new Date(Date.UTC(year!, month! - 1, day!)).getUTCDate() !== day) return null;
  const zone = m[8];
  if (zone && zone.toUpperCase() !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    const offset = (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0')) * 60_000;
    ms -= zone[0] === '-' ? -offset : offset;
  }
  return ms;
}

/** Checks a phone timestamp is within `windowMs` of `now`; eduMFA's two error texts (ERR10, 400). */
export function checkTimestamp(text: string, now: number, windowMs: number): void {
  const t = parseIsoTimestamp(text);
  if (t === null) throw new SignatureError(`Could not parse timestamp ${text}. ISO-Format required.`);
  if (Math.abs(now - t) > windowMs) throw new SignatureError(`Timestamp ${text} not in valid range.`);
}

export const POLL_WINDOW_MS = 60_000;
export const FIREBASE_UPDATE_WINDOW_MS = 5 * 60_000;

// ---------------------------------------------------------------------------------------------------------------
// Signature checks

/**
 * Parsed phone keys by the exact text stored on the token (a re-enrolled token's new key is a new text): parsing the
 * SPKI for every signed request cost more than the RSA verify itself (~0.7 ms vs ~0.15–0.3 ms for RSA-2048/4096), on
 * the event loop, for every poll. Bounded; the least recently used entry goes first. A text that does not parse is
 * not kept (it answers null every time).
 */
const PHONE_KEY_CACHE_MAX = 4096;
const phoneKeys = createParseCache(PHONE_KEY_CACHE_MAX, parsePhoneKey);

/** The phone key stored on an enrolled token of this variant, or null. */
export function tokenPhoneKey(v: PushVariant, token: TokenRecord): PhoneKey | null {
  const text = token.info[infoKeys(v).publicKeySmartphone];
  return text ? phoneKeys.get(text) : null;
}

export type SignatureCheck = 'valid' | 'invalid' | 'malformed';

/** Verifies the phone's base32 signature over `text` with the token's stored phone key. */
export function checkPhoneSignature(v: PushVariant, token: TokenRecord, text: string, signature: string): SignatureCheck {
  const sig = decodeSignature(signature);
  if (sig === null) return 'malformed';
  const key = tokenPhoneKey(v, token);
  if (key === null) return 'invalid';
  return verifyPhoneSignature(key, text, sig) ? 'valid' : 'invalid';
}

/** True for a token of this variant that completed enrollment. */
export function isEnrolledPushToken(v: PushVariant, token: TokenRecord | null): token is TokenRecord {
  return token !== null && token.type === v.type && token.rolloutState !== 'clientwait';
}
