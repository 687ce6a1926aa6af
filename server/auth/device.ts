/**
 * The open device protocol v2 (docs/device-protocol.md): discovery, enrollment of a v2 device, request
 * authentication, the pending requests of a device, waiting for a change on the answer bus, and answers — which go
 * through the phone's answer algorithm (server/auth/smartphone.ts `answerChallenge`), so the push-fatigue settling,
 * the refused-answer rules and the audit are the same as for a v1 app.
 */
import type { Deps } from '../deps.ts';
import { AuthError, ParameterError, PolicyError, SignatureError, UnavailableError } from '../../core/errors.ts';
import { requestPolicies } from './context.ts';
import type { TokenRecord } from '../../tokens/types.ts';
import {
  ACCEPTED_KEYS,
  AUTH_MODES,
  DEVICE_INFO,
  DEVICE_PROTOCOL_VERSION,
  DeviceKeyError,
  deviceBusKey,
  type DeviceKeyCache,
  deviceSealKeyText,
  ed25519FromSeed,
  isDeviceV2,
  parseDeviceKey,
  sealingKey,
  parseEncryptionKey,
  REQUEST_WINDOW_MS,
  signDeviceText,
  signedText,
  spkiBase64,
  verifyDeviceText,
  type AuthMode,
} from '../../tokens/push/device.ts';
import { pendingRequest, requestsEtag, sealRequest, type PendingRequest, type SealedRequest } from '../../tokens/push/device_requests.ts';
import { ENROLLMENT_SESSION } from '../../tokens/push/challenge.ts';
import { checkEnrollmentCredential } from '../../tokens/push/enrollment.ts';
import { stripPemArmor } from '../../tokens/push/signatures.ts';
import { DEVICE_ACTIONS, EDUPUSH, infoKeys, SECRET_KEYS } from '../../tokens/push/variants.ts';
import type { AnswerListener } from './answers.ts';
import { answerChallenge, clientwaitToken, takeServerKey, storeCompletedEnrollment, type AnswerVerifier } from './smartphone.ts';

const CAPABILITIES = ['longpoll', 'sse', 'encrypted_payloads', 'matching', 'decline_reason'] as const;
const SEAL_SCHEMES = [
  { version: 1, name: 'ECDH-P256+HKDF-SHA256+AES-256-GCM', keys: ['ec', 'ed25519 (with enc_pubkey)'] },
  { version: 2, name: 'RSA-OAEP-SHA256+AES-256-GCM', keys: ['rsa'] },
] as const;

/** The server's identity key: Ed25519, derived from the secrets key, so every node of a cluster has the same one. */
function serverIdentity(deps: Deps) {
  return ed25519FromSeed(deps.box.derive('device-identity'));
}

const NONCE_RE = /^[A-Za-z0-9._~+/=-]{8,128}$/;

function checkNonce(nonce: string | undefined): string | undefined {
  if (nonce === undefined || nonce === '') return undefined;
  if (!NONCE_RE.test(nonce)) throw new ParameterError('nonce must be 8 to 128 characters of A–Z a–z 0–9 . _ ~ + / = -');
  return nonce;
}

/** The authentication mode the enrollment policy asks of the devices of `realm` (no realm: the policies without one). */
function authModeFor(deps: Deps, realm: string | undefined, client: string): AuthMode {
  const who = realm ? { user: { name: '', realm, resolver: '' }, client } : { client };
  return requestPolicies(deps, who).action<string>(DEVICE_ACTIONS.authMode, 'enrollment') === 'strict' ? 'strict' : 'lax';
}

