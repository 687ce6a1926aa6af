/**
 * PSKC (RFC 6030) key containers, as hardware token vendors ship their seed files: HOTP and TOTP keys in plain
 * (`PlainValue`, base64) or encrypted with a pre-shared key (`--key`) or a key derived from a password with PBKDF2
 * (`--password`); AES-CBC (xmlenc aes128/192/256-cbc, the IV in front of the cipher text), the MAC key itself
 * encrypted under the same key, and each encrypted value's `ValueMAC` (HMAC-SHA1 or -SHA256 over IV and cipher
 * text) checked before its value is used. Parsed with fast-xml-parser; a document with a DOCTYPE is refused (no
 * entity expansion).
 */
import crypto from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';
import { COLUMN_LIMITS } from '../store/limits.ts';
import type { NewToken } from '../store/tokens_repo.ts';
import type { ImportPlan } from './plan.ts';

export class PskcError extends Error {}

export interface PskcKeySource {
  /** The pre-shared key (hex). */
  readonly key?: Buffer;
  /** The password of a PBKDF2-derived key. */
  readonly password?: string;
}

export interface PskcOptions extends PskcKeySource {
  readonly username: string | null;
  readonly realm: string | null;
  /** Maximum file size we parse at all (bytes). */
  readonly maxBytes?: number;
}

type Node = Record<string, unknown>;

const MAX_BYTES = 32 * 1024 * 1024;
const ENC_ALGOS: Readonly<Record<string, { cipher: string; keyLength: number }>> = {
  'http://www.w3.org/2001/04/xmlenc#aes128-cbc': { cipher: 'aes-128-cbc', keyLength: 16 },
  'http://www.w3.org/2001/04/xmlenc#aes192-cbc': { cipher: 'aes-192-cbc', keyLength: 24 },
  'http://www.w3.org/2001/04/xmlenc#aes256-cbc': { cipher: 'aes-256-cbc', keyLength: 32 },
};
const MAC_ALGOS: Readonly<Record<string, string>> = {
  'http://www.w3.org/2000/09/xmldsig#hmac-sha1': 'sha1',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256': 'sha256',
};
const PRF_ALGOS: Readonly<Record<string, string>> = {
  'http://www.w3.org/2000/09/xmldsig#hmac-sha1': 'sha1',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256': 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha512': 'sha512',
};

const asArray = (v: unknown): Node[] => (v === undefined || v === null ? [] : Array.isArray(v) ? (v as Node[]) : [v as Node]);
const child = (n: unknown, name: string): Node | undefined => {
  const v = (n as Node | undefined)?.[name];
  return Array.isArray(v) ? (v[0] as Node) : (v as Node | undefined);
};
const text = (n: unknown): string | undefined => {
  if (n === undefined || n === null) return undefined;
  if (typeof n === 'string' || typeof n === 'number') return String(n).trim();
  const t = (n as Node)['#text'];
  return t === undefined ? undefined : String(t).trim();
};
const attr = (n: unknown, name: string): string | undefined => {
  const v = (n as Node | undefined)?.[`@_${name}`];
  return v === undefined ? undefined : String(v).trim();
};
const b64 = (s: string | undefined, what: string): Buffer => {
  if (s === undefined || !/^[A-Za-z0-9+/\s]+=*$/.test(s)) throw new PskcError(`${what} is not base64`);
  return Buffer.from(s.replace(/\s+/g, ''), 'base64');
};

/** AES-CBC with the IV in front; xmlenc padding (the last byte says how many bytes to drop). */
function xmlencDecrypt(enc: Node, key: Buffer): Buffer {
  const algo = attr(child(enc, 'EncryptionMethod'), 'Algorithm') ?? '';
  const spec = ENC_ALGOS[algo];
  if (!spec) throw new PskcError(`encryption algorithm ${algo || '(none)'} is not supported`);
  if (key.length !== spec.keyLength) throw new PskcError(`the key must be ${spec.keyLength} bytes for ${algo}`);
  const data = b64(text(child(child(enc, 'CipherData'), 'CipherValue')), 'CipherValue');
  if (data.length < 32 || data.length % 16 !== 0) throw new PskcError('CipherValue is not an IV and whole AES blocks');
  const d = crypto.createDecipheriv(spec.cipher, key, data.subarray(0, 16));
  d.setAutoPadding(false);
  const plain = Buffer.concat([d.update(data.subarray(16)), d.final()]);
  const pad = plain[plain.length - 1] ?? 0;
  if (pad < 1 || pad > 16) throw new PskcError('the value does not decrypt with this key (bad padding)');
  return plain.subarray(0, plain.length - pad);
}

