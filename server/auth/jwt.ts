/**
 * Admin session tokens and API keys: compact JWS, HS256, integer `exp`/`iat`, signed with a key derived from the
 * secrets key. Role `admin`: a session from POST /auth. Role `validate`: an API key for the /validate endpoints when
 * the `api_key_required` policy asks for one (`pushgate apikey create`; eduMFA's `api createtoken -r validate`).
 *
 * Signing and verification are jose's (HS256 only). One check is ours, before jose: the token must be the exact
 * compact form we issue — three base64url segments and a signature in canonical base64url (decoding and
 * re-encoding it gives it back). jose decodes segments with `atob` on Node 20 (no Uint8Array.fromBase64 there), which accepts one `=` of
 * padding, ASCII whitespace and non-zero trailing bits, so `sig + '='`, `si g` or a last character changed in its
 * unused bits would verify; the shape check refuses them.
 *
 * Every token we issue has a payload segment that standard Base64 decodes too (no '-' or '_'): the privacyIDEA Java
 * client reads `exp` from the payload with java.util.Base64.getDecoder() (RFC 4648 §4 alphabet, padding optional),
 * and a payload it cannot decode makes it send no Authorization header at all (see standardBase64Json).
 */
import { CompactSign, jwtVerify, errors } from 'jose';
import { AuthError } from '../../core/errors.ts';

export interface JwtClaims {
  sub: string;
  role: 'admin' | 'validate';
  iat: number;
  exp: number;
  [k: string]: unknown;
}

/** An API key's claims: role `validate`, valid for `days` from `nowMs`. */
export function apiKeyClaims(name: string, nowMs: number, days: number): JwtClaims {
  const iat = Math.floor(nowMs / 1000);
  return { sub: name, role: 'validate', iat, exp: iat + days * 86_400 };
}

/** The only algorithm we sign with and the only one we accept. */
const ALG = 'HS256';
/** header.payload.signature, each base64url without padding (the algorithm, and with it the length, is jose's check). */
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)$/;

/**
 * JSON whose base64url encoding contains neither '-' nor '_', so that it is also standard Base64 (unpadded).
 * Why this is enough: in base64 each 3 bytes b0 b1 b2 become the 6-bit values b0>>2, (b0&3)<<4|b1>>4,
 * (b1&15)<<2|b2>>6 and b2&63. For ASCII bytes (< 0x80) the first three are at most 31, 55 and 61 — never '-' (62)
 * or '_' (63) — and b2&63 is 62 or 63 only for '>', '?', '~' and DEL (0x3E, 0x3F, 0x7E, 0x7F); a final partial
 * group only uses the first values. JSON.stringify gives these characters, and anything non-ASCII, only inside
 * strings, where `\uXXXX` is the same string: so the JSON is made ASCII-only with those four escaped. The result
 * parses to the same value (JSON.parse), whatever the claims hold — admin names like `svc~1` included.
 */
export function standardBase64Json(value: unknown): string {
  return JSON.stringify(value).replace(/[>?~\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * header.payload.signature with the protected header `{"alg":"HS256","typ":"JWT"}` (base64url
 * `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9`, standard Base64 as well) and the claims as standardBase64Json.
 */
export async function signJwt(claims: JwtClaims, key: Buffer): Promise<string> {
  return new CompactSign(new TextEncoder().encode(standardBase64Json(claims))).setProtectedHeader({ alg: ALG, typ: 'JWT' }).sign(key);
}

/**
 * Verifies shape, algorithm (HS256 only), signature and expiry at `nowMs` (the injected clock). Throws AuthError
 * with eduMFA's codes: 4305 expired, 4304 for everything else (undecodable, wrong key, wrong alg, no `exp`).
 * The raw token or `Bearer <token>` (eduMFA's clients send the raw one).
 */
export async function verifyJwt(token: string, key: Buffer, nowMs: number): Promise<JwtClaims> {
  const undecodable = () => new AuthError('Authentication failure. Error during decoding your token.', 4304);
  const compact = token.trim().replace(/^Bearer\s+/i, '');
  const sig = COMPACT.exec(compact)?.[1];
  if (sig === undefined || Buffer.from(sig, 'base64url').toString('base64url') !== sig) throw undecodable();
  try {
    const { payload } = await jwtVerify(compact, key, { algorithms: [ALG], currentDate: new Date(nowMs), requiredClaims: ['exp'] });
    return payload as JwtClaims;
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw new AuthError('Authentication failure. Your token has expired.', 4305);
    throw undecodable();
  }
}
