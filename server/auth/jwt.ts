/**
 * Admin session tokens and API keys: compact JWS, HS256, integer `exp`/`iat`, signed with a key derived from the
 * secrets key. Role `admin`: a session from POST /auth. Role `validate`: an API key for the /validate endpoints when
 * the `api_key_required` policy asks for one (`pushgate apikey create`; eduMFA's `api createtoken -r validate`).
 */
import crypto from 'node:crypto';
import { AuthError } from '../errors.ts';

export interface JwtClaims { sub: string; role: 'admin' | 'validate'; iat: number; exp: number; [k: string]: unknown }

/** An API key's claims: role `validate`, valid for `days` from `nowMs`. */
export function apiKeyClaims(name: string, nowMs: number, days: number): JwtClaims {
  const iat = Math.floor(nowMs / 1000);
  return { sub: name, role: 'validate', iat, exp: iat + days * 86_400 };
}

const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

export function signJwt(claims: JwtClaims, key: Buffer): string {
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** Verifies signature and expiry (`nowMs`). Throws AuthError with eduMFA's codes: 4304 undecodable, 4305 expired. */
export function verifyJwt(token: string, key: Buffer, nowMs: number): JwtClaims {
  const parts = token.trim().replace(/^Bearer\s+/i, '').split('.');
  const undecodable = () => new AuthError('Authentication failure. Error during decoding your token.', 4304);
  if (parts.length !== 3) throw undecodable();
  const [head, body, sig] = parts as [string, string, string];
  const expected = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest();
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) throw undecodable();
  let claims: JwtClaims;
  try {
    const h = JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as { alg?: string };
    if (h.alg !== 'HS256') throw new Error('alg');
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as JwtClaims;
  } catch {
    throw undecodable();
  }
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= nowMs) throw new AuthError('Authentication failure. Your token has expired.', 4305);
  return claims;
}
