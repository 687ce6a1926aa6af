/**
 * The reference device client of the open device protocol v2 (docs/device-protocol.md): a desktop authenticator and
 * the conformance kit for app developers. It speaks HTTP to a pushgate server (it never opens the database) and keeps
 * its keys in a store file (JSON, mode 0600). `pushgate device …` (cli/commands/device.ts) is its command line.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEVICE_URL_PARAM,
  openSealed,
  signDeviceText,
  signedText,
  spkiBase64,
  verifyDeviceText,
  type AuthMode,
  type DeviceKeyType,
} from '../tokens/push/device.ts';

export class DeviceClientError extends Error {}

export interface StoredDevice {
  readonly serial: string;
  /** The server's base URL (the registration URL without `/ttype/edupush`). */
  readonly server: string;
  readonly label: string;
  readonly issuer: string;
  readonly key_type: DeviceKeyType;
  readonly auth_mode: AuthMode;
  /** PKCS#8 PEM. */
  readonly private_key: string;
  /** Ed25519 devices: the P-256 key payloads are sealed to (PKCS#8 PEM). */
  readonly enc_private_key?: string;
  /** The server's identity key (discovery), SPKI base64: pinned at enrollment. */
  readonly server_key: string;
  readonly enrolled_at: string;
}

export interface DeviceStore {
  readonly version: 1;
  readonly devices: StoredDevice[];
}

/** `$XDG_CONFIG_HOME/pushgate/device.json`, else `~/.config/pushgate/device.json` (Windows: %APPDATA%). */
export function defaultStorePath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const base = env.XDG_CONFIG_HOME || (process.platform === 'win32' && env.APPDATA) || path.join(os.homedir(), '.config');
  return path.join(base, 'pushgate', 'device.json');
}

export function readStore(file: string): DeviceStore {
  if (!fs.existsSync(file)) return { version: 1, devices: [] };
  const mode = fs.statSync(file).mode & 0o077;
  if (mode !== 0 && process.platform !== 'win32')
    throw new DeviceClientError(`${file} is readable by others (mode ${(fs.statSync(file).mode & 0o777).toString(8)}): chmod 600 it`);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as DeviceStore;
  if (doc?.version !== 1 || !Array.isArray(doc.devices)) throw new DeviceClientError(`${file} is not a pushgate device store`);
  return doc;
}

/** Writes the store atomically (a temporary file, created 0600, renamed over the old one). */
export function writeStore(file: string, store: DeviceStore): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(store, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, file);
}

/** What an edupush enrollment URL (`/token/init`, `pushgate token enroll`) holds for a device. */
export interface EnrollmentUrl {
  readonly label: string;
  readonly issuer: string;
  readonly serial: string;
  readonly enrollmentCredential: string;
  readonly registrationUrl: string;
  readonly server: string;
  /** `pushgate=2` was present: the server offered v2 for this token. */
  readonly offersV2: boolean;
}

export function parseEnrollmentUrl(text: string): EnrollmentUrl {
  let u: URL;
  try {
    u = new URL(text.trim());
  } catch {
    throw new DeviceClientError('not a URL');
  }
  if (u.protocol !== 'edumfa-push:') throw new DeviceClientError(`not an edupush enrollment URL (scheme ${u.protocol})`);
  const get = (name: string) => {
    const v = u.searchParams.get(name);
    if (!v) throw new DeviceClientError(`the enrollment URL has no ${name}`);
    return v;
  };
  const registrationUrl = get('url');
  let reg: URL;
  try {
    reg = new URL(registrationUrl);
  } catch {
    throw new DeviceClientError('the enrollment URL has an invalid url parameter');
  }
  if (reg.protocol !== 'https:' && reg.protocol !== 'http:') throw new DeviceClientError('the registration URL must be http(s)');
  const server = registrationUrl.replace(/\/ttype\/edupush\/?$/i, '').replace(/\/+$/, '');
  return {
    label: decodeURIComponent(u.pathname.replace(/^\/+/, '')),
    issuer: u.searchParams.get('issuer') ?? '',
    serial: get('serial'),
    enrollmentCredential: get('enrollment_credential'),
    registrationUrl,
    server,
    offersV2: u.searchParams.get(DEVICE_URL_PARAM) === '2',
  };
}

/** The request a device shows: the contract of `device listen --json`. */
export interface ShownRequest {
  readonly id: string;
  readonly serial: string;
  readonly question: string;
  readonly title: string;
  readonly code: string | null;
  readonly expires_at: number;
}

interface WireRequest {
  readonly id: string;
  readonly serial: string;
  readonly expires_at: number;
  readonly question?: string;
  readonly title?: string;
  readonly code?: string | null;
  readonly sealed?: string;
}

interface Envelope<T> {
  readonly time?: number;
  readonly result: { readonly status: boolean; readonly value?: T; readonly error?: { code: number; message: string } };
  readonly detail?: Record<string, unknown> | null;
}