/** `GET /.well-known/pushgate`: everything a device needs before it enrolls (no authentication). */
export function discovery(deps: Deps, q: { realm?: string; nonce?: string; client: string }) {
  const nonce = checkNonce(q.nonce);
  const id = serverIdentity(deps);
  const base = deps.config.server.publicUrl.replace(/\/+$/, '');
  const d = deps.config.device;
  return {
    protocol: 'pushgate-device',
    versions: ['1', DEVICE_PROTOCOL_VERSION],
    accepted_keys: ACCEPTED_KEYS,
    authentication_mode: authModeFor(deps, q.realm, q.client),
    accepts_nonce: true,
    server_key: { key_type: 'ed25519', key_length: 256, signature_algorithm: 'Ed25519', key_data: spkiBase64(id.publicKey) },
    ...(nonce ? { nonce, signed_nonce: signDeviceText(id.privateKey, signedText.nonce(nonce)) } : {}),
    capabilities: [...CAPABILITIES],
    encryption: SEAL_SCHEMES,
    endpoints: {
      enroll: `${base}/device/v2/enroll`,
      challenges: `${base}/device/v2/challenges`,
      events: `${base}/device/v2/events`,
      answer: `${base}/device/v2/challenges/{id}/answer`,
    },
    connection: {
      poll_seconds: d.pollSeconds,
      sse_keepalive_seconds: d.sseKeepaliveSeconds,
      sse_max_seconds: d.sseMaxSeconds,
      max_per_device: d.maxPerDevice,
    },
  };
}

/** `GET /pwless/info`: the same facts in PasswordLessAuth's information-flow shape. */
export function pwlessInfo(deps: Deps, q: { realm?: string; nonce?: string; client: string }) {
  const info = discovery(deps, q);
  return {
    success: true,
    code: 'success',
    settings: {
      accepted_keys: {
        rsa: { key_length: info.accepted_keys.rsa.key_length, signature_algorithm: info.accepted_keys.rsa.signature_algorithm },
        ec: { key_length: info.accepted_keys.ec.key_length, signature_algorithm: info.accepted_keys.ec.signature_algorithm },
        raw: { key_length: info.accepted_keys.ed25519.key_length, signature_algorithm: info.accepted_keys.ed25519.signature_algorithm },
      },
      authentication_mode: info.authentication_mode,
      accepts_nonce: true,
    },
    public_key: {
      key_data: info.server_key.key_data,
      key_type: 'raw',
      key_length: 256,
      signature_algorithm: 'Ed25519',
      certificate: null,
    },
    ...(info.signed_nonce ? { nonce: info.nonce, signed_nonce: info.signed_nonce } : {}),
  };
}

export interface DeviceEnrollment {
  readonly serial: string;
  readonly enrollmentCredential: string;
  readonly pubkey: string;
  readonly authMode: string;
  readonly fbToken: string;
  readonly encPubkey: string;
  readonly signature: string;
}

const NO_BAR = (name: string, value: string) => {
  if (value.includes('|')) throw new ParameterError(`${name} must not contain "|"`);
};

/**
 * `POST /device/v2/enroll`: completes an edupush token whose enrollment offered v2 (`edupush_device_protocol`), with a
 * device key of an accepted type, the claimed authentication mode (a `lax` device is refused where `strict` is
 * required), and a signature over the enrollment string that proves the device holds the key. One conditional
 * update `clientwait → enrolled`, as step 2 of v1.
 */
