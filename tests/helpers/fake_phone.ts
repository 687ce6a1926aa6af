/**
 * A fake authenticator app that behaves like the real ones on the wire (protocol.md §1–§5):
 * - `edumfa-next` (eduMFA authenticator-next, Expo/TS): JSON bodies, `decline` as a JSON number 0/1, standard base64
 *   SPKI key, millisecond timestamps, accepts an SPKI or PKCS#1 server key, `edumfa-push:` scheme only;
 * - `edumfa-flutter` (older eduMFA app): form bodies, `decline=1` only when declining, URL-safe base64 key,
 *   microsecond timestamps, poll query built without percent-encoding, PKCS#1-only parsing of the server key,
 *   rebuilds the signed URL with URI normalisation, enforces the TTL client-side;
 * - `privacyidea` (unsupported privacyIDEA app, legacy `push`): like flutter but `otpauth://pipush/`.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { base32Encode } from '../../tokens/base32.ts';
import type { Reply } from './test_app.ts';

export type AppStyle = 'edumfa-next' | 'edumfa-flutter' | 'privacyidea';

export interface PhoneKeyPair {
  readonly kind: 'rsa' | 'ec';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** A phone key pair (RSA keys default to 2048 bits in tests; the apps use 4096). */
export function makePhoneKey(kind: 'rsa' | 'ec' = 'rsa', bits = 2048): PhoneKeyPair {
  const pair =
    kind === 'rsa'
      ? crypto.generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 })
      : crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { kind, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

export interface PhoneHost {
  call(
    method: string,
    path: string,
    params?: Record<string, unknown>,
    opts?: { as?: 'form' | 'json' | 'multipart' | 'query'; headers?: Record<string, string> },
  ): Promise<Reply>;
  readonly clock: { now(): number };
}

export interface ScannedToken {
  readonly scheme: string;
  readonly label: string;
  readonly serial: string;
  readonly url: string;
  readonly ttlMinutes: number;
  readonly issuer: string;
  readonly enrollmentCredential: string;
  readonly sslverify: string;
  readonly pin: boolean;
  readonly image?: string;
  readonly params: Record<string, string>;
  readonly scannedAt: number;
}

export interface SmartphoneData {
  nonce: string;
  question: string;
  serial: string;
  title: string;
  sslverify: string;
  url: string;
  /** privacyIDEA's presence check (legacy push, privacyIDEA Authenticator ≥ 4.4): comma-separated options. */
  require_presence?: string;
  version?: string;
  signature: string;
}

export class FakePhone {
  readonly style: AppStyle;
  readonly key: PhoneKeyPair;
  readonly host: PhoneHost;
  fbToken: string;
  token: ScannedToken | null = null;
  serverKey: KeyObject | null = null;

  constructor(host: PhoneHost, style: AppStyle, key: PhoneKeyPair, fbToken = `fcm-${style}-device`) {
    this.host = host;
    this.style = style;
    this.key = key;
    this.fbToken = fbToken;
  }

  private get json(): boolean {
    return this.style === 'edumfa-next';
  }

  /** Parses the QR URL as the app does; throws what the app would refuse. */
  scan(qrUrl: string): ScannedToken {
    const m = /^([a-z-]+):\/\/([a-z]+)\/([^?]*)\?(.*)$/.exec(qrUrl);
    if (!m) throw new Error(`unparseable push URL ${qrUrl}`);
    const [, scheme, host, path, query] = m as unknown as [string, string, string, string, string];
    const wanted = this.style === 'privacyidea' ? ['otpauth', 'pipush'] : ['edumfa-push', 'edumfa'];
    if (scheme !== wanted[0] || host !== wanted[1]) throw new Error(`${this.style} does not accept ${scheme}://${host}`);
    const params: Record<string, string> = {};
    for (const part of query.split('&')) {
      const i = part.indexOf('=');
      params[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1));
    }
    if (params.v !== '1') throw new Error(`unsupported version v=${params.v}`);
    const label = decodeURIComponent(path);
    const scanned: ScannedToken = {
      scheme,
      label,
      params,
      serial: params.serial!,
      url: params.url!,
      ttlMinutes: Number(params.ttl ?? '10'),
      issuer: params.issuer ?? '',
      enrollmentCredential: params.enrollment_credential!,
      sslverify: params.sslverify ?? '1',
      pin: params.pin === 'True',
      image: this.style === 'edumfa-next' ? params.imageUri : params.image,
      scannedAt: this.host.clock.now(),
    };
    this.token = scanned;
    return scanned;
  }

  /** SPKI DER base64 as the app sends it (flutter/privacyidea: URL-safe alphabet). */
  publicKeyText(): string {
    const b64 = (this.key.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
    return this.json ? b64 : b64.replace(/\+/g, '-').replace(/\//g, '_');
  }

  sign(text: string): string {
    const data = Buffer.from(text, 'utf8');
    const sig =
      this.key.kind === 'rsa'
        ? crypto.sign('sha256', data, this.key.privateKey)
        : crypto.sign('sha256', data, { key: this.key.privateKey, dsaEncoding: 'der' });
    return base32Encode(sig);
  }

  /** ISO timestamp as the app formats it. */
  timestamp(): string {
    const iso = new Date(this.host.clock.now()).toISOString();
    return this.json ? iso : iso.replace(/Z$/, '000Z');
  }

  private path(url: string): string {
    return new URL(url).pathname;
  }

  private post(url: string, params: Record<string, unknown>): Promise<Reply> {
    return this.host.call('POST', this.path(url), params, {
      as: this.json ? 'json' : 'form',
      headers: { 'user-agent': this.json ? 'eduMFA-next/1.0' : 'eduMFA-App/1.0 android/14' },
    });
  }

  /** Enrollment step 2; on success stores the server key (flutter: PKCS#1 only). */
  async enroll(opts: { fbToken?: string } = {}): Promise<Reply> {
    const t = this.requireToken();
    if (this.style !== 'edumfa-next' && this.host.clock.now() > t.scannedAt + t.ttlMinutes * 60_000)
      throw new Error('token expired (app-side TTL)');
    const reply = await this.post(t.url, {
      enrollment_credential: t.enrollmentCredential,
      serial: t.serial,
      fbtoken: opts.fbToken ?? this.fbToken,
      pubkey: this.publicKeyText(),
    });
    if (reply.status === 200) this.serverKey = this.parseServerKey(String(reply.body?.detail?.public_key ?? ''));
    return reply;
  }

  parseServerKey(text: string): KeyObject {
    const der = Buffer.from(text.replace(/\n/g, ''), 'base64');
    if (this.style !== 'edumfa-next') return crypto.createPublicKey({ key: der, format: 'der', type: 'pkcs1' });
    try {
      return crypto.createPublicKey({ key: der, format: 'der', type: 'spki' });
    } catch {
      return crypto.createPublicKey({ key: der, format: 'der', type: 'pkcs1' });
    }
  }

  /** Checks the server's signature over the push data as the app does. */
  verifyPushData(d: SmartphoneData): boolean {
    if (!this.serverKey) throw new Error('not enrolled');
    for (const k of ['nonce', 'question', 'serial', 'title', 'sslverify', 'url', 'signature'] as const) {
      if (typeof d[k] !== 'string') return false;
    }
    const url = this.json ? d.url : new URL(d.url).toString();
    const ssl = d.sslverify === '1' ? '1' : '0';
    // The privacyIDEA app verifies `…|sslverify|<options>` when the push carries require_presence.
    const parts = [d.nonce, url, d.serial, d.question, d.title, ssl];
    if (typeof d.require_presence === 'string') parts.push(d.require_presence);
    const text = parts.join('|');
    let sig: Buffer;
    try {
      sig = base32ToBuffer(d.signature);
    } catch {
      return false;
    }
    return crypto.verify('sha256', Buffer.from(text, 'utf8'), this.serverKey, sig);
  }

  /**
   * Accept or decline a challenge; posts to the URL in the push data. `presenceAnswer`: the option chosen for a
   * presence check, sent as `presence_answer`; `declineReason`: privacyIDEA's newer apps send a decline reason. Both
   * are signed after the rest, in the privacyIDEA app's order: `nonce|serial[|decline[|reason]][|presence_answer]`.
   */
  answer(
    d: SmartphoneData,
    opts: { decline?: boolean; signature?: string; presenceAnswer?: string; declineReason?: string } = {},
  ): Promise<Reply> {
    const decline = opts.decline === true;
    const reason = decline && opts.declineReason ? `|${opts.declineReason}` : '';
    const base = decline ? `${d.nonce}|${d.serial}|decline${reason}` : `${d.nonce}|${d.serial}`;
    const signature = opts.signature ?? this.sign(opts.presenceAnswer ? `${base}|${opts.presenceAnswer}` : base);
    const params: Record<string, unknown> = { nonce: d.nonce, serial: d.serial, signature };
    if (opts.presenceAnswer) params.presence_answer = opts.presenceAnswer;
    if (this.json) params.decline = decline ? 1 : 0;
    else if (decline) params.decline = '1';
    if (reason) params.decline_reason = opts.declineReason;
    return this.post(d.url, params);
  }

  /** GET poll for open challenges (flutter: query string without percent-encoding). */
  poll(opts: { timestamp?: string; signature?: string; serial?: string } = {}): Promise<Reply> {
    const t = this.requireToken();
    const serial = opts.serial ?? t.serial;
    const timestamp = opts.timestamp ?? this.timestamp();
    const signature = opts.signature ?? this.sign(`${serial}|${timestamp}`);
    const params = { serial, timestamp, signature };
    if (this.json) return this.host.call('GET', this.path(t.url), params);
    const raw = Object.entries(params)
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    return this.host.call('GET', `${this.path(t.url)}?${raw}`, {}, { headers: { 'user-agent': 'eduMFA-App/1.0 android/14' } });
  }

  /** New Firebase token (only the flutter apps send it). */
  updateFirebaseToken(newToken: string, opts: { timestamp?: string; signature?: string } = {}): Promise<Reply> {
    const t = this.requireToken();
    const timestamp = opts.timestamp ?? this.timestamp();
    const signature = opts.signature ?? this.sign(`${newToken}|${t.serial}|${timestamp}`);
    return this.post(t.url, { new_fb_token: newToken, serial: t.serial, timestamp, signature });
  }

  private requireToken(): ScannedToken {
    if (!this.token) throw new Error('no token scanned');
    return this.token;
  }
}

function base32ToBuffer(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const body = text.replace(/=+$/, '');
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const c of body) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error('bad base32');
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((buffer >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}