interface Decryption {
  readonly key: Buffer;
  readonly mac: { readonly algo: string; readonly key: Buffer } | null;
}

function containerKey(root: Node, o: PskcKeySource): Decryption | null {
  const ek = child(root, 'EncryptionKey');
  if (!ek) return null;
  let key: Buffer;
  const derived = child(ek, 'DerivedKey');
  if (derived) {
    if (o.password === undefined) throw new PskcError('the file is encrypted with a password-derived key: give --password');
    const method = child(derived, 'KeyDerivationMethod');
    if (!/#pbkdf2$/.test(attr(method, 'Algorithm') ?? ''))
      throw new PskcError(`key derivation ${attr(method, 'Algorithm')} is not supported`);
    const params = child(method, 'PBKDF2-params');
    const salt = b64(text(child(child(params, 'Salt'), 'Specified')), 'PBKDF2 salt');
    const iterations = Number(text(child(params, 'IterationCount')));
    const length = Number(text(child(params, 'KeyLength')));
    const prfAlgo = attr(child(params, 'PRF'), 'Algorithm');
    const prf = prfAlgo ? PRF_ALGOS[prfAlgo] : 'sha1';
    if (!prf) throw new PskcError(`PBKDF2 PRF ${prfAlgo} is not supported`);
    if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000)
      throw new PskcError('PBKDF2 IterationCount is out of range');
    if (![16, 24, 32].includes(length)) throw new PskcError('PBKDF2 KeyLength must be 16, 24 or 32');
    key = crypto.pbkdf2Sync(o.password, salt, iterations, length, prf);
  } else {
    if (o.key === undefined) throw new PskcError('the file is encrypted with a pre-shared key: give --key (hex)');
    key = o.key;
  }
  let mac: Decryption['mac'] = null;
  const mm = child(root, 'MACMethod');
  if (mm) {
    const algo = MAC_ALGOS[attr(mm, 'Algorithm') ?? ''];
    if (!algo) throw new PskcError(`MAC algorithm ${attr(mm, 'Algorithm')} is not supported`);
    const mk = child(mm, 'MACKey');
    if (!mk) throw new PskcError('MACMethod without MACKey');
    mac = { algo, key: xmlencDecrypt(mk, key) };
  }
  return { key, mac };
}

/** A `Secret`/`Counter`/… element's value: PlainValue (base64 for the secret) or EncryptedValue (MAC checked). */
function dataValue(el: Node | undefined, dec: Decryption | null, what: string): Buffer | string | undefined {
  if (!el) return undefined;
  const plain = text(child(el, 'PlainValue'));
  if (plain !== undefined) return plain;
  const enc = child(el, 'EncryptedValue');
  if (!enc) return undefined;
  if (!dec) throw new PskcError(`${what} is encrypted but the file names no EncryptionKey`);
  if (dec.mac) {
    const given = text(child(el, 'ValueMAC'));
    if (given === undefined) throw new PskcError(`${what} has no ValueMAC`);
    const cipher = b64(text(child(child(enc, 'CipherData'), 'CipherValue')), 'CipherValue');
    const expected = crypto.createHmac(dec.mac.algo, dec.mac.key).update(cipher).digest();
    const got = b64(given, 'ValueMAC');
    if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected))
      throw new PskcError(`the MAC of ${what} does not match: wrong key, or the file was altered`);
  }
  return xmlencDecrypt(enc, dec.key);
}

function intValue(v: Buffer | string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') {
    if (!/^\d+$/.test(v)) throw new PskcError(`${what} is not a number`);
    return Number(v);
  }
  if (v.length > 8) throw new PskcError(`${what} is too large`);
  return Number(v.length === 0 ? 0n : BigInt(`0x${v.toString('hex')}`));
}