export async function enrollDevice(deps: Deps, e: DeviceEnrollment) {
  for (const [name, value] of Object.entries({ serial: e.serial, fbtoken: e.fbToken, auth_mode: e.authMode })) NO_BAR(name, value);
  const token = await clientwaitToken(deps, EDUPUSH, e.serial);
  if (token.info[DEVICE_INFO.offered] !== DEVICE_PROTOCOL_VERSION)
    throw new PolicyError('The device protocol v2 is not offered for this token (policy edupush_device_protocol).');
  checkEnrollmentCredential(token, e.enrollmentCredential);
  if (!AUTH_MODES.includes(e.authMode as AuthMode)) throw new ParameterError('auth_mode must be strict or lax');
  const authMode = e.authMode as AuthMode;
  if (token.info[DEVICE_INFO.requiredAuthMode] === 'strict' && authMode !== 'strict')
    throw new PolicyError('This server requires a strict device: biometrics before every signature (edupush_device_auth_mode).');
  let key: ReturnType<typeof parseDeviceKey>;
  try {
    key = parseDeviceKey(e.pubkey);
    if (e.encPubkey) parseEncryptionKey(e.encPubkey);
  } catch (err) {
    if (err instanceof DeviceKeyError) throw new ParameterError(`Invalid public key: ${err.message}`);
    throw err;
  }
  const text = signedText.enroll(e.serial, e.enrollmentCredential, e.pubkey, authMode, e.fbToken, e.encPubkey);
  if (!verifyDeviceText(key.key, text, e.signature)) throw new SignatureError();
  const serverKey = await takeServerKey(deps);
  const keys = infoKeys(EDUPUSH);
  const info: Record<string, string> = { ...token.info };
  delete info[keys.deviceStale];
  delete info[keys.publicKeySmartphone]; // a v2 device never speaks v1: no v1 poll or answer can verify
  Object.assign(info, {
    [keys.firebaseToken]: e.fbToken,
    [keys.publicKeyServer]: serverKey.publicPem,
    [DEVICE_INFO.protocol]: DEVICE_PROTOCOL_VERSION,
    [DEVICE_INFO.keyType]: key.type,
    [DEVICE_INFO.keyBits]: String(key.bits),
    [DEVICE_INFO.publicKey]: e.pubkey.trim(),
    [DEVICE_INFO.authMode]: authMode,
    ...(e.encPubkey ? { [DEVICE_INFO.encryptionKey]: e.encPubkey.trim() } : {}),
  });
  const secrets: Record<string, string> = { ...token.secrets };
  delete secrets[SECRET_KEYS.enrollmentCredential];
  secrets[SECRET_KEYS.privateKeyServer] = serverKey.privatePem;
  await storeCompletedEnrollment(deps, EDUPUSH, token, { info, secrets });
  deps.events.emit('device.enrolled', { serial: token.serial, keyType: key.type, authMode });
  return {
    serial: token.serial,
    rollout_state: 'enrolled' as const,
    protocol: DEVICE_PROTOCOL_VERSION,
    key_type: key.type,
    auth_mode: authMode,
    channel: info[keys.firebaseConfiguration] ?? '',
    public_key: stripPemArmor(serverKey.publicPem),
  };
}

/** The `Authorization: PushGate-Device serial="…", timestamp="…", signature="…"` of a device request. */
export interface DeviceAuth {
  readonly serial: string;
  readonly timestamp: string;
  readonly signature: string;
}

export function parseDeviceAuthorization(header: string | undefined): DeviceAuth {
  const m = /^PushGate-Device\s+(.+)$/i.exec(header?.trim() ?? '');
  if (!m) throw new AuthError('Authorization: PushGate-Device serial="…", timestamp="…", signature="…" is required.', 4033);
  const fields = new Map<string, string>();
  for (const part of m[1]!.matchAll(/([a-z]+)\s*=\s*"([^"]*)"/gi)) fields.set(part[1]!.toLowerCase(), part[2]!);
  const serial = fields.get('serial');
  const timestamp = fields.get('timestamp');
  const signature = fields.get('signature');
  if (!serial || !timestamp || !signature)
    throw new AuthError('The PushGate-Device authorization needs serial, timestamp and signature.', 4033);
  return { serial, timestamp, signature };
}

/** What a device request needs of its token once authenticated: no secrets, no keys, a few strings. */
export interface DeviceIdentity {
  readonly serial: string;
  readonly username: string | null;
  readonly realm: string | null;
  /** The key text payloads may be sealed to (`device_encryption_key`, else `device_public_key`). */
  readonly sealKeyText: string | null;
}

