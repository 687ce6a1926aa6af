/**
 * Push crypto (protocol.md §2–§5):
 * - the phone's key: SubjectPublicKeyInfo DER, base64 (standard or URL-safe; a form-decoded `+` arrives as a space),
 *   RSA (PKCS#1 v1.5, SHA-256) or EC P-256 (ECDSA-SHA256, DER signature);
 * - the server's per-token key: RSA-4096, e = 65537, stored as PKCS#1 PEM; the public half goes to the phone as the
 *   PEM body with its internal line breaks (the Flutter app parses PKCS#1 only);
 * - every signature travels as upper-case, `=`-padded base32.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { base32Decode, base32Encode } from '../base32.ts';
import { MfaError } from '../../core/errors.ts';

export const SERVER_KEY_BITS = 4096;
const PHONE_RSA_MIN_BITS = 2048;
const PHONE_RSA_MAX_BITS = 8192;

/** A server key pair as stored: PKCS#1 PEM both. */
export interface ServerKeyPair {
  readonly publicPem: string;
  readonly privatePem: string;
}

/** Generates a server key pair on libuv's thread pool (never blocks the event loop). */
export function generateServerKeyPair(bits = SERVER_KEY_BITS): Promise<ServerKeyPair> {
  return new Promise((resolve, reject) => {
    crypto.generateKeyPair(
      'rsa',
      {
        modulusLength: bits,
        publicExponent: 0x10001,
        publicKeyEncoding: { type: 'pkcs1', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      },
      (err, publicPem, privatePem) => (err ? reject(err) : resolve({ publicPem, privatePem })),
    );
  });
}

/** PEM without its armor lines, internal line breaks kept, no leading/trailing whitespace (eduMFA's strip_key). */
export function stripPemArmor(pem: string): string {
  return pem
    .split(/\r?\n/)
    .filter((line) => !/^-----(BEGIN|END) [A-Z ]+-----$/.test(line.trim()))
    .join('\n')
    .trim();
}

const signatureCounts = { sync: 0, async: 0 };

/**
 * Server signatures made by this process so far: `sync` on the event loop (signText), `async` on libuv's thread pool
 * (signTextAsync). The seam that lets tests prove a request path signs nothing on the event loop.
 */
export function serverSignatureCounts(): { readonly sync: number; readonly async: number } {
  return { ...signatureCounts };
}

/**
 * Signs `text` (UTF-8) with an RSA private key: PKCS#1 v1.5, SHA-256, base32 upper case with padding. Synchronous:
 * an RSA-4096 signature holds the event loop for 3–5 ms — request paths use signTextAsync.
 */
export function signText(privateKey: KeyObject | string, text: string): string {
  signatureCounts.sync++;
  const sig = crypto.sign('sha256', Buffer.from(text, 'utf8'), privateKey);
  return base32Encode(sig);
}

/** signText on libuv's thread pool (`crypto.sign` with a callback): the same bytes, the event loop stays free. */
export function signTextAsync(privateKey: KeyObject, text: string): Promise<string> {
  signatureCounts.async++;
  const data = Buffer.from(text, 'utf8');
  return new Promise((resolve, reject) => {
    crypto.sign('sha256', data, privateKey, (err, sig) => (err ? reject(err) : resolve(base32Encode(sig))));
  });
}

/** The server's private key object from its stored PEM. */
export function serverPrivateKey(pem: string): KeyObject {
  return crypto.createPrivateKey(pem);
}

export type PhoneKeyKind = 'rsa' | 'ec';

/** A parsed phone key. */
export interface PhoneKey {
  readonly kind: PhoneKeyKind;
  readonly key: KeyObject;
}

/** Thrown when the phone's key cannot be used; the caller maps it to its endpoint's error. */
export class PhoneKeyError extends Error {}

/** Normalises the phone's base64 key text: armor and whitespace removed, URL-safe alphabet mapped, spaces → `+`. */
export function normalisePhoneKeyText(text: string): string {
  const body = text
    .replace(/-----(BEGIN|END) [A-Z ]+-----/g, '')
    .replace(/[\r\n\t]/g, '')
    .trim()
    .replace(/ /g, '+')
    .replace(/-/g, '+')
    .replace(/_/g, '/')
    .replace(/=+$/, '');
  return body + '='.repeat((4 - (body.length % 4)) % 4);
}

/** Parses the phone's SPKI key (RSA 2048–8192 bits or EC P-256). Throws PhoneKeyError. */
export function parsePhoneKey(text: string): PhoneKey {
  const b64 = normalisePhoneKeyText(text);
  if (b64.length < 8 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new PhoneKeyError('The public key is not base64.');
  let key: KeyObject;
  try {
    key = crypto.createPublicKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki' });
  } catch (err) {
    throw new PhoneKeyError(`The public key is not a SubjectPublicKeyInfo: ${(err as Error).message}`);
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < PHONE_RSA_MIN_BITS || bits > PHONE_RSA_MAX_BITS)
      throw new PhoneKeyError(`RSA keys must have ${PHONE_RSA_MIN_BITS}–${PHONE_RSA_MAX_BITS} bits.`);
    return { kind: 'rsa', key };
  }
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return { kind: 'ec', key };
  throw new PhoneKeyError('Only RSA and EC P-256 public keys are supported.');
}

/** Decodes a base32 signature; null when it is not valid base32 (the caller answers 400, never 500). */
export function decodeSignature(text: string): Buffer | null {
  try {
    const sig = base32Decode(text);
    return sig.length === 0 ? null : sig;
  } catch (err) {
    if (err instanceof MfaError) return null;
    throw err;
  }
}

/** Verifies the phone's signature over `text` (UTF-8). False for any mismatch. */
export function verifyPhoneSignature(key: PhoneKey, text: string, signature: Buffer): boolean {
  const data = Buffer.from(text, 'utf8');
  try {
    return key.kind === 'rsa'
      ? crypto.verify('sha256', data, key.key, signature)
      : crypto.verify('sha256', data, { key: key.key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Server key pool

export interface KeyPoolOptions {
  /** Modulus length of generated keys (production 4096; tests may use 2048). */
  readonly bits?: number;
  /** How many ready keys to keep once warmed. Default 2. */
  readonly size?: number;
  /** Key source (tests inject pre-generated keys). Default: generateServerKeyPair(bits). */
  readonly generate?: () => Promise<ServerKeyPair>;
}

/**
 * A small pool of pre-generated server keys so enrollment step 2 answers in milliseconds although an RSA-4096
 * key takes ~1.5 s to make. Filling starts on `warm()` (a push enrollment began) and after every `take()`.
 */
export interface KeyPool {
  /** A key nobody else gets; waits for a fresh one when the pool is empty. */
  take(): Promise<ServerKeyPair>;
  /** Starts filling the pool in the background (no-op when full or already filling). */
  warm(): void;
  /** Keys ready right now. */
  readonly ready: number;
  /** How many keys the pool keeps ready once warmed. */
  readonly size: number;
  /** Stops refilling; keys still being generated are dropped. */
  close(): void;
}

export function createKeyPool(opts: KeyPoolOptions = {}): KeyPool {
  const size = Math.max(0, opts.size ?? 2);
  const generate = opts.generate ?? (() => generateServerKeyPair(opts.bits ?? SERVER_KEY_BITS));
  const ready: ServerKeyPair[] = [];
  const waiters: Array<{ resolve: (k: ServerKeyPair) => void; reject: (e: unknown) => void }> = [];
  let inFlight = 0;
  let closed = false;

  const produce = (): void => {
    inFlight++;
    generate().then(
      (key) => {
        inFlight--;
        if (closed) return;
        const waiter = waiters.shift();
        if (waiter) waiter.resolve(key);
        else ready.push(key);
        fill();
      },
      (err: unknown) => {
        inFlight--;
        const waiter = waiters.shift();
        if (waiter) waiter.reject(err);
      },
    );
  };
  // Keep `size` keys ready plus one per waiting request; at most two generations at once (two cores).
  const fill = (): void => {
    if (closed) return;
    while (inFlight < 2 && ready.length + inFlight < size + waiters.length) produce();
  };

  return {
    take() {
      if (closed) return Promise.reject(new Error('key pool closed'));
      const key = ready.shift();
      if (key) {
        fill();
        return Promise.resolve(key);
      }
      const p = new Promise<ServerKeyPair>((resolve, reject) => waiters.push({ resolve, reject }));
      if (inFlight < waiters.length) produce();
      fill();
      return p;
    },
    warm: fill,
    get ready() {
      return ready.length;
    },
    size,
    close() {
      closed = true;
      ready.length = 0;
      for (const w of waiters.splice(0)) w.reject(new Error('key pool closed'));
    },
  };
}
