/**
 * Push enrollment (protocol.md §1–§2).
 * Step 1 (`/token/init`, `pushgate token enroll`): enrollment credential, channel choice, the QR URL in eduMFA's
 * parameter order and Python `quote` encoding. Step 2 (the phone at `/ttype/<type>`): checks and the token patch;
 * persistence happens in server/auth/smartphone.ts.
 */
import crypto from 'node:crypto';
import type { ActionValue } from '../../policies/types.ts';
import { ParameterError, PolicyError } from '../../core/errors.ts';
import { isTrueParam, resolveLabel } from '../otp.ts';
import { qrDataUri } from '../qr.ts';
import type { EnrollBeginResult, EnrollInput, TokenContext, TokenRecord } from '../types.ts';
import { parsePhoneKey, PhoneKeyError, stripPemArmor, type ServerKeyPair } from './signatures.ts';
import { LONGPOLL, POLL_ONLY } from '../../core/push_channel.ts';
import { actionNames, DEFAULT_ROLLOUT_TTL_MINUTES, DEVICE_ACTIONS, infoKeys, SECRET_KEYS, type PushVariant } from './variants.ts';
import { DEVICE_INFO, DEVICE_PROTOCOL_VERSION, DEVICE_URL_PARAM } from './device.ts';

/** Python `urllib.parse.quote(s, safe='/')`: UTF-8, every byte outside `A–Z a–z 0–9 _ . - ~ /` as upper-case %XX. */
export function pyQuote(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%2F/g, '/');
}

export interface PushUrlParts {
  readonly label: string;
  readonly registrationUrl: string;
  readonly ttlMinutes: number;
  readonly issuer: string;
  readonly enrollmentCredential: string;
  readonly imageUrl?: string;
  readonly serial: string;
  readonly sslVerify: '0' | '1';
  readonly forceAppPin: boolean;
  /** The device protocol v2 is offered (`edupush_device_protocol`): `&pushgate=2` at the end. */
  readonly deviceProtocol?: boolean;
}

/**
 * `<prefix><label>?url=…&ttl=…&issuer=…&enrollment_credential=…[&image=…]&v=1&serial=…&sslverify=…[&pin=True][&pushgate=2]`.
 * `v` stays `1` when v2 is offered: the eduMFA apps refuse a `v` they do not know (and reserve `v=2` for their own
 * next format); they read the parameters they know by name and ignore any other, so `pushgate=2` is invisible to them.
 */
export function pushUrl(v: PushVariant, p: PushUrlParts): string {
  const q: Array<[string, string]> = [
    ['url', p.registrationUrl],
    ['ttl', String(p.ttlMinutes)],
    ['issuer', p.issuer],
    ['enrollment_credential', p.enrollmentCredential],
  ];
  if (p.imageUrl) q.push(['image', p.imageUrl]);
  q.push(['v', '1'], ['serial', p.serial], ['sslverify', p.sslVerify]);
  if (p.forceAppPin) q.push(['pin', 'True']);
  if (p.deviceProtocol) q.push([DEVICE_URL_PARAM, DEVICE_PROTOCOL_VERSION]);
  return `${v.uriPrefix}${pyQuote(p.label)}?${q.map(([k, val]) => `${k}=${pyQuote(val)}`).join('&')}`;
}

/** `0` stays `0`; anything else is `1` (eduMFA). */
export function sslVerifyValue(raw: ActionValue | undefined): '0' | '1' {
  return raw === '0' || raw === 0 || raw === false ? '0' : '1';
}

const stringAction = (ctx: TokenContext, name: string, scope?: 'enrollment' | 'authentication'): string | undefined => {
  const v = ctx.action<ActionValue>(name, scope);
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
};

