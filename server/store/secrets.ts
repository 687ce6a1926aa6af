/**
 * Secrets at rest: AES-256-GCM with a 32-byte key kept in a file (config `secrets.key_file`).
 * Ciphertext format: `v1.<iv b64url>.<tag b64url>.<ciphertext b64url>`. The key also derives (HKDF) the
 * JWT signing key, so every node that shares the key file accepts the same admin tokens.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface SecretBox {
  encrypt(plain: string): string;
  decrypt(sealed: string): string;
  /** A sub-key for another purpose (e.g. `jwt`). */
  derive(purpose: string): Buffer;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error(`secret key must be 32 bytes, got ${key.length}`);
  const derived = new Map<string, Buffer>();
  return {
    encrypt(plain) {
      const iv = crypto.randomBytes(12);
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
    },
    decrypt(sealed) {
      const [v, iv, tag, ct] = sealed.split('.');
      if (v !== 'v1' || iv === undefined || tag === undefined || ct === undefined) throw new Error('unknown secret format');
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
    },
    // Derived once per purpose (HKDF is a hot-path cost otherwise: the push-fatigue pass MAC derives on every trigger).
    derive(purpose) {
      let k = derived.get(purpose);
      if (!k) {
        k = Buffer.from(crypto.hkdfSync('sha256', key, Buffer.alloc(0), `pushgate:${purpose}`, 32));
        derived.set(purpose, k);
      }
      return Buffer.from(k);
    },
  };
}

/**
 * Reads the key file (64 hex chars or 44 base64 chars). A missing file is created with a fresh key (mode 0600, in a
 * directory created 0700 if it is missing)
 * and `created: true` so the caller can warn loudly: losing that file makes every stored secret unreadable.
 */
export function loadOrCreateKey(file: string): { key: Buffer; created: boolean } {
  if (fs.existsSync(file)) {
    const text = fs.readFileSync(file, 'utf8').trim();
    const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
    if (key.length !== 32) throw new Error(`${file}: the key file must hold 32 bytes as 64 hex characters`);
    return { key, created: false };
  }
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
  const key = crypto.randomBytes(32);
  fs.writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return { key, created: true };
}
