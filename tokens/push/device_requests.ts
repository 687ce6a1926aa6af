/**
 * A v2 device's pending authorizations (docs/device-protocol.md "Pending requests"): one entry per open challenge,
 * built from the challenge row alone (the texts signed when it was created, its proof, the login's context), and the
 * ETag of a list (it changes when a request arrives, is answered, or expires).
 */
import crypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { ChallengeRecord } from '../types.ts';
import { presignedSmartphoneData } from './challenge.ts';
import { DEVICE_CHALLENGE_DATA, sealForDevice } from './device.ts';
import { proofOf } from './proof.ts';

export interface PendingRequest {
  /** The id to answer with (the challenge's nonce). */
  readonly id: string;
  readonly serial: string;
  readonly created_at: number;
  readonly expires_at: number;
  /** The service the login is for (the push title, which policies can set per client or realm). */
  readonly application: string;
  readonly title: string;
  readonly question: string;
  /** The code to compare with the login page (`match`), or to type there (`login_code`); null without a proof. */
  readonly code: string | null;
  readonly code_kind: 'match' | 'login_code' | null;
  /** The end-user address the login came from, when known. */
  readonly client: string | null;
  readonly realm: string | null;
  /** Reserved for a coarse location of `client`; pushgate has no geolocation database and sends null. */
  readonly location: string | null;
  /** The server's signature (token server key, v1 string `nonce|url|serial|question|title|sslverify`). */
  readonly signature: string;
}

/** A sealed entry: only id, serial and times in clear; everything else inside `sealed`. */
export interface SealedRequest {
  readonly id: string;
  readonly serial: string;
  readonly created_at: number;
  readonly expires_at: number;
  readonly sealed: string;
}

/** The pending request of an open challenge row; null for a row without presigned texts (nothing to show). */
export function pendingRequest(row: ChallengeRecord): PendingRequest | null {
  const d = presignedSmartphoneData(row);
  if (!d) return null;
  const proof = proofOf(row);
  const code = proof?.kind === 'match' || proof?.kind === 'login_code' ? proof.code : null;
  return {
    id: row.nonce,
    serial: row.serial,
    created_at: row.createdAt,
    expires_at: row.expiresAt,
    application: d.title,
    title: d.title,
    question: d.question,
    code,
    code_kind: code === null ? null : (proof!.kind as 'match' | 'login_code'),
    client: row.data[DEVICE_CHALLENGE_DATA.client] || null,
    realm: row.data[DEVICE_CHALLENGE_DATA.realm] || null,
    location: null,
    signature: d.signature,
  };
}

export function sealRequest(r: PendingRequest, key: KeyObject): SealedRequest {
  return {
    id: r.id,
    serial: r.serial,
    created_at: r.created_at,
    expires_at: r.expires_at,
    sealed: sealForDevice(key, r.serial, JSON.stringify(r)),
  };
}

/** A weak ETag of the list: the ids and expiry times of its entries (order-independent). */
export function requestsEtag(items: readonly { readonly id: string; readonly expires_at: number }[]): string {
  const h = crypto.createHash('sha256');
  for (const i of [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) h.update(`${i.id}:${i.expires_at};`);
  return `W/"${h.digest('base64url').slice(0, 22)}"`;
}