/** Registration URL: the policy, else `<server.public_url>/ttype/<type>`. */
export function defaultRegistrationUrl(v: PushVariant, publicUrl: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/ttype/${v.type}`;
}

/** Step 1. */
export async function pushEnrollBegin(v: PushVariant, input: EnrollInput, ctx: TokenContext): Promise<EnrollBeginResult> {
  const names = actionNames(v);
  const keys = infoKeys(v);
  for (const p of ['otpkey', 'pubkey', 'fbtoken']) {
    if (input.params[p] !== undefined && input.params[p] !== '') {
      throw new ParameterError('Invalid Parameters. Either provide (genkey) or (serial, fbtoken, pubkey).');
    }
  }
  if (input.params['genkey'] !== undefined && input.params['genkey'] !== '' && !isTrueParam(input.params['genkey'])) {
    throw new ParameterError('Invalid Parameters. Either provide (genkey) or (serial, fbtoken, pubkey).');
  }
  const channel = stringAction(ctx, names.firebaseConfiguration, 'enrollment')?.trim();
  if (!channel) throw new PolicyError(`Missing enrollment policy for push token: ${names.firebaseConfiguration}`);
  if (channel !== POLL_ONLY && channel !== LONGPOLL && !ctx.push?.hasChannel(channel))
    throw new ParameterError('Unknown Firebase configuration!');

  const registrationUrl = stringAction(ctx, names.registrationUrl, 'enrollment')?.trim() || defaultRegistrationUrl(v, input.publicUrl);
  const ttlRaw = ctx.action<ActionValue>(names.ttl, 'enrollment');
  const ttlMinutes = typeof ttlRaw === 'number' && Number.isSafeInteger(ttlRaw) && ttlRaw > 0 ? ttlRaw : DEFAULT_ROLLOUT_TTL_MINUTES;
  const sslVerify = sslVerifyValue(ctx.action<ActionValue>(names.sslVerify, 'enrollment'));
  const forceAppPin = ctx.action<boolean>(names.forceAppPin, 'enrollment') === true;
  const imageUrl = stringAction(ctx, 'appimageurl', 'enrollment')?.trim() || undefined;
  const { label, issuer } = resolveLabel(input, ctx);
  const deviceProtocol = v.type === 'edupush' && ctx.action<boolean>(DEVICE_ACTIONS.protocol, 'enrollment') === true;
  const deviceInfo: Record<string, string> = deviceProtocol
    ? {
        [DEVICE_INFO.offered]: DEVICE_PROTOCOL_VERSION,
        [DEVICE_INFO.requiredAuthMode]: ctx.action<string>(DEVICE_ACTIONS.authMode, 'enrollment') === 'strict' ? 'strict' : 'lax',
      }
    : {};
  const enrollmentCredential = crypto.randomBytes(20).toString('hex');

  const url = pushUrl(v, {
    label,
    registrationUrl,
    ttlMinutes,
    issuer,
    enrollmentCredential,
    imageUrl,
    serial: input.serial,
    sslVerify,
    forceAppPin,
    deviceProtocol,
  });
  ctx.push?.prepareEnrollment();
  return {
    fields: {
      otpLen: 6,
      counter: 0,
      rolloutState: 'clientwait',
      active: false,
      info: {
        [keys.firebaseConfiguration]: channel,
        [keys.registrationUrl]: registrationUrl,
        [keys.tokenKind]: 'software',
        ...deviceInfo,
      },
      secrets: { [SECRET_KEYS.enrollmentCredential]: enrollmentCredential },
      rolloutTtlMs: ttlMinutes * 60_000,
    },
    details: {
      enrollment_credential: enrollmentCredential,
      pushurl: { description: v.urlDescription, value: url, img: await qrDataUri(url) },
    },
    qrUrl: url,
  };
}

/** Step-2 request from the phone. */
export interface CompleteEnrollmentInput {
  readonly serial: string;
  readonly enrollmentCredential: string;
  /** FCM registration token; empty for poll-only apps. */
  readonly fbToken: string;
  /** The phone's SPKI key as sent (stored verbatim). */
  readonly pubkey: string;
}

export interface CompleteEnrollmentResult {
  /** New tokeninfo and secrets (complete maps), for a conditional update `clientwait → enrolled`. */
  readonly info: Record<string, string>;
  readonly secrets: Record<string, string>;
  /** `detail` for the phone: serial, rollout_state, public_key (PKCS#1 body, line breaks kept). */
  readonly details: { serial: string; rollout_state: 'enrolled'; public_key: string };
}

/** Thrown for a step 2 after the enrollment TTL. */
export class EnrollmentExpiredError extends ParameterError {
  constructor() {
    super('The enrollment of this token has expired. Please enroll the token again.');
  }
}

/**
 * The checks of step 2 that need no database (the token was found in `clientwait` by the caller): the enrollment
 * credential (constant time) and the phone key. Returns the patch to store with the given server key.
 */
export function completeEnrollment(
  v: PushVariant,
  token: TokenRecord,
  input: CompleteEnrollmentInput,
  serverKey: ServerKeyPair,
): CompleteEnrollmentResult {
  checkEnrollmentCredential(token, input.enrollmentCredential);
  try {
    parsePhoneKey(input.pubkey);
  } catch (err) {
    if (err instanceof PhoneKeyError) throw new ParameterError(`Invalid public key: ${err.message}`);
    throw err;
  }
  const keys = infoKeys(v);
  const info: Record<string, string> = { ...token.info };
  info[keys.publicKeySmartphone] = input.pubkey;
  info[keys.firebaseToken] = input.fbToken;
  info[keys.publicKeyServer] = serverKey.publicPem;
  delete info[keys.deviceStale];
  const secrets: Record<string, string> = { ...token.secrets };
  delete secrets[SECRET_KEYS.enrollmentCredential];
  secrets[SECRET_KEYS.privateKeyServer] = serverKey.privatePem;
  return { info, secrets, details: { serial: token.serial, rollout_state: 'enrolled', public_key: stripPemArmor(serverKey.publicPem) } };
}

/** 400 ERR905 unless `given` equals the stored enrollment credential. */
export function checkEnrollmentCredential(token: TokenRecord, given: string): void {
  const stored = token.secrets[SECRET_KEYS.enrollmentCredential] ?? '';
  const a = Buffer.from(stored, 'utf8');
  const b = Buffer.from(given, 'utf8');
  if (stored === '' || a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
    throw new ParameterError('Invalid enrollment credential. You are not authorized to finalize this token.');
  }
}
