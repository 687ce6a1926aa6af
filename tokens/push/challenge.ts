/**
 * Push challenges (protocol.md §3): the nonce, the signed smartphone data the app verifies byte for byte, the FCM
 * message, and the delivery decision (poll only / channel / polling policy when the channel fails).
 */
import crypto, { type KeyObject } from 'node:crypto';
import type { ActionValue } from '../../policies/types.ts';
import { base32Encode } from '../base32.ts';
import type { ChallengeRecord, ChallengeSpec, DeliveryResult, PushProof, TokenContext, TokenRecord } from '../types.ts';
import { PROOF_TEXTS, proofData, proofOf } from './proof.ts';
import { LONGPOLL, POLL_ONLY, type PushMessage } from '../../core/push_channel.ts';
import { deviceSealKey, isDeviceV2 } from './device.ts';
import { pendingRequest, sealRequest } from './device_requests.ts';
import { sslVerifyValue } from './enrollment.ts';
import { serverPrivateKey, signText, signTextAsync } from './signatures.ts';
import {
  actionNames,
  DEVICE_ACTIONS,
  DEFAULT_PUSH_MESSAGE,
  DEFAULT_PUSH_QUESTION,
  DEFAULT_PUSH_TITLE,
  infoKeys,
  POLLING_HINT,
  SECRET_KEYS,
  type PushVariant,
} from './variants.ts';

/** Session marker of the challenge created for enrollment via multichallenge (no push is sent for it). */
export const ENROLLMENT_SESSION = 'enrollment';
/** FCM / APNs lifetime of a notification (eduMFA's hard-coded 120 s, independent of the challenge validity). */
const NOTIFICATION_TTL_SECONDS = 120;

/** 20 random bytes as base32 without padding: 32 characters `A–Z2–7`. */
export function newNonce(): string {
  return base32Encode(crypto.randomBytes(20), { padding: false });
}

/**
 * A push challenge: nonce, message, and the smartphone data signed once, now, on libuv's thread pool, stored in the
 * challenge row (`data`) — the FCM push sends it and the phone's poll returns it as stored, so a poll signs nothing.
 * The texts are those of this login (authentication policies matched with the user, as for the FCM push in eduMFA).
 * Nothing is signed for a token without a server key or registration URL (nothing could be sent or polled).
 *
 * A proof (tokens/push/proof.ts) changes the texts and is stored with the row: `match` adds the code to the login's
 * message and to the question; `login_code` puts the code in the question only and makes the challenge interactive
 * (the user types it at the login); `presence` names the right option in the message and sends the options to the
 * privacyIDEA app (`require_presence`, `version: "2"`, appended to the signed text).
 */
export async function createPushChallenge(
  v: PushVariant,
  token: TokenRecord,
  ctx: TokenContext,
  proof?: PushProof,
): Promise<ChallengeSpec> {
  const text = ctx.action<ActionValue>('challenge_text');
  const nonce = newNonce();
  const base = smartphoneTexts(v, token, ctx);
  const texts = base && proof ? withProof(base, proof) : base;
  const key = tokenServerKey(token);
  const data = texts && key ? presignedFields(await buildSmartphoneDataAsync(nonce, token.serial, texts, key)) : undefined;
  const message = typeof text === 'string' && text !== '' ? text : DEFAULT_PUSH_MESSAGE;
  const stored = { ...(data ?? {}), ...(proof ? proofData(proof) : {}) };
  const common = { nonce, ...(Object.keys(stored).length ? { data: stored } : {}) };
  switch (proof?.kind) {
    case 'match':
      return { ...common, message: `${message} ${PROOF_TEXTS.matchLogin(proof.code)}`, attributes: { hideResponseInput: true } };
    case 'login_code':
      return { ...common, message: PROOF_TEXTS.loginCodeMessage, clientMode: 'interactive', attributes: { hideResponseInput: false } };
    case 'presence':
      return {
        ...common,
        message: `${message} ${PROOF_TEXTS.presenceLogin(proof.answer)}`,
        presenceAnswer: proof.answer,
        attributes: { hideResponseInput: true },
      };
    default:
      return { ...common, message, attributes: { hideResponseInput: true } };
  }
}