/** Per call: how the client talks HTTP. `signal` ends long-polls and streams. */
export interface ClientOptions {
  readonly signal?: AbortSignal;
  readonly fetch?: typeof fetch;
}

async function call<T>(
  o: ClientOptions,
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Envelope<T> | null; headers: Headers }> {
  const res = await (o.fetch ?? fetch)(url, { ...init, signal: o.signal });
  const text = await res.text();
  let body: Envelope<T> | null = null;
  if (text) {
    try {
      body = JSON.parse(text) as Envelope<T>;
    } catch {
      throw new DeviceClientError(`${url}: HTTP ${res.status}, not JSON`);
    }
  }
  return { status: res.status, body, headers: res.headers };
}

const failure = (what: string, status: number, body: Envelope<unknown> | null) =>
  new DeviceClientError(`${what}: HTTP ${status}${body?.result?.error ? ` — ${body.result.error.message}` : ''}`);

interface Discovery {
  readonly accepted_keys: Record<string, { key_length: number[] }>;
  readonly authentication_mode: AuthMode;
  readonly server_key: { key_data: string };
  readonly signed_nonce?: string;
  readonly versions: string[];
}

/**
 * Discovery with a fresh nonce: the server must sign it with the key it advertises (and, after enrollment, with the
 * key pinned then). Returns the discovery and the server clock's offset to this one (request timestamps use it).
 */
export async function discover(server: string, o: ClientOptions, pinned?: string): Promise<{ info: Discovery; offsetMs: number }> {
  const nonce = crypto.randomBytes(18).toString('base64url');
  const before = Date.now();
  const r = await call<Discovery>(o, `${server}/.well-known/pushgate?nonce=${nonce}`);
  if (r.status !== 200 || !r.body?.result.value) throw failure('discovery', r.status, r.body);
  const info = r.body.result.value;
  if (!info.versions.includes('2')) throw new DeviceClientError('the server does not speak the device protocol v2');
  const key = crypto.createPublicKey({ key: Buffer.from(info.server_key.key_data, 'base64'), format: 'der', type: 'spki' });
  if (!info.signed_nonce || !verifyDeviceText(key, signedText.nonce(nonce), info.signed_nonce))
    throw new DeviceClientError('the server did not prove its identity (nonce signature)');
  if (pinned && pinned !== info.server_key.key_data)
    throw new DeviceClientError('the server key differs from the one pinned at enrollment');
  const serverNow = (r.body.time ?? before / 1000) * 1000;
  return { info, offsetMs: Math.round(serverNow - (before + Date.now()) / 2) };
}

function newDeviceKey(type: DeviceKeyType, rsaBits: number): crypto.KeyPairKeyObjectResult {
  if (type === 'rsa') return crypto.generateKeyPairSync('rsa', { modulusLength: rsaBits, publicExponent: 0x10001 });
  if (type === 'ec') return crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return crypto.generateKeyPairSync('ed25519');
}

const pem = (k: KeyObject) => k.export({ format: 'pem', type: 'pkcs8' }).toString();