/**
 * Authenticates a device request: the timestamp (epoch ms) within ±60 s of the server clock, the token an enrolled,
 * active v2 device, the signature over `pushgate-v2|request|METHOD|path|serial|timestamp` with its key. Every
 * failure is the same 401 (nothing tells a prober whether a serial exists). The token is read without its secrets
 * and its key parsed once per key text (`keys`); the signature is verified on every request.
 */
export async function authenticateDevice(
  deps: Deps,
  keys: DeviceKeyCache,
  auth: DeviceAuth,
  method: string,
  path: string,
): Promise<DeviceIdentity> {
  const refused = () => new AuthError('The device request could not be authenticated.', 4034);
  if (!/^\d{1,15}$/.test(auth.timestamp) || Math.abs(deps.clock.now() - Number(auth.timestamp)) > REQUEST_WINDOW_MS) throw refused();
  const token = await deps.store.tokens.publicBySerial(auth.serial);
  if (!token || token.type !== EDUPUSH.type || token.rolloutState === 'clientwait' || !isDeviceV2(token.info) || !token.active)
    throw refused();
  const key = keys.get(token.info[DEVICE_INFO.publicKey] ?? '');
  if (!key || !verifyDeviceText(key.key, signedText.request(method, path, auth.serial, auth.timestamp), auth.signature)) throw refused();
  return {
    serial: token.serial,
    username: token.username,
    realm: token.realm,
    sealKeyText: deviceSealKeyText(token.info),
  };
}

function deviceKeyOf(token: TokenRecord) {
  try {
    return parseDeviceKey(token.info[DEVICE_INFO.publicKey] ?? '').key;
  } catch {
    return null;
  }
}

export interface DeviceRequests {
  readonly requests: ReadonlyArray<PendingRequest | SealedRequest>;
  readonly etag: string;
  /** When the first of them expires (the list changes then), or null. */
  readonly nextExpiry: number | null;
}

/** The open requests of a device, newest first (at most `push.poll_max_challenges`), sealed when the policy says so. */
export async function deviceRequests(deps: Deps, keys: DeviceKeyCache, device: DeviceIdentity): Promise<DeviceRequests> {
  const now = deps.clock.now();
  const rows = await deps.store.challenges.newestOpen(device.serial, now, deps.config.push.pollMaxChallenges, ENROLLMENT_SESSION);
  const plain = rows.map(pendingRequest).filter((r): r is PendingRequest => r !== null);
  let requests: ReadonlyArray<PendingRequest | SealedRequest> = plain;
  if (plain.length) {
    const rp = requestPolicies(
      deps,
      device.username && device.realm ? { user: { name: device.username, realm: device.realm, resolver: '' } } : {},
    );
    const seal =
      rp.action<string>(DEVICE_ACTIONS.payload, 'authentication') === 'encrypted' && device.sealKeyText
        ? sealingKey(keys.get(device.sealKeyText))
        : null;
    if (seal) requests = plain.map((r) => sealRequest(r, seal));
  }
  const nextExpiry = plain.length ? Math.min(...plain.map((r) => r.expires_at)) : null;
  return { requests, etag: requestsEtag(plain), nextExpiry };
}

/**
 * Listens for changes of a device's requests on the answer bus (a request created or answered on any node) from the
 * moment it is made — before the first read, so nothing that happens between a read and the wait is missed.
 */
export interface DeviceWatch {
  /** Resolves `changed` at the next notification (at once if one came since the last call), else `timeout`/`closed`. */
  next(timeoutMs: number): Promise<'changed' | 'timeout' | 'closed'>;
  close(): void;
}

