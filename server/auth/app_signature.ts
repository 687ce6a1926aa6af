/**
 * Signed requests of applications (issue 15). Wire contract:
 *   X-Pushgate-App: <application id>
 *   X-Pushgate-Timestamp: <unix seconds>
 *   X-Pushgate-Nonce: <16 to 128 characters of [A-Za-z0-9_-]>
 *   X-Pushgate-Signature: lowercase hex HMAC-SHA256(secret, METHOD \n PATH?QUERY \n TIMESTAMP \n NONCE \n hex SHA-256(raw body))
 * A request is refused with the same 401 whatever part was wrong (unknown or disabled application, stale timestamp,
 * bad signature, replayed nonce); the reason goes to the operator's log (`app.auth_failed`), never to the client.
 * The signature is compared in constant time, before the nonce is stored (an unsigned flood fills no replay cache).
 */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import { AuthError } from '../../core/errors.ts';
import type { ApplicationRecord } from '../store/apps_repo.ts';

/** How far a request's timestamp may be from the server's clock, either way. */
export const SIGNATURE_WINDOW_MS = 5 * 60_000;
const NONCE = /^[A-Za-z0-9_-]{16,128}$/;
const APP_ID = /^app_[A-Za-z0-9]{8,36}$/;
const TIMESTAMP = /^[0-9]{1,12}$/;

export const SIGNATURE_HEADERS = {
  app: 'x-pushgate-app',
  timestamp: 'x-pushgate-timestamp',
  nonce: 'x-pushgate-nonce',
  signature: 'x-pushgate-signature',
} as const;

export type SignatureFailure = 'unsigned' | 'malformed' | 'unknown_app' | 'disabled' | 'signature' | 'skew' | 'replay' | 'unsigned_body';

/** The one message of every refused signed request. */
export const SIGNATURE_REFUSED = 'Authentication failure. The request signature could not be verified.';

export function sha256Hex(body: Buffer | string): string {
  return crypto.createHash('sha256').update(body).digest('hex');
}

/** The string an application signs. */
export function signingString(method: string, pathWithQuery: string, timestamp: string, nonce: string, bodySha256: string): string {
  return `${method.toUpperCase()}\n${pathWithQuery}\n${timestamp}\n${nonce}\n${bodySha256}`;
}

export function signRequest(
  secret: string,
  method: string,
  pathWithQuery: string,
  timestamp: string,
  nonce: string,
  body: Buffer | string,
): string {
  return crypto
    .createHmac('sha256', secret)
    .update(signingString(method, pathWithQuery, timestamp, nonce, sha256Hex(body)))
    .digest('hex');
}

export interface SignedRequest {
  readonly method: string;
  /** The path with the query string, as sent (Node's `req.url`). */
  readonly url: string;
  readonly header: (name: string) => string;
  /** hex SHA-256 of the raw body; null when the body was not kept (multipart: not accepted for signed requests). */
  readonly bodySha256: string | null;
}

/** Verifies a signed request; returns its application or throws the one 401. */
export async function verifySignedRequest(deps: Deps, req: SignedRequest): Promise<ApplicationRecord> {
  const appId = req.header(SIGNATURE_HEADERS.app);
  const fail = (reason: SignatureFailure): never => {
    deps.events.emit('app.auth_failed', { app: APP_ID.test(appId) ? appId : '?', reason });
    throw new AuthError(SIGNATURE_REFUSED, 4031);
  };
  if (appId === '') return fail('unsigned');
  const timestamp = req.header(SIGNATURE_HEADERS.timestamp);
  const nonce = req.header(SIGNATURE_HEADERS.nonce);
  const signature = req.header(SIGNATURE_HEADERS.signature);
  if (!APP_ID.test(appId) || !TIMESTAMP.test(timestamp) || !NONCE.test(nonce) || !/^[0-9a-f]{64}$/.test(signature))
    return fail('malformed');
  if (req.bodySha256 === null) return fail('unsigned_body');
  const found = await deps.store.apps.withSecret(appId);
  // An unknown application costs the same HMAC as a known one (no enumeration of ids by timing).
  const secret = found?.secret ?? 'pushgate-unknown-application';
  const expected = crypto
    .createHmac('sha256', secret)
    .update(signingString(req.method, req.url, timestamp, nonce, req.bodySha256))
    .digest();
  const given = Buffer.from(signature, 'hex');
  const same = crypto.timingSafeEqual(expected, given);
  if (!found) return fail('unknown_app');
  if (!same) return fail('signature');
  if (!found.app.active) return fail('disabled');
  const now = deps.clock.now();
  const at = Number(timestamp) * 1000;
  if (Math.abs(now - at) > SIGNATURE_WINDOW_MS) return fail('skew');
  // Kept until the timestamp leaves the window: after that the timestamp check refuses the replay by itself.
  if (!(await deps.store.apps.useNonce(appId, nonce, Math.max(at, now) + SIGNATURE_WINDOW_MS))) return fail('replay');
  return found.app;
}