/** The phone's texts for a stored challenge signed late (no presigned data): the policies' texts plus its proof. */
export function challengeTexts(v: PushVariant, token: TokenRecord, challenge: ChallengeRecord, ctx: TokenContext): SmartphoneTexts | null {
  const texts = smartphoneTexts(v, token, ctx);
  const proof = proofOf(challenge);
  return texts && proof ? withProof(texts, proof) : texts;
}

/** The phone's texts of a login with a proof. */
function withProof(t: SmartphoneTexts, proof: PushProof): SmartphoneTexts {
  switch (proof.kind) {
    case 'match':
      return { ...t, question: `${t.question} ${PROOF_TEXTS.matchPhone(proof.code)}` };
    case 'login_code':
      return { ...t, question: PROOF_TEXTS.loginCodePhone(proof.code) };
    case 'presence':
      return { ...t, requirePresence: proof.options.join(',') };
  }
}

/** The smartphone data (FCM `data` and each poll result item). All values are strings. */
export interface SmartphoneData {
  readonly nonce: string;
  readonly question: string;
  readonly serial: string;
  readonly title: string;
  readonly sslverify: '0' | '1';
  readonly url: string;
  /** privacyIDEA's presence check (legacy push only): the options, comma-separated, with `version: "2"`. */
  readonly require_presence?: string;
  readonly version?: '2';
  readonly signature: string;
}

export interface SmartphoneTexts {
  readonly question: string;
  readonly title: string;
  readonly sslVerify: '0' | '1';
  readonly url: string;
  /** The presence options, comma-separated (only with a `presence` proof). */
  readonly requirePresence?: string;
}

/**
 * The string the server signs: `nonce|url|serial|question|title|sslverify`, and `|<options>` for a presence check
 * (privacyIDEA ≥ 3.10 and its app sign and verify exactly this).
 */
export function smartphoneSignedText(nonce: string, serial: string, t: SmartphoneTexts): string {
  const parts = [nonce, t.url, serial, t.question, t.title, t.sslVerify];
  if (t.requirePresence !== undefined) parts.push(t.requirePresence);
  return parts.join('|');
}

export function buildSmartphoneData(nonce: string, serial: string, t: SmartphoneTexts, key: KeyObject | string): SmartphoneData {
  return smartphoneData(nonce, serial, t, signText(key, smartphoneSignedText(nonce, serial, t)));
}

/**
 * buildSmartphoneData with the RSA signature made on libuv's thread pool (`crypto.sign` with a callback): the same
 * bytes, but the 3–5 ms of an RSA-4096 signature neither hold the event loop nor leave the second core idle.
 */
export async function buildSmartphoneDataAsync(nonce: string, serial: string, t: SmartphoneTexts, key: KeyObject): Promise<SmartphoneData> {
  return smartphoneData(nonce, serial, t, await signTextAsync(key, smartphoneSignedText(nonce, serial, t)));
}

/** Field order as on the wire (eduMFA's dict order; the apps read them by name). */
function smartphoneData(nonce: string, serial: string, t: SmartphoneTexts, signature: string): SmartphoneData {
  return {
    nonce,
    question: t.question,
    serial,
    title: t.title,
    sslverify: t.sslVerify,
    url: t.url,
    ...(t.requirePresence !== undefined ? { require_presence: t.requirePresence, version: '2' as const } : {}),
    signature,
  };
}

/** Where the presigned smartphone data lives in a challenge row's `data` (nonce and serial are the row's own). */
const PRESIGNED_KEYS = {
  question: 'push_question',
  title: 'push_title',
  sslverify: 'push_sslverify',
  url: 'push_url',
  requirePresence: 'push_require_presence',
  signature: 'push_signature',
} as const;

function presignedFields(d: SmartphoneData): Record<string, string> {
  return {
    [PRESIGNED_KEYS.question]: d.question,
    [PRESIGNED_KEYS.title]: d.title,
    [PRESIGNED_KEYS.sslverify]: d.sslverify,
    [PRESIGNED_KEYS.url]: d.url,
    ...(d.require_presence !== undefined ? { [PRESIGNED_KEYS.requirePresence]: d.require_presence } : {}),
    [PRESIGNED_KEYS.signature]: d.signature,
  };
}

