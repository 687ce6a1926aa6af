/**
 * Push challenges (protocol.md §3): the nonce, the signed smartphone data the app verifies byte for byte, the FCM
 * message, and the delivery decision (poll only / channel / polling policy when the channel fails).
 */
import crypto, { type KeyObject } from 'node:crypto';
import type { ActionValue } from '../../policies/types.ts';
import { base32Encode } from '../base32.ts';
import type { ChallengeRecord, ChallengeSpec, DeliveryResult, TokenContext, TokenRecord } from '../types.ts';
import { POLL_ONLY, type PushMessage } from '../../core/push_channel.ts';
import { sslVerifyValue } from './enrollment.ts';
import { serverPrivateKey, signText, signTextAsync } from './signatures.ts';
import {
  actionNames,
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
 */
export async function createPushChallenge(v: PushVariant, token: TokenRecord, ctx: TokenContext): Promise<ChallengeSpec> {
  const text = ctx.action<ActionValue>('challenge_text');
  const nonce = newNonce();
  const texts = smartphoneTexts(v, token, ctx);
  const key = tokenServerKey(token);
  const data = texts && key ? presignedFields(await buildSmartphoneDataAsync(nonce, token.serial, texts, key)) : undefined;
  return {
    nonce,
    message: typeof text === 'string' && text !== '' ? text : DEFAULT_PUSH_MESSAGE,
    attributes: { hideResponseInput: true },
    ...(data ? { data } : {}),
  };
}

/** The smartphone data (FCM `data` and each poll result item). All values are strings. */
export interface SmartphoneData {
  readonly nonce: string;
  readonly question: string;
  readonly serial: string;
  readonly title: string;
  readonly sslverify: '0' | '1';
  readonly url: string;
  readonly signature: string;
}

export interface SmartphoneTexts {
  readonly question: string;
  readonly title: string;
  readonly sslVerify: '0' | '1';
  readonly url: string;
}

/** The string the server signs: `nonce|url|serial|question|title|sslverify`. */
export function smartphoneSignedText(nonce: string, serial: string, t: SmartphoneTexts): string {
  return [nonce, t.url, serial, t.question, t.title, t.sslVerify].join('|');
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
  return { nonce, question: t.question, serial, title: t.title, sslverify: t.sslVerify, url: t.url, signature };
}

/** Where the presigned smartphone data lives in a challenge row's `data` (nonce and serial are the row's own). */
const PRESIGNED_KEYS = {
  question: 'push_question',
  title: 'push_title',
  sslverify: 'push_sslverify',
  url: 'push_url',
  signature: 'push_signature',
} as const;

function presignedFields(d: SmartphoneData): Record<string, string> {
  return {
    [PRESIGNED_KEYS.question]: d.question,
    [PRESIGNED_KEYS.title]: d.title,
    [PRESIGNED_KEYS.sslverify]: d.sslverify,
    [PRESIGNED_KEYS.url]: d.url,
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
  return smartphoneData(challenge.nonce, challenge.serial, { question, title, sslVerify, url }, signature);
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
  return {
    data: { ...data },
    notification: { title: data.title, body: data.question },
    android: { priority: 'high', ttlMs: NOTIFICATION_TTL_SECONDS * 1000, analyticsLabel: 'AndroidPushToken' },
    apns: {
      headers: {
        'apns-priority': '10',
        'apns-push-type': 'alert',
        'apns-collapse-id': 'privacyidea.pushtoken',
        'apns-expiration': String(Math.floor(nowMs / 1000) + NOTIFICATION_TTL_SECONDS),
      },
      alert: { title: data.title, body: data.question },
      sound: 'default',
      category: 'PUSH_AUTHENTICATION',
      analyticsLabel: 'iOSPushToken',
    },
  };
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
  if (challenge.session === ENROLLMENT_SESSION || channel === POLL_ONLY) return { delivered: true };
  let sent = false;
  const target = token.info[keys.firebaseToken] ?? '';
  const data = channel && target && ctx.push ? (presignedSmartphoneData(challenge) ?? (await signNow(v, token, challenge, ctx))) : null;
  if (channel && target && data && ctx.push) {
    const result = await ctx.push.send(channel, token, target, pushMessage(data, ctx.clock.now()));
    sent = result.ok;
  }
  if (sent) return { delivered: true };
  if (!pollingAllowed(v, token, ctx)) await ctx.push?.withdraw(challenge);
  return { delivered: false, messageSuffix: POLLING_HINT };
}

/** A row created without presigned data: sign it now, off the event loop (null when nothing can be signed). */
async function signNow(v: PushVariant, token: TokenRecord, challenge: ChallengeRecord, ctx: TokenContext): Promise<SmartphoneData | null> {
  const texts = smartphoneTexts(v, token, ctx);
  const key = tokenServerKey(token);
  return texts && key ? buildSmartphoneDataAsync(challenge.nonce, token.serial, texts, key) : null;
}