/** Parses a PSKC document into import plans (one per Key). Throws PskcError for a file that cannot be read at all. */
export function planPskc(xml: string, o: PskcOptions): ImportPlan[] {
  if (Buffer.byteLength(xml) > (o.maxBytes ?? MAX_BYTES)) throw new PskcError('the file is too large');
  if (/<!DOCTYPE/i.test(xml)) throw new PskcError('a PSKC file with a DOCTYPE is refused');
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    removeNSPrefix: true,
    parseTagValue: false,
    parseAttributeValue: false,
    processEntities: false,
    isArray: (name) => name === 'KeyPackage' || name === 'Key',
  });
  let doc: Node;
  try {
    doc = parser.parse(xml, true) as Node;
  } catch (err) {
    throw new PskcError(`not well-formed XML: ${(err as Error).message}`);
  }
  const root = child(doc, 'KeyContainer');
  if (!root) throw new PskcError('not a PSKC file (no KeyContainer)');
  const dec = containerKey(root, o);
  const plans: ImportPlan[] = [];
  for (const pkg of asArray(root.KeyPackage)) {
    for (const key of asArray(pkg.Key)) {
      const problems: string[] = [];
      const warnings: string[] = [];
      const algo = attr(key, 'Algorithm') ?? '';
      const kind = /[:#]hotp$/i.test(algo) ? 'hotp' : /[:#]totp$/i.test(algo) ? 'totp' : null;
      const serial = text(child(child(pkg, 'DeviceInfo'), 'SerialNo')) || attr(key, 'Id') || '';
      const plan = (token: NewToken | null): ImportPlan => ({ serial, type: kind ?? (algo || '(none)'), token, problems, warnings });
      if (!kind) {
        problems.push(`key algorithm ${algo || '(none)'} is not supported (HOTP and TOTP are)`);
        plans.push(plan(null));
        continue;
      }
      if (serial === '' || serial.length > COLUMN_LIMITS.tokens.serial) {
        problems.push(`the serial (DeviceInfo/SerialNo or Key Id) is empty or longer than ${COLUMN_LIMITS.tokens.serial} characters`);
        plans.push(plan(null));
        continue;
      }
      try {
        const fmt = child(child(key, 'AlgorithmParameters'), 'ResponseFormat');
        const digits = Number(attr(fmt, 'Length') ?? '6');
        const encoding = (attr(fmt, 'Encoding') ?? 'DECIMAL').toUpperCase();
        if (digits !== 6 && digits !== 8) throw new PskcError(`OTP length ${digits} is not supported (6 or 8)`);
        if (encoding !== 'DECIMAL') throw new PskcError(`response encoding ${encoding} is not supported`);
        const data = child(key, 'Data');
        const secretRaw = dataValue(child(data, 'Secret'), dec, 'the secret');
        if (secretRaw === undefined) throw new PskcError('the key has no secret');
        const secret = typeof secretRaw === 'string' ? b64(secretRaw, 'the secret') : secretRaw;
        if (typeof secretRaw !== 'string' && !dec?.mac)
          warnings.push('the file has no MACMethod: a wrong key would go unnoticed — check one OTP of this token');
        if (secret.length === 0 || secret.length > 256) throw new PskcError('the secret is empty or longer than 256 bytes');
        // RFC 6030 names no hash for HOTP/TOTP (SHA-1); vendors put e.g. `HMAC-SHA256` in AlgorithmParameters/Suite.
        const suite = (text(child(child(key, 'AlgorithmParameters'), 'Suite')) ?? '').toUpperCase().replace(/[^A-Z0-9]/g, '');
        const hashlib = suite.includes('SHA512') ? 'sha512' : suite.includes('SHA256') ? 'sha256' : 'sha1';
        const info: Record<string, string> = { hashlib, tokenkind: 'hardware' };
        let counter = 0;
        if (kind === 'hotp') counter = intValue(dataValue(child(data, 'Counter'), dec, 'the counter'), 'the counter') ?? 0;
        else {
          const step = intValue(dataValue(child(data, 'TimeInterval'), dec, 'the time interval'), 'the time interval') ?? 30;
          if (step < 1 || step > 3600) throw new PskcError(`time interval ${step} is not supported`);
          const t0 = intValue(dataValue(child(data, 'Time'), dec, 'the start time'), 'the start time') ?? 0;
          if (t0 !== 0) throw new PskcError('a TOTP start time other than 0 is not supported');
          info.timeStep = String(step);
          const drift = intValue(dataValue(child(data, 'TimeDrift'), dec, 'the time drift'), 'the time drift') ?? 0;
          if (drift !== 0) info.timeShift = String(drift * step);
        }
        const issuer = text(child(key, 'Issuer'));
        const manufacturer = text(child(child(pkg, 'DeviceInfo'), 'Manufacturer'));
        plans.push(
          plan({
            serial,
            type: kind,
            username: o.username,
            realm: o.username ? o.realm : null,
            active: true,
            rolloutState: '',
            pinHash: null,
            otpLen: digits,
            counter,
            maxFail: 10,
            description: [manufacturer, issuer].filter(Boolean).join(' / ').slice(0, COLUMN_LIMITS.tokens.description),
            info,
            secrets: { otpKey: secret.toString('hex') },
            rolloutExpiresAt: null,
          }),
        );
      } catch (err) {
        if (!(err instanceof PskcError)) throw err;
        problems.push(err.message);
        plans.push(plan(null));
      }
    }
  }
  return plans;
}
