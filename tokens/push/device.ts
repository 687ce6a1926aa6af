/**
 * The open device protocol v2 (docs/device-protocol.md): what a v2 device and the server both need and that touches
 * no database — device keys (RSA 2048–4096, EC P-256, Ed25519), the signed strings, signatures, and the sealed
 * payload format. The server (server/auth/device.ts) and the reference client (cli/device_client.ts) share it, so
 * the two cannot drift.
 *
 * Signatures travel as base64url (no padding): RSA PKCS#1 v1.5 / SHA-256, ECDSA P-256 / SHA-256 (DER), Ed25519.
 * Sealed payloads (version byte first):
 *   0x01  ECDH P-256 (ephemeral key) → HKDF-SHA256 → AES-256-GCM:  01 | eph SPKI point (65) | iv (12) | tag (16) | ct
 *   0x02  RSA-OAEP-SHA256 wraps a random AES-256 key → AES-256-GCM: 02 | len (2, BE) | wrapped | iv (12) | tag (16) | ct
 * The additional authenticated data is `pushgate-v2|<version byte>|<serial>`: a sealed payload cannot be moved
 * to another device's record unnoticed.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { createParseCache, type ParseCache } from '../../core/parse_cache.ts';

export const DEVICE_PROTOCOL_VERSION = '2';
/** The enrollment URL parameter that advertises v2 (`v` stays `1`: the eduMFA apps reserve `v=2` for themselves). */
export const DEVICE_URL_PARAM = 'pushgate';

export type DeviceKeyType = 'rsa' | 'ec' | 'ed25519';
export type AuthMode = 'strict' | 'lax';
export const AUTH_MODES: readonly AuthMode[] = ['strict', 'lax'];
/** What the push channel may carry for a v2 device (policy `edupush_device_payload`). */
export type DevicePayload = 'wakeup' | 'encrypted';

/** The keys the server accepts from a v2 device (discovery `accepted_keys`). */
export const ACCEPTED_KEYS = {
  rsa: { key_length: [2048, 3072, 4096], signature_algorithm: ['RSASSA-PKCS1-v1_5-SHA256'] },
  ec: { key_length: [256], curves: ['P-256'], signature_algorithm: ['ECDSA-SHA256'] },
  ed25519: { key_length: [256], signature_algorithm: ['Ed25519'] },
} as const;

/** Tokeninfo keys of a v2 device (an edupush token enrolled through /device/v2/enroll). */
export const DEVICE_INFO = {
  /** Set at step 1 when `edupush_device_protocol` offered v2 (only then does /device/v2/enroll accept the token). */
  offered: 'device_protocol_offered',
  /** `edupush_device_auth_mode` at step 1: `strict` refuses a `lax` device. */
  requiredAuthMode: 'device_auth_mode_required',
  protocol: 'device_protocol',
  keyType: 'device_key_type',
  keyBits: 'device_key_bits',
  publicKey: 'device_public_key',
  encryptionKey: 'device_encryption_key',
  authMode: 'device_auth_mode',
} as const;

/** Challenge data keys a v2 device's challenge carries besides the presigned texts (the login's context). */
export const DEVICE_CHALLENGE_DATA = { client: 'device_client', realm: 'device_realm' } as const;

export class DeviceKeyError extends Error {}

export interface DeviceKey {
  readonly key: KeyObject;
  readonly type: DeviceKeyType;
  readonly bits: number;
}

/** Parses a device's public key: SPKI DER, base64 or base64url. Throws DeviceKeyError for anything not accepted. */
export function parseDeviceKey(text: string): DeviceKey {
  const clean = text.trim().replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/');
  if (!clean || !/^[A-Za-z0-9+/]+=*$/.test(clean) || clean.length > 2000) throw new DeviceKeyError('not a base64 SPKI key');
  let key: KeyObject;
  try {
    key = crypto.createPublicKey({ key: Buffer.from(clean, 'base64'), format: 'der', type: 'spki' });
  } catch {
    throw new DeviceKeyError('not a SubjectPublicKeyInfo key');
  }
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = d.modulusLength ?? 0;
      if (bits < 2048 || bits > 4096) throw new DeviceKeyError(`RSA keys must have 2048 to 4096 bits, not ${bits}`);
      if (d.publicExponent !== undefined && d.publicExponent !== 65537n) throw new DeviceKeyError('RSA keys must use e = 65537');
      return { key, type: 'rsa', bits };
    }
    case 'ec':
      if (d.namedCurve !== 'prime256v1') throw new DeviceKeyError(`EC keys must be on P-256, not ${d.namedCurve ?? 'unknown'}`);
      return { key, type: 'ec', bits: 256 };
    case 'ed25519':
      return { key, type: 'ed25519', bits: 256 };
    default:
      throw new DeviceKeyError(`key type ${key.asymmetricKeyType ?? 'unknown'} is not accepted`);
  }
}