export function watchDevice(deps: Deps, serial: string, signal: AbortSignal): DeviceWatch {
  let dirty = false;
  let closed = false;
  let wake: (() => void) | null = null;
  const listener: AnswerListener = {
    transactionId: deviceBusKey(serial),
    onAnswer() {
      dirty = true;
      wake?.();
    },
    onBusClosed() {
      closed = true;
      wake?.();
    },
  };
  const onAbort = () => {
    closed = true;
    wake?.();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  deps.answers.listen(listener);
  return {
    next(timeoutMs) {
      if (closed || signal.aborted) return Promise.resolve('closed');
      if (dirty) {
        dirty = false;
        return Promise.resolve('changed');
      }
      return new Promise((resolve) => {
        const cancel = deps.clock.schedule(Math.max(0, timeoutMs), () => {
          wake = null;
          resolve('timeout');
        });
        wake = () => {
          wake = null;
          cancel();
          if (closed) resolve('closed');
          else {
            dirty = false;
            resolve('changed');
          }
        };
      });
    },
    close() {
      signal.removeEventListener('abort', onAbort);
      deps.answers.unlisten(listener);
      wake?.();
    },
  };
}

/** Open long-polls and streams: per process and per device; beyond either limit a 503 with Retry-After. */
export interface DeviceConnections {
  acquire(serial: string): () => void;
  readonly open: number;
}

export function createDeviceConnections(limits: { maxConnections: number; maxPerDevice: number }): DeviceConnections {
  const perDevice = new Map<string, number>();
  let open = 0;
  return {
    get open() {
      return open;
    },
    acquire(serial) {
      const mine = perDevice.get(serial) ?? 0;
      if (open >= limits.maxConnections) throw new UnavailableError('Too many open device connections on this server; retry later.', 5);
      if (mine >= limits.maxPerDevice)
        throw new UnavailableError(`This device already holds ${mine} open connection(s); close one before opening another.`, 5);
      open++;
      perDevice.set(serial, mine + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        open--;
        const n = (perDevice.get(serial) ?? 1) - 1;
        if (n <= 0) perDevice.delete(serial);
        else perDevice.set(serial, n);
      };
    },
  };
}

/** v2 answers: `pushgate-v2|answer|<id>|<serial>|accept` or `…|decline|<reason>`, base64url, with the device key. */
const deviceAnswerVerifier: AnswerVerifier = (_v, token, req, reason) => {
  const key = deviceKeyOf(token);
  if (!key) return 'invalid';
  const text = signedText.answer(req.nonce, req.serial, req.decline ? 'decline' : 'accept', req.decline ? (reason ?? '') : '');
  return verifyDeviceText(key, text, req.signature) ? 'valid' : 'invalid';
};

export const MAX_DECLINE_REASON = 200;

/**
 * `POST /device/v2/challenges/{id}/answer`: approve or decline one pending request by a signed answer. The phone's
 * answer algorithm decides (one conditional update per challenge, push-fatigue settling, refused answers as 400).
 */
export async function answerDeviceRequest(
  deps: Deps,
  a: { serial: string; id: string; decision: string; reason?: string; signature: string },
) {
  if (a.decision !== 'accept' && a.decision !== 'decline') throw new ParameterError('decision must be accept or decline');
  if (a.reason !== undefined && a.reason.length > MAX_DECLINE_REASON)
    throw new ParameterError(`reason is longer than ${MAX_DECLINE_REASON} characters`);
  if (a.decision === 'accept' && a.reason) throw new ParameterError('a reason goes with a decline only');
  const token = await deps.store.tokens.bySerial(a.serial);
  if (token && token.type === EDUPUSH.type && !isDeviceV2(token.info)) throw new SignatureError();
  const decline = a.decision === 'decline';
  const result = await answerChallenge(
    deps,
    EDUPUSH,
    {
      kind: 'answerChallenge',
      serial: a.serial,
      nonce: a.id,
      signature: a.signature,
      decline,
      ...(decline && a.reason ? { declineReason: a.reason } : {}),
    },
    deviceAnswerVerifier,
  );
  if (result.kind !== 'answerChallenge') throw new Error('unexpected answer result');
  return result;
}