/** The smartphone data signed when the challenge was created, or null for a row without it. */
export function presignedSmartphoneData(challenge: ChallengeRecord): SmartphoneData | null {
  const d = challenge.data;
  const question = d[PRESIGNED_KEYS.question];
  const title = d[PRESIGNED_KEYS.title];
  const sslVerify = d[PRESIGNED_KEYS.sslverify];
  const url = d[PRESIGNED_KEYS.url];
  const signature = d[PRESIGNED_KEYS.signature];
  if (question === undefined || title === undefined || url === undefined || signature === undefined) return null;
  if (sslVerify !== '0' && sslVerify !== '1') return null;
  const requirePresence = d[PRESIGNED_KEYS.requirePresence];
  return smartphoneData(
    challenge.nonce,
    challenge.serial,
    { question, title, sslVerify, url, ...(requirePresence !== undefined ? { requirePresence } : {}) },
    signature,
  );
}

/**
 * Texts for the phone from the authentication policies (and the enrollment policy for the URL), as resolved in
 * `ctx` — with the user for a login, without a user for the phone's poll. Null when no registration URL is known.
 */
export function smartphoneTexts(v: PushVariant, token: TokenRecord, ctx: TokenContext): SmartphoneTexts | null {
  const n = actionNames(v);
  const str = (name: string, scope: 'authentication' | 'enrollment', fallback: string | undefined): string | undefined => {
    const raw = ctx.action<ActionValue>(name, scope);
    return typeof raw === 'string' || typeof raw === 'number' ? String(raw) : fallback;
  };
  const url = str(n.registrationUrl, 'enrollment', undefined)?.trim() || token.info[infoKeys(v).registrationUrl];
  if (!url) return null;
  return {
    question: str(n.textOnMobile, 'authentication', DEFAULT_PUSH_QUESTION)!,
    title: str(n.titleOnMobile, 'authentication', DEFAULT_PUSH_TITLE)!,
    sslVerify: sslVerifyValue(ctx.action<ActionValue>(n.sslVerify, 'authentication')),
    url,
  };
}

/**
 * Parsed server keys by serial, each with the SHA-256 of the PEM it was parsed from (a re-enrolled token's new key is
 * never mistaken for the old one): parsing the PEM for every signature made each RSA-4096 signature (every challenge
 * sent, every open challenge in a poll) about a third slower. Bounded; the least recently used entry goes first.
 */
const SERVER_KEY_CACHE_MAX = 4096;
const serverKeyCache = new Map<string, { readonly pemHash: string; readonly key: KeyObject }>();

/** The token's server private key, or null when the token was never completed. */
export function tokenServerKey(token: TokenRecord): KeyObject | null {
  const pem = token.secrets[SECRET_KEYS.privateKeyServer];
  if (!pem) return null;
  const pemHash = crypto.createHash('sha256').update(pem).digest('base64');
  const cached = serverKeyCache.get(token.serial);
  serverKeyCache.delete(token.serial); // re-inserted below as the most recently used
  if (cached?.pemHash === pemHash) {
    serverKeyCache.set(token.serial, cached);
    return cached.key;
  }
  let key: KeyObject;
  try {
    key = serverPrivateKey(pem);
  } catch {
    return null;
  }
  serverKeyCache.set(token.serial, { pemHash, key });
  if (serverKeyCache.size > SERVER_KEY_CACHE_MAX) serverKeyCache.delete(serverKeyCache.keys().next().value!);
  return key;
}

/** The push notification for smartphone data (protocol.md §3.4). */
export function pushMessage(data: SmartphoneData, nowMs: number): PushMessage {
  return notificationMessage({ ...data }, { title: data.title, body: data.question }, nowMs);
}

function notificationMessage(data: Record<string, string>, text: { title: string; body: string }, nowMs: number): PushMessage {
  return {
    data,
    notification: { title: text.title, body: text.body },
    android: { priority: 'high', ttlMs: NOTIFICATION_TTL_SECONDS * 1000, analyticsLabel: 'AndroidPushToken' },
    apns: {
      headers: {
        'apns-priority': '10',
        'apns-push-type': 'alert',
        'apns-collapse-id': 'privacyidea.pushtoken',
        'apns-expiration': String(Math.floor(nowMs / 1000) + NOTIFICATION_TTL_SECONDS),
      },
      alert: { title: text.title, body: text.body },
      sound: 'default',
      category: 'PUSH_AUTHENTICATION',
      analyticsLabel: 'iOSPushToken',
    },
  };
}