/** Enrolls a new v2 device from an enrollment URL; returns the device to store. */
export async function enrollDevice(
  urlText: string,
  opts: { keyType: DeviceKeyType; rsaBits: number; authMode?: AuthMode; fbToken?: string },
  o: ClientOptions,
): Promise<StoredDevice> {
  const e = parseEnrollmentUrl(urlText);
  const { info } = await discover(e.server, o);
  const accepted = info.accepted_keys[opts.keyType];
  const bits = opts.keyType === 'rsa' ? opts.rsaBits : 256;
  if (!accepted?.key_length.includes(bits)) throw new DeviceClientError(`the server does not accept ${opts.keyType} keys of ${bits} bits`);
  const authMode = opts.authMode ?? info.authentication_mode;
  const pair = newDeviceKey(opts.keyType, opts.rsaBits);
  const enc = opts.keyType === 'ed25519' ? crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : null;
  const pubkey = spkiBase64(pair.publicKey);
  const encPubkey = enc ? spkiBase64(enc.publicKey) : '';
  const fbToken = opts.fbToken ?? '';
  const signature = signDeviceText(
    pair.privateKey,
    signedText.enroll(e.serial, e.enrollmentCredential, pubkey, authMode, fbToken, encPubkey),
  );
  const r = await call<boolean>(o, `${e.server}/device/v2/enroll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      serial: e.serial,
      enrollment_credential: e.enrollmentCredential,
      pubkey,
      auth_mode: authMode,
      fbtoken: fbToken,
      ...(encPubkey ? { enc_pubkey: encPubkey } : {}),
      signature,
    }),
  });
  if (r.status !== 200 || r.body?.result.status !== true) throw failure('enrollment', r.status, r.body);
  return {
    serial: e.serial,
    server: e.server,
    label: e.label,
    issuer: e.issuer,
    key_type: opts.keyType,
    auth_mode: authMode,
    private_key: pem(pair.privateKey),
    ...(enc ? { enc_private_key: pem(enc.privateKey) } : {}),
    server_key: info.server_key.key_data,
    enrolled_at: new Date().toISOString(),
  };
}

/** The `Authorization` header of a device request at `path` (timestamps on the server's clock). */
export function deviceAuthorization(d: StoredDevice, method: string, pathname: string, offsetMs: number): string {
  const timestamp = String(Date.now() + offsetMs);
  const signature = signDeviceText(crypto.createPrivateKey(d.private_key), signedText.request(method, pathname, d.serial, timestamp));
  return `PushGate-Device serial="${d.serial}", timestamp="${timestamp}", signature="${signature}"`;
}

/** A wire request as shown: opened with the device's key when it came sealed. */
export function showRequest(d: StoredDevice, w: WireRequest): ShownRequest {
  const full = w.sealed
    ? (JSON.parse(openSealed(crypto.createPrivateKey(d.enc_private_key ?? d.private_key), d.serial, w.sealed)) as WireRequest)
    : w;
  if (full.id !== w.id || full.serial !== d.serial) throw new DeviceClientError('a sealed request does not match its envelope');
  return {
    id: full.id,
    serial: full.serial,
    question: full.question ?? '',
    title: full.title ?? '',
    code: full.code ?? null,
    expires_at: full.expires_at,
  };
}

/** One long-poll: the current list when it differs from `etag` (or when `waitSeconds` is 0), else null (304). */
export async function pollOnce(
  d: StoredDevice,
  o: ClientOptions,
  offsetMs: number,
  etag: string | null,
  waitSeconds?: number,
): Promise<{ etag: string; requests: ShownRequest[] } | null> {
  const p = '/device/v2/challenges';
  const r = await call<WireRequest[]>(o, `${d.server}${p}${waitSeconds === undefined ? '' : `?wait=${waitSeconds}`}`, {
    headers: { authorization: deviceAuthorization(d, 'GET', p, offsetMs), ...(etag ? { 'if-none-match': etag } : {}) },
  });
  if (r.status === 304) return null;
  if (r.status !== 200 || !Array.isArray(r.body?.result.value)) throw failure('long-poll', r.status, r.body);
  return { etag: r.headers.get('etag') ?? '', requests: r.body.result.value.map((w) => showRequest(d, w)) };
}

/** Reads an SSE stream, calling `onList` for every `requests` event, until it ends. */
export async function streamOnce(
  d: StoredDevice,
  o: ClientOptions,
  offsetMs: number,
  lastEventId: string | null,
  onList: (etag: string, requests: ShownRequest[]) => boolean | undefined,
): Promise<string | null> {
  const p = '/device/v2/events';
  const res = await (o.fetch ?? fetch)(`${d.server}${p}`, {
    headers: {
      authorization: deviceAuthorization(d, 'GET', p, offsetMs),
      accept: 'text/event-stream',
      ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
    },
    signal: o.signal,
  });
  if (res.status !== 200 || !res.body)
    throw failure('event stream', res.status, (await res.json().catch(() => null)) as Envelope<unknown> | null);
  const decoder = new TextDecoder();
  let buf = '';
  let last = lastEventId;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return last;
      buf += decoder.decode(value, { stream: true });
      for (let sep = buf.indexOf('\n\n'); sep >= 0; sep = buf.indexOf('\n\n')) {
        const block = buf.slice(0, sep);
        buf = buf.slice(sep + 2);
        const fields = new Map<string, string>();
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const i = line.indexOf(':');
          if (i > 0) fields.set(line.slice(0, i), line.slice(i + 1).replace(/^ /, ''));
        }
        if (fields.get('event') !== 'requests') continue;
        last = fields.get('id') ?? last;
        const data = JSON.parse(fields.get('data') ?? '{}') as { requests?: WireRequest[] };
        if (
          onList(
            last ?? '',
            (data.requests ?? []).map((w) => showRequest(d, w)),
          )
        )
          return last;
      }
    }
  } finally {
    reader.cancel().catch(() => {}); // not awaited: after an abort undici may never settle it
  }
}

/** Approves or declines one request: the signed answer; true when the server took it (HTTP 200). */
export async function answer(
  d: StoredDevice,
  id: string,
  decision: 'accept' | 'decline',
  reason: string | undefined,
  o: ClientOptions,
): Promise<void> {
  const signature = signDeviceText(crypto.createPrivateKey(d.private_key), signedText.answer(id, d.serial, decision, reason ?? ''));
  const r = await call<boolean>(o, `${d.server}/device/v2/challenges/${encodeURIComponent(id)}/answer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ serial: d.serial, decision, ...(reason ? { reason } : {}), signature }),
  });
  if (r.status !== 200 || r.body?.result.status !== true) throw failure(decision === 'accept' ? 'approve' : 'decline', r.status, r.body);
}