/**
 * Parsed device keys by their text (core/parse_cache.ts): a device sends the same key text with every long-poll, and
 * parsing an SPKI key costs more than verifying a signature with it. About 1 KB per Ed25519 key.
 */
export type DeviceKeyCache = ParseCache<DeviceKey>;

export function createDeviceKeyCache(limit: number): DeviceKeyCache {
  return createParseCache(limit, parseDeviceKey);
}

/** A P-256 key the server can seal payloads to (an Ed25519 device's `enc_pubkey`). */
export function parseEncryptionKey(text: string): KeyObject {
  const k = parseDeviceKey(text);
  if (k.type !== 'ec') throw new DeviceKeyError('the encryption key must be an EC P-256 key');
  return k.key;
}

const algorithmOf = (key: KeyObject): string | null => (key.asymmetricKeyType === 'ed25519' ? null : 'sha256');

export function signDeviceText(privateKey: KeyObject, text: string): string {
  return crypto.sign(algorithmOf(privateKey), Buffer.from(text, 'utf8'), privateKey).toString('base64url');
}

/** True when `signature` (base64url or base64) is the device key's signature over `text`. Never throws. */
export function verifyDeviceText(key: KeyObject, text: string, signature: string): boolean {
  if (!/^[A-Za-z0-9+/_-]+=*$/.test(signature) || signature.length > 1400) return false;
  try {
    return crypto.verify(algorithmOf(key), Buffer.from(text, 'utf8'), key, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Signed strings (every field is joined with `|`; none may contain `|`, which the server checks)

export const signedText = {
  /** Enrollment: proves the device holds the private key of `pubkey` and binds the claimed mode and channel. */
  enroll: (serial: string, credential: string, pubkey: string, authMode: AuthMode, fbToken: string, encPubkey: string): string =>
    ['pushgate-v2', 'enroll', serial, credential, pubkey, authMode, fbToken, encPubkey].join('|'),
  /** A device request (long-poll, SSE): method, path without query, serial, timestamp (epoch ms). */
  request: (method: string, path: string, serial: string, timestamp: string): string =>
    ['pushgate-v2', 'request', method.toUpperCase(), path, serial, timestamp].join('|'),
  /** An answer: accept, or decline with an optional reason (empty when none). */
  answer: (id: string, serial: string, decision: 'accept' | 'decline', reason = ''): string =>
    ['pushgate-v2', 'answer', id, serial, decision, ...(decision === 'decline' ? [reason] : [])].join('|'),
  /** Discovery: the server signs the client's nonce. */
  nonce: (nonce: string): string => ['pushgate-v2', 'nonce', nonce].join('|'),
} as const;

/** How far a request timestamp may be from the server's clock. */
export const REQUEST_WINDOW_MS = 60_000;

// ---------------------------------------------------------------------------------------------------------------
// Sealed payloads

const SEAL_ECDH = 0x01;
const SEAL_RSA = 0x02;
const IV = 12;
const TAG = 16;

const aad = (version: number, serial: string) => Buffer.from(`pushgate-v2|${version}|${serial}`, 'utf8');

function gcmSeal(version: number, serial: string, aesKey: Buffer, plain: Buffer): Buffer {
  const iv = crypto.randomBytes(IV);
  const c = crypto.createCipheriv('aes-256-gcm', aesKey, iv);
  c.setAAD(aad(version, serial));
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]);
}

function gcmOpen(version: number, serial: string, aesKey: Buffer, rest: Buffer): Buffer {
  if (rest.length < IV + TAG) throw new DeviceKeyError('sealed payload too short');
  const d = crypto.createDecipheriv('aes-256-gcm', aesKey, rest.subarray(0, IV));
  d.setAAD(aad(version, serial));
  d.setAuthTag(rest.subarray(IV, IV + TAG));
  return Buffer.concat([d.update(rest.subarray(IV + TAG)), d.final()]);
}

const ecdhKey = (shared: Buffer, ephPoint: Buffer): Buffer =>
  Buffer.from(crypto.hkdfSync('sha256', shared, ephPoint, 'pushgate-v2 seal', 32));

/** Uncompressed P-256 point of an EC public key (the last 65 bytes of its SPKI DER). */
function ecPoint(pub: KeyObject): Buffer {
  const der = pub.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 65);
}