/** What the notification of a v2 device shows: nothing of the login (Google and Apple see this text). */
export const DEVICE_WAKEUP_TEXT = { title: 'Sign-in request', body: 'Open the app to review a sign-in request.' } as const;

/**
 * The push for a v2 device (docs/device-protocol.md "Push wake-up"): the opaque request id and serial, and — with
 * `edupush_device_payload: encrypted` and a key to seal to — the request sealed to the device. Never the question,
 * the title, the code or the client address in clear.
 */
export function deviceWakeupMessage(token: TokenRecord, challenge: ChallengeRecord, ctx: TokenContext): PushMessage {
  const data: Record<string, string> = { pushgate: '2', serial: token.serial, id: challenge.nonce };
  const sealKey = ctx.action<string>(DEVICE_ACTIONS.payload, 'authentication') === 'encrypted' ? deviceSealKey(token.info) : null;
  const request = sealKey ? pendingRequest(challenge) : null;
  if (sealKey && request) data.sealed = sealRequest(request, sealKey).sealed;
  return notificationMessage(data, { ...DEVICE_WAKEUP_TEXT }, ctx.clock.now());
}

const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

/** `{p}_allow_polling` for this token: `allow`, `deny`, or `token` (tokeninfo `polling_allowed`, default allowed). */
export function pollingAllowed(v: PushVariant, token: TokenRecord, ctx: TokenContext): boolean {
  const policy = ctx.action<ActionValue>(actionNames(v).allowPolling, 'authentication') ?? 'allow';
  if (policy === 'deny') return false;
  if (policy === 'token') {
    const flag = token.info[infoKeys(v).pollingAllowed];
    return flag === undefined || !FALSE_WORDS.has(flag.trim().toLowerCase());
  }
  return true;
}

/**
 * Delivers a stored challenge: its presigned smartphone data (a row without it is signed now, off the event loop).
 * Poll only and enrollment challenges send nothing. When the channel fails (or the token has no device/key), the
 * message gets the polling hint; the challenge is withdrawn unless polling is allowed.
 */
export async function deliverPushChallenge(
  v: PushVariant,
  token: TokenRecord,
  challenge: ChallengeRecord,
  ctx: TokenContext,
): Promise<DeliveryResult> {
  const keys = infoKeys(v);
  const channel = token.info[keys.firebaseConfiguration];
  const device = isDeviceV2(token.info);
  // A v2 device's long-poll or SSE stream (on any node) learns of the request now; a push is only a wake-up.
  if (device && challenge.session !== ENROLLMENT_SESSION) ctx.push?.wakeDevice(token.serial);
  if (challenge.session === ENROLLMENT_SESSION || channel === POLL_ONLY || channel === LONGPOLL) return { delivered: true };
  let sent = false;
  const target = token.info[keys.firebaseToken] ?? '';
  const data = channel && target && ctx.push ? (presignedSmartphoneData(challenge) ?? (await signNow(v, token, challenge, ctx))) : null;
  if (channel && target && data && ctx.push) {
    const message = device ? deviceWakeupMessage(token, challenge, ctx) : pushMessage(data, ctx.clock.now());
    const result = await ctx.push.send(channel, token, target, message);
    sent = result.ok;
  }
  if (sent) return { delivered: true };
  if (!pollingAllowed(v, token, ctx)) await ctx.push?.withdraw(challenge);
  return { delivered: false, messageSuffix: POLLING_HINT };
}

/** A row created without presigned data: sign it now, off the event loop (null when nothing can be signed). */
async function signNow(v: PushVariant, token: TokenRecord, challenge: ChallengeRecord, ctx: TokenContext): Promise<SmartphoneData | null> {
  const texts = challengeTexts(v, token, challenge, ctx);
  const key = tokenServerKey(token);
  return texts && key ? buildSmartphoneDataAsync(challenge.nonce, token.serial, texts, key) : null;
}