/** Encrypts `plain` (UTF-8) to an EC P-256 or RSA public key; base64url. */
export function sealForDevice(pub: KeyObject, serial: string, plain: string): string {
  const data = Buffer.from(plain, 'utf8');
  if (pub.asymmetricKeyType === 'ec') {
    const eph = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const shared = crypto.diffieHellman({ privateKey: eph.privateKey, publicKey: pub });
    const point = ecPoint(eph.publicKey);
    return Buffer.concat([Buffer.from([SEAL_ECDH]), point, gcmSeal(SEAL_ECDH, serial, ecdhKey(shared, point), data)]).toString('base64url');
  }
  if (pub.asymmetricKeyType === 'rsa') {
    const aesKey = crypto.randomBytes(32);
    const wrapped = crypto.publicEncrypt({ key: pub, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, aesKey);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(wrapped.length);
    return Buffer.concat([Buffer.from([SEAL_RSA]), len, wrapped, gcmSeal(SEAL_RSA, serial, aesKey, data)]).toString('base64url');
  }
  throw new DeviceKeyError(`cannot seal to a ${pub.asymmetricKeyType ?? 'unknown'} key`);
}

/** The device's side: opens a sealed payload with its private key (EC P-256 or RSA). Throws on any tampering. */
export function openSealed(priv: KeyObject, serial: string, sealed: string): string {
  const buf = Buffer.from(sealed, 'base64url');
  const version = buf[0];
  if (version === SEAL_ECDH) {
    const point = buf.subarray(1, 66);
    const ephSpki = Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), point]);
    const eph = crypto.createPublicKey({ key: ephSpki, format: 'der', type: 'spki' });
    const shared = crypto.diffieHellman({ privateKey: priv, publicKey: eph });
    return gcmOpen(SEAL_ECDH, serial, ecdhKey(shared, point), buf.subarray(66)).toString('utf8');
  }
  if (version === SEAL_RSA) {
    const len = buf.readUInt16BE(1);
    const wrapped = buf.subarray(3, 3 + len);
    const aesKey = crypto.privateDecrypt({ key: priv, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped);
    return gcmOpen(SEAL_RSA, serial, aesKey, buf.subarray(3 + len)).toString('utf8');
  }
  throw new DeviceKeyError(`unknown sealed payload version ${version ?? 'none'}`);
}

// ---------------------------------------------------------------------------------------------------------------
// The server's identity key (discovery): Ed25519 from a 32-byte seed

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The Ed25519 key pair of a 32-byte seed (every node sharing the secrets key derives the same one). */
export function ed25519FromSeed(seed: Buffer): { privateKey: KeyObject; publicKey: KeyObject } {
  if (seed.length !== 32) throw new Error('an Ed25519 seed has 32 bytes');
  const privateKey = crypto.createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: crypto.createPublicKey(privateKey) };
}

/** A key as the base64 of its SPKI DER (how keys travel in v2). */
export const spkiBase64 = (key: KeyObject): string => key.export({ format: 'der', type: 'spki' }).toString('base64');

/** Is this token a v2 device? */
export const isDeviceV2 = (info: Readonly<Record<string, string>>): boolean => info[DEVICE_INFO.protocol] === DEVICE_PROTOCOL_VERSION;

/** The answer bus key a v2 device's long-poll listens on (not a transaction id: those are 20 digits). */
export const deviceBusKey = (serial: string): string => `device:${serial}`;

/** The text of the key payloads for this device are sealed to: its `enc_pubkey` if it sent one, else its own key. */
export const deviceSealKeyText = (info: Readonly<Record<string, string>>): string | null =>
  info[DEVICE_INFO.encryptionKey] || info[DEVICE_INFO.publicKey] || null;

/** A parsed seal key that can seal (RSA or EC; an Ed25519 key cannot), else null. */
export const sealingKey = (k: DeviceKey | null): KeyObject | null => (k && k.type !== 'ed25519' ? k.key : null);

/** The key payloads for this device are sealed to: its RSA or EC key, an Ed25519 device's P-256 `enc_pubkey`, or null. */
export function deviceSealKey(info: Readonly<Record<string, string>>): KeyObject | null {
  const text = deviceSealKeyText(info);
  if (!text) return null;
  try {
    return sealingKey(parseDeviceKey(text));
  } catch {
    return null;
  }
}
